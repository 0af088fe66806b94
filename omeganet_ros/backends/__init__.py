"""Inference backends behind :class:`~omeganet_ros.engine.SceneEngine`: ``torch | onnxruntime | openvino | auto``.

``torch`` runs the networks as they are (eager or ``torch.compile``). The other two run the engine's
five per-frame graphs (:mod:`.graphs`: DSNet, the CamNet and OFNet encoders once per frame, their
decoders once per triple) exported to ONNX once and cached (:mod:`.cache`) per backend, precision,
input size and network weights. ``auto`` picks the fastest backend installed (:data:`AUTO_ORDER`),
``torch`` when neither is. Both are optional extras (``pip install omeganet_ros[openvino]`` /
``[onnxruntime]``); neither pulls torch or CUDA. CPU only: on CUDA, ``auto`` is ``torch``.

:class:`BackendNetworks` gives the engine the same five callables its torch networks give it
(``dsnet``, ``cam_encode``, ``cam_decode``, ``flow_encode``, ``flow_decode``), taking and returning
torch tensors, so nothing else in the engine knows which backend runs.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import multiprocessing
import pickle
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from . import onnxruntime_backend, openvino_backend
from .cache import CacheEntry, check_entry, entry_folder, expected_fields, open_entry, weights_hash
from .graphs import OPSET, build_graphs, calibration_inputs, example_images, frames_to_images, reference_outputs

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino")
BACKEND_CHOICES = ("auto",) + BACKENDS
DEFAULT_BACKEND = "auto"  # the node's and omeganet-infer's default (the engine's API default is torch)
_MODULES = {"onnxruntime": onnxruntime_backend, "openvino": openvino_backend}
# ``auto``: the first installed of these. Measured on the 2-core dev VM (README "Speed", one thread): OpenVINO bf16
# is the fastest full pipeline (1.3–1.5× torch bf16); ONNX Runtime fp32 is slower than torch eager fp32 (678 vs 610 ms).
AUTO_ORDER = ("openvino", "torch")


class BackendError(ValueError):
    """A backend could not be used (not installed, wrong device or precision, an export that does not load)."""


def _installed(module) -> bool:
    try:
        importlib.import_module(module.PACKAGE)
    except ImportError:
        return False
    return True


def _version(module) -> str:
    return importlib.import_module(module.PACKAGE).__version__


def available_backends() -> list[str]:
    """The backends this installation can run, ``torch`` always among them."""
    return ["torch"] + [name for name, module in _MODULES.items() if _installed(module)]


def resolve_backend(backend: str, device: torch.device, compile: bool = False) -> str:
    """The backend to run for the requested name (``auto`` → the fastest installed; see :data:`AUTO_ORDER`).

    Raises ``ValueError`` for an unknown name and :class:`BackendError` for one that is not installed or
    cannot serve the device or ``compile``.
    """
    if backend == "auto":
        if device.type != "cpu" or compile:
            return "torch"
        installed = available_backends()
        return next(name for name in AUTO_ORDER if name in installed)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {list(BACKENDS) + ['auto']}")
    if backend == "torch":
        return backend
    if not _installed(_MODULES[backend]):
        raise BackendError(f"backend {backend!r} is not installed: pip install 'omeganet_ros[{backend}]' "
                           f"(or pip install {backend}), or use backend 'torch'")
    if device.type != "cpu":
        raise BackendError(f"backend {backend!r} runs on the CPU only; use device 'cpu' or backend 'torch'")
    if compile:
        raise BackendError(f"compile applies to backend 'torch' only, not {backend!r}")
    return backend


def backend_precision(backend: str, precision: str, fast_bf16: bool) -> str:
    """``precision="auto"`` for a backend other than torch: bf16 where the backend has it and the CPU runs it
    natively (``fast_bf16``), else fp32. An explicit precision the backend lacks raises :class:`BackendError`."""
    supported = _MODULES[backend].PRECISIONS
    if precision == "auto":
        return "bf16" if fast_bf16 and "bf16" in supported else "fp32"
    if precision not in supported:
        raise BackendError(f"backend {backend!r} runs precision {list(supported)}, not {precision!r}")
    return precision


def _tensor_in(x: torch.Tensor) -> np.ndarray:
    """A 1×C×H×W torch tensor as the contiguous NCHW float32 numpy array the graphs take."""
    return x.detach().float().cpu().contiguous().numpy()


class BackendNetworks:
    """The engine's five callables, run by a backend's sessions (see the module docstring).

    Encoder features are kept as numpy arrays (the engine caches them per frame); decoders return torch
    tensors of the shapes and meanings of the torch networks' outputs.
    """

    def __init__(self, backend: str, sessions: dict, entry: CacheEntry, precision: str, threads: int):
        self.backend, self.sessions, self.entry = backend, sessions, entry
        self.precision, self.threads = precision, threads

    def _run(self, name: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.sessions[name].run(inputs)

    def dsnet(self, image: torch.Tensor) -> dict:
        disp, semantic = self._run("dsnet", [_tensor_in(image)])
        return {"disp_full": torch.from_numpy(disp), "semantic": torch.from_numpy(semantic)}

    def cam_encode(self, image: torch.Tensor) -> list[np.ndarray]:
        return self._run("cam_encoder", [_tensor_in(image)])

    def cam_decode(self, prev, cur, nxt, height: int, width: int) -> dict:
        motion, K = self._run("cam_decoder", [*prev, *cur, *nxt])
        return {"motion": torch.from_numpy(motion), "K": torch.from_numpy(K)}

    def flow_encode(self, image: torch.Tensor) -> list[np.ndarray]:
        return self._run("flow_encoder", [_tensor_in(image)])

    def flow_decode(self, prev, cur, nxt, height: int, width: int, backward: bool = False) -> dict:
        if backward:
            raise BackendError("the exported flow decoder computes the forward flow only")
        (flow,) = self._run("flow_decoder", [*prev, *cur, *nxt])
        return {"flow_fw": [torch.from_numpy(flow)]}

    def describe(self) -> dict:
        """Plain values for the engine's :meth:`~omeganet_ros.engine.SceneEngine.describe`."""
        manifest = self.entry.manifest
        return {"backend": self.backend, "backend_version": manifest.get("backend_version"),
                "backend_precision": self.precision, "backend_threads": self.threads,
                "graph_cache": str(self.entry.path), "graph_exported_now": self.entry.exported,
                "graph_max_abs_diff_vs_torch_fp32": manifest.get("max_abs_diff")}


