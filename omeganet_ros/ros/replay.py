"""``omeganet-replay``: play a ROS 2 bag into the omeganet node over DDS, record its outputs, write a report.

    omeganet-replay BAG --out DIR [--launch-node [--node-args "..."]] [--rate F | --fps HZ | --keep-up]
                    [--throughput-search] [--gt TASK=TOPIC ...]

The bag's images (and camera_info) are published as raw CDR with ``/clock``
following the bag's time, at the original timing (``--rate``, a factor), at a
fixed frame rate (``--fps``) or as fast as the node keeps up (``--keep-up``:
each frame waits for the previous result, up to ``--keep-up-timeout``). Every
topic the node publishes is recorded into ``DIR/outputs`` (mcap). Then
``DIR/report.json`` and ``report.md`` give accuracy against the bag's
ground-truth topics (matched by header stamp, computed with the evaluation
suite), latency, rates and dropped frames, optionally a throughput search,
with ``mosaic.png``, ``run.mp4``, ``trajectory.png`` and ``latency.png``.
See ``docs/replay.md``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omeganet_ros.report import accuracy as accuracy_mod
from omeganet_ros.report.timing import MAX_DROP_FRACTION, ThroughputSearch, summarize
from omeganet_ros.report.writer import write_report
from omeganet_ros.ros.replay_bag import BagError, Frame, ReplayBag, header_stamp_ns, with_header_stamp
from omeganet_ros.ros.replay_session import DEFAULT_RECORD_EXCLUDE

OUTPUT_BAG = "outputs"
NODE_LOG = "node.log"
TRIAL_GAP_NS = 10_000_000_000
# --keep-up: until the first result shows whether the node answers frame k or k−1, the first two frames
# (which a three-frame engine may never answer) wait at most this long.
WARMUP_WAIT_S = 1.0   # stamps of successive throughput trials are this far apart (the node resets)


@dataclass
class ReplayOptions:
    """Everything ``omeganet-replay`` takes; the CLI flags map one to one (see :func:`build_parser`)."""

    bag: Path
    out: Path
    image_topic: str = "/camera/image_raw"
    camera_info_topic: str | None = "auto"
    node_image_topic: str = "image"
    node_camera_info_topic: str = "camera_info"
    launch_node: bool = False
    node_args: str = ""
    node_name: str = "omeganet_node"
    namespace: str = "/"
    result_topic: str = "scene"
    pacing: str = "timed"               # timed | fps | keep-up
    rate: float = 1.0
    fps: float | None = None
    keep_up_timeout: float = 10.0
    max_frames: int | None = None
    clock: bool = True
    record_exclude: str = DEFAULT_RECORD_EXCLUDE
    gt_topics: dict = field(default_factory=dict)
    pred_topics: dict = field(default_factory=dict)
    no_gt: bool = False
    throughput_search: bool = False
    search_frames: int = 30
    search_start_hz: float | None = None
    search_max_trials: int = 8
    depth_crop: str | None = None
    depth_median_scaling: str = "auto"
    video: bool = True
    mosaic_samples: int = 4
    node_timeout: float = 180.0
    drain_quiet: float = 5.0
    force: bool = False
    progress: bool = True


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=True)


def _sleep_until(target: float, session, clock_from_ns: int | None = None, clock_origin_wall: float | None = None,
                 rate: float = 1.0, clock_until_ns: int | None = None) -> None:
    """Sleep until the monotonic time ``target``; with ``clock_from_ns``, keep /clock moving at ``rate``
    meanwhile (every 50 ms), never past ``clock_until_ns`` (the next message's time: /clock never goes back)."""
    while True:
        remaining = target - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(remaining, 0.05))
        if clock_from_ns is not None and clock_origin_wall is not None:
            now_ns = clock_from_ns + int((time.monotonic() - clock_origin_wall) * rate * 1e9)
            session.publish_clock(min(now_ns, clock_until_ns) if clock_until_ns is not None else now_ns)


