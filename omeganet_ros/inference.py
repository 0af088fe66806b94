"""The one inference path of the ΩNet networks: batches of frame triplets in, every scene output out (ROS-free).

:class:`~omeganet_ros.engine.SceneEngine` (and through it the node, ``omeganet-infer``, replay and the
benchmarks), training validation (``Trainer.validate``) and stage 4's calibration of the motion
threshold τ all run these functions, so the networks are validated, and τ is calibrated, on the
outputs the node publishes::

    frame H×W×3 uint8 ─ frame_to_tensor ─► 1×3×h×w in [0, 1] at the network size (K: network_intrinsics)
    infer_scene(networks, prev, cur, nxt, K) → SceneTensors at the network size h×w:
        DSNet(t)                     → disparity → depth (relative units), semantic logits → trainIds
        CamNet(t−1, t, t+1)          → camera motions t−1→t and t→t+1, intrinsics K
        OFNet(t−1, t, t+1)           → optical flow t→t+1
        rigid flow(depth, K, t→t+1)  → motion probability (ΩNet, ε = motion.EPSILON)
    resize_scene(networks, scene, (W, H)) → the same at the output size (the engine's post-processing)
    motion.motion_mask(probability, semantic, τ, dynamic classes) → the moving pixels

:func:`predict_frames` is all of it for three uint8 frames at their own size, as the engine with
``output_resolution="input"`` computes them. The engine's causal mode passes the triple (t−1, t, t−1):
flow, ego-motion and rigid flow then describe t→t−1.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import geometry, pose_proxy
from .classes import DYNAMIC_TRAIN_IDS
from .motion import EPSILON, motion_probability


@dataclass
class SceneNetworks:
    """The callables the inference path runs: the networks' own methods, or the engine's BatchNorm-folded,
    compiled or exported (``omeganet_ros.backends``) stand-ins with the same signatures and outputs.

    * ``dsnet(image)`` → dict with ``"disp_full"`` B×1×h×w and ``"semantic"`` B×C×h×w logits;
    * ``cam_encode(image)`` → per-frame features; ``cam_decode(prev, cur, next, h, w)`` → dict with
      ``"motion"`` B×2×6 pose vectors (t−1→t, t→t+1) and ``"K"`` B×3×3 pixels of h×w;
    * ``flow_encode(image)`` → per-frame features; ``flow_decode(prev, cur, next, h, w, backward=False)`` →
      dict with ``"flow_fw"`` (list, finest first, [0] B×2×h×w pixels t→t+1);
    * ``depth_from_disp(disp)`` → depth (relative units), the DSNet's own convention.
    """

    dsnet: Callable
    cam_encode: Callable
    cam_decode: Callable
    flow_encode: Callable | None
    flow_decode: Callable | None
    depth_from_disp: Callable

    @classmethod
    def from_modules(cls, nets: dict[str, nn.Module]) -> "SceneNetworks":
        """From ``{"dsnet", "camnet", "ofnet"}`` modules (DistributedDataParallel wrappers are looked through).
        Without ``"ofnet"`` the flow callables are None and only ``compute_flow=False`` can run."""
        missing = [name for name in ("dsnet", "camnet") if name not in nets]
        if missing:
            raise ValueError(f"the scene needs networks dsnet and camnet (and ofnet for flow); missing {missing}")
        dsnet, camnet = (getattr(nets[n], "module", nets[n]) for n in ("dsnet", "camnet"))
        ofnet = getattr(nets["ofnet"], "module", nets["ofnet"]) if "ofnet" in nets else None
        return cls(dsnet=dsnet, cam_encode=camnet.encode, cam_decode=camnet.decode,
                   flow_encode=None if ofnet is None else ofnet.encode,
                   flow_decode=None if ofnet is None else ofnet.decode, depth_from_disp=dsnet.depth_from_disp)


@dataclass
class SceneTensors:
    """The outputs for the centre frames of a batch of triplets, at one resolution h×w (float32 unless said)."""

    disp: torch.Tensor                  # B×1×h×w the DSNet's disparity
    depth: torch.Tensor                 # B×1×h×w relative units (the DSNet's depth_from_disp of ``disp``)
    logits: torch.Tensor                # B×C×h×w semantic logits
    semantic: torch.Tensor              # B×h×w int64 Cityscapes trainIds
    motion_from_previous: torch.Tensor  # B×4×4 camera motion t−1 → t (for odometry)
    ego_motion: torch.Tensor            # B×4×4 camera motion t → t+1 (the next frame of the triple)
    K: torch.Tensor                     # B×3×3 intrinsics in pixels of h×w
    intrinsics_given: bool              # K came from the caller, not CamNet
    flow: torch.Tensor | None = None               # B×2×h×w pixels t → t+1 (None: flow not computed)
    rigid_flow: torch.Tensor | None = None         # B×2×h×w pixels, the camera motion's flow, same direction
    motion_probability: torch.Tensor | None = None  # B×h×w in [0, 1]
    class_probabilities: torch.Tensor | None = None  # B×C×h×w softmax (resize_scene(class_probabilities=True))
    rotation_fitted: torch.Tensor | None = None    # B bool: ego_motion's rotation is the flow fit (rotation_from_flow)

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the outputs."""
        return self.disp.shape[-1], self.disp.shape[-2]


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H×W×3 uint8 frame at the network ``size`` (W, H): area averaging when it shrinks both ways, else bilinear."""
    w, h = size
    if (frame.shape[1], frame.shape[0]) == (w, h):
        return frame
    shrink = frame.shape[1] > w and frame.shape[0] > h
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def frame_to_tensor(frame: np.ndarray, size: tuple[int, int], device="cpu", channels_last: bool = False) -> torch.Tensor:
    """H×W×3 uint8 RGB → 1×3×h×w float32 in [0, 1] at the network ``size`` (W, H), on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(resize_frame(frame, size))).to(device, non_blocking=True)
    tensor = tensor.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    if channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def network_intrinsics(K, frame_size: tuple[int, int], size: tuple[int, int], device="cpu") -> torch.Tensor:
    """3×3 K in pixels of a frame of ``frame_size`` (W, H) → float32 3×3 K in pixels of the network ``size`` (W, H)."""
    K = torch.as_tensor(np.asarray(K, dtype=np.float64))
    return geometry.scale_intrinsics(K, size[0] / frame_size[0], size[1] / frame_size[1]).float().to(device)


