"""Speed of the synthetic world: frames per second with all ground truth, printed as JSON.

    python benchmarks/bench_synth.py --size 640x192 --frames 40

Measures the in-memory iterator (render + forward/backward flow + labels) and,
with --write, the folder writer too. Reports wall-clock and process CPU time
(CPU time is less sensitive to other jobs sharing the machine) and the load
average, because the cores may be shared. The render thread's CPU time and the
rest (flows, labels) give estimates for one or two otherwise idle cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omeganet_ros.synth import SynthConfig, SyntheticSequence, parse_size, write_sequence  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="640x192")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="best of N runs")
    p.add_argument("--write", action="store_true", help="also time writing the sequence folder")
    p.add_argument("--serial", action="store_true", help="render in the calling thread only (no pipelining)")
    args = p.parse_args()
    width, height = parse_size(args.size)
    config = SynthConfig(frames=args.frames, seed=args.seed, width=width, height=height, pipeline=not args.serial)

    start = time.perf_counter()
    sequence = SyntheticSequence(config)
    build_s = time.perf_counter() - start

    # Per-thread CPU time of rendering (the worker thread when pipelined) and of everything else.
    render_cpu = [0.0]
    plain_render = sequence.render

    def timed_render(k):
        start = time.thread_time()
        out = plain_render(k)
        render_cpu[0] += time.thread_time() - start
        return out

    sequence.render = timed_render
    runs = []
    for _ in range(args.repeats):
        render_cpu[0] = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        count = sum(1 for _ in sequence)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu, render_cpu[0]))
    wall_s, cpu_s, render_s = min(runs)
    render_ms = 1000 * render_s / count
    rest_ms = 1000 * (cpu_s - render_s) / count
    result = {
        "benchmark": "synth_in_memory",
        "size": [width, height],
        "frames": count,
        "world_build_s": round(build_s, 3),
        "objects": int(sequence.scene.num_objects),
        "pipelined_render_thread": config.pipeline,
        "fps_wall": round(count / wall_s, 2),
        "ms_per_frame_wall": round(1000 * wall_s / count, 1),
        "ms_per_frame_cpu": round(1000 * cpu_s / count, 1),
        "ms_per_frame_cpu_render": round(render_ms, 1),
        "ms_per_frame_cpu_flow_labels": round(rest_ms, 1),
        # What two otherwise idle cores would give: the slower of the two pipeline stages.
        "fps_estimate_two_free_cores": round(1000 / max(render_ms, rest_ms), 1) if config.pipeline else None,
        "fps_estimate_one_free_core": round(1000 / (render_ms + rest_ms), 1),
        "includes": ["image", "depth", "flow_fw", "flow_bw", "semantic", "instance", "motion", "pose"],
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "note": "cores shared with other jobs at the time of measurement (see load_average); fps_estimate_* are "
                "derived from per-thread CPU time, not measured wall-clock rates",
    }
    if args.write:
        with tempfile.TemporaryDirectory() as tmp:
            wall = time.perf_counter()
            write_sequence(SyntheticSequence(config), Path(tmp) / "seq")
            result["fps_wall_with_folder_writing"] = round(count / (time.perf_counter() - wall), 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