def play_frames(session, frames, topic_map: dict[str, str], *, pacing: str, rate: float = 1.0,
                fps: float | None = None, keep_up_timeout: float = 10.0, stamp_offset_ns: int = 0,
                alive=lambda: True, bar=None) -> list[int]:
    """Publish ``frames`` (an iterable of :class:`Frame`) with the chosen pacing; returns the stamps offered.

    ``topic_map``: bag topic → published topic. ``stamp_offset_ns`` is added to
    every header stamp and to /clock (throughput trials).
    """
    if pacing not in ("timed", "fps", "keep-up"):
        raise ValueError(f"unknown pacing {pacing!r}; expected timed, fps or keep-up")
    if pacing == "timed" and rate <= 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    if pacing == "fps" and (fps is None or fps <= 0):
        raise ValueError(f"--fps must be positive, got {fps}")
    sent: list[int] = []
    start_wall = first_record = None
    lookahead = None
    for k, frame in enumerate(frames):
        alive()
        record = frame.image.record_ns
        if start_wall is None:
            start_wall, first_record = time.monotonic(), record
        if pacing == "timed":
            target = start_wall + (record - first_record) / 1e9 / rate
            _sleep_until(target, session, first_record + stamp_offset_ns, start_wall, rate, record + stamp_offset_ns)
        elif pacing == "fps":
            _sleep_until(start_wall + k / fps, session)
        session.publish_clock(record + stamp_offset_ns)
        stamp = frame.stamp_ns + stamp_offset_ns
        for message in frame.messages:
            data = message.data
            if stamp_offset_ns:
                data = with_header_stamp(data, header_stamp_ns(data) + stamp_offset_ns)
            if message is frame.image:
                session.timing.offer(stamp, time.monotonic())
            session.publish_raw(topic_map[message.topic], data)
        sent.append(stamp)
        if pacing == "keep-up":
            received = session.timing.received_wall
            if lookahead is None:
                candidates = {s for s in sent[-2:] if s not in received}
                session.wait_for_result(candidates, min(WARMUP_WAIT_S, keep_up_timeout) if k < 2 else keep_up_timeout)
                answered = [i for i, s in enumerate(sent) if s in received]
                if answered:
                    lookahead = max(0, len(sent) - 1 - answered[-1])
            elif k - lookahead >= 0:
                session.wait_for_result({sent[k - lookahead]}, keep_up_timeout)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(answered=len(session.timing.received_wall), refresh=False)
    return sent


def _model_description(options: ReplayOptions) -> dict:
    """What the replay knows of the model the node runs (from --node-args when it launched the node)."""
    if not options.launch_node:
        return {"source": f"already running node {options.node_name!r} (model not known to the replay tool)"}
    from omeganet_ros.checkpoint import default_checkpoint_path

    model = ""
    tokens = shlex.split(options.node_args)
    for i, token in enumerate(tokens):
        if token.startswith("model:="):
            model = token.split(":=", 1)[1]
        elif token == "-p" and i + 1 < len(tokens) and tokens[i + 1].startswith("model:="):
            model = tokens[i + 1].split(":=", 1)[1]
    if model == "random":
        return {"checkpoint": None, "random_weights": True}
    if model:
        return {"checkpoint": model, "random_weights": False}
    default = default_checkpoint_path()
    if default is None:
        return {"checkpoint": None, "random_weights": True,
                "why": "no reference checkpoint is installed (omeganet_ros/models/omeganet_synth.pt)"}
    return {"checkpoint": str(default), "random_weights": False}


def _trial_summary(rate_hz: float, timing, lookahead: int | None) -> dict:
    summary = summarize(timing, lookahead)
    return {"rate_hz": rate_hz, "offered_rate_hz": summary["offered_rate_hz"],
            "frames_offered": summary["frames_offered"], "frames_processed": summary["frames_processed"],
            "frames_dropped": summary["frames_dropped"], "drop_fraction": summary["drop_fraction"],
            "processed_rate_hz": summary["processed_rate_hz"],
            "latency_p50_ms": summary["latency_ms"]["p50"], "latency_p95_ms": summary["latency_ms"]["p95"]}


