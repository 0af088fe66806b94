"""KITTI readers: calibration, Velodyne projection, depth PNGs, OXTS poses — checked on kitti_raw_tiny."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from omeganet_ros.data import kitti
from omeganet_ros.data.layout import read_poses

DRIVE = "kitti_raw_tiny/2011_09_26/2011_09_26_drive_0023_sync"


@pytest.fixture
def calib_dir(shared_data):
    return shared_data / "kitti_raw_tiny" / "2011_09_26"


def test_calibration(calib_dir):
    cam = kitti.CamToCam(calib_dir / "calib_cam_to_cam.txt")
    assert cam.image_size(2) == (375, 1242)
    assert cam.K(2)[0, 0] == pytest.approx(721.5377)
    assert cam.baseline(2, 3) == pytest.approx(0.5327, abs=1e-3)  # the KITTI stereo rig: ~54 cm
    T = kitti.read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt")
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
    # The scanner's forward axis (x) is the camera's viewing axis (z).
    assert (T[:3, :3] @ [1, 0, 0])[2] == pytest.approx(1.0, abs=1e-3)
    assert kitti.read_imu_to_velo(calib_dir / "calib_imu_to_velo.txt").shape == (4, 4)
    with pytest.raises(OSError, match="not found"):
        kitti.read_calib_file(calib_dir / "missing.txt")


def test_velodyne_projection_of_known_points(calib_dir, tmp_path):
    cam = kitti.CamToCam(calib_dir / "calib_cam_to_cam.txt")
    T_cam0_velo = kitti.read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt")
    # Place points at chosen rectified-camera-2 coordinates and map them back into the scanner frame.
    T_cam2_velo = cam.T_rect_cam(2) @ cam.R_rect_00() @ T_cam0_velo
    K = cam.K(2)
    targets = [(100, 200, 10.0), (600, 180, 25.0), (601, 180, 30.0), (600, 180, 40.0)]  # (u, v, z); last two collide
    cam_points = np.array([[(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z, 1.0] for u, v, z in targets])
    velo = (np.linalg.inv(T_cam2_velo) @ cam_points.T).T
    velo = np.vstack([velo, [-5.0, 0, 0, 1]])  # behind the scanner: dropped
    velo.astype(np.float32).tofile(tmp_path / "scan.bin")
    points = kitti.load_velodyne_points(tmp_path / "scan.bin")
    plain = kitti.velodyne_to_depth(points, cam, T_cam0_velo, cam=2, matlab_offset=False)
    assert plain.shape == (375, 1242) and np.count_nonzero(plain) == 3
    assert plain[200, 100] == pytest.approx(10.0, abs=1e-3)
    assert plain[180, 600] == pytest.approx(25.0, abs=1e-3)  # the nearer of two points on one pixel
    assert plain[180, 601] == pytest.approx(30.0, abs=1e-3)
    shifted = kitti.velodyne_to_depth(points, cam, T_cam0_velo, cam=2)  # monodepth2's round(u) − 1
    assert shifted[199, 99] == pytest.approx(10.0, abs=1e-3)
    with pytest.raises(ValueError, match="whole number"):
        (tmp_path / "bad.bin").write_bytes(b"\0" * 6)
        kitti.load_velodyne_points(tmp_path / "bad.bin")


def test_depth_png_round_trip(tmp_path):
    depth = np.array([[0.0, 1.5, 79.99609375], [np.nan, -1.0, 12.25]], np.float32)
    kitti.write_depth_png(tmp_path / "d.png", depth)
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw[0, 1] == 384
    back = kitti.read_depth_file(tmp_path / "d.png")
    expected = np.where(np.isfinite(depth) & (depth > 0), depth, 0)
    assert np.array_equal(back, expected)


def test_oxts_poses_match_reference(shared_data):
    poses = kitti.read_drive_camera_poses(shared_data / DRIVE, cam=2)
    reference = read_poses(shared_data / "kitti_raw_tiny" / "cam2_poses_from_oxts.txt")
    assert poses.shape == reference.shape == (7, 4, 4)
    assert np.allclose(poses[0], np.eye(4), atol=1e-9)
    assert np.abs(poses[:, :3, :3] - reference[:, :3, :3]).max() < 1e-6
    assert np.abs(poses[:, :3, 3] - reference[:, :3, 3]).max() < 1e-4  # metres, over ~6 m of driving
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert np.all((steps > 0.85) & (steps < 1.05))


def test_projected_velodyne_depth_agrees_with_stereo(shared_data, calib_dir):
    """Independent check of the provided lidar depth and our calibration reading: for every lidar pixel
    of the left image (camera 2), the right image (camera 3) sampled at u − fx·B/z shows the same
    surface, and does so far better than at wrong disparities."""
    cam = kitti.CamToCam(calib_dir / "calib_cam_to_cam.txt")
    fx, baseline = cam.K(2)[0, 0], cam.baseline(2, 3)
    drive = shared_data / DRIVE
    for frame in (0, 6):
        left = cv2.imread(str(drive / f"image_02/data/{frame:010d}.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        right = cv2.imread(str(drive / f"image_03/data/{frame:010d}.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        depth = kitti.read_depth_file(drive / f"proj_depth/velodyne/image_02/{frame:010d}.npz")
        assert depth.shape == left.shape
        v, u = np.nonzero(depth > 0)
        assert len(u) > 15000
        disparity = fx * baseline / depth[v, u]

        def photometric_error(factor):
            x = (u - factor * disparity).astype(np.float32)
            sampled = cv2.remap(right, x[None], v.astype(np.float32)[None], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)[0]
            inside = x >= 0
            return np.mean(np.abs(sampled[inside] - left[v[inside], u[inside]]))

        factors = np.linspace(0.7, 1.3, 25)
        errors = np.array([photometric_error(f) for f in factors])
        assert abs(factors[np.argmin(errors)] - 1.0) <= 0.05
        at_truth = photometric_error(1.0)
        assert at_truth < 0.8 * min(photometric_error(0.9), photometric_error(1.1))
        assert at_truth < 0.4 * photometric_error(0.0)
