"""Cost of the engine's ``rotation_from_flow`` (PnP-RANSAC fit of the flow on the depth per frame); prints JSON.

The same synthetic frames go through :class:`~omeganet_ros.engine.SceneEngine` with the option off and on
(torch backend, fp32, outputs at the network size); reported: median milliseconds per pushed frame of each, and
the median of the fit alone (``omeganet_ros.pose_proxy.motion_from_depth_and_flow`` on the outputs).

    python benchmarks/bench_rotation_from_flow.py --threads 2
    python benchmarks/bench_rotation_from_flow.py --size 640x192 --checkpoint random
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omeganet_ros import pose_proxy  # noqa: E402
from omeganet_ros.engine import SceneEngine  # noqa: E402
from omeganet_ros.runtime import machine_record  # noqa: E402
from omeganet_ros.synth import iterate_frames, parse_size  # noqa: E402


def median_push_ms(engine: SceneEngine, frames: list[dict]) -> tuple[float, list]:
    """Median wall time (ms) of the pushes that produced an output, and those outputs."""
    engine.reset()
    times, outputs = [], []
    for frame in frames:
        start = time.perf_counter()
        out = engine.push(frame["image"], frame["stamp_ns"] * 1e-9, K=frame["K"])
        if out is not None:
            times.append((time.perf_counter() - start) * 1000.0)
            outputs.append(out)
    return float(np.median(times[1:] or times)), outputs  # the first output also warms up


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the packaged one; 'random' for untrained)")
    p.add_argument("--size", default=None, help="network and frame size WxH (default: the checkpoint's)")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = parse_size(args.size) if args.size else None
    engines = {flag: SceneEngine(args.checkpoint, device="cpu", size=size, output_resolution="network",
                                 rotation_from_flow=flag) for flag in (False, True)}
    size = tuple(engines[False].size)
    frames = list(iterate_frames(frames=args.frames, seed=201, size=size))
    result = {"checkpoint": engines[False].describe()["checkpoint"], "size": list(size), "frames": args.frames,
              "threads": args.threads}
    for flag, engine in engines.items():
        ms, outputs = median_push_ms(engine, frames)
        result["push_ms_rotation_from_flow" if flag else "push_ms_camnet"] = round(ms, 2)
    fits = []
    for out in outputs:  # the rotation_from_flow engine's (the last one run)
        start = time.perf_counter()
        pose_proxy.motion_from_depth_and_flow(out.depth, out.flow, out.intrinsics)
        fits.append((time.perf_counter() - start) * 1000.0)
    result["fit_ms"] = round(float(np.median(fits)), 2)
    result.update(machine_record())
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