def _lookahead(timing) -> int | None:
    """Frames between a result's frame and the newest frame offered when it came back (smallest seen)."""
    order = {s: i for i, s in enumerate(timing.offered_stamps)}
    gaps = []
    for stamp, wall in timing.received_wall.items():
        if stamp in order:
            newest = sum(1 for w in timing.offered_wall if w <= wall) - 1
            gaps.append(newest - order[stamp])
    return max(0, min(gaps)) if gaps else None


def run_throughput_search(session, bag: ReplayBag, topic_map, options: ReplayOptions, start_hz: float,
                          next_stamp_ns: int, alive, log) -> dict:
    """Replay the first ``search_frames`` frames at rising rates; see :class:`ThroughputSearch`."""
    frames: list[Frame] = []
    for frame in bag.frames():
        frames.append(frame)
        if len(frames) >= options.search_frames:
            break
    if len(frames) < 5:
        raise ValueError(f"throughput search needs at least 5 frames; {bag.path} has {len(frames)}")
    search = ThroughputSearch(start_hz, max_trials=options.search_max_trials)
    offset = next_stamp_ns + TRIAL_GAP_NS - frames[0].stamp_ns
    lookahead = None
    while (rate := search.next_rate()) is not None:
        session.new_timing()
        bar = _progress(len(frames), options.progress, f"throughput {rate:.2f} Hz")
        sent = play_frames(session, frames, topic_map, pacing="fps", fps=rate, stamp_offset_ns=offset,
                           alive=alive, bar=bar)
        if bar is not None:
            bar.close()
        session.drain(set(sent[1:-1]), quiet=max(options.drain_quiet, 2.0 / rate), timeout=60.0)
        timing = session.new_timing()
        lookahead = _lookahead(timing) if lookahead is None else lookahead
        trial = _trial_summary(rate, timing, lookahead if lookahead is not None else 1)
        search.add(trial)
        log(f"throughput trial {rate:.2f} Hz: {trial['frames_processed']}/{trial['frames_offered']} processed, "
            f"{100 * trial['drop_fraction']:.1f} % dropped")
        offset = max(sent) + TRIAL_GAP_NS - frames[0].stamp_ns
    return search.result()


