"""Camera intrinsics from what users have: 'fx,fy,cx,cy', a 3×3 text file, or a KITTI calibration file.

KITTI files hold 3×4 projection matrices whose left 3×3 block is K:
``calib.txt`` of the odometry benchmark (``P0`` … ``P3``) and ``calib_cam_to_cam.txt`` of the raw data
(``P_rect_00`` … ``P_rect_03``). Which camera: ``FILE:KEY`` (e.g. ``calib.txt:P0`` for the grey left
camera); by default the left colour camera, ``P2`` / ``P_rect_02``, whose images are the usual input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .kitti import read_calib_file

DEFAULT_KITTI_KEYS = ("P2", "P_rect_02")


def _check(K: np.ndarray, where: str) -> np.ndarray:
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{where}: not a valid camera matrix (finite 3×3 with fx, fy > 0): {K.tolist()}")
    return K


def read_intrinsics(spec: str | Path) -> np.ndarray:
    """``spec`` → 3×3 K (float64, pixels). Raises ValueError naming the input when it cannot be read."""
    text = str(spec)
    path, _, key = text.partition(":") if not Path(text).is_file() else (text, "", "")
    path = Path(path)
    if path.is_file():
        raw = path.read_text()
        if ":" in raw:  # "key: values" lines: a KITTI calibration file
            calib = read_calib_file(path)
            keys = (key,) if key else DEFAULT_KITTI_KEYS
            found = next((k for k in keys if k in calib), None)
            if found is None:
                raise ValueError(f"intrinsics file {path}: no {' or '.join(keys)} projection matrix "
                                 f"(it has {sorted(calib)[:8]})")
            if calib[found].size != 12:
                raise ValueError(f"intrinsics file {path}: {found} has {calib[found].size} numbers, expected a 3×4 P")
            return _check(calib[found].reshape(3, 4)[:, :3].copy(), f"intrinsics file {path}, {found}")
        try:
            values = np.loadtxt(path, dtype=np.float64).reshape(-1)
        except ValueError as exc:
            raise ValueError(f"intrinsics file {path}: cannot be read as numbers ({exc})") from exc
        if values.size != 9:
            raise ValueError(f"intrinsics file {path}: expected a 3×3 matrix, got {values.size} numbers")
        return _check(values.reshape(3, 3), f"intrinsics file {path}")
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"intrinsics {text!r}: expected 'fx,fy,cx,cy', a file with a 3×3 K, or a KITTI "
                         "calib.txt / calib_cam_to_cam.txt (optionally FILE:P2)") from None
    return _check(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64), f"intrinsics {text!r}")
