"""Camera motion from a depth map and an optical flow by PnP + RANSAC: a geometric proxy label for CamNet.

Back-projecting the target frame's depth and moving each pixel by its optical flow gives 3-D ↔ 2-D
correspondences; OpenCV's ``solvePnPRansac`` (EPnP inside RANSAC) fits the rigid motion that explains the
static majority of them, and ``solvePnPRefineLM`` polishes it on the inliers. Moving objects, occlusions and
flow errors are the outliers RANSAC leaves out (pixels of dynamic classes can be excluded up front).

Why (issue 13): on the unseen synthetic seeds the bundled model's own DSNet depth + OFNet flow give a yaw
that correlates 0.96 with the truth through this fit, while CamNet's regressed yaw reaches 0.74 with a spread
4× too small; stage 1's ``loss.pose_proxy_weight`` distils the rotation into CamNet. The translation of the fit
inherits each frame's depth scale and is noisier than CamNet's (5-frame ATE 0.057 m against 0.020 m), so only
the rotation is used as a label.

Conventions are :mod:`omeganet_ros.geometry`'s: the returned motion is ``M_{target→source}`` (the pose of the
source camera in the target camera), so ``geometry.rigid_flow(depth, K, M)`` reproduces the flow.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from . import geometry
from .classes import DYNAMIC_TRAIN_IDS

# The node's and omeganet-infer's default for the ego-motion's rotation (``SceneEngine``'s API keeps CamNet's):
# CamNet turns the wrong way on real video (kitti_raw_tiny 0/5), the fit does not (5/5).
ROTATION_FROM_FLOW_DEFAULT = True

GRID_STEP = 4           # px between sampled pixels (320×96: ~1 800 correspondences)
REPROJECTION_PX = 1.0   # RANSAC inlier threshold in pixels
ITERATIONS = 100
MIN_INLIERS = 30


def motion_from_depth_and_flow(depth: np.ndarray, flow: np.ndarray, K: np.ndarray, valid: np.ndarray | None = None,
                               grid_step: int = GRID_STEP, reprojection_px: float = REPROJECTION_PX,
                               iterations: int = ITERATIONS, seed: int = 0) -> tuple[np.ndarray | None, float]:
    """The camera motion target→source that best explains ``flow`` given ``depth``.

    Args:
        depth: H×W depth of the target frame (any consistent unit; the translation comes out in it).
        flow: H×W×2 flow target→source in pixels.
        K: 3×3 intrinsics of these H×W pixels.
        valid: optional H×W bool, pixels that may be used (e.g. not a dynamic class).
        seed: OpenCV's RNG seed for RANSAC (the fit is deterministic for a given seed).

    Returns:
        (4×4 float64 ``M_{target→source}``, inlier fraction of the sampled pixels), or (None, 0.0) when fewer than
        ``MIN_INLIERS`` correspondences support a motion.
    """
    depth = np.asarray(depth, np.float64)
    flow = np.asarray(flow, np.float64)
    K = np.asarray(K, np.float64)
    if depth.ndim != 2 or flow.shape != (*depth.shape, 2) or K.shape != (3, 3):
        raise ValueError(f"depth H×W, flow H×W×2 and K 3×3 expected, got {depth.shape}, {flow.shape}, {K.shape}")
    h, w = depth.shape
    vs, us = np.mgrid[grid_step // 2:h:grid_step, grid_step // 2:w:grid_step]
    vs, us = vs.ravel(), us.ravel()
    z = depth[vs, us]
    keep = np.isfinite(z) & (z > 0) & np.isfinite(flow[vs, us]).all(axis=1)
    if valid is not None:
        keep &= np.asarray(valid, bool)[vs, us]
    vs, us, z = vs[keep], us[keep], z[keep]
    if len(z) < MIN_INLIERS:
        return None, 0.0
    points = geometry.backproject(torch.from_numpy(depth)[None, None], torch.from_numpy(K)[None])[0][:, vs, us].T.numpy()
    moved = np.stack([us, vs], axis=1) + flow[vs, us]
    # ~1 800 points need no thread pool, and one thread keeps OpenCV's pool out of the caller's threads. (A node
    # exit hang on SIGTERM was first blamed on that pool; it recurred without it and was the node's spin missing
    # the signal, fixed in the node.)
    cv2.setNumThreads(1)
    cv2.setRNGSeed(seed)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(points, moved, K, None, iterationsCount=iterations,
                                                 reprojectionError=reprojection_px, flags=cv2.SOLVEPNP_EPNP)
    if not ok or inliers is None or len(inliers) < MIN_INLIERS:
        return None, 0.0
    inliers = inliers[:, 0]
    rvec, tvec = cv2.solvePnPRefineLM(points[inliers], moved[inliers], K, None, rvec, tvec)
    # PnP's [R|t] maps target-camera points into the source camera: inv(M_{target→source}).
    source_from_target = np.eye(4)
    source_from_target[:3, :3] = cv2.Rodrigues(rvec)[0]
    source_from_target[:3, 3] = tvec.ravel()
    return np.linalg.inv(source_from_target), len(inliers) / len(z)


def static_pixels(semantic: torch.Tensor, dynamic_classes=DYNAMIC_TRAIN_IDS, min_fraction: float = 0.3) -> torch.Tensor:
    """B×H×W bool: pixels whose class (B×H×W trainIds) is not dynamic. An image with under ``min_fraction``
    static pixels (crowded, or an untrained semantic head) is left to RANSAC alone: all its pixels are True."""
    static = ~torch.isin(semantic, torch.tensor(tuple(dynamic_classes), device=semantic.device))
    return static | (static.float().mean((1, 2), keepdim=True) < min_fraction)


@torch.no_grad()
def proxy_motions(depth: torch.Tensor, flow: torch.Tensor, K: torch.Tensor,
                  valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`motion_from_depth_and_flow` over a batch.

    Args: depth B×1×H×W, flow B×2×H×W (target→source, px), K B×3×3, valid B×H×W bool or None.
    Returns: (B×4×4 motions target→source on ``depth``'s device and dtype, identity where the fit failed;
    B bool, whether each fit succeeded).
    """
    motions, found = [], []
    for b in range(depth.shape[0]):
        motion, _ = motion_from_depth_and_flow(depth[b, 0].double().cpu().numpy(),
                                               flow[b].permute(1, 2, 0).double().cpu().numpy(),
                                               K[b].double().cpu().numpy(),
                                               None if valid is None else valid[b].cpu().numpy(), seed=b)
        found.append(motion is not None)
        motions.append(np.eye(4) if motion is None else motion)
    out = torch.as_tensor(np.stack(motions), dtype=depth.dtype, device=depth.device)
    return out, torch.tensor(found, device=depth.device)


