"""What storing the Moreau et al. model's weights in fewer bits costs: file size against accuracy. Prints JSON.

    python benchmarks/moreau_weight_storage.py --checkpoint runs/moreau/mt_uncertainty/last.pt --out-dir /tmp/ws

The checkpoint (``given``: as it is stored, normally a run's float32 last.pt) is written again as float16 (the
earlier export) and with int8 and int4 kernels (``omeganet_ros/quantized_weights.py``), each file loaded back through ``load_checkpoint`` and run through the
ScenePipeline on unseen synthetic streets (``--seeds``) exactly as ``benchmarks/moreau_st_vs_mt.py`` does:
depth abs_rel over all pixels and on the camera-speed vehicle, instance PQ against the exact thing ids. Beside
each: the file size, its gzip size (what git stores), the kernels' relative error (‖ŵ − w‖ / ‖w‖, median and
max over tensors), and how far its outputs move from the given file's on the same frames (median relative depth
difference per pixel; share of pixels whose instance id matches the given file's up to a renumbering: the ids
are matched by their largest overlap).
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from moreau_st_vs_mt import DepthScores, run_pipeline, streets  # noqa: E402

VARIANTS = ("given", "fp16", "int8", "int4")


def write_variant(source: Path, variant: str, out_dir: Path) -> Path:
    """``source`` (any checkpoint) written as ``variant``: given = the file itself, fp16, int8 or int4 kernels."""
    from omeganet_ros.checkpoint import build_networks_from_checkpoint, load_checkpoint, save_checkpoint

    if variant == "given":
        return source
    ckpt = load_checkpoint(source)
    networks = build_networks_from_checkpoint(ckpt)
    if variant == "fp16":
        networks = {name: net.half() for name, net in networks.items()}
    target = out_dir / f"{source.stem}_{variant}.pt"
    return save_checkpoint(target, networks, input_size=ckpt.input_size, provenance=ckpt.provenance, classes=[],
                           weight_storage=None if variant == "fp16" else variant)


def _evaluate(args) -> dict:
    """Runs in a worker: one file through the pipeline; metrics plus the raw outputs for the comparison."""
    import torch

    from omeganet_ros.evaluate.instance import InstanceEvaluator
    from omeganet_ros.moreau_engine import MoreauEngine

    path, size, seeds, frames, threads = args
    torch.set_num_threads(threads)
    data = streets(seeds, frames, size)
    engine = MoreauEngine(path, device="cpu", size=size, output_resolution="network")
    depth, instances, outputs = DepthScores(), InstanceEvaluator(), []

    def on_result(out, frame):
        depth.add(out.depth, frame)
        outputs.append((out.depth, out.instance))
        if out.instance is not None:
            instances.add(out.instance, frame["instance"])

    run_pipeline(engine, data, on_result)
    result = {"depth": depth.result()}
    if engine.has_instances:
        result["instance"] = instances.result()
    return {"result": result, "outputs": outputs}


def _kernel_error(reference, other) -> dict:
    errors = []
    for name, state in reference.state_dicts.items():
        for key, w in state.items():
            if w.is_floating_point() and w.dim() >= 2 and w.numel() >= 4096:
                errors.append(float((other.state_dicts[name][key] - w).norm() / w.norm().clamp(min=1e-12)))
    return {"median": float(np.median(errors)), "max": float(np.max(errors)), "tensors": len(errors)}


def _same_instances(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels where ``b``'s id, mapped to the ``a`` id it overlaps most, equals ``a``'s."""
    mapped = np.zeros_like(a)
    for i in np.unique(b[b > 0]):
        ids, counts = np.unique(a[b == i], return_counts=True)
        mapped[b == i] = ids[np.argmax(counts)]
    return float((mapped == a).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="the Moreau checkpoint, normally float32 (a run's last.pt)")
    p.add_argument("--out-dir", required=True, help="where the fp16 / int8 / int4 files are written")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--extra", action="append", default=[], metavar="LABEL=FILE",
                   help="also evaluate a ready-made file (e.g. an exported reference) against the given one")
    p.add_argument("--seeds", default="100,101,102", help="unseen test streets")
    p.add_argument("--frames", type=int, default=30, help="frames per street")
    p.add_argument("--size", default="256x96", help="render and network size WxH")
    p.add_argument("--jobs", type=int, default=1, help="variants evaluated at once (one process each)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per process")
    args = p.parse_args()
    from omeganet_ros.checkpoint import load_checkpoint
    from omeganet_ros.synth import parse_size

    started = time.perf_counter()
    size, seeds = parse_size(args.size), [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    if variants[0] != "given":
        raise SystemExit("--variants must start with given (the file itself: the reference of the comparison)")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {v: write_variant(Path(args.checkpoint), v, out_dir) for v in variants}
    for item in args.extra:
        label, _, path = item.partition("=")
        files[label] = Path(path)
        variants.append(label)
    jobs = [(str(files[v]), size, seeds, args.frames, args.threads) for v in variants]
    if args.jobs > 1:
        # spawn, not fork: the parent has run OpenMP (writing the variants), and a forked child's OpenMP hangs.
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            evaluated = dict(zip(variants, pool.map(_evaluate, jobs)))
    else:
        evaluated = {v: _evaluate(job) for v, job in zip(variants, jobs)}
    reference = load_checkpoint(files["given"])
    base = evaluated["given"]["outputs"]
    record = {"benchmark": "moreau_weight_storage", "checkpoint": args.checkpoint, "seeds": seeds,
              "frames_per_seed": args.frames, "size": list(size), "variants": {}}
    for v in variants:
        data = files[v].read_bytes()
        entry = {"file": str(files[v]), "megabytes": round(len(data) / 1e6, 2),
                 "gzip_megabytes": round(len(gzip.compress(data, 6)) / 1e6, 2),
                 "kernel_relative_error": _kernel_error(reference, load_checkpoint(files[v])),
                 **evaluated[v]["result"]}
        outputs = evaluated[v]["outputs"]
        depth_change = [np.median(np.abs(d / d0 - 1.0)) for (d, _), (d0, _) in zip(outputs, base)]
        entry["vs_given"] = {"median_relative_depth_change": float(np.median(depth_change)),
                            "p95_frame_depth_change": float(np.percentile(depth_change, 95))}
        if outputs and outputs[0][1] is not None:
            entry["vs_given"]["instance_pixels_agreeing"] = float(np.mean(
                [_same_instances(i0, i) for (_, i), (_, i0) in zip(outputs, base)]))
        record["variants"][v] = entry
    record["machine"] = {"cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
                         "python": platform.python_version()}
    record["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
