"""The replay report: report.json, report.md, mosaic.png, run.mp4, trajectory.png, latency.png in one folder.

:func:`write_report` is ROS-free: it reads the input bag and the recorded
output bag with ``rosbags`` and takes the timing the player measured.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from omeganet_ros.data import rosbag_io
from omeganet_ros.evaluate.runner import markdown_table
from omeganet_ros.report import accuracy as accuracy_mod
from omeganet_ros.report import figures, run_data, timing as timing_mod
from omeganet_ros.report.video import Mp4Writer
from omeganet_ros.report.visualize import MOSAIC_PANELS, mosaic, mosaic_row, panels_for

REPORT_FILES = {"json": "report.json", "markdown": "report.md", "mosaic": "mosaic.png", "video": "run.mp4",
                "trajectory": "trajectory.png", "latency": "latency.png"}


def _clean(value):
    """JSON-safe copy: NaN/inf → None, numpy scalars → Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sample_indices(count: int, samples: int) -> list[int]:
    """``samples`` indices spread evenly over ``count`` items (all of them when fewer)."""
    if count <= samples:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, samples)})


def _row(frame: run_data.FrameRecord, t0: int, panels: tuple[str, ...]) -> np.ndarray:
    out = frame.outputs
    return mosaic_row(frame.image, out.get("depth"), out.get("flow"), out.get("semantic"), out.get("motion"),
                      caption=f"t={(frame.stamp_ns - t0) / 1e9:.1f}s", instance=out.get("instance"), panels=panels)


def write_mosaic(path: Path, frames: list[run_data.FrameRecord], samples: int = 4,
                 panels: tuple[str, ...] = MOSAIC_PANELS) -> int:
    """PNG mosaic (``panels``, by default input | depth | flow | semantics | motion) of ``samples`` answered
    frames; returns rows."""
    answered = [f for f in frames if f.answered]
    if not answered:
        return 0
    t0 = frames[0].stamp_ns
    rows = [_row(f, t0, panels) for f in (answered[i] for i in sample_indices(len(answered), samples))]
    if not cv2.imwrite(str(path), np.ascontiguousarray(mosaic(rows)[..., ::-1])):
        raise OSError(f"could not write mosaic {path}")
    return len(rows)


def write_video(path: Path, frames: list[run_data.FrameRecord], fps: float, max_width: int = 1600,
                panels: tuple[str, ...] = MOSAIC_PANELS) -> dict:
    """MP4 of the whole run, one mosaic row (``panels``) per input frame (unanswered frames show grey panels)."""
    if not frames:
        return {"frames": 0, "codec": None}
    t0 = frames[0].stamp_ns
    with Mp4Writer(path, fps=fps) as video:
        for frame in frames:
            row = _row(frame, t0, panels)
            if row.shape[1] > max_width:
                scale = max_width / row.shape[1]
                row = cv2.resize(row, (max_width, int(round(row.shape[0] * scale))), interpolation=cv2.INTER_AREA)
            video.write(row)
        return {"frames": video.frames, "codec": video.codec, "fps": fps}


def _bag_fps(stamps: list[int]) -> float:
    if len(stamps) < 2:
        return 10.0
    period = np.median(np.diff(np.asarray(stamps, np.float64))) / 1e9
    return float(min(60.0, max(1.0, 1.0 / period))) if period > 0 else 10.0


