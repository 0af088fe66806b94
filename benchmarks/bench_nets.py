"""Per-network CPU/GPU timing of the ΩNet networks and the ResNet18 yardstick; prints one JSON object.

    python benchmarks/bench_nets.py --size 640 192 --modes eager channels_last bf16 compile compile_bf16

Modes: ``eager`` (fp32), ``channels_last`` (fp32, NHWC), ``bf16`` (channels_last +
bf16 autocast), ``compile`` (``torch.compile`` with inductor freezing, fp32,
channels_last), ``compile_bf16`` (the same under bf16 autocast). ``--correlation``
also times the two correlation implementations at OFNet's level-2 size.
Batch 1; ``ms`` is the median of ``--repeats`` runs after ``--warmup`` runs,
``min_ms`` the fastest, ``cpu_ms`` the median process CPU time (all threads).
The networks of one mode are timed round-robin so that load from other
processes on shared cores affects them alike: compare them within a mode.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch

from omeganet_ros.nets import CamNet, DSNet, Monodepth2ResNet18, OFNet
from omeganet_ros.nets.layers import correlation_shifts, correlation_unfold

ALL_MODES = ("eager", "channels_last", "bf16", "compile", "compile_bf16")


def build(name: str, width: int, height: int):
    frames = [torch.rand(1, 3, height, width) for _ in range(3)]
    if name == "dsnet":
        return DSNet(), frames[1:2]
    if name == "camnet":
        return CamNet(), frames
    if name == "ofnet":
        return OFNet(), frames
    if name == "ofnet_fw_only":
        net = OFNet()
        return (lambda model: (lambda p, c, n: model(p, c, n, backward=False)))(net), frames, net
    if name == "yardstick":
        return Monodepth2ResNet18(), frames[1:2]
    raise ValueError(f"unknown network {name!r}")


def median_ms(fn, args, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def gmac(call, inputs) -> float:
    """Multiply-accumulates of one eager forward pass, in billions (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        call(*inputs)
    return round(counter.get_total_flops() / 2e9, 2)


def prepare(name: str, mode: str, width: int, height: int) -> tuple:
    """Build network ``name`` for ``mode``; returns (run, inputs, entry), compiled and warmed once."""
    built = build(name, width, height)
    if len(built) == 3:
        call, inputs, module = built
    else:
        module, inputs = built
        call = module
    module.eval()
    if mode != "eager":
        module.to(memory_format=torch.channels_last)
        inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
    bf16 = mode in ("bf16", "compile_bf16")
    fn = call
    if mode.startswith("compile"):
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
        fn = torch.compile(call)

    def run(*args):
        with torch.inference_mode(), (torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()):
            return fn(*args)

    entry = {"network": name, "mode": mode, "width": width, "height": height,
             "params": sum(p.numel() for p in module.parameters()), "gmac": gmac(call, inputs)}
    t0 = time.perf_counter()
    run(*inputs)
    if mode.startswith("compile"):
        entry["compile_s"] = round(time.perf_counter() - t0, 1)
    return run, inputs, entry


def time_mode(names: list[str], mode: str, width: int, height: int, warmup: int, repeats: int) -> list[dict]:
    """Time the networks round-robin, so that load from other processes on the shared cores hits all alike."""
    prepared = [prepare(n, mode, width, height) for n in names]
    for run, inputs, _ in prepared:
        for _ in range(warmup):
            run(*inputs)
    wall = [[] for _ in prepared]
    cpu = [[] for _ in prepared]
    for _ in range(repeats):
        for k, (run, inputs, _) in enumerate(prepared):
            t0, c0 = time.perf_counter(), time.process_time()
            run(*inputs)
            wall[k].append((time.perf_counter() - t0) * 1000.0)
            cpu[k].append((time.process_time() - c0) * 1000.0)
    results = []
    for k, (_, _, entry) in enumerate(prepared):
        entry["ms"] = round(statistics.median(wall[k]), 2)
        entry["min_ms"] = round(min(wall[k]), 2)
        entry["cpu_ms"] = round(statistics.median(cpu[k]), 2)  # process CPU time, all threads
        results.append(entry)
    return results


def time_correlation(width: int, height: int, warmup: int, repeats: int) -> list[dict]:
    """Loop-of-shifts vs unfold correlation on B=2, 32 channels at 1/4 resolution (OFNet level 2)."""
    a = torch.randn(2, 32, height // 4, width // 4)
    b = torch.randn(2, 32, height // 4, width // 4)
    out = []
    for impl_name, impl in (("shift_loop", correlation_shifts), ("unfold", correlation_unfold)):
        for compiled in (False, True):
            torch._dynamo.reset()
            fn = torch.compile(impl) if compiled else impl
            with torch.inference_mode():
                ms = median_ms(fn, (a, b), warmup, repeats)
            out.append({"correlation": impl_name, "compiled": compiled, "shape": list(a.shape), "ms": round(ms, 3)})
    return out


def format_report(report: dict) -> str:
    """JSON with one list entry per line: readable, and still valid JSON."""
    parts = []
    for key, value in report.items():
        if isinstance(value, list):
            body = ",\n  ".join(json.dumps(v) for v in value)
            parts.append(f"{json.dumps(key)}: [\n  {body}\n ]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", nargs=2, type=int, default=(640, 192), metavar=("W", "H"))
    parser.add_argument("--nets", nargs="+", default=["dsnet", "camnet", "ofnet", "ofnet_fw_only", "yardstick"])
    parser.add_argument("--modes", nargs="+", default=list(ALL_MODES), choices=ALL_MODES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--correlation", action="store_true", help="also time the correlation implementations")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = args.size
    results = [r for m in args.modes for r in time_mode(args.nets, m, width, height, args.warmup, args.repeats)]
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu", "results": results}
    if args.correlation:
        report["correlation"] = time_correlation(width, height, args.warmup, args.repeats * 5)
    print(format_report(report))


if __name__ == "__main__":
    main()
