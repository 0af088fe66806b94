"""Instances from per-pixel centroid offsets (Moreau et al.): ground-truth offsets, OPTICS clustering, colours.

Each pixel of a thing (an instance of a thing class: person, rider, car, truck, bus, train, motorcycle,
bicycle — ``classes.THING_TRAIN_IDS``) carries the 2-D offset from itself to its instance's centroid. A
network predicting these offsets moves every pixel of one object onto one point, so the embeddings
``pixel position + offset`` form one tight cluster per object, which OPTICS (Ankerst et al. 1999,
scikit-learn) separates without knowing how many objects there are.

Units: offsets are in fractions of the image width (x) and height (y), so a network's output means the same
at any resolution; clustering works in pixels of the map it is given.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import THING_TRAIN_IDS


def thing_instances(instance: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """H×W instance ids kept only on thing-class pixels (0 elsewhere), e.g. from the synthetic world's ground
    truth, whose ids also cover buildings, poles and trees."""
    instance = np.asarray(instance)
    return np.where(np.isin(np.asarray(semantic), THING_TRAIN_IDS), instance, 0).astype(np.uint16)


def centroid_offsets(instance: torch.Tensor) -> torch.Tensor:
    """B×H×W integer instance ids (0 = none) → B×2×H×W offsets centroid − pixel (x, y) in fractions of W and H.

    Pixels without an instance get 0. Centroids are per image and per id (the mean pixel position).
    """
    import torch  # here: the node's conversions import this module for colorize_instances without torch

    if instance.dim() != 3:
        raise ValueError(f"instance ids must be B×H×W, got shape {tuple(instance.shape)}")
    b, h, w = instance.shape
    ids = instance.long()
    n_ids = int(ids.max()) + 1 if ids.numel() else 1
    flat = (ids + torch.arange(b, device=ids.device).view(b, 1, 1) * n_ids).view(-1)
    ys, xs = torch.meshgrid(torch.arange(h, device=ids.device, dtype=torch.float32),
                            torch.arange(w, device=ids.device, dtype=torch.float32), indexing="ij")
    xs, ys = xs.expand(b, h, w).reshape(-1), ys.expand(b, h, w).reshape(-1)
    count = torch.bincount(flat, minlength=b * n_ids).float().clamp(min=1)
    cx = torch.bincount(flat, weights=xs, minlength=b * n_ids) / count
    cy = torch.bincount(flat, weights=ys, minlength=b * n_ids) / count
    offsets = torch.stack([(cx[flat] - xs) / w, (cy[flat] - ys) / h]).view(2, b, h, w).permute(1, 0, 2, 3)
    return offsets * (ids > 0).unsqueeze(1)


@dataclass
class ClusterConfig:
    """OPTICS settings for :func:`cluster_instances` (distances in pixels of the map clustered).

    ``eps``: DBSCAN-style cut of the OPTICS reachability (pixels between embeddings of one object);
    ``min_samples``: OPTICS core-point neighbourhood, also the smallest instance kept; ``max_points``:
    thing pixels clustered at most (a regular subsample; the others join their nearest clustered pixel in
    embedding space), which bounds OPTICS's cost; ``thing_threshold``: thing probability above which a
    pixel is clustered.
    """

    eps: float = 3.0
    min_samples: int = 8
    max_points: int = 600
    thing_threshold: float = 0.5


def cluster_instances(offset: np.ndarray, thing: np.ndarray, config: ClusterConfig | None = None) -> np.ndarray:
    """Instance ids from predicted offsets with OPTICS.

    ``offset``: 2×H×W (centroid − pixel, fractions of W and H); ``thing``: H×W thing probability (or a
    boolean thing mask). Returns H×W uint16 ids 1 … n (0 = no instance), numbered by decreasing size.
    """
    from sklearn.cluster import OPTICS
    from sklearn.neighbors import NearestNeighbors

    config = config or ClusterConfig()
    offset = np.asarray(offset, np.float32)
    if offset.ndim != 3 or offset.shape[0] != 2:
        raise ValueError(f"offsets must be 2×H×W, got shape {offset.shape}")
    h, w = offset.shape[1:]
    thing = np.asarray(thing)
    if thing.shape != (h, w):
        raise ValueError(f"thing map {thing.shape} must match the offsets' H×W {(h, w)}")
    mask = thing if thing.dtype == bool else thing > config.thing_threshold
    ids = np.zeros((h, w), np.uint16)
    ys, xs = np.nonzero(mask)
    if len(ys) < config.min_samples:
        return ids
    embed = np.stack([xs + offset[0, ys, xs] * w, ys + offset[1, ys, xs] * h], axis=1)
    step = max(1, int(np.ceil(len(ys) / config.max_points)))
    sample = np.arange(0, len(ys), step)
    optics = OPTICS(min_samples=config.min_samples, max_eps=config.eps * 2, cluster_method="dbscan", eps=config.eps)
    labels = optics.fit_predict(embed[sample])
    clustered = labels >= 0
    if not clustered.any():
        return ids
    # Every thing pixel takes the cluster of its nearest clustered sample (within 2·eps), else none.
    nn = NearestNeighbors(n_neighbors=1).fit(embed[sample][clustered])
    distance, nearest = nn.kneighbors(embed)
    assigned = np.where(distance[:, 0] <= 2 * config.eps, labels[clustered][nearest[:, 0]], -1)
    kept = assigned >= 0
    sizes = np.bincount(assigned[kept], minlength=labels.max() + 1)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(1, len(order) + 1)
    ids[ys[kept], xs[kept]] = rank[assigned[kept]].astype(np.uint16)
    return ids


def colorize_instances(ids: np.ndarray) -> np.ndarray:
    """H×W instance ids → H×W×3 uint8 RGB: a fixed, well-spread colour per id (golden-ratio hues), black for 0."""
    import cv2

    ids = np.asarray(ids).astype(np.int64)
    hue = ((ids * 0.618033988749895) % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hue, np.full_like(hue, 200), np.where(ids > 0, 255, 0).astype(np.uint8)], axis=-1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
