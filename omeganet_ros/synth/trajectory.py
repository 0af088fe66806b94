"""The camera's path: driving along the ego lane with speed changes, the road's turns and a little sway.

Frame index k runs from −1 (the extra frame that gives frame 0 its backward
flow) to ``frames`` (the extra frame for the last forward flow). Speeds are
metres per frame (KITTI-like: 0.5–1.5 m per frame at 10 Hz).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .road import LANES_FORWARD, RoadProfile


def rotation_y(yaw):
    """Rotation(s) about +y (down) by ``yaw`` radians: maps +z to (sin yaw, 0, cos yaw)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros(yaw.shape + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 2] = s
    out[..., 1, 1] = 1.0
    out[..., 2, 0] = -s
    out[..., 2, 2] = c
    return out


def rotation_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _smooth_signal(rng: np.random.Generator, n: int, periods=(40.0, 90.0, 200.0)) -> np.ndarray:
    """Sum of random sinusoids over n frames, roughly in [−1, 1]."""
    k = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    for period in periods:
        period = period * rng.uniform(0.7, 1.3)
        out += np.sin(2 * np.pi * k / period + rng.uniform(0, 2 * np.pi))
    return out / len(periods)


@dataclass
class CameraTrack:
    """Per frame k = −1 … frames: along-road z, lane offset, and camera-to-map pose (4×4)."""

    first_frame: int
    z: np.ndarray
    offset: np.ndarray
    poses: np.ndarray  # (frames + 2)×4×4, camera-to-map
    speeds: np.ndarray  # metres travelled to reach each frame from the previous one

    def at(self, k: int) -> np.ndarray:
        return self.poses[k - self.first_frame]

    def z_at(self, k):
        return self.z[np.asarray(k) - self.first_frame]


def make_track(
    rng: np.random.Generator,
    road: RoadProfile,
    frames: int,
    speed_range: tuple[float, float] = (0.5, 1.5),
    lane_offset: float = LANES_FORWARD[0],
    sway: float = 1.0,
) -> CameraTrack:
    """Camera poses for frames −1 … ``frames``; the camera is ``road.road_y`` above the road (y = 0)."""
    n = frames + 2
    lo, hi = speed_range
    if not 0 < lo <= hi:
        raise ValueError(f"speed range must satisfy 0 < min <= max, got {speed_range}")
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    speeds = np.clip(mid + half * 1.2 * _smooth_signal(rng, n, (60.0, 150.0, 400.0)), lo, hi)
    speeds[0] = 0.0  # frame −1 sits where the path starts
    # Integrate along the road; the lateral sway is small enough that its path length is negligible.
    z = np.zeros(n)
    for i in range(1, n):
        step = speeds[i]
        slope = road.slope(z[i - 1] + 0.5 * step)
        z[i] = z[i - 1] + step / np.sqrt(1.0 + slope * slope)
    offset = lane_offset + 0.25 * sway * _smooth_signal(rng, n, (50.0, 120.0))
    x = road.centre(z) + offset
    # Heading from the path's local direction (central differences in z).
    offset_slope = np.gradient(offset, z) if n > 2 else np.zeros(n)
    yaw = np.arctan(road.slope(z) + offset_slope)
    pitch = np.deg2rad(0.4) * sway * _smooth_signal(rng, n, (12.0, 30.0))
    roll = np.deg2rad(0.3) * sway * _smooth_signal(rng, n, (15.0, 40.0))
    bounce = 0.01 * sway * _smooth_signal(rng, n, (8.0, 20.0))
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        poses[i, :3, :3] = rotation_y(yaw[i]) @ rotation_x(pitch[i]) @ rotation_z(roll[i])
        poses[i, :3, 3] = (x[i], bounce[i], z[i])
    return CameraTrack(first_frame=-1, z=z, offset=offset, poses=poses, speeds=speeds)
