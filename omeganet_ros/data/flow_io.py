"""Optical-flow file formats: KITTI 16-bit PNG, Middlebury .flo, and .npy (the sequence layout).

All readers return H×W×2 float32 flow (du, dv) in pixels; the ``*_with_valid``
forms also return the H×W validity mask, and :func:`read_flow` marks invalid
pixels with NaN (the convention of the sequence layout).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FLO_MAGIC = 202021.25  # 'PIEH' read as a little-endian float32
FLO_UNKNOWN = 1e9  # Middlebury: components above this are unknown


def read_kitti_flow_with_valid(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """KITTI flow PNG (uint16 RGB: u, v = (value − 2¹⁵)/64, B = valid) → (H×W×2 float32, H×W bool)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise OSError(f"could not read KITTI flow PNG {path}")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        raise ValueError(f"{path}: a KITTI flow PNG is 16-bit with 3 channels, got {raw.dtype} {raw.shape}")
    raw = raw[..., ::-1]  # OpenCV gives BGR
    flow = (raw[..., :2].astype(np.float32) - 2 ** 15) / 64.0
    valid = raw[..., 2] > 0
    return flow, valid


def write_kitti_flow(path: str | Path, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """H×W×2 flow (pixels) → KITTI 16-bit PNG. Invalid pixels: NaN in ``flow`` or False in ``valid``.

    Values are rounded to 1/64 px and must lie within ±512 px.
    """
    flow = np.asarray(flow, np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be H×W×2, got {flow.shape}")
    finite = np.all(np.isfinite(flow), axis=-1)
    valid = finite if valid is None else (np.asarray(valid, bool) & finite)
    encoded = np.round(np.where(valid[..., None], flow, 0.0) * 64.0 + 2 ** 15)
    if encoded.min() < 0 or encoded.max() > 65535:
        raise ValueError(f"flow out of the KITTI PNG range (±512 px): min {flow[valid].min():.1f}, max {flow[valid].max():.1f}")
    image = np.dstack([encoded.astype(np.uint16), valid.astype(np.uint16)])
    if not cv2.imwrite(str(path), image[..., ::-1]):
        raise OSError(f"could not write KITTI flow PNG {path}")


def read_flo_raw(path: str | Path) -> np.ndarray:
    """Middlebury .flo → H×W×2 float32 exactly as stored (unknown values > 1e9 kept)."""
    data = Path(path).read_bytes()
    if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != FLO_MAGIC:
        raise ValueError(f"{path} is not a Middlebury .flo file (bad magic number)")
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    expected = 12 + width * height * 2 * 4
    if width <= 0 or height <= 0 or len(data) != expected:
        raise ValueError(f"{path}: header says {width}×{height}, needs {expected} bytes, file has {len(data)}")
    return np.frombuffer(data[12:], "<f4").reshape(height, width, 2).copy()


def read_flo_with_valid(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Middlebury .flo → (H×W×2 float32, H×W bool valid); unknown pixels are set to 0 in the flow."""
    flow = read_flo_raw(path)
    valid = np.all(np.abs(flow) < FLO_UNKNOWN, axis=-1) & np.all(np.isfinite(flow), axis=-1)
    return np.where(valid[..., None], flow, 0.0).astype(np.float32), valid


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """H×W×2 flow → Middlebury .flo (float32). NaN is written as the 'unknown' marker 1e10."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be H×W×2, got {flow.shape}")
    flow = np.where(np.isfinite(flow), flow, np.float32(1e10))
    height, width = flow.shape[:2]
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    Path(path).write_bytes(header + flow.astype("<f4").tobytes())


def read_flow(path: str | Path) -> np.ndarray:
    """Any supported flow file (.png KITTI, .flo, .npy H×W×2) → H×W×2 float32 with NaN where invalid."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        flow, valid = read_kitti_flow_with_valid(path)
    elif suffix == ".flo":
        flow, valid = read_flo_with_valid(path)
    elif suffix == ".npy":
        flow = np.load(path).astype(np.float32)
        if flow.ndim == 3 and flow.shape[0] == 2 and flow.shape[2] != 2:
            flow = np.moveaxis(flow, 0, -1)  # 2×H×W
        if flow.ndim != 3 or flow.shape[2] != 2:
            raise ValueError(f"{path}: flow array must be H×W×2, got {flow.shape}")
        return flow
    else:
        raise ValueError(f"{path}: unknown flow file type {suffix!r} (expected .png, .flo or .npy)")
    return np.where(valid[..., None], flow, np.nan).astype(np.float32)
