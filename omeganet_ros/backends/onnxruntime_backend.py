"""ONNX Runtime backend (CPU execution provider, fp32): runs the exported ONNX graphs as they are."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .graphs import GraphSpec, export_graph

PACKAGE = "onnxruntime"  # the Python package that runs it (optional)
PRECISIONS = ("fp32",)  # the CPU provider has no fast bf16 convolutions


def export(folder: Path, specs: list[GraphSpec], precision: str = "fp32", calibration: dict | None = None) -> dict[str, str]:
    """Write one ONNX file per graph into ``folder``; {graph name: file name} (fp32 only: no calibration)."""
    return {spec.name: export_graph(spec, folder / f"{spec.name}.onnx").name for spec in specs}


class Session:
    """One graph in an ONNX Runtime session: ``run(list of numpy inputs) → list of numpy outputs``."""

    def __init__(self, path: Path, threads: int, precision: str):
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ValueError(f"backend onnxruntime runs {PRECISIONS} on CPU, not {precision!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle worker threads wait passively, as OpenMP's threads do in the node (a shared robot computer).
        passive = os.environ.get("OMP_WAIT_POLICY", "PASSIVE").upper() == "PASSIVE"
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if passive else "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, dict(zip(self.inputs, inputs)))
