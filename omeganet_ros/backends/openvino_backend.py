"""OpenVINO backend (CPU plugin): the exported ONNX graphs converted to OpenVINO IR; fp32, bf16 or int8 inference.

``int8``: NNCF post-training quantization of the convolutions (weights and activations, calibrated on the
frames given, else on synthetic ones), the rest in bf16 where the CPU has it natively, else fp32; the
correlation's MatMuls stay in floating point. Needs ``nncf`` (``pip install nncf``) at export time only.
On a CPU with AVX-512-VNNI but no AMX, int8 convolutions run ~1.6–1.9× faster than bf16, but quantizing every
convolution costs too much accuracy (KITTI, the authors' weights: flow 2.6 px mean error, 90 % of semantic labels
kept, README "Speed"): int8 is opt-in and ``auto`` never picks it.
"""
from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

from .graphs import GraphSpec, export_graph

PACKAGE = "openvino"  # the Python package that runs it (optional)
PRECISIONS = ("fp32", "bf16", "int8")
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def export(folder: Path, specs: list[GraphSpec], precision: str = "fp32", calibration: dict | None = None) -> dict[str, str]:
    """ONNX → OpenVINO IR, {graph name: .xml file name}: fp32 weights (bf16 is chosen when compiling), or for
    ``int8`` quantized with ``calibration`` ({graph name: list of input lists}, :func:`.graphs.calibration_inputs`)."""
    import openvino as ov

    files = {}
    with tempfile.TemporaryDirectory(prefix="omeganet_onnx_") as tmp:
        for spec in specs:
            onnx_path = export_graph(spec, Path(tmp) / f"{spec.name}.onnx")
            model = ov.convert_model(str(onnx_path))
            if precision == "int8":
                model = _quantize(model, spec, calibration[spec.name])
            ov.save_model(model, str(folder / f"{spec.name}.xml"), compress_to_fp16=False)
            files[spec.name] = f"{spec.name}.xml"
    return files


def _quantize(model, spec: GraphSpec, samples: list[list[np.ndarray]]):
    try:
        import nncf
    except ImportError as exc:
        raise ImportError("precision int8 quantizes with NNCF: pip install nncf") from exc

    dataset = nncf.Dataset([dict(zip(spec.inputs, sample)) for sample in samples])
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: not into a CLI's JSON on stdout
        return nncf.quantize(model, dataset, subset_size=len(samples), fast_bias_correction=True,
                             ignored_scope=nncf.IgnoredScope(types=["MatMul"], validate=False))


def _float_hint() -> str:
    """What an int8 model's unquantized operations run in: bf16 on a CPU with native bf16, else f32."""
    from ..engine import cpu_has_fast_bf16

    return "bf16" if cpu_has_fast_bf16() else "f32"


class Session:
    """One compiled graph: ``run(list of numpy inputs) → list of numpy outputs`` (copies, safe to keep)."""

    def __init__(self, path: Path, threads: int, precision: str):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"backend openvino runs {PRECISIONS}, not {precision!r}")
        core = ov.Core()
        model = core.read_model(str(path))
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": int(threads),
                  "INFERENCE_PRECISION_HINT": _HINTS.get(precision) or _float_hint()}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = [p.get_any_name() for p in self.compiled.inputs]
        self.outputs = [p.get_any_name() for p in self.compiled.outputs]
        # what the plugin runs (it may fall back to f32 on a CPU without bf16)
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = {ov.Type.bf16: "bf16", ov.Type.f32: "fp32"}.get(hint, str(hint))
        if precision == "int8":
            self.precision = f"int8+{self.precision}"

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer(dict(zip(self.inputs, inputs)), share_inputs=True, share_outputs=False)
        return [results[name] for name in self.outputs]
