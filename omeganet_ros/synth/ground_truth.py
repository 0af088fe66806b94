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
    m = m.astype(np.float32)
    out = [m[i, 0] * x + m[i, 1] * y + m[i, 2] * z for i in range(3)]
    if translate:
        out = [out[i] + m[i, 3] for i in range(3)]
    return out


class FlowSolver:
    """Exact flow between renders of one sequence (precomputes the pixel grid and camera rays)."""

    def __init__(self, scene: Scene, K: np.ndarray, width: int, height: int):
        self.scene, self.K = scene, np.asarray(K, np.float64)
        self.width, self.height = int(width), int(height)
        v, u = np.mgrid[0:height, 0:width]
        self.grid_u = u.ravel().astype(np.float32)
        self.grid_v = v.ravel().astype(np.float32)
        k_inv = np.linalg.inv(self.K)
        self.ray_x = (k_inv[0, 0] * self.grid_u + k_inv[0, 1] * self.grid_v + k_inv[0, 2]).astype(np.float32)
        self.ray_y = (k_inv[1, 1] * self.grid_v + k_inv[1, 2]).astype(np.float32)

    def _groups(self, a: Render):
        """Pixels of A grouped by how they move: (None, None) for the static world, then (object, its pixels)…"""
        scene = self.scene
        solid = a.surface != SURFACE_SKY
        obj = np.where(a.part >= 0, scene.part_object[np.maximum(a.part, 0)], -1)
        dynamic = (obj >= 0) & scene.moving[np.maximum(obj, 0)]
        groups = [(None, None)]  # the static world: every pixel not in a later group
        dynamic_idx = np.nonzero(dynamic)[0]
        if dynamic_idx.size:
            sorted_idx = dynamic_idx[np.argsort(obj[dynamic_idx], kind="stable")]
            ids, starts = np.unique(obj[sorted_idx], return_index=True)
            groups += list(zip(ids.tolist(), np.split(sorted_idx, starts[1:])))
        return solid, groups

    def flows(self, a: Render, targets: list[Render]) -> list[np.ndarray]:
        """Flows from frame A to each target frame, each N×2 float32 pixels (NaN where undefined)."""
        solid, groups = self._groups(a)
        depth = np.where(solid, a.depth, np.float32(0))
        points = (self.ray_x * depth, self.ray_y * depth, depth)
        # Normals in camera A. A rigid motion (R, t) maps n·X to n·X + n·(Rᵀt), which gives the
        # facing test in camera B without transforming the normals.
        normals = _apply(a.pose[:3, :3].T, a.normal[0], a.normal[1], a.normal[2], False)
        n_dot_x = normals[0] * points[0] + normals[1] * points[1] + normals[2] * points[2]
        return [self._flow(a, b, solid, groups, points, normals, n_dot_x) for b in targets]

    def _flow(self, a: Render, b: Render, solid, groups, points, normals, n_dot_x) -> np.ndarray:
        n = points[0].shape[0]
        fx, fy, cx, cy = (np.float32(v) for v in (self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]))
        ax, ay, az = points

        def facing_offset(motion):
            return (motion[:3, :3].T @ motion[:3, 3]).astype(np.float32)

        # The static world (most pixels) in one pass over all pixels; moving objects and sky overwrite theirs.
        motion = point_motion(self.scene, a, b, None)
        bx, by, bz = _apply(motion, ax, ay, az)
        c = facing_offset(motion)
        facing = n_dot_x + c[0] * normals[0] + c[1] * normals[1] + c[2] * normals[2]
        for o, idx in groups[1:]:
            motion = point_motion(self.scene, a, b, o)
            bx[idx], by[idx], bz[idx] = _apply(motion, ax[idx], ay[idx], az[idx])
            c = facing_offset(motion)
            facing[idx] = n_dot_x[idx] + c[0] * normals[0][idx] + c[1] * normals[1][idx] + c[2] * normals[2][idx]
        sky = np.nonzero(~solid)[0]
        if sky.size:
            rel = b.pose[:3, :3].T @ a.pose[:3, :3]  # directions at infinity only rotate
            bx[sky], by[sky], bz[sky] = _apply(rel, self.ray_x[sky], self.ray_y[sky], np.float32(1), False)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = 1 / bz
            u = fx * bx * inv_z + cx
            v = fy * by * inv_z + cy
        ui = np.rint(u)
        vi = np.rint(v)
        valid = np.where(solid, (bz > NEAR) & (facing < 0), bz > 1e-6)  # in front of and facing camera B
        valid &= (ui >= 0) & (ui < self.width) & (vi >= 0) & (vi < self.height)
        target = np.where(valid, vi * self.width + ui, 0).astype(np.int32)
        valid &= b.surface[target] == a.surface  # the same surface is what camera B sees there
        nan = np.float32(np.nan)
        return np.stack([np.where(valid, u - self.grid_u, nan), np.where(valid, v - self.grid_v, nan)], axis=1)


def optical_flow(scene: Scene, K: np.ndarray, width: int, height: int, a: Render, b: Render) -> np.ndarray:
    """Flow from render A to render B, N×2 float32 pixels (NaN where undefined)."""
    return FlowSolver(scene, K, width, height).flows(a, [b])[0]
