"""omeganet-export: export the engine's per-frame inference graphs ahead of deployment (ONNX / OpenVINO IR).

::

    omeganet-export [--checkpoint model.pt] [--size 640x192] [--backend auto|onnxruntime|openvino]
                    [--precision auto|fp32|bf16|int8] [--out DIR]

Writes exactly what the node, ``omeganet-infer`` and ``SceneEngine(backend=...)`` load: the five per-frame
graphs of :mod:`omeganet_ros.backends.graphs` (``dsnet``; ``cam_encoder`` and ``flow_encoder``, run once per
frame; ``cam_decoder`` and ``flow_decoder``, run once per triple on the encoders' features), exported by the
same function the engine calls (:func:`omeganet_ros.backends.open_graphs`), each checked against PyTorch fp32,
into a graph cache folder::

    DIR/graphs/<backend>-<precision>-<W>x<H>-<weights hash>/
        manifest.json   weights / code / version hashes, each file's SHA-256, the largest difference per output
        dsnet.onnx …    onnxruntime: plain ONNX (opset 17, batch 1, fixed size), usable in any ONNX runtime
        dsnet.xml/.bin  openvino: OpenVINO IR

``DIR`` defaults to the cache the engine reads (``$OMEGANET_CACHE_DIR``, else ``$XDG_CACHE_HOME/omeganet_ros``,
else ``~/.cache/omeganet_ros``): exporting there before the node starts spares it the 25–50 s export. Another
``DIR`` is used by pointing the node's ``graph_cache`` parameter (or ``$OMEGANET_CACHE_DIR``) at it, e.g. after
copying it to the robot; the engine uses an entry only when its manifest matches the weights, the package, torch
and backend versions there (else it exports again and says why). A valid entry already there is kept
(``exported_now``: false). ``--backend auto`` and ``--precision auto`` resolve as the node's defaults do on this
computer (OpenVINO when installed; bf16 on a CPU with native bf16): export on the robot, or name both.
Prints one JSON object: the folder, the graphs with their input and output names, and the check's differences.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..runtime import prefer_passive_openmp

prefer_passive_openmp()  # before anything loads torch

from ..backends import BACKENDS  # noqa: E402

EXPORT_BACKENDS = tuple(b for b in BACKENDS if b != "torch")


def build_parser() -> argparse.ArgumentParser:
    from .infer import parse_size

    p = argparse.ArgumentParser(prog="omeganet-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="omeganet_ros checkpoint (ΩNet); default: the installed reference model, else random weights; "
                        "'random' forces them")
    p.add_argument("--size", type=parse_size, default=None,
                   help="network input WxH (default: the checkpoint's input size, else 640x192); the node's "
                        "network_width/network_height")
    p.add_argument("--backend", default="auto", choices=("auto",) + EXPORT_BACKENDS,
                   help="auto: the one the node's backend 'auto' runs here (openvino when installed, else onnxruntime)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "int8"),
                   help="auto: bf16 where the backend has it and this CPU runs it natively, else fp32 (as the node)")
    p.add_argument("--out", default=None,
                   help="graph cache folder to write into (default: the cache the engine reads; see above)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the export's check")
    return p


def _backend(name: str) -> str:
    """The backend to export for ``--backend`` (auto: the node's auto, or ONNX Runtime when only it is installed)."""
    import torch

    from ..backends import available_backends, resolve_backend

    if name == "auto":
        resolved = resolve_backend("auto", torch.device("cpu"))
        if resolved == "torch":
            installed = [b for b in EXPORT_BACKENDS if b in available_backends()]
            if not installed:
                raise ValueError("neither openvino nor onnxruntime is installed: pip install 'omeganet_ros[openvino]' "
                                 "(or [onnxruntime])")
            resolved = installed[0]
        return resolved
    return resolve_backend(name, torch.device("cpu"))


def export(checkpoint, size, backend: str, precision: str, out, threads: int | None) -> dict:
    """Export (or find valid) the graphs of ``checkpoint`` for ``backend`` × ``precision`` × ``size`` into the
    cache folder ``out`` (None: the engine's); the report printed by the CLI."""
    from ..engine import SceneEngine

    name = _backend(backend)
    started = time.perf_counter()
    engine = SceneEngine(checkpoint=checkpoint, device="cpu", precision=precision, size=size, backend=name,
                         graph_cache=out, num_threads=threads, output_resolution="network")
    graphs = engine.backend_graphs
    info = graphs.describe()
    return {
        "backend": name, "backend_version": info["backend_version"], "precision": engine.precision,
        "size": list(engine.size), "checkpoint": None if engine.checkpoint_path is None else str(engine.checkpoint_path),
        "random_weights": engine.random_weights, "folder": info["graph_cache"], "exported_now": info["graph_exported_now"],
        "seconds": round(time.perf_counter() - started, 1),
        "graphs": {n: {"file": graphs.entry.files[n].name, "inputs": s.inputs, "outputs": s.outputs}
                   for n, s in graphs.sessions.items()},
        "max_abs_diff_vs_torch_fp32": info["graph_max_abs_diff_vs_torch_fp32"],
        "use": ("the engine's default cache" if out is None else
                f"node parameter graph_cache:={Path(out).resolve()} (or OMEGANET_CACHE_DIR={Path(out).resolve()})"),
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..backends import BackendError
    from ..checkpoint import CheckpointError

    try:
        report = export(args.checkpoint, args.size, args.backend, args.precision, args.out, args.threads)
    except (OSError, ValueError, CheckpointError, BackendError) as exc:
        print(f"omeganet-export: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
