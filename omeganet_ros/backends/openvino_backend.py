"""OpenVINO backend (CPU plugin): the exported ONNX graphs converted to OpenVINO IR, fp32 or bf16 inference."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .graphs import GraphSpec, export_graph

NAME = "openvino"
PRECISIONS = ("fp32", "bf16")
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    import openvino

    return openvino.__version__


def export(folder: Path, specs: list[GraphSpec]) -> dict[str, str]:
    """ONNX → OpenVINO IR (fp32 weights: the precision is chosen when compiling); {graph name: .xml file name}."""
    import openvino as ov

    files = {}
    with tempfile.TemporaryDirectory(prefix="omeganet_onnx_") as tmp:
        for spec in specs:
            onnx_path = export_graph(spec, Path(tmp) / f"{spec.name}.onnx")
            model = ov.convert_model(str(onnx_path))
            ov.save_model(model, str(folder / f"{spec.name}.xml"), compress_to_fp16=False)
            files[spec.name] = f"{spec.name}.xml"
    return files


class Session:
    """One compiled graph: ``run(list of numpy inputs) → list of numpy outputs`` (copies, safe to keep)."""

    def __init__(self, path: Path, threads: int, precision: str):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"backend openvino runs {PRECISIONS}, not {precision!r}")
        core = ov.Core()
        model = core.read_model(str(path))
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": int(threads),
                  "INFERENCE_PRECISION_HINT": _HINTS[precision]}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = [p.get_any_name() for p in self.compiled.inputs]
        self.outputs = [p.get_any_name() for p in self.compiled.outputs]
        # what the plugin runs (it may fall back to f32 on a CPU without bf16)
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = {ov.Type.bf16: "bf16", ov.Type.f32: "fp32"}.get(hint, str(hint))

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer(dict(zip(self.inputs, inputs)), share_inputs=True, share_outputs=False)
        return [results[name] for name in self.outputs]