def run_replay(options: ReplayOptions, log=print) -> dict:
    """Replay ``options.bag`` through the node and write the report into ``options.out``; returns the report."""
    from omeganet_ros.ros.replay_launch import LaunchedNode
    from omeganet_ros.ros.replay_session import ReplaySession

    if options.pacing not in ("timed", "fps", "keep-up"):
        raise ValueError(f"unknown pacing {options.pacing!r}")
    bag = ReplayBag(options.bag, options.image_topic, options.camera_info_topic, options.max_frames)
    if bag.frame_count == 0:
        raise ValueError(f"bag {bag.path} has no message on {options.image_topic}")
    absent = {task: topic for task, topic in options.gt_topics.items() if topic and topic not in bag.topics}
    if absent and not options.no_gt:
        raise ValueError(f"bag {bag.path} has no ground-truth topic(s) " + ", ".join(f"{t!r} (--gt {k}=…)" for k, t in
                         absent.items()) + f"; its topics: {sorted(bag.topics)}")
    node_args = options.node_args
    if bag.topics[bag.image_topic] == "sensor_msgs/msg/CompressedImage":
        # The node takes compressed frames on image/compressed with image_transport:=compressed.
        if options.node_image_topic == "image":
            options.node_image_topic = "image/compressed"
        if "image_transport:=" not in node_args:
            node_args = node_args + (" " if "--ros-args" in node_args else " --ros-args ") + \
                "-p image_transport:=compressed"
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    output_bag = out / OUTPUT_BAG
    if output_bag.exists():
        if not options.force:
            raise OSError(f"output bag {output_bag} exists already; remove it or pass --force")
        shutil.rmtree(output_bag)

    node = None
    if options.launch_node:
        node = LaunchedNode(out / NODE_LOG, options.node_name, options.namespace, node_args.strip(),
                            options.node_image_topic, options.node_camera_info_topic,
                            compressed=bag.topics[bag.image_topic] == "sensor_msgs/msg/CompressedImage")
        log(f"started the node: {shlex.join(node.command)} (log: {out / NODE_LOG})")
    alive = node.check_alive if node is not None else (lambda: True)
    try:
        with ReplaySession(options.node_name, options.namespace, options.result_topic) as session:
            topic_map = {bag.image_topic: session.resolve(options.node_image_topic)}
            if bag.camera_info_topic:
                topic_map[bag.camera_info_topic] = session.resolve(options.node_camera_info_topic)
            for source, target in topic_map.items():
                session.add_publisher(target, bag.topics[source])
            if options.clock:
                session.enable_clock()
            log(f"waiting for node {options.node_name!r} (up to {options.node_timeout:.0f} s) …")
            publishers = session.wait_for_node(list(topic_map.values()), options.node_timeout, alive)
            recorded = session.start_recording(output_bag, publishers, options.record_exclude)
            log(f"recording {len(recorded)} topics into {output_bag}: {', '.join(recorded)}")
            time.sleep(1.0)  # let the new subscriptions match before the first frame

            bar = _progress(bag.frame_count, options.progress, "replay")
            sent = play_frames(session, bag.frames(), topic_map, pacing=options.pacing, rate=options.rate,
                               fps=options.fps, keep_up_timeout=options.keep_up_timeout, alive=alive, bar=bar)
            if bar is not None:
                bar.close()
            session.drain(set(sent[1:-1]), quiet=options.drain_quiet, timeout=max(30.0, options.keep_up_timeout))
            time.sleep(0.5)  # the last non-result outputs of the last frame
            session.stop_recording()
            main_timing = session.new_timing()
            counts = dict(session.received_counts)

            throughput = None
            if options.throughput_search:
                processed = summarize(main_timing, _lookahead(main_timing))["processed_rate_hz"]
                start = options.search_start_hz or (0.8 * processed if processed == processed and processed > 0 else 2.0)
                throughput = run_throughput_search(session, bag, topic_map, options, round(start, 2),
                                                   max(sent), alive, log)
    finally:
        if node is not None:
            code = node.stop()
            log(f"stopped the node (exit code {code})")

    gt_topics = {task: "" for task in accuracy_mod.DEFAULT_GT_TOPICS} if options.no_gt else options.gt_topics
    run = {"pacing": options.pacing, "rate": options.rate if options.pacing == "timed" else None,
           "fps": options.fps if options.pacing == "fps" else None, "frames_in_bag": bag.frame_count,
           "launched_node": options.launch_node, "node_args": options.node_args}
    log("writing the report …")
    report = write_report(out, input_bag=bag.path, output_bag=output_bag, image_topic=bag.image_topic,
                          timing=main_timing, namespace=options.namespace, gt_topics=gt_topics,
                          pred_topics=options.pred_topics, scene_topic=options.result_topic,
                          depth_median_scaling=options.depth_median_scaling, depth_crop=options.depth_crop,
                          throughput=throughput, model=_model_description(options), run=run,
                          mosaic_samples=options.mosaic_samples, video=options.video,
                          recorded=counts)
    return report


