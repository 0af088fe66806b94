"""Metric scale for monocular depth from the known height of the camera above the road (ROS-free).

A self-supervised monocular network predicts depth up to an unknown scale.
When the camera is mounted at a known height ``h`` above a roughly flat road,
the scale follows from one plane fit per frame:

1. back-project the pixels labelled *road* (Cityscapes trainId 0) with the
   relative depth and the intrinsics K into 3D points (REP 103 optical frame:
   x right, y down, z forward);
2. fit a plane ``n·p = d`` to them with RANSAC (three-point hypotheses whose
   normal is within ``max_tilt_deg`` of the camera's "down" axis), then refine
   it by least squares on the inliers; ``d`` is the camera's height above the
   plane in relative units;
3. the frame's scale is ``h / d`` (metres per relative unit);
4. the scale used is the median of the last ``window`` frame scales, which
   rejects the occasional bad fit (a car labelled road, a speed bump).

The node multiplies depth and ego-motion translations by the scale.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

SCALE_MODES = ("none", "camera_height", "fixed")
ROAD_TRAIN_ID = 0


@dataclass
class PlaneFit:
    """A plane ``normal · p = height`` in the camera frame (normal unit, pointing down, away from the camera)."""

    normal: np.ndarray   # (3,) unit vector
    height: float        # distance camera centre → plane, units of the points
    inlier_ratio: float  # fraction of the points within the inlier threshold
    num_points: int


def backproject_pixels(depth: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Depth H×W (along z), K 3×3 (pixels), boolean mask H×W → N×3 camera-frame points of the masked valid pixels."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2 or mask.shape != depth.shape:
        raise ValueError(f"depth must be H×W and mask the same shape, got {depth.shape} and {mask.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"intrinsics must be a finite 3×3 matrix with fx, fy > 0, got {K.tolist()}")
    valid = mask & np.isfinite(depth) & (depth > 0)
    v, u = np.nonzero(valid)
    z = depth[v, u]
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=1)


def _plane_through(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normals (M×3, unit, y ≥ 0) and offsets (M,) of the planes through M triples of points (M×3×3)."""
    normals = np.cross(points[:, 1] - points[:, 0], points[:, 2] - points[:, 0])
    norms = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.maximum(norms, 1e-12)
    normals[normals[:, 1] < 0] *= -1
    offsets = np.einsum("ij,ij->i", normals, points[:, 0])
    return normals, offsets


