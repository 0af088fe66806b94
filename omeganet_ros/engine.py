"""SceneEngine: a stream of RGB frames in, every ΩNet output out (ROS-free).

One engine serves the ROS node, ``omeganet-infer``, the benchmarks and the
evaluation, so every path measures the same code. Its inference (networks, rigid
flow, motion probability, resizing to the output size) is
:mod:`omeganet_ros.inference`, which training validation and stage 4's τ
calibration run too.

Pipeline for the frame it describes (frame t, with t−1 and t+1 around it)::

    frame ─ resize to the network size ─► tensor (cached per frame)
            ├─ CamNet encoder, OFNet pyramid       (per frame, cached: each frame serves 3 triples)
    DSNet(t)                       → disparity → depth, semantic logits
    CamNet(t−1, t, t+1)            → camera motions t−1→t, t→t+1, intrinsics K
    OFNet(t−1, t, t+1)             → optical flow t→t+1
    rigid flow(depth, K, M_t→t+1)  → motion probability (ΩNet) → motion mask on dynamic classes

Modes:

* **Paper mode** (default, ``causal=False``): :meth:`SceneEngine.push` returns
  the outputs of the *middle* frame of the last three, one frame late (the
  first output comes with the third frame). Flow, ego-motion and rigid flow
  look forward, t→t+1.
* **Causal mode** (``causal=True``): outputs describe the *newest* frame t,
  without latency, from the second frame on. Frame t+1 does not exist yet, so
  the three-frame networks get the mirrored triple (t−1, t, t−1): ``flow``,
  ``ego_motion`` and ``rigid_flow`` then describe t→t−1 (backward) and
  ``SceneOutputs.direction`` says ``"backward"``. Motion segmentation is
  unchanged in meaning (optical vs rigid flow over the same frame pair).

In both modes ``motion_from_previous`` is the camera motion t−1→t, the one to
chain for odometry: ``pose_t = pose_{t−1} @ motion_from_previous``.

Scale: depth and translations are in the network's relative units unless a
metric scale is set (:meth:`SceneEngine.set_depth_scale`, e.g. from the node's
scale recovery), which multiplies depth and ego-motion translations. Rigid flow
and motion use the unscaled, mutually consistent network outputs.
"""
from __future__ import annotations

import atexit
import copy
import logging
import threading
import weakref
import time
import warnings
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .checkpoint import (CheckpointError, build_networks_from_checkpoint, default_checkpoint_path,
                         load_checkpoint)
from .classes import DYNAMIC_TRAIN_IDS, NUM_CLASSES
from .inference import (SceneNetworks, SceneTensors, frame_to_tensor, infer_scene, network_intrinsics,
                        resize_scene)
from .motion import MOTION_THRESHOLD, motion_mask
from .nets.layers import fold_batch_norms

log = logging.getLogger(__name__)

NETWORK_NAMES = ("dsnet", "camnet", "ofnet")
# Engines with a background export thread (weakly held): stopped at interpreter exit, so that no thread is inside
# a backend's native code while the interpreter finalizes (that aborts: "terminate called without an active exception").
_BACKGROUND_EXPORTS: "weakref.WeakSet[SceneEngine]" = weakref.WeakSet()


@atexit.register
def _stop_background_exports() -> None:
    for engine in list(_BACKGROUND_EXPORTS):
        engine.close()

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MIN_NETWORK_SIZE = 64
DEFAULT_SIZE = (640, 192)  # network (W, H) for random weights when no size is given


