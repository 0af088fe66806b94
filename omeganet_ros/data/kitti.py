"""KITTI readers: raw-data calibration, Velodyne scans → depth maps, OXTS → camera poses, depth PNGs.

Conventions follow the KITTI devkit, pykitti and monodepth2:

* ``read_calib_file`` parses ``key: values`` text files into float arrays.
* Rectified camera ``c`` (0…3): ``P_rect_0c`` 3×4 projects points of the
  rectified camera-0 frame; ``R_rect_00`` rotates camera 0 into it;
  ``T_cam0_velo`` (calib_velo_to_cam) maps Velodyne points into camera 0.
* :func:`velodyne_to_depth` is monodepth2's ``generate_depth_map`` (the
  ground truth of the Eigen split), including its MATLAB-inherited one-pixel
  shift (``round(u) − 1``) and keeping the nearest point when several land
  on one pixel; ``matlab_offset=False`` gives the plain projection.
* OXTS → poses: the Mercator projection of pykitti / the KITTI devkit, scale
  from the first frame's latitude; camera poses are
  ``T_w_imu @ inv(T_cam_imu)`` expressed relative to the first frame.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

EARTH_RADIUS = 6378137.0  # metres (WGS-84 semi-major axis, as the devkit)


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """``key: v1 v2 …`` lines → {key: float64 array}; non-numeric values (dates) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise OSError(f"calibration file not found: {path}")
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()], np.float64)
        except ValueError:
            continue
    return out


def _rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = rotation.reshape(3, 3)
    transform[:3, 3] = translation.reshape(3)
    return transform


def read_rigid_calib(path: str | Path) -> np.ndarray:
    """calib_velo_to_cam.txt or calib_imu_to_velo.txt (``R``, ``T``) → 4×4 transform."""
    calib = read_calib_file(path)
    if "R" not in calib or "T" not in calib or calib["R"].size != 9 or calib["T"].size != 3:
        raise ValueError(f"{path}: expected R (9 values) and T (3 values)")
    return _rigid(calib["R"], calib["T"])


def read_velo_to_cam(path: str | Path) -> np.ndarray:
    """calib_velo_to_cam.txt → 4×4 T_cam0_velo (Velodyne points → unrectified camera 0)."""
    return read_rigid_calib(path)


def read_imu_to_velo(path: str | Path) -> np.ndarray:
    """calib_imu_to_velo.txt → 4×4 T_velo_imu (IMU points → Velodyne)."""
    return read_rigid_calib(path)


