"""Accuracy cost of faster arithmetic: every engine output under bf16 (or another precision) against fp32, as JSON.

Runs the scene engine twice over the same real frames (KITTI raw, ``../shared/data``) —
fp32 eager torch, and the precision (and backend) under test — and prints per output the largest and mean
difference: depth as relative error, flow in pixels, semantic labels and the motion mask
as the fraction of pixels that agree, ego-motion as translation (relative units) and
rotation (degrees; both runs with the node's ``rotation_from_flow`` unless ``--no-rotation-from-flow``). Each figure is printed beside its trivial baseline: the same
difference between two *consecutive frames* of fp32 output (what "changes a lot" means).

    .venv/bin/python benchmarks/bench_precision.py --checkpoint build/official_equivalence/omeganet.pt
    .venv/bin/python benchmarks/bench_precision.py --checkpoint ... --backend openvino --precision bf16
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "kitti_raw_tiny" / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data"
# int8 calibration on real frames that are not the ones measured (another camera, another country)
CALIBRATION_VIDEO = REPO.parent / "shared" / "data" / "driving" / "solidWhiteRight.mp4"


def calibration_frames(kind: str, n: int = 8):
    """None (the backend's synthetic frames) or ``n`` consecutive RGB frames of :data:`CALIBRATION_VIDEO`."""
    if kind == "synthetic":
        return None
    import cv2

    capture = cv2.VideoCapture(str(CALIBRATION_VIDEO))
    frames = []
    while len(frames) < n:
        ok, bgr = capture.read()
        if not ok:
            raise SystemExit(f"bench_precision: cannot read {n} frames of {CALIBRATION_VIDEO}")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint(s) to measure (repeatable)")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--compile", action="store_true", help="compile the precision under test")
    p.add_argument("--backend", default="torch", help="backend of the run under test (torch, onnxruntime, openvino)")
    p.add_argument("--calibration", default="synthetic", choices=["synthetic", "driving"],
                   help="precision int8: calibrate on the backend's synthetic frames or on 8 frames of "
                        "../shared/data/driving (not the KITTI frames measured)")
    p.add_argument("--size", default="640x192")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rotation-from-flow", action=argparse.BooleanOptionalAction, default=None,
                   help="both runs with the ego-motion's rotation fitted to the flow (default: as the node, on)")
    args = p.parse_args(argv)
    if not FRAMES.is_dir():
        print(json.dumps({"skipped": f"no real frames at {FRAMES}"}))
        return 0
    import cv2
    import torch

    from omeganet_ros.pose_proxy import ROTATION_FROM_FLOW_DEFAULT
    from omeganet_ros.backends import output_differences as compare
    from omeganet_ros.backends import worst_differences as worst
    from omeganet_ros.engine import SceneEngine

    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    rotation_from_flow = ROTATION_FROM_FLOW_DEFAULT if args.rotation_from_flow is None else args.rotation_from_flow
    frames = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in sorted(FRAMES.glob("*.png"))]
    report = {"benchmark": "bench_precision", "frames": f"{len(frames)} KITTI raw frames ({FRAMES.parents[1].name})",
              "size": [w, h], "precision": args.precision, "compiled": args.compile, "backend": args.backend,
              "rotation_from_flow": rotation_from_flow,
              "calibration": args.calibration if args.precision == "int8" else None,
              "torch": torch.__version__,
              "load_average": list(os.getloadavg()), "results": []}
    for checkpoint in args.checkpoint:
        runs = {}
        for name, precision, compiled, backend in (("fp32", "fp32", False, "torch"),
                                                   ("test", args.precision, args.compile, args.backend)):
            extra = {"graph_calibration": calibration_frames(args.calibration)} if precision == "int8" else {}
            engine = SceneEngine(checkpoint, device="cpu", precision=precision, size=(w, h), compile=compiled,
                                 output_resolution="network", backend=backend, rotation_from_flow=rotation_from_flow,
                                 **extra)
            runs[name] = [o for i, f in enumerate(frames) if (o := engine.push(f, 0.1 * i)) is not None]
        per_frame = [compare(a, b) for a, b in zip(runs["fp32"], runs["test"])]
        baseline = [compare(a, b) for a, b in zip(runs["fp32"][:-1], runs["fp32"][1:])]

        report["results"].append({"checkpoint": str(checkpoint), "outputs": len(per_frame),
                                  "vs_fp32": worst(per_frame), "baseline_consecutive_fp32_frames": worst(baseline)})
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