@dataclass
class SceneOutputs:
    """Everything the engine knows about one frame, at ``resolution`` H×W.

    Arrays are numpy. Camera motions are 4×4 (geometry convention: the pose of
    the later camera in the earlier camera frame, REP 103 optical axes).
    """

    stamp: float                       # stamp of the frame described (as pushed)
    depth: np.ndarray                  # H×W float32; metres if depth_is_metric else relative units
    depth_is_metric: bool
    depth_scale: float                 # factor applied to the network's relative depth (1.0 if none)
    semantic: np.ndarray               # H×W uint8 Cityscapes trainIds
    # flow, motion_probability, motion_mask and rigid_flow are None when the engine skips flow (compute_flow=False)
    flow: np.ndarray | None            # H×W×2 float32 pixels, this frame → next (→ previous in causal mode)
    motion_probability: np.ndarray | None  # H×W float32 in [0, 1]
    motion_mask: np.ndarray | None     # H×W bool: moving pixels of potentially dynamic classes
    ego_motion: np.ndarray             # 4×4 float64 camera motion this → next frame (→ previous in causal mode)
    motion_from_previous: np.ndarray   # 4×4 float64 camera motion previous → this frame (for odometry)
    intrinsics: np.ndarray             # 3×3 float64 K in pixels of the output resolution
    timings_ms: dict[str, float]       # per stage
    rigid_flow: np.ndarray | None = None           # H×W×2 float32 pixels, same direction as ``flow``
    class_probabilities: np.ndarray | None = None  # C×H×W float32 softmax, when asked for
    direction: str = "forward"         # "forward" (paper mode) or "backward" (causal mode)
    intrinsics_source: str = "camnet"  # "camnet" (estimated) or "given" (push(K=...)); "default": Moreau, no K given
    metadata: dict = field(default_factory=dict)
    # Instance ids H×W uint16, 0 = none: the Moreau model only (moreau_engine.MoreauEngine), whose outputs have
    # semantic, flow, motion_probability, motion_mask and rigid_flow None (it does not estimate them).
    instance: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the outputs."""
        return self.depth.shape[1], self.depth.shape[0]


@dataclass
class _FrameState:
    """What the engine keeps of a pushed frame (reused by the three triples it belongs to)."""

    stamp: float
    image: torch.Tensor           # 1×3×h×w float in [0, 1] at the network size
    input_size: tuple[int, int]   # (W, H) of the pushed frame
    K: torch.Tensor | None        # 3×3 at the network size, when given
    cam_features: list | None = None
    flow_features: list | None = None
    rotation_to_next: torch.Tensor | None = None  # 3×3 fitted rotation of its motion → next frame (rotation_from_flow)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (AMX-BF16 tiles or AVX-512-BF16 dot products)."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def fastest_precision(device: torch.device) -> str:
    """``precision="auto"``: bf16 autocast on a CPU with native bf16 (measured faster than fp32 there, accuracy
    cost in the README), else fp32 (CUDA: fp32 until fp16/bf16 are measured on a GPU)."""
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu' or 'cuda'")
    return dev


def check_frame(frame) -> np.ndarray:
    """Raise ``ValueError`` unless ``frame`` is a non-empty H×W×3 uint8 array; returns it."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array (H×W×3 uint8 RGB), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 RGB, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H×W×3 RGB, got shape {frame.shape}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(f"frame is empty or degenerate: shape {frame.shape}")
    return frame


def _check_K(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"intrinsics K must be a finite 3×3 matrix with fx, fy > 0, got {K.tolist()}")
    return K


