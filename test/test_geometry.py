"""Pinhole geometry: rigid flow, pose vector ↔ matrix, intrinsics under resize."""
import math

import numpy as np
import pytest
import torch

from omeganet_ros import geometry


def _K(fx=100.0, fy=110.0, cx=63.5, cy=31.5):
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _rot_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_rigid_flow_matches_projected_3d_points():
    """Rigid flow equals the displacement of each pixel's 3D point projected in the target camera (numpy reference)."""
    h, w = 8, 12
    K = _K(cx=5.5, cy=3.5, fx=10.0, fy=11.0)
    rng = np.random.default_rng(0)
    depth = rng.uniform(2.0, 20.0, size=(h, w))
    # Camera motion source→target: the target camera sits 0.5 m forward, 0.1 m right, yawed 3°.
    motion = np.eye(4)
    motion[:3, :3] = _rot_y(math.radians(3.0))
    motion[:3, 3] = [0.1, 0.0, 0.5]
    Kn = K.numpy()
    expected = np.zeros((h, w, 2))
    for v in range(h):
        for u in range(w):
            X_s = depth[v, u] * np.linalg.inv(Kn) @ np.array([u, v, 1.0])
            X_t = np.linalg.inv(motion) @ np.append(X_s, 1.0)  # point in the target camera
            p = Kn @ X_t[:3]
            expected[v, u] = p[:2] / p[2] - [u, v]
    flow = geometry.rigid_flow(torch.from_numpy(depth)[None, None], K[None], torch.from_numpy(motion)[None])
    np.testing.assert_allclose(flow[0].permute(1, 2, 0).numpy(), expected, atol=1e-9)


def test_rigid_flow_pure_forward_motion_expands_from_principal_point():
    h, w = 9, 9
    K = _K(fx=10.0, fy=10.0, cx=4.0, cy=4.0)
    depth = torch.full((1, 1, h, w), 10.0, dtype=torch.float64)
    motion = torch.eye(4, dtype=torch.float64)[None]
    motion[0, 2, 3] = 5.0  # half-way to the plane: image coordinates relative to the centre double
    flow = geometry.rigid_flow(depth, K[None], motion)
    grid = geometry.pixel_grid(h, w, dtype=torch.float64)[:2]
    expected = grid - torch.tensor([4.0, 4.0], dtype=torch.float64).view(2, 1, 1)
    torch.testing.assert_close(flow[0], expected)
    assert flow[0, :, 4, 4].abs().max() < 1e-12


def test_rigid_flow_identity_motion_is_zero():
    depth = torch.rand(2, 1, 6, 7) + 1.0
    K = _K(cx=3.0, cy=2.5).float().expand(2, 3, 3)
    flow = geometry.rigid_flow(depth, K, torch.eye(4).expand(2, 4, 4))
    assert flow.abs().max() < 1e-4


def test_pose_vector_matrix_round_trip():
    torch.manual_seed(0)
    vec = torch.randn(5, 6, dtype=torch.float64) * 0.3
    mat = geometry.pose_vec_to_mat(vec)
    # rotation part is orthonormal with determinant +1
    rot = mat[:, :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(geometry.mat_to_pose_vec(mat), vec)
    torch.testing.assert_close(geometry.invert_rigid(mat) @ mat, torch.eye(4, dtype=torch.float64).expand(5, 4, 4))


def test_pose_vector_rotation_about_y():
    vec = torch.tensor([[1.0, 2.0, 3.0, 0.0, 0.2, 0.0]], dtype=torch.float64)
    mat = geometry.pose_vec_to_mat(vec)[0].numpy()
    np.testing.assert_allclose(mat[:3, :3], _rot_y(0.2), atol=1e-12)
    np.testing.assert_allclose(mat[:3, 3], [1.0, 2.0, 3.0])


def test_pose_vector_rejects_wrong_length():
    with pytest.raises(ValueError, match="6 values"):
        geometry.pose_vec_to_mat(torch.zeros(2, 5))


def test_intrinsics_under_resize_follow_pixel_centres():
    """A 3D point projects to the same place, in resized-pixel coordinates, as cv2.resize moves the pixel there."""
    K = _K(fx=200.0, fy=190.0, cx=319.5, cy=95.5)
    K2 = geometry.scale_intrinsics(K, 0.5, 0.25)
    X = torch.tensor([0.7, -0.3, 4.0], dtype=torch.float64)
    p = (K @ X)[:2] / X[2]
    p2 = (K2 @ X)[:2] / X[2]
    expected = (p + 0.5) * torch.tensor([0.5, 0.25], dtype=torch.float64) - 0.5
    torch.testing.assert_close(p2, expected)
    assert K2[0, 0] == 100.0 and K2[1, 1] == 47.5
    # the image centre stays the image centre: 640 px wide → 320, centre 319.5 → 159.5
    assert K2[0, 2] == pytest.approx(159.5)
    # scaling back restores K
    torch.testing.assert_close(geometry.scale_intrinsics(K2, 2.0, 4.0), K)


def test_resize_flow_scales_values():
    flow = torch.ones(1, 2, 4, 8)
    flow[:, 1] = 2.0
    out = geometry.resize_flow(flow, 8, 32)
    assert out.shape == (1, 2, 8, 32)
    torch.testing.assert_close(out[:, 0], torch.full((1, 8, 32), 4.0))
    torch.testing.assert_close(out[:, 1], torch.full((1, 8, 32), 4.0))


def test_disp_to_depth_range():
    depth = geometry.disp_to_depth(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(depth, torch.tensor([100.0, 0.1]))


def test_euler_pose_vectors_are_the_authors_rx_ry_rz():
    # The authors' CameraNet (SfMLearner's pose_vec2mat): R = Rx·Ry·Rz, i.e. intrinsic x-y-z Euler angles;
    # the matrix maps target-camera points into the source camera (our camera motion source→target).
    from scipy.spatial.transform import Rotation

    vec = torch.tensor([[0.1, -0.2, 0.3, 0.05, -0.4, 0.7], [0.0, 0.0, 0.0, 4.0, 0.0, 0.0]], dtype=torch.float64)
    mat = geometry.euler_pose_vec_to_mat(vec)
    expected = Rotation.from_euler("XYZ", [0.05, -0.4, 0.7]).as_matrix()
    np.testing.assert_allclose(mat[0, :3, :3].numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(mat[0, :3, 3].numpy(), [0.1, -0.2, 0.3])
    np.testing.assert_allclose(mat[0, 3].numpy(), [0, 0, 0, 1])
    np.testing.assert_allclose(mat[1, :3, :3].numpy(), Rotation.from_euler("X", np.pi).as_matrix(), atol=1e-12)  # clipped to π