@torch.no_grad()
def infer_scene(networks: SceneNetworks | dict, prev: torch.Tensor, cur: torch.Tensor, nxt: torch.Tensor,
                K: torch.Tensor | None = None, *, compute_flow: bool = True, autocast=contextlib.nullcontext,
                cam_features: tuple | None = None, flow_features: tuple | None = None,
                lap: Callable[[str], None] | None = None, rotation_from_flow: bool = False,
                dynamic_classes=DYNAMIC_TRAIN_IDS) -> SceneTensors:
    """Every output for the centre frames of the triplets (``prev``, ``cur``, ``nxt``), at their size h×w.

    ``prev``, ``cur``, ``nxt``: B×3×h×w RGB in [0, 1] at the network size. ``K``: B×3×3 or 3×3 in pixels
    of h×w (e.g. from :func:`network_intrinsics`), used for rigid flow instead of CamNet's estimate; None:
    CamNet's. ``networks``: :class:`SceneNetworks` or a dict of the three modules. ``compute_flow``: False
    skips OFNet and what depends on it (flow, rigid flow, motion probability stay None). ``autocast``: a
    context factory the networks run under (the motion maths always runs in float32).
    ``cam_features`` / ``flow_features``: the three frames' encoder outputs when the caller cached them.
    ``lap(stage)``: called after "dsnet", "camnet", "ofnet" (when run) and "motion", for per-stage timings.
    ``rotation_from_flow``: the rotation of the motion t→t+1 is the PnP-RANSAC fit of the optical flow on the
    depth (pixels of ``dynamic_classes`` left out; :mod:`omeganet_ros.pose_proxy`), CamNet's translation kept;
    where the fit fails, CamNet's rotation stays (``SceneTensors.rotation_fitted``). Rigid flow and the motion
    probability follow the refined motion. False: ΩNet's CamNet motion.
    """
    nets = networks if isinstance(networks, SceneNetworks) else SceneNetworks.from_modules(networks)
    if compute_flow and nets.flow_decode is None:
        raise ValueError("compute_flow needs OFNet, and no ofnet was given")
    lap = lap or (lambda stage: None)
    h, w = cur.shape[-2:]
    with autocast():
        ds = nets.dsnet(cur)
        disp, logits = ds["disp_full"].float(), ds["semantic"].float()
        lap("dsnet")
        if cam_features is None:
            cam_features = tuple(nets.cam_encode(image) for image in (prev, cur, nxt))
        cam = nets.cam_decode(*cam_features, h, w)
        lap("camnet")
        flow = None
        if compute_flow:
            if flow_features is None:
                flow_features = tuple(nets.flow_encode(image) for image in (prev, cur, nxt))
            flow = nets.flow_decode(*flow_features, h, w, backward=False)["flow_fw"][0].float()
            lap("ofnet")
    motions = geometry.pose_vec_to_mat(cam["motion"].float())  # B×2×4×4: t−1→t, t→t+1
    given = K is not None
    if given:
        K = K.to(disp.device, torch.float32)
        K = K.expand(disp.shape[0], 3, 3) if K.dim() == 2 else K
    else:
        K = cam["K"].float()
    depth = nets.depth_from_disp(disp)
    # The first of tied classes, as tf.argmax (the authors' logits are ReLU outputs: ties at 0).
    semantic = logits.argmax(dim=1)
    rigid = prob = fitted = None
    ego = motions[:, 1]
    if flow is not None and rotation_from_flow:
        ego, fitted = pose_proxy.with_fitted_rotation(ego, depth, flow, K, pose_proxy.static_pixels(semantic, dynamic_classes))
    if flow is not None:
        rigid = geometry.rigid_flow(depth, K, ego)
        prob = motion_probability(flow, rigid, eps=EPSILON)  # B×h×w
    lap("motion")
    return SceneTensors(disp=disp, depth=depth, logits=logits, semantic=semantic, motion_from_previous=motions[:, 0],
                        ego_motion=ego, K=K, intrinsics_given=given, flow=flow, rigid_flow=rigid,
                        motion_probability=prob, rotation_fitted=fitted)