def open_session(backend: str, path: str | Path, threads: int, precision: str):
    """One ONNX (or OpenVINO IR) graph in ``backend``: an object with ``run(list of numpy inputs) → list of outputs``."""
    return _MODULES[backend].Session(Path(path), threads, precision)


def _load_sessions(module, entry: CacheEntry, threads: int, precision: str) -> dict:
    return {name: module.Session(path, threads, precision) for name, path in entry.files.items()}


def _expected(backend: str, networks: dict, size: tuple[int, int], precision: str,
              calibration: list[np.ndarray] | None) -> tuple[dict, list[torch.Tensor] | None]:
    """(the cache manifest fields an export of these graphs has, the int8 calibration images or None)."""
    expected = expected_fields(backend, _version(_MODULES[backend]), precision, size, weights_hash(networks), OPSET)
    images = None
    if precision == "int8":
        images = frames_to_images(calibration, size) if calibration is not None else example_images(size, n=8, seed=1)
        expected["calibration_sha256"] = hashlib.sha256(b"".join(i.numpy().tobytes() for i in images)).hexdigest()
    return expected, images


def cached_graphs(backend: str, networks: dict, size: tuple[int, int], precision: str,
                  cache_dir: str | Path | None = None, calibration: list[np.ndarray] | None = None) -> tuple[bool, str]:
    """Whether :func:`open_graphs` with these arguments would load a valid cache folder (``(True, its path)``)
    or export first (``(False, why: no cache yet, stale: …, corrupt: …)``). Reads and hashes the cached files;
    exports nothing."""
    expected, _ = _expected(backend, networks, size, precision, calibration)
    folder = entry_folder(expected, None if cache_dir is None else Path(cache_dir))
    manifest, why = check_entry(folder, expected)
    return (True, str(folder)) if manifest is not None else (False, why)


