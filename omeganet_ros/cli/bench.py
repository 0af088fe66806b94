"""omeganet-bench: speed of the full scene pipeline against a depth-only yardstick, as one JSON object.

::

    omeganet-bench --json --sizes 640x192,1024x320 --options fp32,channels_last,bf16,compile,compile_bf16 --threads 1,2
    omeganet-bench --json --sizes 640x192,320x96 --backends torch,openvino,onnxruntime --options fp32,bf16 \
        --threads 1,2 --checkpoint build/official_equivalence/omeganet.pt

Each (backend, option, size, threads) runs in its own process (clean compile caches, a peak
memory of its own) and yields one entry of ``results``:

* ``ms_per_frame``: median wall time of ``ScenePipeline.push`` in steady state
  (what the node and ``omeganet-infer`` run: scene-cut check, the engine — a frame in,
  every output of the middle frame out: preprocessing, per-frame encoders, DSNet, CamNet,
  OFNet, rigid flow, motion, conversion to numpy — then scale and trajectory), at network
  resolution; ``fps`` its inverse; ``engine_ms_per_frame``: the engine's part (its stages' sum);
* ``stage_ms``: medians per stage (the engine's own timings);
* ``yardstick_ms_per_frame``: a monodepth2 ResNet18 + depth decoder, depth only
  (uint8 frame → tensor → network → depth → numpy), through the same backend with the same
  precision and options (exported to ONNX for onnxruntime / openvino), timed interleaved
  with the pipeline in the same process so both see the same load;
* ``max_diff_vs_torch_fp32``: the worst over the last outputs of
  :func:`omeganet_ros.backends.output_differences` against PyTorch fp32 eager on the same
  frames (``--checkpoint``: trained weights make these meaningful; random weights do not);
* ``cpu_ms_per_frame``: process CPU time per frame, and ``load_average`` at
  the start and end of the timed frames: when other work shares the cores,
  wall times inflate and these say by how much to distrust them;
* ``other_load_cores``: CPU time that *other* processes used during the timed
  frames (``/proc/stat`` busy time minus this process's), in cores; above
  ``LOADED_CORES`` the entry carries a ``warning`` and the report lists it:
  its times are upper bounds, not the machine's speed;
* ``backend``: ``torch`` (PyTorch eager or ``torch.compile``), ``onnxruntime`` or
  ``openvino`` (:mod:`omeganet_ros.backends`; ``export_s`` when its graphs were exported
  in this run, not cached); ``backend_precision``: what the backend runs;
* ``params`` per network, ``gflops_per_frame`` (``FlopCounterMode`` over one
  steady-state push, eager), ``peak_mem_mb`` (peak RSS of the process on CPU,
  which includes the Python/PyTorch baseline; ``max_memory_allocated`` on CUDA).

Options of torch: ``fp32`` (eager, NCHW), ``channels_last`` (eager, NHWC), ``bf16``
(eager NHWC, bf16 autocast), ``compile`` (``torch.compile`` + inductor
freezing, fp32 NHWC), ``compile_bf16``, and on CUDA ``fp16`` and ``compile_fp16``; of the
other backends: the precisions they run (``BACKEND_OPTIONS``); an option a backend lacks
is skipped for it. Network weights are random unless ``--checkpoint`` is given (speed does
not depend on them). OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless
set), as in the node; ONNX Runtime's threads do not spin either.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..runtime import prefer_passive_openmp

prefer_passive_openmp()  # as the node and omeganet-infer run

LOADED_CORES = 0.25  # other processes' CPU use (cores) above which an entry's times are flagged

OPTIONS = {
    # name: (precision, channels_last, compile)
    "fp32": ("fp32", False, False),
    "channels_last": ("fp32", True, False),
    "bf16": ("bf16", True, False),
    "compile": ("fp32", True, True),
    "compile_bf16": ("bf16", True, True),
    "fp16": ("fp16", True, False),
    "compile_fp16": ("fp16", True, True),
}
# Options of the exported-graph backends: their precisions (channels_last and compile do not apply).
BACKEND_OPTIONS = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16", "int8")}
DIFF_OUTPUTS = 3  # outputs compared with PyTorch fp32 per entry


def option_settings(backend: str, option: str) -> tuple[str, bool, bool]:
    """(precision, channels_last, compile) of ``option`` for ``backend``; KeyError when it has no such option."""
    if backend == "torch":
        return OPTIONS[option]
    if option not in BACKEND_OPTIONS[backend]:
        raise KeyError(option)
    return option, False, False


def _frames(width: int, height: int, n: int = 4) -> list[np.ndarray]:
    """A camera panning over smooth noise: realistic-enough frames of exactly the network size."""
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (height, width + 8 * n, 3), dtype=np.uint8), (7, 7), 0)
    return [np.ascontiguousarray(base[:, 8 * i: 8 * i + width]) for i in range(n)]


def count_gflops(width: int, height: int, device: str) -> tuple[float, float]:
    """(pipeline, yardstick) GFLOPs per frame in steady state, counted on eager fp32 modules."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..engine import SceneEngine
    from ..nets import Monodepth2ResNet18

    engine = SceneEngine(checkpoint="random", device=device, size=(width, height), output_resolution="network",
                         channels_last=False)
    frames = _frames(width, height)
    for i in range(3):
        engine.push(frames[i], float(i))
    with FlopCounterMode(display=False) as counter:
        engine.push(frames[3], 3.0)
    pipeline = counter.get_total_flops() / 1e9
    yardstick = Monodepth2ResNet18().eval().to(device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        yardstick(torch.rand(1, 3, height, width, device=device))
    return pipeline, counter.get_total_flops() / 1e9


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (``/proc/stat``: all but idle and iowait); None if unknown."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss can carry the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class _DepthOnly:
    """The yardstick's network through a backend: ``__call__(x 1×3×H×W) → disp 1×1×H×W`` (torch tensors)."""

    def __init__(self, net, backend: str, size: tuple[int, int], precision: str, threads: int, folder):
        import torch

        from ..backends import open_session
        from ..backends.graphs import GraphSpec, export_graph

        class Graph(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, image):
                return self.inner(image)["disp_full"]

        w, h = size
        spec = GraphSpec("yardstick", Graph(net).eval(), ["image"], ["disp"], (torch.rand(1, 3, h, w),))
        path = export_graph(spec, Path(folder) / "yardstick.onnx")
        self.session = open_session(backend, path, threads, precision)

    def __call__(self, x):
        import torch

        return torch.from_numpy(self.session.run([x.detach().float().contiguous().numpy()])[0])


def bench_one(width: int, height: int, option: str, device: str, iters: int, warmup: int, threads: int,
              backend: str = "torch", checkpoint: str = "random", rotation_from_flow: bool = False) -> dict:
    """One entry of ``results`` (run in a fresh process by :func:`main`); ``rotation_from_flow`` as the engine's."""
    import tempfile
    import warnings

    import torch

    from .. import geometry
    from ..backends import output_differences, worst_differences
    from ..engine import SceneEngine
    from ..nets import Monodepth2ResNet18
    from ..pipeline import ScenePipeline

    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)
    precision, channels_last, compiled = option_settings(backend, option)
    t_open = time.perf_counter()
    engine = SceneEngine(checkpoint=checkpoint, device=device, precision=precision, size=(width, height),
                         compile=compiled, channels_last=channels_last, output_resolution="network",
                         backend=backend, num_threads=threads, rotation_from_flow=rotation_from_flow)
    open_s = time.perf_counter() - t_open
    pipeline = ScenePipeline(engine)
    dev = engine.device
    torch.manual_seed(0)
    yardstick = Monodepth2ResNet18().eval().to(dev)
    tmp = tempfile.TemporaryDirectory(prefix="omeganet_bench_")
    if backend != "torch":
        yard_fn = _DepthOnly(yardstick, backend, (width, height), precision, threads, tmp.name)
    else:
        if channels_last:
            yardstick = yardstick.to(memory_format=torch.channels_last)
        yard_fn = torch.compile(yardstick, dynamic=False) if compiled else yardstick  # freezing set by the engine
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if backend == "torch" else None

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def depth_only(frame: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frame).to(dev).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            disp = yard_fn(x)
            disp = disp["disp_full"] if isinstance(disp, dict) else disp
        return geometry.disp_to_depth(disp.float())[0, 0].cpu().numpy()

    frames = _frames(width, height)
    pushed: list[tuple[np.ndarray, float]] = []
    t0 = time.perf_counter()
    stamp = 0.0
    for i in range(2 + warmup):  # two pushes fill the buffer; then ``warmup`` full frames (compiles here)
        pipeline.push(frames[i % len(frames)], stamp)
        pushed.append((frames[i % len(frames)], stamp))
        stamp += 0.1
    for i in range(warmup):
        depth_only(frames[i % len(frames)])
    sync()
    warmup_s = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    pipeline_ms, yard_ms, pipeline_cpu_ms, yard_cpu_ms, engine_ms, stages, outputs = [], [], [], [], [], {}, {}
    load_start = os.getloadavg()[0]
    busy_start, own_start, wall_start = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    for i in range(iters):
        frame = frames[i % len(frames)]
        c, t = time.process_time(), time.perf_counter()
        result = pipeline.push(frame, stamp)
        sync()
        pipeline_ms.append((time.perf_counter() - t) * 1000.0)
        pipeline_cpu_ms.append((time.process_time() - c) * 1000.0)
        pushed.append((frame, stamp))
        stamp += 0.1
        out = result.outputs
        outputs[out.stamp] = out
        engine_ms.append(out.timings_ms["total"])
        for k, v in out.timings_ms.items():
            stages.setdefault(k, []).append(v)
        c, t = time.process_time(), time.perf_counter()
        depth_only(frame)
        sync()
        yard_ms.append((time.perf_counter() - t) * 1000.0)
        yard_cpu_ms.append((time.process_time() - c) * 1000.0)

    busy_end, own_cpu, wall = busy_cpu_seconds(), time.process_time() - own_start, time.perf_counter() - wall_start
    other_cores = None if busy_start is None else max(0.0, (busy_end - busy_start - own_cpu) / wall)
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak_mb = peak_rss_mb()
    # Accuracy: the last outputs against PyTorch fp32 eager on the same frames (after the timing: no extra load).
    reference = SceneEngine(checkpoint=checkpoint, device=device, precision="fp32", size=(width, height),
                            output_resolution="network", num_threads=threads, rotation_from_flow=rotation_from_flow)
    diffs = []
    for frame, frame_stamp in pushed[-(DIFF_OUTPUTS + 2):]:
        ref = reference.push(frame, frame_stamp)
        if ref is not None and ref.stamp in outputs:
            diffs.append(output_differences(ref, outputs[ref.stamp]))
    ms = statistics.median(pipeline_ms)
    yard = statistics.median(yard_ms)
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in engine.networks.items()}
    params["yardstick"] = sum(p.numel() for p in yardstick.parameters())
    described = engine.describe()
    entry = {
        "backend": backend,
        "width": width,
        "height": height,
        "threads": threads,
        "option": option,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({threads} threads)",
        "precision": precision,
        "backend_precision": described.get("backend_precision", precision),
        "compiled": compiled,
        "channels_last": channels_last,
        "rotation_from_flow": rotation_from_flow,
        "checkpoint": "random" if engine.random_weights else str(engine.checkpoint_path),
        "ms_per_frame": round(ms, 2),
        "fps": round(1000.0 / ms, 2),
        "ms_per_frame_p90": round(float(np.percentile(pipeline_ms, 90)), 2),
        "engine_ms_per_frame": round(statistics.median(engine_ms), 2),
        "stage_ms": {k: round(statistics.median(v), 2) for k, v in stages.items()},
        "params": params,
        "peak_mem_mb": round(peak_mb, 1),
        "yardstick_ms_per_frame": round(yard, 2),
        "ratio_to_yardstick": round(ms / yard, 2),
        # CPU time of the process per frame (all its threads): less sensitive than wall time to other
        # processes sharing the cores, but it counts the thread pool's spin-waiting.
        "cpu_ms_per_frame": round(statistics.median(pipeline_cpu_ms), 2),
        "yardstick_cpu_ms_per_frame": round(statistics.median(yard_cpu_ms), 2),
        "max_diff_vs_torch_fp32": worst_differences(diffs),
        "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "other_load_cores": None if other_cores is None else round(other_cores, 2),
        "open_s": round(open_s, 1),
        "warmup_s": round(warmup_s, 1),
        "iters": iters,
    }
    if described.get("graph_exported_now"):
        entry["export_s"] = entry["open_s"]
    tmp.cleanup()
    if other_cores is not None and other_cores > LOADED_CORES:
        entry["warning"] = (f"machine loaded: other processes used {other_cores:.2f} cores during the timed frames; "
                            "these times are upper bounds")
    return entry


