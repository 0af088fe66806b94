"""Self-supervised stage-1 training on the real KITTI raw tiny clip alone; prints JSON.

    python benchmarks/train_kitti_tiny.py                     # ../shared/data/kitti_raw_tiny, 200 steps
    python benchmarks/train_kitti_tiny.py --steps 400 --size 320x96

Issue 6's real-data check: DSNet + CamNet trained on the clip's 5 triplets
(K from its calibration, no labels: the semantic loss is off), depth abs_rel
against the Velodyne ground truth (median-scaled, Garg crop, 1e-3–80 m) before
(the untrained networks, same seed) and after. Reports wall-clock time of the
training (rendering nothing, reading 7 frames) and the load average, since the
cores may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from omeganet_ros.synth import parse_size  # noqa: E402
from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_raw_tiny"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="kitti_raw_tiny folder (with kitti_tiny.txt)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--size", default="192x64", help="network input WxH")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pose-negative-slope", type=float, default=0.0, help="CamNet pose-head LeakyReLU slope (0: ReLU)")
    args = p.parse_args(argv)
    split = args.root / "kitti_tiny.txt"
    if not split.is_file():
        print(f"train_kitti_tiny: no KITTI tiny clip at {args.root} (expected {split.name})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    width, height = parse_size(args.size)
    config = merge_config(DEFAULT_CONFIG, {
        "stage": 1, "size": [width, height], "batch_size": args.batch_size, "steps": args.steps,
        "optimizer": {"lr": args.lr}, "checkpoint_every": 10 ** 9, "validate_every": 10 ** 9,
        "architecture": "legacy", "networks": {"camnet": {"pose_negative_slope": args.pose_negative_slope}},
        "validation": {"max_items": 100}})
    spec = f"kitti:{args.root}:{split}"
    results = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no proxy semantic labels": expected here
        for name, steps in (("untrained", 0), ("trained", args.steps)):
            start = time.perf_counter()
            trainer = Trainer(config, [spec], Path(tmp) / name, progress=False)
            metrics = trainer.train(steps)
            results[name] = {"steps": steps, "seconds": round(time.perf_counter() - start, 1),
                             **{k: metrics[k] for k in ("depth_abs_rel", "depth_sq_rel", "depth_rmse", "depth_a1")
                                if k in metrics}}
    print(json.dumps({
        "data": spec, "triplets": len(trainer.dataset), "size": [width, height], "lr": args.lr,
        "batch_size": args.batch_size, "threads": args.threads, "pose_negative_slope": args.pose_negative_slope, **results,
        "load_average": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__,
        "machine": platform.machine()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