class CamToCam:
    """calib_cam_to_cam.txt: rectified projections, rectifying rotation and image sizes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.raw = read_calib_file(path)
        if "R_rect_00" not in self.raw:
            raise ValueError(f"{path}: no R_rect_00; is this a calib_cam_to_cam.txt?")

    def _key(self, key: str) -> np.ndarray:
        if key not in self.raw:
            raise ValueError(f"{self.path}: missing {key}")
        return self.raw[key]

    def P_rect(self, cam: int) -> np.ndarray:
        """3×4 projection of rectified camera ``cam`` (from rectified camera-0 coordinates)."""
        return self._key(f"P_rect_0{cam}").reshape(3, 4)

    def R_rect_00(self) -> np.ndarray:
        """4×4 rotation taking unrectified camera-0 coordinates into the rectified frame."""
        return _rigid(self._key("R_rect_00"), np.zeros(3))

    def K(self, cam: int) -> np.ndarray:
        """3×3 intrinsics of rectified camera ``cam``."""
        return self.P_rect(cam)[:, :3].copy()

    def image_size(self, cam: int) -> tuple[int, int]:
        """(height, width) of rectified images of camera ``cam``."""
        width, height = self._key(f"S_rect_0{cam}")
        return int(height), int(width)

    def T_rect_cam(self, cam: int) -> np.ndarray:
        """4×4 transform rectified camera-0 → rectified camera ``cam`` (the baseline translation of P_rect)."""
        P = self.P_rect(cam)
        transform = np.eye(4)
        transform[:3, 3] = np.linalg.solve(P[:, :3], P[:, 3])
        return transform

    def baseline(self, cam_a: int = 2, cam_b: int = 3) -> float:
        """Horizontal distance (m) between rectified cameras (2 and 3 by default)."""
        return float(abs(self.T_rect_cam(cam_a)[0, 3] - self.T_rect_cam(cam_b)[0, 3]))


def load_velodyne_points(path: str | Path) -> np.ndarray:
    """Velodyne .bin (float32 x, y, z, reflectance) → N×4 float32; reflectance replaced by 1 (homogeneous)."""
    data = np.fromfile(str(path), dtype=np.float32)
    if data.size % 4:
        raise ValueError(f"{path}: size {data.size * 4} bytes is not a whole number of (x, y, z, r) float32 points")
    points = data.reshape(-1, 4).copy()
    points[:, 3] = 1.0
    return points


def velodyne_to_depth(points: np.ndarray, cam_to_cam: CamToCam, T_cam0_velo: np.ndarray, cam: int = 2,
                      matlab_offset: bool = True) -> np.ndarray:
    """Project N×4 (or N×3) Velodyne points into rectified camera ``cam``: H×W float32 depth (m), 0 = none."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] not in (3, 4):
        raise ValueError(f"Velodyne points must be N×3 or N×4, got {points.shape}")
    points = np.concatenate([points[:, :3], np.ones((len(points), 1))], axis=1)
    height, width = cam_to_cam.image_size(cam)
    P_velo_to_image = cam_to_cam.P_rect(cam) @ cam_to_cam.R_rect_00() @ T_cam0_velo
    points = points[points[:, 0] >= 0]  # in front of the scanner
    image = (P_velo_to_image @ points.T).T
    image[:, :2] /= image[:, 2:3]
    offset = 1.0 if matlab_offset else 0.0
    u = np.round(image[:, 0]) - offset
    v = np.round(image[:, 1]) - offset
    keep = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, z = u[keep].astype(np.int64), v[keep].astype(np.int64), image[keep, 2]
    depth = np.full(height * width, np.inf)
    np.minimum.at(depth, v * width + u, z)  # nearest point wins where several share a pixel
    depth[~np.isfinite(depth)] = 0.0
    depth[depth < 0] = 0.0
    return depth.reshape(height, width).astype(np.float32)