def open_graphs(backend: str, networks: dict, size: tuple[int, int], precision: str, threads: int,
                cache_dir: str | Path | None = None, calibration: list[np.ndarray] | None = None) -> BackendNetworks:
    """Sessions of ``backend`` for the engine's ``networks`` (fp32 torch modules, eval) at ``size`` (W, H).

    Exports and checks against PyTorch fp32 when the cache holds no valid export (see :mod:`.cache`);
    an export that does not load is exported again once, then :class:`BackendError`. ``calibration``: H×W×3
    uint8 RGB frames of a sequence (≥ 3) the int8 quantization calibrates on (None: synthetic frames); part of
    the cache key. The one export path: the engine, the node and ``omeganet-export`` all come here.
    """
    module = _MODULES[backend]
    expected, images = _expected(backend, networks, size, precision, calibration)

    fresh = {}  # the sessions the export checked, used as they are (a second compile would cost as much again)

    def export(folder: Path) -> dict:
        specs = build_graphs(networks, size)
        samples = None if images is None else calibration_inputs(specs, images)
        graphs = module.export(folder, specs, precision, samples)
        diffs = {}
        for spec in specs:  # each graph against PyTorch fp32 on the export's example frames
            inputs = [t.numpy() for t in spec.example]
            try:
                fresh[spec.name] = module.Session(folder / graphs[spec.name], threads, precision)
                got = fresh[spec.name].run(inputs)
            except Exception as exc:  # noqa: BLE001 — whatever the backend raises, name the graph and the folder
                raise BackendError(f"backend {backend!r}: the {spec.name} graph just exported does not load or "
                                   f"run: {exc}") from exc
            ref = reference_outputs(spec, dict(zip(spec.inputs, inputs)))
            wrong = [f"{o} {g.shape} != {r.shape}" for o, g, r in zip(spec.outputs, got, ref) if g.shape != r.shape]
            if wrong:
                raise BackendError(f"backend {backend!r}: the exported {spec.name} graph gives other shapes than "
                                   f"PyTorch at {size[0]}×{size[1]}: {', '.join(wrong)}")
            diffs[spec.name] = {o: float(np.abs(g - r).max()) for o, g, r in zip(spec.outputs, got, ref)}
        return {"graphs": graphs, "max_abs_diff": diffs}

    entry = open_entry(expected, export, cache_dir)
    if entry.exported and set(fresh) == set(entry.files):
        return BackendNetworks(backend, fresh, entry, precision, threads)
    try:
        sessions = _load_sessions(module, entry, threads, precision)
    except Exception as exc:  # noqa: BLE001 — any load failure of a cached file: export again once
        if entry.exported:
            raise BackendError(f"backend {backend!r}: the graphs just exported to {entry.path} do not load or "
                               f"run: {exc}") from exc
        log.warning("omeganet_ros: cached %s graphs in %s do not load (%s): exporting again", backend, entry.path, exc)
        fresh.clear()
        entry = open_entry(expected, export, cache_dir, force=True, reason=f"did not load: {exc}")
        sessions = fresh if set(fresh) == set(entry.files) else _load_sessions(module, entry, threads, precision)
    return BackendNetworks(backend, sessions, entry, precision, threads)


def _export_worker(args_file: str, conn) -> None:
    """The child process of :func:`export_in_subprocess`: :func:`open_graphs` on the arguments pickled in
    ``args_file`` (export, check, write the cache), then None or the error's text through ``conn``."""
    try:
        with open(args_file, "rb") as f:
            graph_args = pickle.load(f)  # written by the parent a moment ago, in its private temporary folder
        torch.set_num_threads(max(1, int(graph_args[4])))
        open_graphs(*graph_args)
    except BaseException as exc:  # noqa: BLE001 — whatever went wrong goes back to the parent as text
        conn.send(f"{type(exc).__name__}: {exc}")
    else:
        conn.send(None)
    finally:
        conn.close()


