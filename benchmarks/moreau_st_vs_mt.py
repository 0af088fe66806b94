"""Moreau et al.'s claim on the synthetic world: does learning instances (MT) improve depth over depth + pose (ST),
above all on the vehicle ahead that moves at the camera's speed? Prints JSON.

    python benchmarks/moreau_st_vs_mt.py --runs runs/moreau        # after scripts/train_moreau_reference.sh

For each run of ``--runs`` (``st``, ``mt_equal``, ``mt_dwa``, ``mt_uncertainty``: same data, same wall-clock
budget) on unseen streets (``--seeds``, never trained or validated on), through the ScenePipeline as every
caller:

* depth abs_rel (and a1, the signed log error) over all pixels with ground truth up to 80 m, per-image median
  scaling; and on the camera-speed vehicle's pixels (the follower car's exact instance id), with the median
  ratio of the *whole* image (a median taken on the vehicle alone would hide that it sits at the wrong depth
  relative to the scene). Beside it: the median-depth plane (evaluate/trivial.py) and the packaged ΩNet
  model, same protocol;
* instance quality of the clustered output (MT runs) against the exact thing-instance ids: class-agnostic
  PQ / SQ (matched-instance IoU) / RQ at IoU 0.5 (evaluate/instance.py), beside the connected components of
  the true thing mask;
* speed per frame (median ms, after warm-up) of the Moreau engine (with and without instance clustering) and
  the ΩNet engine, at the same network size, threads and precision, in this same process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omeganet_ros.evaluate.depth import compute_depth_errors  # noqa: E402
from omeganet_ros.evaluate.instance import InstanceEvaluator  # noqa: E402
from omeganet_ros.evaluate.trivial import ANSWERS, connected_components  # noqa: E402
from omeganet_ros.instances import thing_instances  # noqa: E402

RUNS = ("st", "mt_equal", "mt_dwa", "mt_uncertainty")
MAX_DEPTH = 80.0


def streets(seeds, frames, size):
    """Per seed: (frames as dicts with image, depth, thing instances, follower mask)."""
    from omeganet_ros.synth import SynthConfig, SyntheticSequence

    out = {}
    for seed in seeds:
        sequence = SyntheticSequence(SynthConfig(frames=frames, seed=seed, width=size[0], height=size[1]))
        follower_ids = sequence.scene.instance[sequence.scene.follow != 0]
        out[seed] = [{"image": f["image"], "stamp": f["stamp_ns"] * 1e-9, "depth": f["depth"],
                      "instance": thing_instances(f["instance"], f["semantic"]),
                      "follower": np.isin(f["instance"], follower_ids)} for f in sequence]
    return out


class DepthScores:
    """abs_rel, a1 and mean log(pred/gt) over all pixels and over the follower's, median-scaled per image."""

    def __init__(self):
        self.all, self.follower = [], []

    def add(self, pred: np.ndarray, frame: dict) -> None:
        gt = frame["depth"]
        valid = np.isfinite(gt) & (gt > 1e-3) & (gt < MAX_DEPTH) & np.isfinite(pred) & (pred > 0)
        ratio = np.median(gt[valid]) / np.median(pred[valid])
        scaled = np.clip(pred * ratio, 1e-3, MAX_DEPTH)
        for mask, store in ((valid, self.all), (valid & frame["follower"], self.follower)):
            if mask.sum() >= 20:
                errors = compute_depth_errors(gt[mask].astype(np.float64), scaled[mask].astype(np.float64))
                errors["log_bias"] = float(np.mean(np.log(scaled[mask] / gt[mask])))
                store.append(errors)

    def result(self) -> dict:
        def mean(rows):
            return {k: float(np.mean([r[k] for r in rows])) for k in ("abs_rel", "a1", "log_bias")} | {"images": len(rows)}

        return {"all_pixels": mean(self.all), "camera_speed_vehicle": mean(self.follower)}


def run_pipeline(engine, data, on_result) -> list[float]:
    """Push every street through a ScenePipeline; on_result(outputs, frame) per result; returns ms per result."""
    from omeganet_ros.pipeline import ScenePipeline

    times = []
    for frames in data.values():
        pipeline = ScenePipeline(engine)
        for i, frame in enumerate(frames):
            result = pipeline.push(frame["image"], frame["stamp"], tag=i)
            if result is not None:
                on_result(result.outputs, frames[result.frame.tag])
                times.append(result.outputs.timings_ms["total"])
    return times


