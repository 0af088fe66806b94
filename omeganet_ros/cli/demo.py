"""The main job, end to end (``make demo``): a synthetic drive → a ROS 2 bag → the node over DDS → a report.

1. ``omeganet-synth`` renders a short synthetic drive with exact ground truth into a bag;
2. ``omeganet-replay --launch-node`` starts ``omeganet_node`` (the bundled reference checkpoint, or
   random weights, said loudly, while none is bundled) with sim time, plays the bag as fast as the node
   keeps up, records every output, then searches the highest frame rate it sustains;
3. the report (accuracy against the ground truth, latency, rates), a mosaic, a video, the trajectory
   and a latency plot land in ``--out``; a short summary is printed.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from omeganet_ros.checkpoint import default_checkpoint_path

INPUT_BAG = "input.mcap"  # one mcap file


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m omeganet_ros.cli.demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for the bags, the report and the pictures")
    p.add_argument("--frames", type=int, default=60, help="frames of the synthetic drive")
    p.add_argument("--size", default="640x192", help="camera image size WIDTHxHEIGHT")
    p.add_argument("--network-size", default="", help="network input WIDTHxHEIGHT (default: the checkpoint's training size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic world")
    p.add_argument("--search-frames", type=int, default=20, help="frames per throughput-search trial (0: no search)")
    p.add_argument("--search-max-trials", type=int, default=4)
    p.add_argument("--node-args", default="", help="extra node arguments, e.g. \"--ros-args -p precision:=bf16\"")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The demo's node and player talk among themselves only: unless the user chose a domain, pick a
    # random one so a demo never meets (or disturbs) a robot's nodes on the default domain 0.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    from omeganet_ros.ros.replay import ReplayOptions, run_replay, summary_lines
    from omeganet_ros.ros.replay_launch import NodeDiedError
    from omeganet_ros.synth.world import parse_size

    started = time.monotonic()
    try:
        width, height = parse_size(args.size)
    except ValueError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / INPUT_BAG, out / "input", out / "outputs"):  # a previous demo's bags (file or folder)
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()

    checkpoint = default_checkpoint_path()
    if checkpoint is None:
        _say("no trained reference checkpoint is bundled yet (omeganet_ros/models/omeganet_synth.pt): the node runs "
             "a RANDOMLY INITIALISED model. Every output and accuracy figure below is that of an untrained network; "
             "the demo shows the pipeline working end to end, not ΩNet's accuracy.")
        model_args = "-p model:=random"
    else:
        _say(f"model: the bundled reference checkpoint {checkpoint}")
        model_args = ""

    _say(f"1/3 rendering a synthetic drive: {args.frames} frames at {width}×{height}, 10 Hz, seed {args.seed} …")
    t0 = time.monotonic()
    synth = [sys.executable, "-m", "omeganet_ros.cli.synth", "--frames", str(args.frames), "--seed", str(args.seed),
             "--size", f"{width}x{height}", "--bag", str(out / INPUT_BAG), "--fps", "10"]
    if args.quiet:
        synth.append("--quiet")
    if subprocess.run(synth).returncode != 0:
        print("demo: error: omeganet-synth failed (see above)", file=sys.stderr)
        return 1
    _say(f"   bag {out / INPUT_BAG} written in {time.monotonic() - t0:.0f} s")

    user_args = args.node_args.split("--ros-args", 1)
    network = ""
    if args.network_size:
        net_w, net_h = parse_size(args.network_size)
        network = f"-p network_width:={net_w} -p network_height:={net_h}"
    node_args = f"{user_args[0]} --ros-args {model_args} {network} " \
                f"{user_args[1] if len(user_args) > 1 else ''}"
    options = ReplayOptions(bag=out / INPUT_BAG, out=out, launch_node=True, node_args=node_args.strip(),
                            pacing="keep-up", throughput_search=args.search_frames > 0,
                            search_frames=max(args.search_frames, 5), search_max_trials=args.search_max_trials,
                            force=True, progress=not args.quiet)
    _say("2/3 starting omeganet_node (use_sim_time) and replaying the bag through it over DDS, as fast as it keeps "
         "up; then a throughput search (rising rates, highest with ≤ 5 % dropped) …")
    try:
        report = run_replay(options, log=_say)
    except (TimeoutError, NodeDiedError, ValueError, OSError) as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 1

    _say(f"3/3 done in {time.monotonic() - started:.0f} s (demo steps only; the set-up ran before). Summary:")
    for line in summary_lines(report):
        print(f"  {line}")
    files = report["files"]
    print(f"  report:     {out / files['markdown']}  (figures: {out / files['json']})")
    for key, label in (("mosaic", "mosaic"), ("video", "video"), ("trajectory", "trajectory"), ("latency", "latency")):
        if key in files:
            print(f"  {label + ':':<11} {out / files[key]}")
    print(f"  output bag: {out / 'outputs'}   node log: {out / 'node.log'}")
    print("  (timings measured on this machine; on a shared or loaded CPU they are pessimistic)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
