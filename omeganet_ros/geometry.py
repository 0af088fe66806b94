"""Pinhole camera geometry shared by the networks, the engine, training and the synthetic world.

Conventions (used everywhere in the package):

* Camera frame: REP 103 optical frame — x right, y down, z forward; metres.
* Pixels: (u, v) with the centre of the top-left pixel at (0, 0).
* Intrinsics ``K``: 3×3 in pixels of the image they describe.
* Poses: ``camera-to-world`` 4×4 matrices (KITTI odometry convention).
* Camera motion ``M_{s→t}``: the pose of camera *t* expressed in camera *s*
  (4×4), so that ``pose_t = pose_s @ M_{s→t}``. A point X_s in camera *s*
  is ``X_t = inv(M_{s→t}) @ X_s`` in camera *t*.
* Pose vector: 6 values ``(tx, ty, tz, rx, ry, rz)``; translation in metres,
  rotation as an axis-angle vector in radians; it encodes a camera motion.
* Flow: ``(du, dv)`` in pixels from a pixel of the source image to where the
  same scene point appears in the target image.
"""
from __future__ import annotations

import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix, rotation_matrix_to_axis_angle


def pose_vec_to_mat(vec: torch.Tensor) -> torch.Tensor:
    """(..., 6) pose vectors (t in metres, axis-angle in radians) → (..., 4, 4) camera motions."""
    if vec.shape[-1] != 6:
        raise ValueError(f"pose vector must have 6 values in its last dimension, got shape {tuple(vec.shape)}")
    lead = vec.shape[:-1]
    flat = vec.reshape(-1, 6)
    mat = torch.zeros(flat.shape[0], 4, 4, dtype=vec.dtype, device=vec.device)
    mat[:, :3, :3] = axis_angle_to_rotation_matrix(flat[:, 3:])
    mat[:, :3, 3] = flat[:, :3]
    mat[:, 3, 3] = 1.0
    return mat.reshape(*lead, 4, 4)


def euler_pose_vec_to_mat(vec: torch.Tensor) -> torch.Tensor:
    """(..., 6) pose vectors of the authors' CameraNet (SfMLearner's ``pose_vec2mat``) → (..., 4, 4).

    ``(tx, ty, tz, rx, ry, rz)``, Euler angles in radians clipped to [−π, π], R = Rx·Ry·Rz. The
    matrix maps a point of the target camera into the source camera (X_s = T·X_t), so it is the
    camera motion source→target of this module's convention.
    """
    if vec.shape[-1] != 6:
        raise ValueError(f"pose vector must have 6 values in its last dimension, got shape {tuple(vec.shape)}")
    angles = vec[..., 3:].clamp(-torch.pi, torch.pi)
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(cos[..., 0]), torch.zeros_like(cos[..., 0])

    def matrix(*rows):
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    (cx, cy, cz), (sx, sy, sz) = cos.unbind(-1), sin.unbind(-1)
    rot_x = matrix((one, zero, zero), (zero, cx, -sx), (zero, sx, cx))
    rot_y = matrix((cy, zero, sy), (zero, one, zero), (-sy, zero, cy))
    rot_z = matrix((cz, -sz, zero), (sz, cz, zero), (zero, zero, one))
    top = torch.cat([rot_x @ rot_y @ rot_z, vec[..., :3].unsqueeze(-1)], dim=-1)
    bottom = torch.cat([torch.zeros_like(vec[..., :3]), torch.ones_like(vec[..., :1])], dim=-1).unsqueeze(-2)
    return torch.cat([top, bottom], dim=-2)


def mat_to_pose_vec(mat: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) rigid transforms → (..., 6) pose vectors; inverse of :func:`pose_vec_to_mat`."""
    lead = mat.shape[:-2]
    flat = mat.reshape(-1, 4, 4)
    rot = rotation_matrix_to_axis_angle(flat[:, :3, :3].contiguous())
    return torch.cat([flat[:, :3, 3], rot], dim=-1).reshape(*lead, 6)


def invert_rigid(mat: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 4, 4) rigid transforms, using Rᵀ instead of a general inverse."""
    rot_t = mat[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(mat)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -(rot_t @ mat[..., :3, 3:4]).squeeze(-1)
    out[..., 3, 3] = 1.0
    return out


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel coordinates, 3×H×W: rows (u, v, 1)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([u, v, torch.ones_like(u)], dim=0)


def backproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Depth B×1×H×W (metres, along z) and K B×3×3 → 3D points B×3×H×W in the camera frame."""
    b, _, h, w = depth.shape
    rays = torch.linalg.inv(K) @ pixel_grid(h, w, depth.device, depth.dtype).reshape(1, 3, -1)
    return (rays * depth.reshape(b, 1, -1)).reshape(b, 3, h, w)


def project(points: torch.Tensor, K: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """3D points B×3×H×W (camera frame, metres) → pixel coordinates B×2×H×W.

    Points at or behind the camera are clamped to ``z = eps`` (they land far
    outside the image, where callers treat them as invalid).
    """
    b, _, h, w = points.shape
    cam = K @ points.reshape(b, 3, -1)
    z = cam[:, 2:3].clamp(min=eps)
    return (cam[:, :2] / z).reshape(b, 2, h, w)


def transform_points(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """Apply B×4×4 rigid transforms to B×3×H×W points."""
    b, _, h, w = points.shape
    flat = points.reshape(b, 3, -1)
    out = transform[:, :3, :3] @ flat + transform[:, :3, 3:4]
    return out.reshape(b, 3, h, w)


def rigid_flow(depth: torch.Tensor, K: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """Flow B×2×H×W (pixels) that a static scene would produce, p' = K (R·D·K⁻¹p + t) − p.

    ``depth`` B×1×H×W metres of the source frame, ``K`` B×3×3, ``motion`` B×4×4
    camera motion source→target (pose of the target camera in the source
    camera frame); the point transform applied is its inverse.
    """
    b, _, h, w = depth.shape
    points = transform_points(backproject(depth, K), invert_rigid(motion))
    pixels = project(points, K)
    return pixels - pixel_grid(h, w, depth.device, depth.dtype)[:2].unsqueeze(0)


def scale_intrinsics(K: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """Intrinsics (..., 3, 3) of an image resized by (scale_x, scale_y).

    Uses the pixel-centre convention of ``cv2.resize`` / ``align_corners=False``:
    u' = (u + 0.5)·s − 0.5, so fx' = fx·sx and cx' = (cx + 0.5)·sx − 0.5.
    """
    out = K.clone()
    out[..., 0, 0] = K[..., 0, 0] * scale_x
    out[..., 0, 1] = K[..., 0, 1] * scale_x
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * scale_x - 0.5
    out[..., 1, 1] = K[..., 1, 1] * scale_y
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * scale_y - 0.5
    return out


def resize_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinearly resize flow B×2×h×w to B×2×height×width, scaling its values to the new pixels."""
    _, _, h, w = flow.shape
    out = torch.nn.functional.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    scale = torch.tensor([width / w, height / h], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
    return out * scale


def disp_to_depth(disp: torch.Tensor, min_depth: float = 0.1, max_depth: float = 100.0) -> torch.Tensor:
    """Sigmoid disparity in [0, 1] → depth (monodepth2 convention), in the network's relative units."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    return 1.0 / (min_disp + (max_disp - min_disp) * disp)