def parse_sizes(text: str) -> list[tuple[int, int]]:
    from .infer import parse_size

    return [parse_size(s) for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    from ..pose_proxy import ROTATION_FROM_FLOW_DEFAULT  # loads torch and OpenCV (after the OpenMP policy is set)

    p = argparse.ArgumentParser(prog="omeganet-bench", description="Full-pipeline speed vs a depth-only yardstick (JSON)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the only output format; kept for clarity)")
    p.add_argument("--sizes", default="640x192,1024x320", help="comma-separated WxH network sizes")
    p.add_argument("--options", default=None,
                   help=f"comma-separated options from {list(OPTIONS)} (default: CPU fp32,channels_last,bf16,compile,"
                        "compile_bf16; CUDA fp32,fp16,compile_fp16)")
    p.add_argument("--iters", type=int, default=20, help="timed frames per entry")
    p.add_argument("--warmup", type=int, default=3, help="untimed full frames per entry (compilation happens here)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", default="1,2", help="comma-separated PyTorch CPU thread counts")
    p.add_argument("--backends", default="torch",
                   help="comma-separated backends from torch, onnxruntime, openvino, or 'installed' (all installed)")
    p.add_argument("--checkpoint", default="random",
                   help="weights (default random: speed does not depend on them; a trained checkpoint makes "
                        "max_diff_vs_torch_fp32 meaningful)")
    p.add_argument("--rotation-from-flow", action=argparse.BooleanOptionalAction, default=ROTATION_FROM_FLOW_DEFAULT,
                   help="time the ego-motion's rotation fitted to the flow (PnP-RANSAC per frame), as the node and "
                        "omeganet-infer run by default; --no-rotation-from-flow: CamNet's rotation alone")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per entry")
    p.add_argument("--single", default=None, help=argparse.SUPPRESS)  # "WxH:backend:option": one entry in-process
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.iters < 1 or args.warmup < 1:
        print("omeganet-bench: error: --iters and --warmup must be at least 1", file=sys.stderr)
        return 2
    import torch

    from ..engine import cpu_has_fast_bf16

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
        if not thread_counts or min(thread_counts) < 1:
            raise ValueError
    except ValueError:
        print(f"omeganet-bench: error: --threads must be positive integers, got {args.threads!r}", file=sys.stderr)
        return 2
    if args.single:
        size, backend, option = args.single.split(":")
        w, h = (int(v) for v in size.split("x"))
        print(json.dumps(bench_one(w, h, option, device, args.iters, args.warmup, thread_counts[0], backend,
                                   args.checkpoint, args.rotation_from_flow)))
        return 0
    from ..backends import BACKENDS, available_backends

    installed = available_backends()
    backends = installed if args.backends == "installed" else [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        print(f"omeganet-bench: error: unknown backend(s) {bad}; choose from {list(BACKENDS)}", file=sys.stderr)
        return 2
    absent = [b for b in backends if b not in installed]
    if absent:
        print(f"omeganet-bench: error: backend(s) {absent} not installed (installed: {installed})", file=sys.stderr)
        return 2
    if device == "cuda" and backends != ["torch"]:
        print("omeganet-bench: error: the onnxruntime and openvino backends run on the CPU; use --device cpu",
              file=sys.stderr)
        return 2

    try:
        sizes = parse_sizes(args.sizes)
    except argparse.ArgumentTypeError as exc:
        print(f"omeganet-bench: error: {exc}", file=sys.stderr)
        return 2
    default = "fp32,fp16,compile_fp16" if device == "cuda" else "fp32,channels_last,bf16,compile,compile_bf16"
    options = [o.strip() for o in (args.options or default).split(",") if o.strip()]
    known = set(OPTIONS) | {o for opts in BACKEND_OPTIONS.values() for o in opts}
    bad = [o for o in options if o not in known]
    if bad:
        print(f"omeganet-bench: error: unknown option(s) {bad}; choose from {list(OPTIONS)}", file=sys.stderr)
        return 2
    if device != "cuda" and any(o in OPTIONS and OPTIONS[o][0] == "fp16" for o in options):
        print("omeganet-bench: error: fp16 options need CUDA", file=sys.stderr)
        return 2

    results, errors = [], []
    gflops = {}
    for w, h in sizes:
        if not args.no_flops:
            torch.set_num_threads(thread_counts[0])
            gflops[(w, h)] = count_gflops(w, h, device)
        combos = [(b, o) for b in backends for o in options if o in (OPTIONS if b == "torch" else BACKEND_OPTIONS[b])]
        for backend, option in combos:
            for threads in thread_counts:
                where = {"backend": backend, "width": w, "height": h, "option": option, "threads": threads}
                cmd = [sys.executable, "-m", "omeganet_ros.cli.bench", "--single", f"{w}x{h}:{backend}:{option}",
                       "--device", device, "--iters", str(args.iters), "--warmup", str(args.warmup),
                       "--threads", str(threads), "--checkpoint", args.checkpoint,
                       "--rotation-from-flow" if args.rotation_from_flow else "--no-rotation-from-flow"]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    errors.append({**where, "error": f"timed out after {args.timeout} s"})
                    continue
                if proc.returncode != 0:
                    errors.append({**where, "error": proc.stderr.strip()[-2000:]})
                    continue
                entry = json.loads(proc.stdout.strip().splitlines()[-1])
                if (w, h) in gflops:
                    entry["gflops_per_frame"] = round(gflops[(w, h)][0], 2)
                    entry["yardstick_gflops_per_frame"] = round(gflops[(w, h)][1], 2)
                results.append(entry)
                print(f"omeganet-bench: {w}x{h} {backend} {option} {threads} thread(s): {entry['ms_per_frame']} ms/frame "
                      f"(yardstick {entry['yardstick_ms_per_frame']} ms)" + (f" WARNING: {entry['warning']}"
                                                                             if "warning" in entry else ""),
                      file=sys.stderr)

    report = {
        "benchmark": "omeganet-bench",
        "torch": torch.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_model": cpu_model(),
                    "native_bf16": cpu_has_fast_bf16(), "cpu_count": os.cpu_count(),
                    "load_average_at_end": list(os.getloadavg())},
        "note": "pipeline = ScenePipeline.push (the engine inside it: engine_ms_per_frame) at network resolution; "
                "yardstick = monodepth2 ResNet18 depth only through the same backend, timed interleaved in the same "
                "process; max_diff_vs_torch_fp32 = worst of the last outputs against PyTorch fp32 eager",
        "checkpoint": args.checkpoint,
        "backends_installed": installed,
        "results": results,
    }
    loaded = [f"{e['width']}x{e['height']} {e['backend']} {e['option']} {e['threads']}t" for e in results if "warning" in e]
    if loaded:
        report["warnings"] = [f"machine loaded during {', '.join(loaded)}: other processes used more than "
                              f"{LOADED_CORES} cores; rerun on an idle machine for the machine's speed"]
    if errors:
        report["errors"] = errors
    print(json.dumps(report, indent=None if not args.json else 1))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