def evaluate_moreau(checkpoint: Path, data, size) -> dict:
    from omeganet_ros.moreau_engine import MoreauEngine

    engine = MoreauEngine(checkpoint, device="cpu", size=size, output_resolution="network")
    depth, instances = DepthScores(), InstanceEvaluator()

    def on_result(out, frame):
        depth.add(out.depth, frame)
        if out.instance is not None:
            instances.add(out.instance, frame["instance"])

    run_pipeline(engine, data, on_result)
    from omeganet_ros.checkpoint import load_checkpoint

    provenance = load_checkpoint(checkpoint).provenance
    result = {"checkpoint": str(checkpoint), "steps": provenance.get("step"), "tasks": provenance.get("tasks"),
              "weighting": provenance.get("config", {}).get("weighting", {}).get("name"),
              "final_loss_weights": provenance.get("loss_weights"), "depth": depth.result()}
    if engine.has_instances:
        result["instance"] = instances.result()
    return result


def speed(engine, frames, warmup: int = 3) -> dict:
    """Median total and per-stage ms per frame over ``frames`` after ``warmup`` results."""
    rows = []

    def on_result(out, frame):
        rows.append(out.timings_ms)

    run_pipeline(engine, {0: frames}, on_result)
    rows = rows[warmup:]
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]} | {"frames": len(rows)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="runs/moreau", help="folder with st/, mt_equal/, mt_dwa/, mt_uncertainty/")
    p.add_argument("--seeds", default="100,101,102", help="unseen test streets")
    p.add_argument("--frames", type=int, default=30, help="frames per street")
    p.add_argument("--size", default="256x96", help="render and network size WxH")
    p.add_argument("--omeganet", default=None, help="ΩNet checkpoint beside (default: the packaged one)")
    p.add_argument("--speed-frames", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from omeganet_ros.engine import SceneEngine
    from omeganet_ros.moreau_engine import MoreauEngine
    from omeganet_ros.synth import parse_size

    size = parse_size(args.size)
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    data = streets(seeds, args.frames, size)
    record = {"benchmark": "moreau_st_vs_mt", "seeds": seeds, "frames_per_seed": args.frames, "size": list(size),
              "depth_protocol": f"per-image median scaling over all pixels with ground truth < {MAX_DEPTH:g} m; "
                                "the vehicle's errors use the whole image's ratio; log_bias = mean log(pred/gt) "
                                "(> 0: too far)",
              "runs": {}}
    plane = DepthScores()
    for frames in data.values():
        for frame in frames[1:-1]:
            plane.add(np.ones_like(frame["depth"]), frame)
    record["trivial_depth"] = {"answer": ANSWERS["depth"], **plane.result()}
    cc = InstanceEvaluator()
    for frames in data.values():
        for frame in frames[1:-1]:
            cc.add(connected_components(frame["instance"]), frame["instance"])
    record["trivial_instance"] = {"answer": ANSWERS["instance"], **cc.result()}
    runs = Path(args.runs)
    for name in RUNS:
        checkpoint = runs / name / "last.pt"
        if checkpoint.is_file():
            record["runs"][name] = evaluate_moreau(checkpoint, data, size)
    omeganet = SceneEngine(args.omeganet, device="cpu", size=size, output_resolution="network")
    omeganet_depth = DepthScores()
    run_pipeline(omeganet, data, lambda out, frame: omeganet_depth.add(out.depth, frame))
    record["omeganet_depth"] = {"checkpoint": str(omeganet.checkpoint_path), **omeganet_depth.result()}

    frames = data[seeds[0]][:args.speed_frames]
    best_mt = min((n for n in record["runs"] if n != "st"), default=None,
                  key=lambda n: record["runs"][n]["depth"]["all_pixels"]["abs_rel"])
    moreau_ckpt = runs / best_mt / "last.pt" if best_mt else "random"
    record["speed_ms_per_frame"] = {
        "network_size": list(size), "threads": args.threads, "precision": "fp32",
        "moreau_with_instances": speed(MoreauEngine(moreau_ckpt, device="cpu", size=size), frames),
        "moreau_depth_pose_only": speed(MoreauEngine(moreau_ckpt, device="cpu", size=size, instances=False), frames),
        "omeganet": speed(SceneEngine(args.omeganet, device="cpu", size=size), frames),
    }
    record["machine"] = {"cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()), "python": platform.python_version(),
                         "torch": torch.__version__}
    record["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
