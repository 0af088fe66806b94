"""Motion segmentation by joint reasoning on optical flow, rigid flow and semantics (ΩNet, Sec. 3.4).

A static scene point moves in the image exactly as the rigid flow R predicts
from depth, camera motion and intrinsics. Where the optical flow F disagrees in
direction or in magnitude, the point moves by itself:

    P = max( (1 − cos(F, R)) / 2 ,  1 − (ε + min(|F|, |R|)) / (ε + max(|F|, |R|)) )

P is 0 for identical flows and 1 for opposite ones. As in the authors' code
(``build_moving_probability_mask``): ε = 1e-7 and the cosine of L2-normalised vectors
(``tf.nn.l2_normalize``), so a zero flow has cosine 0 against anything (direction term 0.5). The motion mask is
P > τ, kept only on pixels whose semantic class can move (person, rider and
vehicles by default): buildings with a wrong flow are an estimation error,
not a moving object.

Both torch tensors (B×2×H×W flows, B×H×W labels) and numpy arrays (H×W×2
flows, H×W labels) are accepted; results come back in the same kind.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from .classes import DYNAMIC_TRAIN_IDS

MOTION_THRESHOLD = 0.5
EPSILON = 1e-7  # pixels; the authors' ε, keeps the magnitude ratio defined where both flows vanish
NORM_FLOOR = 1e-6  # tf.nn.l2_normalize divides by √max(Σx², 1e-12)


def _as_torch_channels_first(flow) -> tuple[torch.Tensor, bool]:
    """Numpy H×W×2 (or B×H×W×2) → torch B×2×H×W; returns (tensor, was_numpy)."""
    if isinstance(flow, np.ndarray):
        if flow.ndim not in (3, 4) or flow.shape[-1] != 2:
            raise ValueError(f"numpy flow must be H×W×2 or B×H×W×2, got shape {flow.shape}")
        t = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
        if t.ndim == 3:
            t = t.unsqueeze(0)
        return t.permute(0, 3, 1, 2), True
    if not isinstance(flow, torch.Tensor):
        raise ValueError(f"flow must be a numpy array or a torch tensor, got {type(flow).__name__}")
    if flow.ndim == 3:
        flow = flow.unsqueeze(0)
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"torch flow must be B×2×H×W or 2×H×W, got shape {tuple(flow.shape)}")
    return flow, False


def motion_probability(optical_flow, rigid_flow, eps: float = EPSILON):
    """Per-pixel probability that a pixel moves independently of the camera, in [0, 1].

    ``optical_flow`` and ``rigid_flow`` in pixels: torch B×2×H×W (or 2×H×W) →
    B×H×W, or numpy H×W×2 → H×W float32.
    """
    flow, was_numpy = _as_torch_channels_first(optical_flow)
    rigid, _ = _as_torch_channels_first(rigid_flow)
    if flow.shape != rigid.shape:
        raise ValueError(f"optical flow {tuple(flow.shape)} and rigid flow {tuple(rigid.shape)} differ in shape")
    rigid = rigid.to(flow.dtype)
    # Explicit per-channel arithmetic: reductions over dim 1 of NCHW tensors are ~50× slower on CPU.
    fu, fv, ru, rv = flow[:, 0], flow[:, 1], rigid[:, 0], rigid[:, 1]
    norm_f = torch.hypot(fu, fv)
    norm_r = torch.hypot(ru, rv)
    dot = fu * ru + fv * rv
    cos = dot / (norm_f.clamp(min=NORM_FLOOR) * norm_r.clamp(min=NORM_FLOOR))
    direction = (1.0 - cos) * 0.5
    magnitude = 1.0 - (eps + torch.minimum(norm_f, norm_r)) / (eps + torch.maximum(norm_f, norm_r))
    prob = torch.maximum(direction, magnitude)
    if was_numpy:
        out = prob.numpy().astype(np.float32)
        return out[0] if np.asarray(optical_flow).ndim == 3 else out
    return prob


def dynamic_class_mask(semantic, dynamic_classes: Iterable[int] = DYNAMIC_TRAIN_IDS):
    """Boolean mask of pixels whose trainId is in ``dynamic_classes`` (same kind and shape as ``semantic``)."""
    ids = sorted({int(c) for c in dynamic_classes})
    if isinstance(semantic, np.ndarray):
        return np.isin(semantic, ids)
    if not isinstance(semantic, torch.Tensor):
        raise ValueError(f"semantic must be a numpy array or a torch tensor, got {type(semantic).__name__}")
    if not ids:
        return torch.zeros_like(semantic, dtype=torch.bool)
    lut = torch.zeros(256, dtype=torch.bool, device=semantic.device)
    lut[torch.tensor(ids, device=semantic.device)] = True
    return lut[semantic.long().clamp(0, 255)]


def motion_mask(probability, semantic=None, threshold: float = MOTION_THRESHOLD,
                dynamic_classes: Iterable[int] | None = DYNAMIC_TRAIN_IDS):
    """Moving pixels: ``probability > threshold`` on potentially dynamic classes.

    ``semantic`` trainIds of the same H×W (or B×H×W) shape; when it is None or
    ``dynamic_classes`` is None the class restriction is not applied.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"motion threshold must be in [0, 1], got {threshold}")
    mask = probability > threshold
    if semantic is not None and dynamic_classes is not None:
        if tuple(semantic.shape) != tuple(probability.shape):
            raise ValueError(f"semantic {tuple(semantic.shape)} and motion probability {tuple(probability.shape)} differ in shape")
        mask = mask & dynamic_class_mask(semantic, dynamic_classes)
    return mask