def export_in_subprocess(backend: str, networks: dict, size: tuple[int, int], precision: str, threads: int,
                         cache_dir: str | Path | None = None, calibration: list[np.ndarray] | None = None,
                         stop: threading.Event | None = None) -> None:
    """Export the graphs :func:`open_graphs` would export (same arguments) into the cache, in a spawned child
    process, and wait for it; loads nothing here. A process, not a thread: the export (tracing, ONNX, OpenVINO
    conversion) shares no interpreter lock with the caller's inference and can be stopped at any moment (``stop``
    set: the child is terminated — the cache is written by an atomic rename, so nothing half-written is left in
    it — and :class:`BackendError` raised). An export that fails raises :class:`BackendError` with the child's error.
    """
    ctx = multiprocessing.get_context("spawn")  # not fork: the caller has threads (ROS executors, OpenMP)
    args = (backend, networks, size, precision, threads, None if cache_dir is None else str(cache_dir), calibration)
    with tempfile.TemporaryDirectory(prefix="omeganet_export_") as folder:
        # The networks go through a file, not the process's start-up pipe: a child that dies while starting (a
        # __main__ it cannot import) would leave the parent blocked forever writing megabytes into that pipe.
        args_file = Path(folder) / "args.pickle"
        with open(args_file, "wb") as f:
            pickle.dump(args, f, protocol=pickle.HIGHEST_PROTOCOL)
        receive, send = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_export_worker, args=(str(args_file), send), name=f"omeganet_export_{backend}",
                              daemon=True)
        process.start()
        send.close()
        try:
            while process.is_alive():
                process.join(0.2)
                if stop is not None and stop.is_set():
                    process.terminate()
                    process.join(10)
                    raise BackendError(f"backend {backend!r}: the export was stopped")
            error = f"the export process ended with exit code {process.exitcode} without a word"
            if receive.poll():
                try:
                    error = receive.recv()
                except EOFError:  # it died before answering
                    pass
        finally:
            receive.close()
    if error:
        raise BackendError(f"backend {backend!r}: the export failed: {error}")


def _rotation_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation between two 4×4 poses, in degrees: ‖R − I‖_F = 2√2·sin(θ/2), exact near 0 (arccos of
    the trace is not: float32 rounding alone reads as 0.03°)."""
    r = a[:3, :3].T @ b[:3, :3]
    return float(np.degrees(2 * np.arcsin(min(np.linalg.norm(r - np.eye(3)) / (2 * np.sqrt(2)), 1.0))))


def output_differences(reference, other) -> dict:
    """How far ``other``'s :class:`~omeganet_ros.engine.SceneOutputs` are from ``reference``'s for the same frame.

    ``depth_rel_max`` / ``_mean``: |Δdepth| / depth; ``flow_px_max`` / ``_mean``: end-point difference in pixels,
    ``rigid_flow_px_max`` likewise; ``semantic_agree`` and ``motion_mask_agree``: share of pixels with the same
    label; ``motion_probability_max``: absolute; ``ego_translation_max``: |Δt| of the 4×4 ego-motion (its
    units), ``ego_rotation_deg``: angle of the relative rotation; ``intrinsics_px_max``: max |ΔK| in pixels.
    Flow-dependent entries are left out when either side has no flow.
    """
    rel = np.abs(other.depth - reference.depth) / np.abs(reference.depth)
    out = {"depth_rel_max": float(rel.max()), "depth_rel_mean": float(rel.mean()),
           "semantic_agree": float(np.mean(other.semantic == reference.semantic)),
           "ego_translation_max": float(np.abs(other.ego_motion[:3, 3] - reference.ego_motion[:3, 3]).max()),
           "ego_rotation_deg": _rotation_deg(reference.ego_motion, other.ego_motion),
           "intrinsics_px_max": float(np.max(np.abs(other.intrinsics - reference.intrinsics)))}
    if reference.flow is not None and other.flow is not None:
        flow = np.linalg.norm(other.flow - reference.flow, axis=2)
        out.update(flow_px_max=float(flow.max()), flow_px_mean=float(flow.mean()),
                   rigid_flow_px_max=float(np.linalg.norm(other.rigid_flow - reference.rigid_flow, axis=2).max()),
                   motion_mask_agree=float(np.mean(other.motion_mask == reference.motion_mask)),
                   motion_probability_max=float(np.abs(other.motion_probability - reference.motion_probability).max()))
    return out


def worst_differences(rows: list[dict]) -> dict:
    """The worst of several :func:`output_differences` (lowest agreement, largest difference), rounded."""
    return {k: round(min(r[k] for r in rows) if k.endswith("agree") else max(r[k] for r in rows), 5)
            for k in rows[0]} if rows else {}
