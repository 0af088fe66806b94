"""Exact optical flow between two rendered frames, from the geometry that drew them.

For each pixel of frame A, the surface point it shows is moved with its
object (the static world does not move) to the time of frame B, projected by
camera B, and kept only when it is visible there: in front of the camera,
inside the image, facing camera B (every part is convex, so this settles
self-occlusion) and the surface at the nearest pixel of B is the same surface
(otherwise something else occludes it). Sky pixels are points at infinity:
their flow comes from the camera rotation alone. Undefined flow is NaN.
"""
from __future__ import annotations

import numpy as np

from .renderer import NEAR, Render
from .road import SURFACE_SKY
from .scene import Scene
from .trajectory import rotation_y


def _object_transform(position: np.ndarray, yaw: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rotation_y(yaw)
    out[:3, 3] = position
    return out


def point_motion(scene: Scene, a: Render, b: Render, obj: int | None) -> np.ndarray:
    """4×4 transform of points of object ``obj`` (None: the static world) from camera A to camera B."""
    world_motion = np.eye(4)
    if obj is not None:
        world_motion = _object_transform(b.object_position[obj], b.object_yaw[obj]) @ np.linalg.inv(
            _object_transform(a.object_position[obj], a.object_yaw[obj]))
    return np.linalg.inv(b.pose) @ world_motion @ a.pose


def moving_pixels(scene: Scene, render: Render) -> np.ndarray:
    """Boolean (N,) mask of pixels showing an object that moves in the world."""
    obj = np.where(render.part >= 0, scene.part_object[np.maximum(render.part, 0)], 0)
    return (render.part >= 0) & scene.moving[obj]


def _apply(m: np.ndarray, x, y, z, translate: bool = True):
    """Rows of a 3×3 (or the rotation part of a 4×4) applied to components, plus its translation."""
    out = [m[i, 0] * x + m[i, 1] * y + m[i, 2] * z for i in range(3)]
    if translate:
        out = [out[i] + m[i, 3] for i in range(3)]
    return out


def optical_flow(scene: Scene, K: np.ndarray, rays: np.ndarray, width: int, a: Render, b: Render) -> np.ndarray:
    """Flow from frame A to frame B, N×2 float32 pixels (NaN where undefined); ``rays`` N×3 with z = 1."""
    n = rays.shape[0]
    height = n // width
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    solid = a.surface != SURFACE_SKY
    depth = np.where(solid, a.depth, 0.0).astype(np.float64)
    ax, ay, az = rays[:, 0] * depth, rays[:, 1] * depth, depth
    bx, by, bz = np.empty(n), np.empty(n), np.empty(n)
    nbx, nby, nbz = np.zeros(n), np.zeros(n), np.zeros(n)
    rot_b_t = b.pose[:3, :3].T
    obj = np.where(a.part >= 0, scene.part_object[np.maximum(a.part, 0)], -1)
    dynamic = (obj >= 0) & scene.moving[np.maximum(obj, 0)]
    groups = [(None, np.nonzero(solid & ~dynamic)[0])]
    dynamic_idx = np.nonzero(dynamic)[0]
    if dynamic_idx.size:
        sorted_idx = dynamic_idx[np.argsort(obj[dynamic_idx], kind="stable")]
        ids, starts = np.unique(obj[sorted_idx], return_index=True)
        groups += list(zip(ids.tolist(), np.split(sorted_idx, starts[1:])))
    for o, idx in groups:
        motion = point_motion(scene, a, b, o)
        bx[idx], by[idx], bz[idx] = _apply(motion, ax[idx], ay[idx], az[idx])
        # Normals are in the map frame: rotate with the object, then into camera B.
        rotation = rot_b_t if o is None else rot_b_t @ rotation_y(b.object_yaw[o] - a.object_yaw[o])
        nbx[idx], nby[idx], nbz[idx] = _apply(rotation, a.normal[0, idx], a.normal[1, idx], a.normal[2, idx], False)
    sky = np.nonzero(~solid)[0]
    if sky.size:
        rel = rot_b_t @ a.pose[:3, :3]  # directions at infinity only rotate
        bx[sky], by[sky], bz[sky] = _apply(rel, rays[sky, 0], rays[sky, 1], 1.0, False)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = fx * bx / bz + cx
        v = fy * by / bz + cy
    ui = np.round(u)
    vi = np.round(v)
    valid = np.where(solid, bz > NEAR, bz > 1e-6)
    valid &= (ui >= 0) & (ui < width) & (vi >= 0) & (vi < height)
    valid &= ~solid | (nbx * bx + nby * by + nbz * bz < 0)  # facing camera B
    target = np.where(valid, vi * width + ui, 0).astype(np.int64)
    valid &= b.surface[target] == a.surface  # the same surface is what camera B sees there
    grid_v, grid_u = np.divmod(np.arange(n), width)
    flow = np.full((n, 2), np.nan, np.float32)
    flow[valid, 0] = u[valid] - grid_u[valid]
    flow[valid, 1] = v[valid] - grid_v[valid]
    return flow