def with_fitted_rotation(motion: torch.Tensor, depth: torch.Tensor, flow: torch.Tensor, K: torch.Tensor,
                         valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """B×4×4 camera motions target→source with their rotation replaced by the fit of ``flow`` (B×2×H×W, the same
    direction) on ``depth`` where :func:`proxy_motions` succeeds; the translation stays. Returns (motions, B found)."""
    fit, found = proxy_motions(depth, flow, K, valid)
    out = motion.clone()
    out[found, :3, :3] = fit[found, :3, :3].to(motion.dtype)
    return out, found


def rotation_proxy_loss(motion_vecs: torch.Tensor, to_prev: torch.Tensor, to_next: torch.Tensor,
                        found: torch.Tensor, focal_px: torch.Tensor) -> torch.Tensor:
    """L1 between CamNet's rotations and the PnP ones, in pixels of image shift (angle × focal length).

    Args:
        motion_vecs: CamNet's B×2×6 pose vectors (t−1→t, t→t+1).
        to_prev, to_next: B×4×4 PnP motions t→t−1 and t→t+1 (:func:`proxy_motions`).
        found: B×2 bool, which of the two fits succeeded.
        focal_px: B focal lengths (px) that turn radians into the shift they cause at the image centre.
    Returns: scalar, the mean over successful fits (0 with a graph when none succeeded).
    """
    targets = torch.stack([geometry.invert_rigid(to_prev), to_next], dim=1)  # t−1→t, t→t+1 like CamNet's
    target_rot = geometry.mat_to_pose_vec(targets)[..., 3:]
    error = (motion_vecs[..., 3:] - target_rot.to(motion_vecs.dtype)).abs().sum(-1) * focal_px.view(-1, 1)
    weights = found.to(error.dtype)
    return (error * weights).sum() / weights.sum().clamp(min=1.0)
