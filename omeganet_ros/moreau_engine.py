"""MoreauEngine: the Moreau et al. model behind the same frame-stream interface as :class:`~omeganet_ros.engine.SceneEngine`.

Per frame: depth (:class:`~omeganet_ros.nets.MoreauNet`, monodepth2's disparity mapping), camera motions
(:class:`~omeganet_ros.nets.Monodepth2PoseNet` on the pairs (t−1, t) and (t, t+1)) and instance ids (the
predicted centroid offsets clustered with OPTICS on predicted thing pixels, ``instances.cluster_instances``).
The model has no optical flow, no semantics and hence no motion segmentation: those fields of
:class:`~omeganet_ros.engine.SceneOutputs` are None (the node publishes nothing on those topics), and no
intrinsics are estimated: ``intrinsics`` is the given K (``push(K=...)``), else the KITTI-like default the
model was trained with on the synthetic world (``intrinsics_source`` "default").

Modes as SceneEngine: paper mode answers for the middle of the last three frames (ego-motion t→t+1),
causal mode for the newest frame (ego-motion t→t−1, ``direction`` "backward").
:func:`open_engine` picks the engine a checkpoint needs.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import geometry
from .checkpoint import CheckpointError, build_networks_from_checkpoint, load_checkpoint
from .engine import DEFAULT_SIZE, PRECISIONS, SceneEngine, SceneOutputs, _resolve_device
from .instances import ClusterConfig, cluster_instances

MOREAU_NETWORK_NAMES = ("moreau", "posenet")
DEFAULT_MOREAU_CHECKPOINT = Path(__file__).resolve().parent / "models" / "moreau_synth.pt"


def is_moreau_checkpoint(ckpt) -> bool:
    """Whether a checkpoint (path or loaded) holds the Moreau networks."""
    ckpt = load_checkpoint(ckpt) if isinstance(ckpt, (str, Path)) else ckpt
    return "moreau" in ckpt.architecture


def resolve_checkpoint(checkpoint=None):
    """``checkpoint`` as the engines take it, loaded once: None and ``"random"`` unchanged, ``"moreau"`` the
    packaged Moreau reference, a path → :class:`~omeganet_ros.checkpoint.Checkpoint` (CheckpointError naming
    the file when it cannot be read)."""
    if isinstance(checkpoint, str) and checkpoint == "moreau":
        checkpoint = DEFAULT_MOREAU_CHECKPOINT
        if not checkpoint.is_file():
            raise CheckpointError(f"checkpoint {checkpoint}: the Moreau reference model is not installed; make it "
                                  "with scripts/train_moreau_reference.sh")
    if checkpoint is None or (isinstance(checkpoint, str) and checkpoint == "random"):
        return checkpoint
    return checkpoint if not isinstance(checkpoint, (str, Path)) else load_checkpoint(checkpoint)


def open_engine(checkpoint=None, **options):
    """The engine a checkpoint needs: :class:`MoreauEngine` for a Moreau checkpoint (``"moreau"`` alone: the
    packaged reference), else :class:`~omeganet_ros.engine.SceneEngine`. ``options`` go to the engine; those
    only ΩNet has (motion threshold, class probabilities, compile, …) are refused for Moreau."""
    ckpt = resolve_checkpoint(checkpoint)
    if ckpt not in (None, "random") and is_moreau_checkpoint(ckpt):
        return MoreauEngine(ckpt, **options)
    return SceneEngine(ckpt, **options)


def absent_outputs(engine) -> tuple[str, ...]:
    """The outputs ``engine`` does not estimate, by the names of the node's ``publish_*`` switches and
    ``omeganet-infer``'s layers: the Moreau model has no ``flow``, ``semantic``, ``motion`` (and, as it
    estimates no intrinsics, no ``camera_info`` estimate; no ``instance`` for a depth-only ST checkpoint);
    ΩNet has no ``instance``."""
    if isinstance(engine, MoreauEngine):
        return ("flow", "semantic", "motion", "camera_info") + (() if engine.has_instances else ("instance",))
    return ("instance",)


@dataclass
class _Frame:
    stamp: float
    image: torch.Tensor          # 1×3×h×w in [0, 1] at the network size
    input_size: tuple[int, int]  # (W, H) as pushed
    K: torch.Tensor | None       # 3×3 at the network size, when given


class MoreauEngine:
    """Moreau model inference on a stream of frames (see the module docstring).

    Args: ``checkpoint`` (path or loaded; ``"random"``: random weights, e.g. for speed figures), ``device``,
    ``precision`` ("fp32", "bf16", "fp16" on CUDA, "auto" as SceneEngine), ``size`` (network W, H; default the checkpoint's),
    ``output_resolution`` ("input" or "network"), ``causal``, ``depth_scale``, ``cluster``
    (:class:`~omeganet_ros.instances.ClusterConfig`), ``instances`` (False: skip the clustering, e.g. when no one
    needs instance ids), ``channels_last``, ``seed``, ``num_threads``.
    """

    def __init__(self, checkpoint=None, device: str = "auto", precision: str = "fp32",
                 size: tuple[int, int] | None = None, output_resolution: str = "input", causal: bool = False,
                 depth_scale: float | None = None, cluster: ClusterConfig | None = None, instances: bool = True,
                 channels_last: bool | None = None, seed: int = 0, num_threads: int | None = None, **unsupported):
        if unsupported:
            raise ValueError(f"the Moreau model has no {sorted(unsupported)} option(s) (ΩNet-only: no flow, semantics "
                             "or motion segmentation)")
        self.device = _resolve_device(device)
        if precision == "auto":
            from .engine import fastest_precision  # the same choice as SceneEngine's

            precision = fastest_precision(self.device)
        if precision not in PRECISIONS or (precision == "fp16" and self.device.type != "cuda"):
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)} (fp16 on CUDA only), got {precision!r}")
        if output_resolution not in ("input", "network"):
            raise ValueError(f"output_resolution must be 'input' or 'network', got {output_resolution!r}")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.precision, self.autocast_dtype = precision, PRECISIONS[precision]
        self.output_resolution = output_resolution
        self.causal = bool(causal)
        self.cluster = cluster or ClusterConfig()
        self.instances = bool(instances)
        self.channels_last = (self.device.type == "cpu") if channels_last is None else bool(channels_last)
        self.compiled = False
        self._depth_scale: float | None = None
        if depth_scale is not None:
            SceneEngine.set_depth_scale(self, depth_scale)
        if checkpoint is None:
            checkpoint = DEFAULT_MOREAU_CHECKPOINT
        if isinstance(checkpoint, str) and checkpoint == "random":
            from .nets import build_networks

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.networks = build_networks(architecture="moreau")
            self.checkpoint_path, self.random_weights = None, True
            self.size = SceneEngine._check_size(size or DEFAULT_SIZE)
        else:
            ckpt = checkpoint if not isinstance(checkpoint, (str, Path)) else load_checkpoint(checkpoint)
            missing = [n for n in MOREAU_NETWORK_NAMES if n not in ckpt.architecture]
            if missing:
                raise CheckpointError(f"checkpoint {ckpt.path}: lacks network(s) {missing} of the Moreau model")
            self.networks = build_networks_from_checkpoint(ckpt, MOREAU_NETWORK_NAMES)
            self.checkpoint_path, self.random_weights = ckpt.path, False
            self.size = SceneEngine._check_size(size or ckpt.input_size)
        for net in self.networks.values():
            net.eval().float().to(self.device)
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
        self.has_instances = "instance" in self.networks["moreau"].tasks
        self._frames: deque[_Frame] = deque(maxlen=3)
        self._pair_cache: tuple[tuple[float, float], torch.Tensor] | None = None  # last (stamp a, stamp b) → a→b
        self.frames_pushed = 0

    # The scale and window API of SceneEngine (same semantics).
    depth_scale = SceneEngine.depth_scale
    depth_is_metric = SceneEngine.depth_is_metric
    set_depth_scale = SceneEngine.set_depth_scale
    latency_frames = SceneEngine.latency_frames
    _accept = SceneEngine._accept
    _autocast = SceneEngine._autocast
    _preprocess = SceneEngine._preprocess

    def reset(self) -> None:
        self._frames.clear()
        self._pair_cache = None

    def push(self, frame: np.ndarray, stamp: float, K=None) -> SceneOutputs | None:
        """As :meth:`SceneEngine.push`: a frame (H×W×3 uint8 RGB) and its stamp (s); outputs or None."""
        stamp, K_net = self._accept(frame, stamp, K)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self._frames.append(_Frame(stamp, self._preprocess(frame), (frame.shape[1], frame.shape[0]), K_net))
        timings["preprocess"] = (time.perf_counter() - t0) * 1000.0
        self.frames_pushed += 1
        needed = 2 if self.causal else 3
        if len(self._frames) < needed:
            return None
        prev, cur = self._frames[-2], self._frames[-1]
        nxt = None
        if not self.causal:
            prev, cur, nxt = self._frames
        out = self._infer(prev, cur, nxt, timings)
        out.timings_ms["total"] = sum(v for k, v in out.timings_ms.items() if k != "total")
        return out

    def _motion(self, a: _Frame, b: _Frame) -> torch.Tensor:
        """1×4×4 camera motion a → b, reusing the previous call's pair (each pair serves two outputs)."""
        key = (a.stamp, b.stamp)
        if self._pair_cache is not None and self._pair_cache[0] == key:
            return self._pair_cache[1]
        with self._autocast():
            motion = self.networks["posenet"](a.image, b.image).float()
        self._pair_cache = (key, motion)
        return motion

    @torch.no_grad()
    def _infer(self, prev: _Frame, cur: _Frame, nxt: _Frame | None, timings: dict) -> SceneOutputs:
        t = time.perf_counter()
        with self._autocast():
            out = self.networks["moreau"](cur.image)
        disp = out["disp_full"].float()
        timings["moreau"] = (time.perf_counter() - t) * 1000.0
        t = time.perf_counter()
        from_previous = self._motion(prev, cur)
        ego = torch.linalg.inv(from_previous) if nxt is None else self._motion(cur, nxt)
        timings["posenet"] = (time.perf_counter() - t) * 1000.0
        t = time.perf_counter()
        w, h = self.size
        out_w, out_h = cur.input_size if self.output_resolution == "input" else self.size
        instance = None
        if self.has_instances and self.instances:
            ids = cluster_instances(out["instance_offset"][0].float().cpu().numpy(),
                                    torch.sigmoid(out["thing_logit"][0, 0].float()).cpu().numpy(), self.cluster)
            instance = ids if (out_w, out_h) == (w, h) else cv2.resize(ids, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
        timings["instances"] = (time.perf_counter() - t) * 1000.0
        if (out_w, out_h) != (w, h):
            disp = F.interpolate(disp, size=(out_h, out_w), mode="bilinear", align_corners=False)
        depth = self.networks["moreau"].depth_from_disp(disp)[0, 0].cpu().numpy() * np.float32(self.depth_scale)
        given = cur.K is not None
        K = cur.K.double().cpu() if given else torch.tensor([[0.58 * w, 0, (w - 1) / 2], [0, 1.92 * h, (h - 1) / 2], [0, 0, 1]],
                                                      dtype=torch.float64)
        K = geometry.scale_intrinsics(K, out_w / w, out_h / h).numpy()
        scale = self.depth_scale
        ego_np, prev_np = ego[0].double().cpu().numpy(), from_previous[0].double().cpu().numpy()
        ego_np[:3, 3] *= scale
        prev_np[:3, 3] *= scale
        return SceneOutputs(
            stamp=cur.stamp, depth=depth.astype(np.float32), depth_is_metric=self.depth_is_metric, depth_scale=scale,
            semantic=None, flow=None, motion_probability=None, motion_mask=None,
            ego_motion=ego_np, motion_from_previous=prev_np, intrinsics=K, timings_ms=timings,
            direction="backward" if self.causal else "forward", intrinsics_source="given" if given else "default",
            instance=instance, metadata=self.describe())

    def describe(self) -> dict:
        """Plain-value description of the engine (for meta.json, diagnostics, benchmark records)."""
        return {
            "model": "moreau",
            "checkpoint": None if self.checkpoint_path is None else str(self.checkpoint_path),
            "random_weights": self.random_weights,
            "network_size": list(self.size),
            "output_resolution": self.output_resolution,
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "causal": self.causal,
            "instances": self.has_instances and self.instances,
            "cluster": vars(self.cluster),
            "outputs_absent": ["flow", "semantic", "motion_probability", "motion_mask", "rigid_flow"],
        }