def fit_ground_plane(points: np.ndarray, *, iterations: int = 64, inlier_threshold: float = 0.02,
                     max_tilt_deg: float = 30.0, rng: np.random.Generator | None = None) -> PlaneFit | None:
    """RANSAC + least-squares plane through N×3 points (camera frame, y down), or None when none fits.

    ``inlier_threshold`` is relative: a point is an inlier when its distance to
    the plane is below ``inlier_threshold × median range`` of the points, which
    keeps the test independent of the unknown depth scale. Hypotheses whose
    normal is more than ``max_tilt_deg`` from the camera's y axis (down) are
    rejected, and so are planes that do not lie below the camera.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be N×3, got {points.shape}")
    n = len(points)
    if n < 3:
        return None
    rng = np.random.default_rng(0) if rng is None else rng
    threshold = inlier_threshold * float(np.median(np.linalg.norm(points, axis=1)))
    min_cos = np.cos(np.deg2rad(max_tilt_deg))

    triples = points[rng.integers(0, n, size=(iterations, 3))]
    normals, offsets = _plane_through(triples)
    plausible = (normals[:, 1] >= min_cos) & (offsets > 0)
    if not plausible.any():
        return None
    normals, offsets = normals[plausible], offsets[plausible]
    distances = np.abs(points @ normals.T - offsets[None, :])  # N×M
    counts = (distances < threshold).sum(axis=0)
    best = int(np.argmax(counts))
    inliers = distances[:, best] < threshold
    if inliers.sum() < 3:
        return None

    # Least squares on the inliers: the normal is the direction of least variance.
    selected = points[inliers]
    centroid = selected.mean(axis=0)
    _, _, vt = np.linalg.svd(selected - centroid, full_matrices=False)
    normal = vt[-1]
    if normal[1] < 0:
        normal = -normal
    height = float(normal @ centroid)
    if normal[1] < min_cos or height <= 0:
        return None
    ratio = float((np.abs(points @ normal - height) < threshold).mean())
    return PlaneFit(normal=normal, height=height, inlier_ratio=ratio, num_points=n)


def estimate_ground_height(depth: np.ndarray, K: np.ndarray, semantic: np.ndarray, *,
                           road_ids=(ROAD_TRAIN_ID,), min_points: int = 200, max_points: int = 4000,
                           min_inlier_ratio: float = 0.5, rng: np.random.Generator | None = None,
                           **fit_kwargs) -> PlaneFit | None:
    """Fit the ground plane to the road pixels of a depth map (H×W, any scale) with intrinsics K (3×3).

    ``semantic`` is H×W trainIds. Returns None when fewer than ``min_points``
    road pixels have valid depth or the best plane explains fewer than
    ``min_inlier_ratio`` of them. At most ``max_points`` pixels are used
    (a random subset) so the cost is bounded whatever the image size.
    """
    semantic = np.asarray(semantic)
    if semantic.shape != np.shape(depth):
        raise ValueError(f"semantic {semantic.shape} and depth {np.shape(depth)} must have the same H×W")
    mask = np.isin(semantic, np.asarray(road_ids))
    points = backproject_pixels(depth, K, mask)
    if len(points) < min_points:
        return None
    rng = np.random.default_rng(0) if rng is None else rng
    if len(points) > max_points:
        points = points[rng.choice(len(points), max_points, replace=False)]
    fit = fit_ground_plane(points, rng=rng, **fit_kwargs)
    if fit is None or fit.inlier_ratio < min_inlier_ratio:
        return None
    return fit


@dataclass
class ScaleEstimate:
    """The scale to apply to one frame."""

    scale: float          # metres per relative unit (1.0 when not metric)
    metric: bool          # whether depth × scale is in metres
    frame_scale: float | None  # this frame's own estimate (camera_height mode), None when the fit failed
    status: str           # a short human-readable state for diagnostics


class ScaleRecovery:
    """Turns the network's relative depth into metres, per the ``scale_recovery`` mode.

    * ``none``: depth stays relative (scale 1, not metric);
    * ``fixed``: a constant ``fixed_scale`` (metres per unit, e.g. calibrated once);
    * ``camera_height``: ``camera_height / fitted ground height``, median of the
      last ``window`` successful frames; until the first success, relative.
    """

    def __init__(self, mode: str = "none", *, camera_height: float = 1.65, fixed_scale: float = 1.0,
                 window: int = 15, min_road_pixels: int = 200, max_points: int = 4000,
                 inlier_threshold: float = 0.02, max_tilt_deg: float = 30.0, seed: int = 0):
        if mode not in SCALE_MODES:
            raise ValueError(f"scale_recovery must be one of {SCALE_MODES}, got {mode!r}")
        if mode == "camera_height" and not (np.isfinite(camera_height) and camera_height > 0):
            raise ValueError(f"camera_height must be a positive number of metres, got {camera_height}")
        if mode == "fixed" and not (np.isfinite(fixed_scale) and fixed_scale > 0):
            raise ValueError(f"fixed_scale must be positive, got {fixed_scale}")
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self.mode = mode
        self.camera_height = float(camera_height)
        self.fixed_scale = float(fixed_scale)
        self.min_road_pixels = int(min_road_pixels)
        self.max_points = int(max_points)
        self.fit_kwargs = {"inlier_threshold": float(inlier_threshold), "max_tilt_deg": float(max_tilt_deg)}
        self._history: deque[float] = deque(maxlen=int(window))
        self._rng = np.random.default_rng(seed)
        self.last_fit: PlaneFit | None = None

    def reset(self) -> None:
        """Forget the smoothing history (a different camera or mounting)."""
        self._history.clear()
        self.last_fit = None

    @property
    def current_scale(self) -> float | None:
        if self.mode == "fixed":
            return self.fixed_scale
        if self.mode == "camera_height" and self._history:
            return float(np.median(self._history))
        return None

    def update(self, relative_depth: np.ndarray, K: np.ndarray, semantic: np.ndarray) -> ScaleEstimate:
        """The scale for a frame given its relative depth (H×W), intrinsics K (3×3, pixels) and trainIds (H×W)."""
        if self.mode == "none":
            return ScaleEstimate(1.0, False, None, "relative depth (scale_recovery: none)")
        if self.mode == "fixed":
            return ScaleEstimate(self.fixed_scale, True, None, f"fixed scale {self.fixed_scale:g}")
        fit = estimate_ground_height(relative_depth, K, semantic, min_points=self.min_road_pixels,
                                     max_points=self.max_points, rng=self._rng, **self.fit_kwargs)
        self.last_fit = fit
        frame_scale = None
        if fit is not None:
            frame_scale = self.camera_height / fit.height
            self._history.append(frame_scale)
        scale = self.current_scale
        if scale is None:
            return ScaleEstimate(1.0, False, frame_scale, "waiting for a ground-plane fit (not enough road)")
        status = (f"ground plane fit: {len(self._history)} recent frames" if fit is not None
                  else "no ground-plane fit this frame; using recent median")
        return ScaleEstimate(scale, True, frame_scale, status)