def write_report(out_dir: str | Path, *, input_bag: str | Path, output_bag: str | Path | None,
                 image_topic: str, timing: timing_mod.RunTiming | None, namespace: str = "/",
                 gt_topics: dict | None = None, pred_topics: dict | None = None, scene_topic: str = "scene",
                 depth_median_scaling: str = "auto", depth_crop: str | None = None,
                 throughput: dict | None = None, model: dict | None = None, run: dict | None = None,
                 mosaic_samples: int = 4, video: bool = True, recorded: dict | None = None) -> dict:
    """Write every report file into ``out_dir``; returns the report dict (as in report.json).

    ``depth_median_scaling``: "auto" (on unless the node says its depth is
    metric), "on" or "off". ``model``/``run``: free descriptions copied into
    the report (checkpoint, random weights, pacing mode, …). ``recorded``:
    {topic: messages received} during the run.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene_topic_abs = accuracy_mod.resolve_topic(scene_topic, namespace)
    scene = run_data.read_scene_info(output_bag, scene_topic_abs) if output_bag else run_data.SceneInfo()
    outputs_absent = run_data.read_outputs_absent(output_bag) if output_bag else None
    if outputs_absent is not None:  # what the node's model does not estimate (Moreau et al.: flow, semantics, …)
        model = {**(model or {}), "outputs_absent": outputs_absent}
    lookahead = {"forward": 1, "backward": 0}.get(scene.direction or "", 1)

    report: dict = {"input_bag": str(input_bag), "output_bag": str(output_bag) if output_bag else None,
                    "image_topic": image_topic, "model": model or {}, "run": run or {},
                    "messages_recorded": dict(sorted((recorded or {}).items()))}
    files = {}

    # Timing
    if timing is not None:
        report["timing"] = timing_mod.summarize(timing, lookahead, scene.latency_ms, scene.engine_ms)
        report["timing"]["node_mode"] = {"forward": "paper (describes frame t once t+1 arrives)",
                                         "backward": "causal (describes the newest frame)"}.get(scene.direction or "",
                                                                                              "unknown")
    if throughput is not None:
        report["throughput"] = throughput

    # Accuracy
    metric = bool(scene.depth_is_metric) and all(scene.depth_is_metric)
    median_scaling = {"auto": not metric, "on": True, "off": False}[depth_median_scaling]
    if metric and "depth" not in (pred_topics or {}):
        pred_topics = {**(pred_topics or {}), "depth": accuracy_mod.METRIC_DEPTH_TOPIC}
    if output_bag is not None:
        report["accuracy"] = accuracy_mod.evaluate_run(
            output_bag, input_bag, pred_topics, gt_topics, namespace=namespace,
            depth_median_scaling=median_scaling, depth_crop=depth_crop,
            flow_direction=scene.direction or "forward", outputs_absent=outputs_absent)
        odometry = report["accuracy"].get("odometry", {})
        if odometry.get("num_segments") == 0:
            odometry["note"] = ("the run is shorter than KITTI's shortest segment (100 m): t_err and r_err are "
                                "undefined; see ate and rpe")

    # Pictures
    frames = run_data.collect_frames(
        input_bag, image_topic, output_bag,
        {k: accuracy_mod.resolve_topic(t, namespace) for k, t in run_data.PANEL_TOPICS.items()})
    panels = panels_for(outputs_absent, any("instance" in f.outputs for f in frames))
    report["mosaic_panels"] = list(panels)
    if write_mosaic(out_dir / REPORT_FILES["mosaic"], frames, mosaic_samples, panels):
        files["mosaic"] = REPORT_FILES["mosaic"]
    if video and frames:
        report["video"] = write_video(out_dir / REPORT_FILES["video"], frames, _bag_fps([f.stamp_ns for f in frames]),
                                      panels=panels)
        files["video"] = REPORT_FILES["video"]
    report["frames_answered_in_output_bag"] = sum(f.answered for f in frames)

    pose_topic = accuracy_mod.resolve_topic((pred_topics or {}).get("pose", accuracy_mod.DEFAULT_PRED_TOPICS["pose"]),
                                            namespace)
    gt_pose_topic = (gt_topics or {}).get("pose", accuracy_mod.DEFAULT_GT_TOPICS["pose"])
    if output_bag is not None and pose_topic in rosbag_io.list_topics(output_bag):
        pred_stamps, pred_xyz = run_data.read_positions(output_bag, pose_topic)
        gt_xyz = None
        if gt_pose_topic and gt_pose_topic in rosbag_io.list_topics(input_bag):
            gt_stamps, gt_all = run_data.read_positions(input_bag, gt_pose_topic)
            lookup = {int(s): i for i, s in enumerate(gt_stamps)}
            keep = [i for i, s in enumerate(pred_stamps) if int(s) in lookup]
            if len(keep) >= 2:
                pred_xyz = pred_xyz[keep]
                gt_xyz = gt_all[[lookup[int(pred_stamps[i])] for i in keep]]
        if len(pred_xyz) >= 2:
            figures.plot_trajectory(out_dir / REPORT_FILES["trajectory"], pred_xyz, gt_xyz)
            files["trajectory"] = REPORT_FILES["trajectory"]

    if timing is not None and report["timing"]["frames_processed"]:
        per_frame = report["timing"]["per_frame"]
        engine = None
        if scene.engine_ms and len(scene.stamps) == len(scene.engine_ms):
            by_stamp = dict(zip(scene.stamps, scene.engine_ms))
            answered = [s for s in timing.offered_stamps if s in timing.received_wall]
            if all(s in by_stamp for s in answered):
                engine = np.array([by_stamp[s] for s in answered])
        trigger = per_frame["latency_from_trigger_ms"] if report["timing"]["lookahead_frames"] else None
        figures.plot_latency(out_dir / REPORT_FILES["latency"], per_frame["offered_at_s"], per_frame["latency_ms"],
                             engine, trigger_ms=trigger)
        files["latency"] = REPORT_FILES["latency"]

    files["json"], files["markdown"] = REPORT_FILES["json"], REPORT_FILES["markdown"]
    report["files"] = files
    report = _clean(report)
    (out_dir / REPORT_FILES["json"]).write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / REPORT_FILES["markdown"]).write_text(render_markdown(report))
    return report


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(report: dict) -> str:
    """report.md: the same figures as report.json, as tables, with the pictures linked."""
    lines = ["# omeganet_ros replay report", ""]
    lines.append(f"- input bag: `{report['input_bag']}` (images: `{report['image_topic']}`)")
    if report.get("output_bag"):
        lines.append(f"- output bag: `{report['output_bag']}`")
    model = report.get("model") or {}
    if model:
        lines.append("- model: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in model.items()))
        if model.get("random_weights"):
            lines.append("- **the node ran with randomly initialised weights: its outputs, and so every accuracy "
                         "figure below, are meaningless — they show that the pipeline works, not how well ΩNet does**")
    run = report.get("run") or {}
    if run:
        lines.append("- run: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in run.items()))
    lines.append("")

    files = report.get("files", {})
    if "mosaic" in files:
        lines += [f"![{' | '.join(report.get('mosaic_panels', MOSAIC_PANELS))}](mosaic.png)", ""]

    if "accuracy" in report:
        lines += ["## Accuracy (evaluation suite, matched by header stamp)", ""]
        for task, result in report["accuracy"].items():
            label = f"**{task}** (`{result.get('prediction_topic')}` vs `{result.get('ground_truth_topic')}`)"
            if result.get("absent"):
                lines += [f"{label}: **absent** — {result['skipped']}", ""]
                continue
            if "skipped" in result:
                lines += [f"{label}: skipped — {result['skipped']}", ""]
                continue
            lines += [label, "", markdown_table(task, result)]
            if result.get("note"):
                lines.append(f"\n_{result['note']}_")
            lines.append("")

    if "timing" in report:
        t = report["timing"]
        lines += ["## Timing", ""]
        lines.append(f"- node mode: {t.get('node_mode')}")
        lines.append(f"- frames offered {t['frames_offered']}, processed {t['frames_processed']}, dropped "
                     f"{t['frames_dropped']} ({_fmt(100 * t['drop_fraction'], 1)} %), unanswerable by design "
                     f"{t['frames_unanswerable']}")
        lines.append(f"- rate offered {_fmt(t['offered_rate_hz'], 2)} Hz, processed {_fmt(t['processed_rate_hz'], 2)} Hz")
        lines.append("")
        lines.append("| latency (ms) | p50 | p95 | max | mean | count |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for key, name in (("latency_ms", "end to end: frame published → its scene received"),
                          ("latency_from_trigger_ms", "from the frame that completed its triple"),
                          ("node_latency_ms", "inside the node (scene.latency_ms)"),
                          ("engine_ms", "engine (scene.engine_ms)")):
            d = t[key]
            lines.append(f"| {name} | {_fmt(d['p50'], 1)} | {_fmt(d['p95'], 1)} | {_fmt(d['max'], 1)} | "
                         f"{_fmt(d['mean'], 1)} | {d['count']} |")
        lines.append("")
        if "latency" in files:
            lines += ["![latency over time](latency.png)", ""]

    if "throughput" in report:
        th = report["throughput"]
        lines += ["## Throughput search", "", f"Criterion: {th['criterion']}.", "",
                  f"**Highest sustained rate: {_fmt(th['max_sustained_rate_hz'], 2)} Hz**", "",
                  "| offered (Hz) | frames | processed | dropped | dropped % | latency p50 (ms) | p95 (ms) |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for trial in th["trials"]:
            lines.append(f"| {_fmt(trial['rate_hz'], 2)} | {trial['frames_offered']} | {trial['frames_processed']} | "
                         f"{trial['frames_dropped']} | {_fmt(100 * trial['drop_fraction'], 1)} | "
                         f"{_fmt(trial['latency_p50_ms'], 1)} | {_fmt(trial['latency_p95_ms'], 1)} |")
        lines.append("")

    if report.get("messages_recorded"):
        lines += ["## Recorded outputs", "", "| topic | messages |", "|---|---:|"]
        lines += [f"| `{topic}` | {count} |" for topic, count in report["messages_recorded"].items()]
        lines.append("")

    if "trajectory" in files:
        lines += ["## Trajectory", "", "![estimated trajectory against ground truth](trajectory.png)", ""]
    if "video" in files:
        lines += [f"Video of the whole run: [run.mp4](run.mp4) ({report['video'].get('frames')} frames, "
                  f"{report['video'].get('codec')})", ""]
    return "\n".join(lines)