class SceneEngine:
    """ΩNet inference on a stream of frames; see the module docstring for the pipeline and modes.

    Args:
        checkpoint: path to an ``omeganet_ros.checkpoint`` file, a loaded
            :class:`~omeganet_ros.checkpoint.Checkpoint`, ``None`` for the packaged
            default (random weights, with a loud warning, when none is installed), or
            ``"random"`` for random weights without looking for one.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"``, ``"bf16"`` (autocast, CPU or CUDA), ``"fp16"`` (autocast, CUDA only) or
            ``"auto"`` (:func:`fastest_precision`: bf16 on a CPU with native bf16, else fp32).
        size: network input (W, H); frames of any size are resized to it. None: the size the
            checkpoint was trained at (its ``input_size``), 640×192 for random weights.
        compile: ``torch.compile`` the networks (with inductor freezing); the first
            frames are slow while it compiles.
        channels_last: NHWC memory format (default: on for CPU).
        output_resolution: ``"input"`` (outputs at each pushed frame's size) or ``"network"``.
        motion_threshold: τ of the motion mask. None: the τ calibrated into the checkpoint
            (``provenance['motion_threshold']``, stage 4 of training), else 0.5.
        dynamic_classes: trainIds that may be masked as moving (None: no class restriction).
        causal: outputs for the newest frame instead of the middle one (see module doc).
        class_probabilities: also return the C×H×W softmax.
        depth_scale: metric scale of the network depth (None: relative depth).
        seed: seed of the random initialisation (random weights only).
        num_threads: CPU threads for PyTorch (None: leave as is).
        fold_batch_norm: run BatchNorm-folded copies of the networks (same outputs up to fp32 rounding, fewer
            operations; ``self.networks`` keep their unfolded, trainable form).
        compute_flow: run OFNet and what depends on it (flow, rigid flow, motion); False leaves them None
            in the outputs (a caller nobody asks flow or motion of). Can be changed between pushes.
        rotation_from_flow: the ego-motion's rotation is the PnP-RANSAC fit of the optical flow on the depth
            (static classes; DF-VO's finding that such a fit beats a pose network), CamNet's translation kept;
            rigid flow and the motion mask follow it, and ``motion_from_previous`` takes the previous output's
            fitted rotation (paper mode) or the inverse of this one (causal). Needs flow; where a fit fails,
            CamNet's rotation stays. False (default, the authors' behaviour): ΩNet's CamNet motion; the node and
            ``omeganet-infer`` turn it on by default. See :mod:`omeganet_ros.pose_proxy`.
        backend: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"auto"`` (the fastest installed; torch on
            CUDA or with ``compile``): see :mod:`omeganet_ros.backends` (graphs exported once, cached).
        graph_cache: folder of the backends' export cache (None: ``omeganet_ros.backends.cache.cache_root()``).
        graph_calibration: RGB frames (H×W×3 uint8, a sequence) that ``precision="int8"`` (openvino) calibrates on.
        background_export: when ``backend`` needs an export (no valid cache for this checkpoint, size and precision:
            ~25–50 s on a 2-core CPU), start on torch at once and export in a child process
            (:func:`~omeganet_ros.backends.export_in_subprocess`, watched by a background thread, which then loads the
            graphs); the engine switches to the backend at the first :meth:`push` after that (re-encoding the buffered
            frames, so no output is lost). A valid cache is loaded synchronously (2–5 s), as without this flag. A
            failed export leaves the engine on torch (logged; :meth:`describe` ``backend_error``). See
            :attr:`backend_pending`, :meth:`wait_for_backend`, :meth:`close`.
        backend_log: called as ``backend_log(level, message)`` (``logging`` levels) for each background-export
            event (started, finished, switched, failed), e.g. the node's ROS logger; the module logger gets them too.
    """

    def __init__(self, checkpoint=None, device: str = "auto", precision: str = "fp32",
                 size: tuple[int, int] | None = None, compile: bool = False, channels_last: bool | None = None,
                 output_resolution: str = "input", motion_threshold: float | None = None,
                 dynamic_classes: Iterable[int] | None = DYNAMIC_TRAIN_IDS, causal: bool = False,
                 class_probabilities: bool = False, depth_scale: float | None = None, seed: int = 0,
                 num_threads: int | None = None, fold_batch_norm: bool = True, compute_flow: bool = True,
                 backend: str = "torch", graph_cache: str | Path | None = None, graph_calibration=None,
                 background_export: bool = False, backend_log: Callable[[int, str], None] | None = None,
                 rotation_from_flow: bool = False):
        self.device = _resolve_device(device)
        from . import backends

        self.backend = backends.resolve_backend(backend, self.device, bool(compile))
        if self.backend != "torch":
            precision = backends.backend_precision(self.backend, precision, cpu_has_fast_bf16())
        if precision == "auto":
            precision = fastest_precision(self.device)
        if precision not in PRECISIONS and self.backend == "torch":
            raise ValueError(f"unknown precision {precision!r}; use one of {sorted(PRECISIONS)}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
        if output_resolution not in ("input", "network"):
            raise ValueError(f"output_resolution must be 'input' or 'network', got {output_resolution!r}")
        if motion_threshold is not None and not 0.0 <= motion_threshold <= 1.0:
            raise ValueError(f"motion_threshold must be in [0, 1], got {motion_threshold}")
        self.size = None if size is None else self._check_size(size)
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.precision = precision
        self.autocast_dtype = PRECISIONS.get(precision)  # None for a backend's own precision (int8)
        self.output_resolution = output_resolution
        self.dynamic_classes = None if dynamic_classes is None else tuple(int(c) for c in dynamic_classes)
        self.causal = bool(causal)
        self.return_class_probabilities = bool(class_probabilities)
        self.channels_last = (self.device.type == "cpu") if channels_last is None else bool(channels_last)
        self.compiled = bool(compile)
        self.compute_flow = bool(compute_flow)
        self.rotation_from_flow = bool(rotation_from_flow)
        self._depth_scale: float | None = None
        if depth_scale is not None:
            self.set_depth_scale(depth_scale)

        self.networks, self.checkpoint_path, self.random_weights = self._load_networks(checkpoint, seed)
        if motion_threshold is None:
            motion_threshold = self._calibrated_threshold if self._calibrated_threshold is not None else MOTION_THRESHOLD
        self.motion_threshold = float(motion_threshold)
        if self.size is None:
            self.size = DEFAULT_SIZE
        for net in self.networks.values():
            net.eval().to(self.device)
        self.folded_batch_norm = bool(fold_batch_norm)
        running = {name: fold_batch_norms(copy.deepcopy(net)) if fold_batch_norm else net
                   for name, net in self.networks.items()}
        if self.channels_last:
            for net in running.values():
                net.to(memory_format=torch.channels_last)
        self._dsnet = running["dsnet"]
        self._depth_from_disp = running["dsnet"].depth_from_disp  # each DSNet's own disparity → depth
        self._cam_encode = running["camnet"].encode
        self._cam_decode = running["camnet"].decode
        self._flow_encode = running["ofnet"].encode
        self._flow_decode = running["ofnet"].decode
        self._backend_graphs = None
        self.backend_pending: str | None = None  # the backend being exported in the background (None: none)
        self.backend_error: str | None = None  # why the background export failed (None: it did not)
        self._backend_log = backend_log
        self._ready_graphs = None  # graphs the background export finished, switched to at the next push
        self._export_thread: threading.Thread | None = None
        self._stop_export = threading.Event()
        if self.backend != "torch":  # the same five callables, run by the backend's exported graphs
            graph_args = (self.backend, self.networks, self.size, self.precision,
                          num_threads or torch.get_num_threads(), graph_cache, graph_calibration)
            cached, why = True, ""
            if background_export:
                try:
                    cached, why = backends.cached_graphs(*graph_args[:4], graph_cache, graph_calibration)
                except OSError as exc:  # an unreadable cache: the export (in the background) says what is wrong
                    cached, why = False, f"cache not readable: {exc}"
            if not cached:
                self._export_in_background(graph_args, why, requested=backend)
            else:
                try:
                    graphs = backends.open_graphs(*graph_args)
                except Exception as exc:  # auto: the fastest backend *available*; torch when the chosen one fails
                    if backend != "auto" or self.precision not in PRECISIONS:
                        raise
                    log.warning("backend auto: %s could not be used (%s: %s); running on torch",
                                self.backend, type(exc).__name__, exc)
                    self.backend = "torch"
                else:
                    self._use_graphs(graphs)
        if self.compiled:
            self._compile()
        self._frames: deque[_FrameState] = deque(maxlen=3)
        self.frames_pushed = 0

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _check_size(size) -> tuple[int, int]:
        width, height = (int(v) for v in size)
        if width < MIN_NETWORK_SIZE or height < MIN_NETWORK_SIZE:
            raise ValueError(f"network size must be at least {MIN_NETWORK_SIZE}×{MIN_NETWORK_SIZE}, got {width}×{height}")
        return width, height

    def _load_networks(self, checkpoint, seed: int):
        from .nets import ARCHITECTURES, build_networks

        self._calibrated_threshold = None
        if checkpoint is None:
            checkpoint = default_checkpoint_path()
        if checkpoint is None or (isinstance(checkpoint, str) and checkpoint == "random"):
            if checkpoint is None:
                message = ("omeganet_ros: no trained checkpoint given and none installed at "
                           "omeganet_ros/models/omeganet_synth.pt: the engine runs with RANDOM weights; "
                           "its outputs are meaningless (fine for tests and benchmarks only)")
                warnings.warn(message, RuntimeWarning, stacklevel=3)
                log.warning(message)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                networks = build_networks()
            return networks, None, True
        ckpt = checkpoint if not isinstance(checkpoint, (str, Path)) else load_checkpoint(checkpoint)
        missing = [n for n in NETWORK_NAMES if n not in ckpt.architecture]
        if missing:
            raise CheckpointError(f"checkpoint {ckpt.path}: lacks network(s) {missing} needed by the engine")
        networks = build_networks_from_checkpoint(ckpt, NETWORK_NAMES)
        for name in NETWORK_NAMES:
            expected = [arch[name].__name__ for arch in ARCHITECTURES.values()]
            if type(networks[name]).__name__ not in expected:
                raise CheckpointError(f"checkpoint {ckpt.path}: network {name!r} is a "
                                      f"{type(networks[name]).__name__}, expected one of {expected}")
        dsnet_classes = getattr(networks["dsnet"], "num_classes", NUM_CLASSES)
        if dsnet_classes != NUM_CLASSES:
            raise CheckpointError(f"checkpoint {ckpt.path}: DSNet has {dsnet_classes} classes, the engine expects {NUM_CLASSES}")
        calibrated = ckpt.provenance.get("motion_threshold")
        if calibrated is not None and 0.0 <= float(calibrated) <= 1.0:
            self._calibrated_threshold = float(calibrated)
        if self.size is None:
            self.size = self._check_size(ckpt.input_size)
        elif tuple(ckpt.input_size) != self.size:
            log.info("checkpoint %s was trained at %s, running at %s", ckpt.path, ckpt.input_size, self.size)
        return networks, ckpt.path, False

    def _compile(self):
        import torch._inductor.config as inductor_config

        # Freezing folds the (inference-only) weights into the graph: constant-folded BatchNorm, pre-packed convs.
        inductor_config.freezing = True
        self._dsnet = torch.compile(self._dsnet, dynamic=False)
        self._cam_encode = torch.compile(self._cam_encode, dynamic=False)
        self._cam_decode = torch.compile(self._cam_decode, dynamic=False)
        self._flow_encode = torch.compile(self._flow_encode, dynamic=False)
        self._flow_decode = torch.compile(self._flow_decode, dynamic=False)

    def _use_graphs(self, graphs) -> None:
        """Run a backend's graphs (:class:`~omeganet_ros.backends.BackendNetworks`) from now on."""
        self._dsnet, self._cam_encode, self._cam_decode = graphs.dsnet, graphs.cam_encode, graphs.cam_decode
        self._flow_encode, self._flow_decode = graphs.flow_encode, graphs.flow_decode
        self._backend_graphs = graphs
        self.backend = graphs.backend

    def _notify(self, level: int, message: str) -> None:
        log.log(level, message)
        if self._backend_log is not None:
            try:
                self._backend_log(level, message)
            except Exception:  # noqa: BLE001 — e.g. a ROS logger after its node was destroyed
                log.debug("backend_log failed", exc_info=True)

    def _export_in_background(self, graph_args: tuple, why: str, requested: str) -> None:
        """Export in a child process watched by a daemon thread, which then loads the graphs for :meth:`push` to switch
        to; the engine runs on torch meanwhile (``requested``: the backend name asked for; a failure is a warning for ``auto``, an error for a named one)."""
        from . import backends

        name = graph_args[0]
        self.backend_pending, self.backend = name, "torch"
        torch_precision = self.precision if self.precision in PRECISIONS else "fp32"
        self._notify(logging.INFO, f"backend {name} ({self.precision}): exporting its graphs in the background "
                                   f"({why}; ~25–50 s on a 2-core CPU, once per checkpoint, size and precision); "
                                   f"running on torch ({torch_precision}) until then")

        stop = self._stop_export

        def export() -> None:
            started = time.perf_counter()
            try:  # the export in a child process, then the cache it wrote loaded here (1–5 s)
                backends.export_in_subprocess(*graph_args, stop=stop)
                if stop.is_set():
                    return
                graphs = backends.open_graphs(*graph_args)
            except Exception as exc:  # noqa: BLE001 — any failure: stay on torch, say why
                self.backend_pending = None
                if stop.is_set():
                    return
                self.backend_error = f"{type(exc).__name__}: {exc}"
                self._notify(logging.WARNING if requested == "auto" else logging.ERROR,
                             f"backend {name}: the background export failed after "
                             f"{time.perf_counter() - started:.0f} s ({self.backend_error}); staying on torch")
                return
            self._ready_graphs = graphs
            self._notify(logging.INFO, f"backend {name}: graphs exported in {time.perf_counter() - started:.0f} s "
                                       f"to {graphs.entry.path}; switching from torch at the next frame")

        self._export_thread = threading.Thread(target=export, name=f"omeganet_export_{name}", daemon=True)
        _BACKGROUND_EXPORTS.add(self)
        self._export_thread.start()

    def close(self) -> None:
        """Stop a background export (its child process is terminated; the engine stays on torch) and wait for its
        thread. The engine still works afterwards. Called for every engine at interpreter exit."""
        self._stop_export.set()
        if self._export_thread is not None:
            self._export_thread.join(30)
        _BACKGROUND_EXPORTS.discard(self)

    @property
    def backend_graphs(self):
        """The :class:`~omeganet_ros.backends.BackendNetworks` running now (None while on torch)."""
        return self._backend_graphs

    def wait_for_backend(self, timeout: float | None = None) -> bool:
        """Wait (up to ``timeout`` s) for a background export; True when none is running any more. The switch
        itself happens at the next :meth:`push`."""
        if self._export_thread is not None:
            self._export_thread.join(timeout)
            return not self._export_thread.is_alive()
        return True

    def _switch_if_ready(self) -> None:
        """Switch to the graphs a background export finished (at a frame boundary, in the pushing thread),
        re-encoding the buffered frames so that no output is lost."""
        graphs, self._ready_graphs = self._ready_graphs, None
        if graphs is None:
            return
        self._use_graphs(graphs)
        self.backend_pending = None
        timings: dict[str, float] = {}
        for state in self._frames:
            state.flow_features = None
            self._encode(state, timings)
        self._notify(logging.INFO, f"backend {graphs.backend} ({self.precision}) running now, after "
                                   f"{self.frames_pushed} frames on torch")

    # ------------------------------------------------------------------ public API

    @property
    def depth_scale(self) -> float:
        return 1.0 if self._depth_scale is None else self._depth_scale

    @property
    def depth_is_metric(self) -> bool:
        return self._depth_scale is not None

    def set_depth_scale(self, scale: float | None) -> None:
        """Metres per network depth unit (from scale recovery); ``None`` returns to relative depth."""
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"depth scale must be a positive finite number, got {scale}")
        self._depth_scale = None if scale is None else float(scale)

    def reset(self) -> None:
        """Forget buffered frames (a new sequence starts; the next output needs a full buffer again)."""
        self._frames.clear()

    @property
    def latency_frames(self) -> int:
        """Frames between pushing a frame and getting its outputs (1 in paper mode, 0 in causal mode)."""
        return 0 if self.causal else 1

    def _accept(self, frame: np.ndarray, stamp, K) -> tuple[float, torch.Tensor | None]:
        """Check a pushed frame; returns its stamp and K scaled to the network size (None when not given).
        A stamp that does not increase, or a change of frame size, restarts the buffer (:meth:`reset`)."""
        check_frame(frame)
        stamp = float(stamp)
        if not np.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        K_net = None
        if K is not None:
            K_net = network_intrinsics(_check_K(K), (frame.shape[1], frame.shape[0]), self.size, self.device)
        if self._frames:
            last = self._frames[-1]
            if stamp <= last.stamp or last.input_size != (frame.shape[1], frame.shape[0]):
                log.info("stamp went back or frame size changed: restarting the frame buffer")
                self.reset()
        return stamp, K_net

    def push(self, frame: np.ndarray, stamp: float, K=None) -> SceneOutputs | None:
        """Add a frame (H×W×3 uint8 RGB, any size) with its stamp (seconds).

        ``K``: the camera's 3×3 intrinsics in pixels of this frame (e.g. from
        camera_info); when given, rigid flow uses it instead of CamNet's
        estimate. Returns the outputs of the middle frame (paper mode, from the
        third frame on) or of this frame (causal mode, from the second frame
        on), else None. A stamp that does not increase, or a change of frame
        size, restarts the buffer.
        """
        stamp, K_net = self._accept(frame, stamp, K)
        if self._ready_graphs is not None:
            self._switch_if_ready()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        state = _FrameState(stamp, self._preprocess(frame), (frame.shape[1], frame.shape[0]), K_net)
        self._mark(timings, "preprocess", t0)
        self._encode(state, timings)
        self._frames.append(state)
        self.frames_pushed += 1
        if self.causal:
            if len(self._frames) < 2:
                return None
            prev, cur = self._frames[-2], self._frames[-1]
            out = self._infer(prev, cur, prev, timings)
        else:
            if len(self._frames) < 3:
                return None
            out = self._infer(self._frames[0], self._frames[1], self._frames[2], timings)
        out.timings_ms["total"] = sum(v for k, v in out.timings_ms.items() if k != "total")
        return out

    # ------------------------------------------------------------------ stages

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _mark(self, timings: dict, name: str, start: float) -> float:
        self._sync()
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + (now - start) * 1000.0
        return now

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """H×W×3 uint8 → 1×3×h×w float in [0, 1] at the network size, on the device."""
        return frame_to_tensor(frame, self.size, self.device, self.channels_last)

    def _encode(self, state: _FrameState, timings: dict) -> None:
        """Per-frame encoders (CamNet's, OFNet's pyramid), computed once per frame and cached."""
        with torch.no_grad(), self._autocast():
            t = time.perf_counter()
            state.cam_features = self._cam_encode(state.image)
            t = self._mark(timings, "camnet_encoder", t)
            if self.compute_flow:
                state.flow_features = self._flow_encode(state.image)
                self._mark(timings, "ofnet_encoder", t)

    def _flow_features(self, state: _FrameState, timings: dict) -> list:
        """OFNet's pyramid of a frame, computed now if it was pushed while flow was off."""
        if state.flow_features is None:
            with torch.no_grad(), self._autocast():
                t = time.perf_counter()
                state.flow_features = self._flow_encode(state.image)
                self._mark(timings, "ofnet_encoder", t)
        return state.flow_features

    def _networks(self) -> SceneNetworks:
        """The callables the engine runs (folded, compiled or a backend's), for :func:`~omeganet_ros.inference.infer_scene`."""
        return SceneNetworks(dsnet=self._dsnet, cam_encode=self._cam_encode, cam_decode=self._cam_decode,
                             flow_encode=self._flow_encode, flow_decode=self._flow_decode,
                             depth_from_disp=self._depth_from_disp)

    def _infer(self, prev: _FrameState, cur: _FrameState, nxt: _FrameState, timings: dict) -> SceneOutputs:
        """The one inference path (:mod:`omeganet_ros.inference`) on the cached frames, then numpy outputs."""
        flow_features = None
        if self.compute_flow:
            flow_features = tuple(self._flow_features(state, timings) for state in (prev, cur, nxt))
        clock = [time.perf_counter()]

        def lap(stage: str) -> None:
            clock[0] = self._mark(timings, stage, clock[0])

        networks = self._networks()
        scene = infer_scene(networks, prev.image, cur.image, nxt.image, cur.K, compute_flow=self.compute_flow,
                            autocast=self._autocast, cam_features=(prev.cam_features, cur.cam_features, nxt.cam_features),
                            flow_features=flow_features, lap=lap, rotation_from_flow=self.rotation_from_flow,
                            dynamic_classes=self.dynamic_classes or ())
        if scene.rotation_fitted is not None:
            scene = self._fitted_rotation_from_previous(prev, cur, scene)
        out_size = cur.input_size if self.output_resolution == "input" else self.size
        scene = resize_scene(networks, scene, out_size, class_probabilities=self.return_class_probabilities)
        out = self._finish(cur, scene)
        self._mark(timings, "postprocess", clock[0])
        out.timings_ms = timings
        return out

    def _fitted_rotation_from_previous(self, prev: _FrameState, cur: _FrameState, scene: SceneTensors) -> SceneTensors:
        """``motion_from_previous`` with the fitted rotation of t−1→t: causal mode, the inverse of this output's
        (its ego-motion is t→t−1); paper mode, the one the previous output fitted for t−1→t, when it did."""
        fitted = bool(scene.rotation_fitted[0])
        from_previous = scene.motion_from_previous.clone()
        if self.causal:
            rotation = scene.ego_motion[0, :3, :3].transpose(0, 1) if fitted else None
        else:
            rotation = prev.rotation_to_next
            cur.rotation_to_next = scene.ego_motion[0, :3, :3].clone() if fitted else None
        if rotation is not None:
            from_previous[0, :3, :3] = rotation
        return replace(scene, motion_from_previous=from_previous)

    def _finish(self, cur: _FrameState, scene: SceneTensors) -> SceneOutputs:
        """Outputs at the output resolution → numpy, with the motion mask at τ and the depth scale applied."""
        mask = None
        if scene.motion_probability is not None:
            mask = motion_mask(scene.motion_probability, scene.semantic, self.motion_threshold, self.dynamic_classes)
        scale = self.depth_scale
        ego = scene.ego_motion[0].double().cpu().numpy()
        ego[:3, 3] *= scale
        from_prev = scene.motion_from_previous[0].double().cpu().numpy()
        from_prev[:3, 3] *= scale

        def image(t: torch.Tensor | None) -> np.ndarray | None:  # 1×2×H×W → H×W×2, 1×H×W → H×W
            if t is None:
                return None
            t = t[0].permute(1, 2, 0) if t.dim() == 4 else t[0]
            return t.cpu().numpy().astype(np.float32)

        return SceneOutputs(
            stamp=cur.stamp,
            depth=(scene.depth[0, 0] * scale).cpu().numpy().astype(np.float32),
            depth_is_metric=self.depth_is_metric,
            depth_scale=scale,
            semantic=scene.semantic[0].to(torch.uint8).cpu().numpy(),
            flow=image(scene.flow),
            motion_probability=image(scene.motion_probability),
            motion_mask=None if mask is None else mask[0].cpu().numpy(),
            ego_motion=ego,
            motion_from_previous=from_prev,
            intrinsics=scene.K[0].double().cpu().numpy(),
            timings_ms={},
            rigid_flow=image(scene.rigid_flow),
            class_probabilities=None if scene.class_probabilities is None else scene.class_probabilities[0].cpu().numpy(),
            direction="backward" if self.causal else "forward",
            intrinsics_source="given" if scene.intrinsics_given else "camnet",
            metadata=self.describe(),
        )

    def describe(self) -> dict:
        """Plain-value description of the engine (for meta.json, diagnostics, benchmark records)."""
        return {
            "checkpoint": None if self.checkpoint_path is None else str(self.checkpoint_path),
            "random_weights": self.random_weights,
            "network_size": list(self.size),
            "output_resolution": self.output_resolution,
            "device": str(self.device),
            "precision": self.precision,
            "compiled": self.compiled,
            "channels_last": self.channels_last,
            "folded_batch_norm": self.folded_batch_norm,
            "compute_flow": self.compute_flow,
            "rotation_from_flow": self.rotation_from_flow,
            "backend": self.backend,
            **({} if self._backend_graphs is None else self._backend_graphs.describe()),
            **({} if self.backend_pending is None else {"backend_pending": self.backend_pending}),
            **({} if self.backend_error is None else {"backend_error": self.backend_error}),
            "causal": self.causal,
            "motion_threshold": self.motion_threshold,
            "dynamic_classes": None if self.dynamic_classes is None else list(self.dynamic_classes),
        }