def summary_lines(report: dict) -> list[str]:
    """A few lines for the terminal: speed, accuracy headline, where the files are."""
    lines = []
    t = report.get("timing", {})
    if t:
        lat = t["latency_ms"]
        fmt = lambda v, d=1: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
        lines.append(f"frames: {t['frames_processed']}/{t['frames_offered']} processed, {t['frames_dropped']} dropped; "
                     f"rate offered {fmt(t['offered_rate_hz'], 2)} Hz, processed {fmt(t['processed_rate_hz'], 2)} Hz")
        lines.append(f"latency, frame published → its scene received: p50 {fmt(lat['p50'])} ms, "
                     f"p95 {fmt(lat['p95'])} ms, max {fmt(lat['max'])} ms")
        trig, node, engine = t["latency_from_trigger_ms"], t["node_latency_ms"], t["engine_ms"]
        if t.get("lookahead_frames"):
            lines.append(f"  (paper mode answers frame t when t+1 arrives; from t+1 published: p50 {fmt(trig['p50'])} ms, "
                         f"p95 {fmt(trig['p95'])} ms)")
        if node["count"]:
            lines.append(f"  inside the node p50 {fmt(node['p50'])} ms, of which engine p50 {fmt(engine['p50'])} ms")
    if report.get("throughput"):
        best = report["throughput"]["max_sustained_rate_hz"]
        lines.append(f"throughput: highest rate with ≤ {MAX_DROP_FRACTION:.0%} dropped: "
                     + ("none of the rates tried" if best is None else f"{best:.2f} Hz"))
    for task, result in report.get("accuracy", {}).items():
        if result.get("absent"):
            lines.append(f"{task}: absent (the node's model does not estimate it)")
        if "skipped" in result:
            continue
        figures = {"depth": ("abs_rel", "a1"), "flow": ("epe_all", "fl_all"), "semantic": ("miou", "pixel_acc"),
                   "motion": ("mean_iou",), "pose": ("ate_mean",), "odometry": ("ate",),
                   "instance": ("pq", "sq", "rq")}[task]
        lines.append(f"{task}: " + ", ".join(f"{n} {result[n]:.4f}" for n in figures if result.get(n) is not None))
    if report.get("model", {}).get("random_weights"):
        lines.append("NOTE: the node ran with RANDOM weights (no trained checkpoint): the accuracy above is "
                     "that of an untrained network and means nothing about ΩNet")
    return lines