def generate_depth_map(calib_dir: str | Path, velo_path: str | Path, cam: int = 2,
                       matlab_offset: bool = True) -> np.ndarray:
    """Depth map of one Velodyne scan, calibration from ``calib_dir`` (the date folder of KITTI raw)."""
    calib_dir = Path(calib_dir)
    return velodyne_to_depth(load_velodyne_points(velo_path), CamToCam(calib_dir / "calib_cam_to_cam.txt"),
                             read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt"), cam, matlab_offset)


def read_depth_png(path: str | Path) -> np.ndarray:
    """KITTI depth-benchmark PNG (uint16, depth·256, 0 = none) → H×W float32 metres (0 = none)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise OSError(f"could not read depth PNG {path}")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path}: a KITTI depth PNG is single-channel 16-bit, got {raw.dtype} {raw.shape}")
    return raw.astype(np.float32) / 256.0


def write_depth_png(path: str | Path, depth: np.ndarray) -> None:
    """H×W depth (m; non-finite or ≤ 0 = none) → KITTI depth-benchmark PNG (resolution 1/256 m, ≤ 255 m)."""
    depth = np.asarray(depth, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    encoded = np.where(valid, np.round(depth * 256.0), 0)
    if encoded.max(initial=0) > 65535:
        raise ValueError(f"depth up to {depth[valid].max():.1f} m exceeds the KITTI PNG range (255 m)")
    encoded[valid & (encoded == 0)] = 1  # keep tiny depths valid
    if not cv2.imwrite(str(path), encoded.astype(np.uint16)):
        raise OSError(f"could not write depth PNG {path}")


def read_depth_file(path: str | Path) -> np.ndarray:
    """Any depth file → H×W float32 metres (≤ 0 or non-finite = none).

    .png (KITTI depth benchmark), .npy (H×W), .npz (key ``velodyne_depth``,
    ``depth`` or the only array).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return read_depth_png(path)
    if suffix == ".npy":
        depth = np.load(path)
    elif suffix == ".npz":
        with np.load(path) as archive:
            for key in ("velodyne_depth", "depth"):
                if key in archive.files:
                    depth = archive[key]
                    break
            else:
                if len(archive.files) != 1:
                    raise ValueError(f"{path}: no 'velodyne_depth' or 'depth' array among {archive.files}")
                depth = archive[archive.files[0]]
    else:
        raise ValueError(f"{path}: unknown depth file type {suffix!r} (expected .png, .npy or .npz)")
    depth = np.asarray(depth, np.float32).squeeze()
    if depth.ndim != 2:
        raise ValueError(f"{path}: depth must be H×W, got {depth.shape}")
    return depth


# --- OXTS ---------------------------------------------------------------------------------

def read_oxts(path: str | Path) -> np.ndarray:
    """One OXTS text record → 30 float64 values (lat, lon, alt, roll, pitch, yaw, …)."""
    values = Path(path).read_text().split()
    if len(values) < 6:
        raise ValueError(f"{path}: an OXTS record has 30 values, got {len(values)}")
    return np.array(values, np.float64)


def oxts_to_imu_poses(records: np.ndarray) -> np.ndarray:
    """N×(≥6) OXTS records → N×4×4 IMU-to-world poses (Mercator metres, scale from the first latitude)."""
    records = np.atleast_2d(np.asarray(records, np.float64))
    if records.shape[1] < 6:
        raise ValueError(f"OXTS records need at least 6 values (lat, lon, alt, roll, pitch, yaw), got {records.shape}")
    lat, lon, alt, roll, pitch, yaw = records[:, :6].T
    scale = np.cos(lat[0] * np.pi / 180.0)
    tx = scale * lon * np.pi * EARTH_RADIUS / 180.0
    ty = scale * EARTH_RADIUS * np.log(np.tan((90.0 + lat) * np.pi / 360.0))
    poses = np.tile(np.eye(4), (len(records), 1, 1))
    for i in range(len(records)):
        cr, sr = np.cos(roll[i]), np.sin(roll[i])
        cp, sp = np.cos(pitch[i]), np.sin(pitch[i])
        cy, sy = np.cos(yaw[i]), np.sin(yaw[i])
        rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        poses[i, :3, :3] = rz @ ry @ rx
        poses[i, :3, 3] = (tx[i], ty[i], alt[i])
    return poses


def T_cam_imu(calib_dir: str | Path, cam: int = 2) -> np.ndarray:
    """4×4 transform IMU → rectified camera ``cam`` from the three calibration files of ``calib_dir``."""
    calib_dir = Path(calib_dir)
    cam_to_cam = CamToCam(calib_dir / "calib_cam_to_cam.txt")
    T_velo_imu = read_imu_to_velo(calib_dir / "calib_imu_to_velo.txt")
    T_cam0_velo = read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt")
    return cam_to_cam.T_rect_cam(cam) @ cam_to_cam.R_rect_00() @ T_cam0_velo @ T_velo_imu


def oxts_to_camera_poses(records: np.ndarray, T_cam_from_imu: np.ndarray) -> np.ndarray:
    """N OXTS records → N×4×4 camera-to-world poses relative to the first frame (first = identity)."""
    imu_poses = oxts_to_imu_poses(records)
    cam_poses = imu_poses @ np.linalg.inv(T_cam_from_imu)
    return np.linalg.inv(cam_poses[0]) @ cam_poses


def read_drive_camera_poses(drive_dir: str | Path, cam: int = 2) -> np.ndarray:
    """Camera poses of a KITTI raw drive (``…/DATE/DATE_drive_XXXX_sync``) from its OXTS and calibration."""
    drive_dir = Path(drive_dir)
    files = sorted((drive_dir / "oxts" / "data").glob("*.txt"))
    if not files:
        raise OSError(f"no OXTS records in {drive_dir / 'oxts' / 'data'}")
    records = np.stack([read_oxts(f) for f in files])
    return oxts_to_camera_poses(records, T_cam_imu(drive_dir.parent, cam))
