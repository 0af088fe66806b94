"""omeganet-synth: generate a synthetic driving sequence with exact ground truth (folder and/or ROS 2 bag).

Example::

    omeganet-synth --out data/synth_000 --frames 200 --seed 0 --size 640x192 --bag data/synth_000.mcap
"""
from __future__ import annotations

import argparse
import sys

from ..synth.world import parse_size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omeganet-synth", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", help="output folder (sequence layout: images/, depth/, flow_fw/, …, meta.json)")
    p.add_argument("--frames", type=int, default=100, help="number of frames")
    p.add_argument("--seed", type=int, default=0, help="world seed (same seed → identical sequence)")
    p.add_argument("--size", default="640x192", help="image size WIDTHxHEIGHT")
    p.add_argument("--bag", help="also write a ROS 2 bag: a path ending in .mcap (exactly that one mcap file), "
                                 ".db3 (a bag directory = the path without the suffix), or a directory "
                                 "(see --bag-storage)")
    p.add_argument("--bag-storage", choices=["mcap", "sqlite3"], help="bag storage when --bag has no suffix")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate: stamps are 1/fps apart")
    p.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels (default KITTI-like: 0.58·W, 1.92·H, centre)")
    p.add_argument("--camera-height", type=float, default=1.65, help="metres above the road")
    p.add_argument("--speed", default="0.5,1.5", help="min,max metres per frame")
    p.add_argument("--traffic", type=float, default=1.0, help="traffic density factor")
    p.add_argument("--pedestrians", type=float, default=1.0, help="pedestrian density factor")
    p.add_argument("--exposure-jitter", type=float, default=0.0, help="std of the per-frame log exposure gain")
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian pixel noise (8-bit units)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a sequence")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _floats(text: str, count: int, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"{name} needs {count} comma-separated numbers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..synth.writer import generate_sequence

    try:
        if args.out is None and args.bag is None:
            raise ValueError("give --out, --bag or both")
        size = parse_size(args.size)
        options = dict(camera_height=args.camera_height, speed_range=_floats(args.speed, 2, "--speed"),
                       traffic_density=args.traffic, pedestrian_density=args.pedestrians,
                       exposure_jitter=args.exposure_jitter, noise_std=args.noise)
        if args.intrinsics:
            options["intrinsics"] = _floats(args.intrinsics, 4, "--intrinsics")
        out = generate_sequence(args.out, frames=args.frames, seed=args.seed, size=size, bag=args.bag, fps=args.fps,
                                progress=not args.quiet, overwrite=args.overwrite, bag_storage=args.bag_storage,
                                **options)
    except (ValueError, OSError) as err:
        print(f"omeganet-synth: error: {err}", file=sys.stderr)
        return 2
    if out is not None and not args.quiet:
        print(f"wrote {args.frames} frames to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
