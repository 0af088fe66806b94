"""Small data makers shared by the training tests (no tests here).

``corridor``: a camera driving forward down a textured corridor (ground,
ceiling, two walls, an end wall), ray-cast exactly, so depth ground truth and
intrinsics are known; tiny and fast enough for CI.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from omeganet_ros.data.layout import SequenceFolder


def _value_noise(a: np.ndarray, b: np.ndarray, seed: int, cell: float) -> np.ndarray:
    """Smooth pseudo-random texture in [0, 1] of world coordinates (two octaves of bilinear value noise)."""
    rng = np.random.default_rng(seed)
    table = rng.random((257, 257))
    out = np.zeros_like(a)
    for octave, weight in ((1.0, 0.65), (3.1, 0.35)):
        x = a / cell * octave
        y = b / cell * octave
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = x - x0, y - y0
        i0, j0 = x0.astype(np.int64) % 256, y0.astype(np.int64) % 256
        v00, v10 = table[i0, j0], table[i0 + 1, j0]
        v01, v11 = table[i0, j0 + 1], table[i0 + 1, j0 + 1]
        out += weight * ((v00 * (1 - fx) + v10 * fx) * (1 - fy) + (v01 * (1 - fx) + v11 * fx) * fy)
    return out


def corridor(num_frames: int = 8, width: int = 128, height: int = 64, step: float = 0.35, seed: int = 0):
    """(RGB uint8 frames, depth maps in metres, K) of a forward-moving camera in a textured corridor."""
    f = 0.55 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    dx, dy = (u - K[0, 2]) / f, (v - K[1, 2]) / f
    ground, ceiling, wall, end = 1.2, -1.8, 2.2, 30.0
    images, depths = [], []
    for k in range(num_frames):
        cz = k * step
        with np.errstate(divide="ignore", invalid="ignore"):
            candidates = {
                "ground": np.where(dy > 0, ground / dy, np.inf),
                "ceiling": np.where(dy < 0, ceiling / dy, np.inf),
                "left": np.where(dx < 0, -wall / dx, np.inf),
                "right": np.where(dx > 0, wall / dx, np.inf),
                "end": np.full_like(dx, end - cz),
            }
        names = list(candidates)
        stack = np.stack([candidates[n] for n in names])
        which = stack.argmin(0)
        t = stack.min(0)
        x, y, z = t * dx, t * dy, cz + t
        rgb = np.zeros((height, width, 3))
        for i, name in enumerate(names):
            m = which == i
            a, b = {"ground": (x, z), "ceiling": (x, z), "left": (z, y), "right": (z, y), "end": (x, y)}[name]
            for c in range(3):
                rgb[..., c][m] = _value_noise(a[m] + 13.7 * i, b[m], seed * 31 + c, cell=0.45)[...]
        shade = {"ground": 0.9, "ceiling": 0.6, "left": 0.75, "right": 0.8, "end": 0.5}
        for i, name in enumerate(names):
            rgb[which == i] *= shade[name]
        images.append(np.clip(rgb * 255, 0, 255).astype(np.uint8))
        depths.append(t.astype(np.float32))
    return images, depths, K


def write_sequence(root: Path, images, depths=None, K=None) -> Path:
    seq = SequenceFolder(root)
    for i, image in enumerate(images):
        seq.write(i, images=image, depth=None if depths is None else depths[i])
    if K is not None:
        seq.write_intrinsics(K)
    return root


def write_image_folder(root: Path, images) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(root / f"frame_{i:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return root


TINY = {"size": [128, 64], "batch_size": 2, "log_every": 1, "checkpoint_every": 0,
        "validation": {"max_items": 4}, "data": {"num_workers": 0},
        "batch_norm_momentum": 0.1}  # tens of steps: the authors' 0.001 would leave eval-mode statistics untrained


@pytest.fixture(autouse=True)
def one_thread():
    """Training tests run on one thread (fastest on the shared CI cores); modules import this fixture."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
