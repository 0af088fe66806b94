"""Ground-plane scale recovery on synthetic planes with a known camera height."""
from __future__ import annotations

import numpy as np
import pytest

from omeganet_ros.scale_recovery import (ScaleRecovery, backproject_pixels, estimate_ground_height,
                                         fit_ground_plane)

H, W = 96, 320
K = np.array([[180.0, 0.0, 159.5], [0.0, 180.0, 47.5], [0.0, 0.0, 1.0]])


def plane_depth(height: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """Depth (metres) of a flat ground ``height`` below the camera, tilted by pitch/roll; NaN above the horizon."""
    pitch, roll = np.deg2rad(pitch_deg), np.deg2rad(roll_deg)
    normal = np.array([np.sin(roll), np.cos(roll) * np.cos(pitch), np.cos(roll) * np.sin(pitch)])
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    denom = rays @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(denom > 1e-3, height / denom, np.nan)
    return depth


def road_labels(depth: np.ndarray) -> np.ndarray:
    semantic = np.full(depth.shape, 10, np.uint8)  # sky
    semantic[np.isfinite(depth) & (depth < 60)] = 0  # road
    return semantic


def test_backprojected_plane_points_lie_at_camera_height():
    depth = plane_depth(1.5)
    points = backproject_pixels(depth, K, road_labels(depth) == 0)
    assert len(points) > 1000
    np.testing.assert_allclose(points[:, 1], 1.5, atol=1e-9)


@pytest.mark.parametrize("pitch, roll", [(0.0, 0.0), (4.0, -2.0), (-3.0, 5.0)])
def test_fit_recovers_height_and_normal_of_tilted_plane(pitch, roll):
    depth = plane_depth(1.65, pitch, roll)
    fit = estimate_ground_height(depth, K, road_labels(depth))
    assert fit is not None
    assert fit.height == pytest.approx(1.65, rel=1e-6)
    expected = np.array([np.sin(np.deg2rad(roll)), np.cos(np.deg2rad(roll)) * np.cos(np.deg2rad(pitch)),
                         np.cos(np.deg2rad(roll)) * np.sin(np.deg2rad(pitch))])
    np.testing.assert_allclose(fit.normal, expected, atol=1e-6)


def test_ransac_ignores_outliers_labelled_road():
    rng = np.random.default_rng(3)
    depth = plane_depth(1.65)
    semantic = road_labels(depth)
    # A car mislabelled as road: a block of pixels much closer than the ground, plus noise.
    depth[60:90, 100:180] = 4.0
    depth = depth * rng.normal(1.0, 0.005, depth.shape)
    fit = estimate_ground_height(depth, K, semantic)
    assert fit is not None and fit.height == pytest.approx(1.65, rel=0.02)
    # Plain least squares over all the road points would be pulled far off.
    points = backproject_pixels(depth, K, semantic == 0)
    centroid = points.mean(axis=0)
    normal = np.linalg.svd(points - centroid, full_matrices=False)[2][-1]
    assert abs(abs(normal @ centroid) - 1.65) > 0.05


def test_recovers_metric_scale_from_relative_depth_and_smooths():
    true_height, unknown_scale = 1.65, 7.3  # network units are metres / 7.3
    recovery = ScaleRecovery("camera_height", camera_height=true_height, window=5)
    rng = np.random.default_rng(0)
    estimates = []
    for _ in range(8):
        metric = plane_depth(true_height, pitch_deg=rng.uniform(-2, 2))
        relative = metric / unknown_scale * rng.normal(1.0, 0.01, metric.shape)
        estimates.append(recovery.update(relative, K, road_labels(metric)))
    assert all(e.metric for e in estimates)
    assert estimates[-1].scale == pytest.approx(unknown_scale, rel=0.02)
    # One frame with a wildly wrong fit does not move the median.
    bad = plane_depth(true_height) / (unknown_scale * 3)
    after = recovery.update(bad, K, road_labels(bad))
    assert after.frame_scale == pytest.approx(unknown_scale * 3, rel=0.02)
    assert after.scale == pytest.approx(unknown_scale, rel=0.03)


def test_no_road_means_no_scale_until_a_fit_succeeds():
    recovery = ScaleRecovery("camera_height", camera_height=1.65)
    depth = plane_depth(1.65)
    first = recovery.update(depth, K, np.full(depth.shape, 2, np.uint8))  # all building
    assert not first.metric and first.scale == 1.0 and first.frame_scale is None
    second = recovery.update(depth, K, road_labels(depth))
    assert second.metric and second.scale == pytest.approx(1.0, rel=1e-6)
    third = recovery.update(depth, K, np.full(depth.shape, 2, np.uint8))
    assert third.metric and third.frame_scale is None and third.scale == pytest.approx(1.0, rel=1e-6)


def test_vertical_plane_is_not_taken_for_ground():
    # Points on a wall (x = 2 m) facing the camera: the tilt constraint rejects it.
    rng = np.random.default_rng(1)
    wall = np.stack([np.full(500, 2.0), rng.uniform(-1, 1, 500), rng.uniform(5, 20, 500)], axis=1)
    assert fit_ground_plane(wall) is None


def test_modes_and_bad_arguments():
    depth = plane_depth(1.65)
    assert ScaleRecovery("none").update(depth, K, road_labels(depth)).metric is False
    fixed = ScaleRecovery("fixed", fixed_scale=2.5).update(depth, K, road_labels(depth))
    assert fixed.metric and fixed.scale == 2.5
    with pytest.raises(ValueError, match="scale_recovery"):
        ScaleRecovery("lidar")
    with pytest.raises(ValueError, match="camera_height"):
        ScaleRecovery("camera_height", camera_height=0.0)
    with pytest.raises(ValueError, match="intrinsics"):
        backproject_pixels(depth, np.zeros((3, 3)), np.ones(depth.shape, bool))


def test_recovers_scale_on_the_synthetic_world():
    """A rendered street (exact depth, labels, K and camera height): the fitted scale is within 2 %."""
    from omeganet_ros.synth.world import iterate_frames

    height, unknown_scale = 1.4, 12.5
    recovery = ScaleRecovery("camera_height", camera_height=height, window=3)
    for frame in iterate_frames(frames=3, seed=5, size=(320, 96), camera_height=height):
        estimate = recovery.update(frame["depth"] / unknown_scale, frame["K"], frame["semantic"])
        assert estimate.frame_scale is not None
        assert estimate.frame_scale == pytest.approx(unknown_scale, rel=0.02)
    assert estimate.metric and estimate.scale == pytest.approx(unknown_scale, rel=0.02)