@torch.no_grad()
def resize_scene(networks: SceneNetworks | dict, scene: SceneTensors, size: tuple[int, int],
                 class_probabilities: bool = False) -> SceneTensors:
    """``scene`` at the output ``size`` (W, H), as the engine publishes it.

    Disparity, flows (vectors rescaled), motion probability and logits bilinearly, trainIds by nearest
    neighbour, K rescaled; depth is the DSNet's depth of the resized disparity. ``class_probabilities``:
    also the softmax of the (resized) logits, and trainIds as its argmax (labels that agree with it).
    """
    nets = networks if isinstance(networks, SceneNetworks) else SceneNetworks.from_modules(networks)
    out_w, out_h = size
    w, h = scene.size
    disp, flow, rigid, prob = scene.disp, scene.flow, scene.rigid_flow, scene.motion_probability
    logits, semantic, K, depth = scene.logits, scene.semantic, scene.K, scene.depth
    if (out_w, out_h) != (w, h):
        disp = F.interpolate(disp, size=(out_h, out_w), mode="bilinear", align_corners=False)
        depth = nets.depth_from_disp(disp)
        if flow is not None:
            flow = geometry.resize_flow(flow, out_h, out_w)
            rigid = geometry.resize_flow(rigid, out_h, out_w)
            prob = F.interpolate(prob.unsqueeze(1), size=(out_h, out_w), mode="bilinear", align_corners=False).squeeze(1)
        semantic = F.interpolate(semantic.unsqueeze(1).float(), size=(out_h, out_w), mode="nearest").squeeze(1).long()
        K = geometry.scale_intrinsics(K, out_w / w, out_h / h)
        if class_probabilities:
            logits = F.interpolate(logits, size=(out_h, out_w), mode="bilinear", align_corners=False)
    probabilities = None
    if class_probabilities:
        probabilities = torch.softmax(logits, dim=1)
        semantic = probabilities.argmax(dim=1)
    return replace(scene, disp=disp, depth=depth, logits=logits, semantic=semantic, K=K, flow=flow, rigid_flow=rigid,
                   motion_probability=prob, class_probabilities=probabilities)


def predict_frames(networks: SceneNetworks | dict, frames, size: tuple[int, int], K=None, *, device="cpu",
                   compute_flow: bool = True, autocast=contextlib.nullcontext) -> SceneTensors:
    """The engine's outputs (``output_resolution="input"``, relative depth) for the centre of three frames.

    ``frames``: (t−1, t, t+1) H×W×3 uint8 RGB of one size; ``size``: the network input (W, H); ``K``: 3×3
    in pixels of the frames, or None for CamNet's. Returns a batch of one at the frames' size.
    """
    frames = list(frames)
    if len(frames) != 3 or len({f.shape for f in frames}) != 1:
        raise ValueError(f"predict_frames needs three frames of one size, got shapes {[f.shape for f in frames]}")
    frame_size = (frames[1].shape[1], frames[1].shape[0])
    prev, cur, nxt = (frame_to_tensor(f, size, device) for f in frames)
    K_net = None if K is None else network_intrinsics(K, frame_size, size, device)
    scene = infer_scene(networks, prev, cur, nxt, K_net, compute_flow=compute_flow, autocast=autocast)
    return resize_scene(networks, scene, frame_size)