def _parse_mapping(items: list[str], flag: str) -> dict:
    mapping = {}
    for item in items or []:
        task, sep, topic = item.partition("=")
        if not sep or task not in accuracy_mod.DEFAULT_GT_TOPICS:
            raise ValueError(f"{flag} {item!r}: expected TASK=TOPIC with TASK one of {sorted(accuracy_mod.DEFAULT_GT_TOPICS)}")
        mapping[task] = topic
    return mapping


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omeganet-replay", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bag", type=Path, help="ROS 2 bag: a directory with metadata.yaml, or a .mcap / .db3 file")
    p.add_argument("--out", type=Path, required=True, help="folder for the output bag, the report and the pictures")
    g = p.add_argument_group("input topics")
    g.add_argument("--image-topic", default="/camera/image_raw", help="bag topic with the camera images")
    g.add_argument("--camera-info-topic", default="auto",
                   help="bag topic with CameraInfo; 'auto': <image namespace>/camera_info if present; 'none': do not play")
    g.add_argument("--node-image-topic", default="image", help="topic the images are published on (relative to --namespace)")
    g.add_argument("--node-camera-info-topic", default="camera_info", help="topic camera_info is published on")
    g = p.add_argument_group("the node")
    g.add_argument("--launch-node", action="store_true", help="start the node as a subprocess (use_sim_time:=true)")
    g.add_argument("--node-args", default="", help="extra arguments for the launched node, e.g. "
                   "\"--ros-args -p model:=random -p network_width:=320\"")
    g.add_argument("--node-name", default="omeganet_node", help="name of the node whose outputs are recorded")
    g.add_argument("--namespace", default="/", help="namespace of the node")
    g.add_argument("--result-topic", default="scene", help="the node's per-frame result topic (timing is measured on it)")
    g.add_argument("--node-timeout", type=float, default=180.0, help="seconds to wait for the node to be ready")
    g = p.add_argument_group("pacing (default: the bag's original timing)")
    pacing = g.add_mutually_exclusive_group()
    pacing.add_argument("--rate", type=float, default=None, help="original timing sped up by this factor")
    pacing.add_argument("--fps", type=float, default=None, help="fixed frame rate (Hz), ignoring the bag's timing")
    pacing.add_argument("--keep-up", action="store_true", help="as fast as the node keeps up: each frame waits "
                        "for the previous result (bounded by --keep-up-timeout)")
    g.add_argument("--keep-up-timeout", type=float, default=10.0, help="longest wait for a result in --keep-up")
    g.add_argument("--max-frames", type=int, default=None, help="play only the first N images")
    g.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    g = p.add_argument_group("recording and report")
    g.add_argument("--record-exclude", default=DEFAULT_RECORD_EXCLUDE, help="regex of node topics not to record")
    g.add_argument("--gt", action="append", metavar="TASK=TOPIC",
                   help="ground-truth topic of a task (depth, flow, semantic, motion, pose, odometry); "
                   "default /gt/<task> (/gt/pose for pose and odometry); TASK= (empty) disables one")
    g.add_argument("--pred", action="append", metavar="TASK=TOPIC", help="node output evaluated for a task "
                   "(default depth, flow, semantic, motion/mask, odometry)")
    g.add_argument("--no-gt", action="store_true", help="timing report only, even if the bag has ground truth")
    g.add_argument("--depth-crop", choices=("none", "garg", "eigen"), default="none", help="depth evaluation crop")
    g.add_argument("--depth-median-scaling", choices=("auto", "on", "off"), default="auto",
                   help="auto: on unless the node's depth is metric")
    g.add_argument("--throughput-search", action="store_true",
                   help=f"after the run, replay at rising rates to find the highest with ≤ {MAX_DROP_FRACTION * 100:.0f} %% dropped")
    g.add_argument("--search-frames", type=int, default=30, help="frames per throughput trial")
    g.add_argument("--search-start-hz", type=float, default=None, help="first trial rate (default: 0.8 × processed rate)")
    g.add_argument("--search-max-trials", type=int, default=8)
    g.add_argument("--mosaic-samples", type=int, default=4, help="frames in mosaic.png")
    g.add_argument("--no-video", action="store_true", help="skip run.mp4")
    g.add_argument("--force", action="store_true", help="replace an existing output bag in --out")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    pacing = "keep-up" if args.keep_up else "fps" if args.fps is not None else "timed"
    camera_info = None if args.camera_info_topic == "none" else args.camera_info_topic
    return ReplayOptions(
        bag=args.bag, out=args.out, image_topic=args.image_topic, camera_info_topic=camera_info,
        node_image_topic=args.node_image_topic, node_camera_info_topic=args.node_camera_info_topic,
        launch_node=args.launch_node, node_args=args.node_args, node_name=args.node_name, namespace=args.namespace,
        result_topic=args.result_topic, pacing=pacing, rate=args.rate if args.rate is not None else 1.0,
        fps=args.fps, keep_up_timeout=args.keep_up_timeout, max_frames=args.max_frames, clock=not args.no_clock,
        record_exclude=args.record_exclude, gt_topics=_parse_mapping(args.gt, "--gt"),
        pred_topics=_parse_mapping(args.pred, "--pred"), no_gt=args.no_gt,
        throughput_search=args.throughput_search, search_frames=args.search_frames,
        search_start_hz=args.search_start_hz, search_max_trials=args.search_max_trials,
        depth_crop=None if args.depth_crop == "none" else args.depth_crop,
        depth_median_scaling=args.depth_median_scaling, video=not args.no_video,
        mosaic_samples=args.mosaic_samples, node_timeout=args.node_timeout, force=args.force,
        progress=not args.quiet)


def main(argv: list[str] | None = None) -> int:
    from omeganet_ros.ros.replay_launch import NodeDiedError

    args = build_parser().parse_args(argv)
    try:
        options = options_from_args(args)
        report = run_replay(options, log=lambda m: print(f"[omeganet-replay] {m}", file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError, BagError, OSError) as err:
        print(f"omeganet-replay: error: {err}", file=sys.stderr)
        return 2
    except (TimeoutError, NodeDiedError) as err:
        print(f"omeganet-replay: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("omeganet-replay: interrupted", file=sys.stderr)
        return 130
    for line in summary_lines(report):
        print(line)
    print(f"report: {Path(args.out) / 'report.md'} (and report.json); pictures: "
          + ", ".join(str(Path(args.out) / f) for k, f in report["files"].items() if k not in ("json", "markdown")))
    print(json.dumps({"report": str(Path(args.out) / "report.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
