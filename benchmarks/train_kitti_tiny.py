"""Self-supervised stage-1 training on the real KITTI raw tiny clip alone; prints JSON.

    python benchmarks/train_kitti_tiny.py --init bundled --max-minutes 15   # fine-tune the packaged model (issue 13)
    python benchmarks/train_kitti_tiny.py --steps 400 --size 320x96          # from scratch, 400 steps

Real-data check: DSNet + CamNet trained (from scratch, or fine-tuned from ``--init``) on
the clip's 5 triplets (K from its calibration, no labels: the semantic loss is off), depth
abs_rel against the Velodyne ground truth (median-scaled, Garg crop, 1e-3–80 m) before
(the initial networks) and after, beside the trivial answer (a median-depth plane).
Reports wall-clock time of the training (rendering nothing, reading 7 frames) and the
load average, since the cores may be shared.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from omeganet_ros.evaluate.trivial import depth_plane as trivial_depth  # noqa: E402
from omeganet_ros.runtime import machine_record  # noqa: E402
from omeganet_ros.synth import parse_size  # noqa: E402
from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_raw_tiny"


def _median_plane_abs_rel(dataset) -> float:
    """abs_rel of the trivial answer, one constant depth per image (median-scaled), same evaluator and crop."""
    from omeganet_ros.evaluate import DepthEvaluator

    evaluator = DepthEvaluator()
    for index in range(len(dataset)):
        gt = dataset[index]["depth"][0].numpy()
        evaluator.add(trivial_depth(gt), gt)
    return float(evaluator.result()["abs_rel"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="kitti_raw_tiny folder (with kitti_tiny.txt)")
    p.add_argument("--steps", type=int, default=200, help="steps (with --max-minutes: an upper bound)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of the training")
    p.add_argument("--init", default=None,
                   help="checkpoint to fine-tune ('bundled': the packaged model; default: from scratch, legacy nets)")
    p.add_argument("--size", default=None, help="network input WxH (default: the --init checkpoint's, else 192x64)")
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
    init = None
    if args.init is not None:
        from omeganet_ros.checkpoint import default_checkpoint_path, load_checkpoint

        init = default_checkpoint_path() if args.init == "bundled" else Path(args.init)
        ckpt = load_checkpoint(init)
    width, height = parse_size(args.size or ("x".join(map(str, ckpt.input_size)) if init else "192x64"))
    overrides = {
        "stage": 1, "size": [width, height], "batch_size": args.batch_size, "steps": args.steps,
        "optimizer": {"lr": args.lr}, "checkpoint_every": 10 ** 9, "validate_every": 10 ** 9,
        "validation": {"max_items": 100}, "intrinsics": "given",
        "loss": {"photometric_resolution": "input"}}  # the stage-1 loss its published figures were measured with
    if init is None:
        overrides.update({"architecture": "legacy",
                          "networks": {"camnet": {"pose_negative_slope": args.pose_negative_slope}}})
    else:
        overrides.update({"architecture": ckpt.provenance.get("architecture", "official"), "init": [str(init)],
                          "batch_norm_momentum": 0.01})
    config = merge_config(DEFAULT_CONFIG, overrides)
    spec = f"kitti:{args.root}:{split}"
    results = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no proxy semantic labels": expected here
        for name, steps in (("untrained", 0), ("trained", args.steps)):
            start = time.perf_counter()
            trainer = Trainer(config, [spec], Path(tmp) / name, progress=False)
            metrics = trainer.train(steps, max_minutes=args.max_minutes if steps else None)
            results[name] = {"steps": trainer.step, "seconds": round(time.perf_counter() - start, 1),
                             **{k: metrics[k] for k in ("depth_abs_rel", "depth_sq_rel", "depth_rmse", "depth_a1")
                                if k in metrics}}
        results["trivial"] = {"depth_abs_rel": _median_plane_abs_rel(trainer.dataset)}
    print(json.dumps({
        "data": spec, "init": str(init) if init else None, "max_minutes": args.max_minutes,
        "triplets": len(trainer.dataset), "size": [width, height], "lr": args.lr,
        "batch_size": args.batch_size, "threads": args.threads, "pose_negative_slope": args.pose_negative_slope, **results,
        **machine_record()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
