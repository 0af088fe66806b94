"""Small bags for the replay and report tests: a camera sequence with ground truth, and fake node outputs."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from omeganet_ros.data.rosbag_io import BagWriter, rotation_to_quaternion

WIDTH, HEIGHT = 192, 64
FPS = 10.0
T0_NS = 1_700_000_000_000_000_000
K = np.array([[110.0, 0.0, 95.5], [0.0, 110.0, 31.5], [0.0, 0.0, 1.0]])


def stamp(i: int) -> int:
    return T0_NS + int(round(i * 1e9 / FPS))


def gt_pose(i: int) -> np.ndarray:
    """Camera-to-world: driving forward along z at 1 m per frame while turning slowly."""
    yaw = 0.02 * i
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
    pose[:3, 3] = [0.3 * np.sin(0.1 * i), 0.0, 1.0 * i]
    return pose


def gt_arrays(i: int, rng: np.random.Generator) -> dict:
    depth = np.linspace(4.0, 40.0, HEIGHT, dtype=np.float32)[::-1, None].repeat(WIDTH, 1)
    depth = depth * (1.0 + 0.1 * rng.random((HEIGHT, WIDTH), dtype=np.float32))
    flow = np.stack([np.full((HEIGHT, WIDTH), 1.5), np.full((HEIGHT, WIDTH), -0.5)], -1).astype(np.float32)
    semantic = np.zeros((HEIGHT, WIDTH), np.uint8)
    semantic[: HEIGHT // 3] = 10   # sky
    semantic[HEIGHT // 3: HEIGHT // 2] = 2   # building
    motion = np.zeros((HEIGHT, WIDTH), np.uint8)
    motion[HEIGHT // 2:, (5 * i) % WIDTH: (5 * i) % WIDTH + 20] = 1
    semantic[motion == 1] = 13  # car
    # Instance ids as the synthetic world numbers them: two touching cars (things) and a building that the
    # instance protocol leaves out (not a thing class).
    instance = np.zeros((HEIGHT, WIDTH), np.uint16)
    instance[HEIGHT // 3: HEIGHT // 2, :40] = 9
    instance[motion == 1] = 5
    instance[(motion == 1) & (np.arange(HEIGHT)[:, None] >= 3 * HEIGHT // 4)] = 6
    return {"depth": depth, "flow": flow, "semantic": semantic, "motion": motion, "instance": instance}


def write_camera_bag(path: Path, frames: int = 10, gt: bool = True, storage: str = "mcap", seed: int = 0,
                     compressed: bool = False) -> Path:
    """A bag like omeganet-synth writes: /camera/image_raw (rgb8), /camera/camera_info, and /gt/* when ``gt``.

    ``compressed``: the images are sensor_msgs/CompressedImage (JPEG) on /camera/image_raw/compressed instead.
    """
    rng = np.random.default_rng(seed)
    with BagWriter(path, storage=storage) as bag:
        for i in range(frames):
            t = stamp(i)
            image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            image[: HEIGHT // 3] = (120, 160, 220)
            if compressed:
                ok, jpeg = cv2.imencode(".jpg", image[..., ::-1])
                types = bag.typestore.types
                msg = types["sensor_msgs/msg/CompressedImage"](header=bag._header(t, "camera_optical_frame"),
                                                               format="jpeg", data=jpeg.reshape(-1))
                bag.write("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", msg, t)
            else:
                bag.write_image("/camera/image_raw", t, image, "rgb8", "camera_optical_frame")
            bag.write_camera_info("/camera/camera_info", t, K, WIDTH, HEIGHT, "camera_optical_frame")
            if gt:
                arrays = gt_arrays(i, rng)
                bag.write_image("/gt/depth", t, arrays["depth"], "32FC1", "camera_optical_frame")
                bag.write_image("/gt/flow", t, arrays["flow"], "32FC2", "camera_optical_frame")
                bag.write_image("/gt/semantic", t, arrays["semantic"], "mono8", "camera_optical_frame")
                bag.write_image("/gt/motion", t, arrays["motion"], "mono8", "camera_optical_frame")
                bag.write_image("/gt/instance", t, arrays["instance"], "16UC1", "camera_optical_frame")
                bag.write_pose("/gt/pose", t, gt_pose(i), "world")
    return bag.path


def _odometry(bag: BagWriter, t: int, pose: np.ndarray):
    types = bag.typestore.types
    x, y, z, w = rotation_to_quaternion(pose[:3, :3])
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9),
                                          frame_id="odom")
    pose_msg = types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=float(pose[0, 3]), y=float(pose[1, 3]), z=float(pose[2, 3])),
        orientation=types["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w)))
    cov = np.zeros(36)
    twist = types["geometry_msgs/msg/Twist"](linear=types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                             angular=types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0))
    return types["nav_msgs/msg/Odometry"](
        header=header, child_frame_id="camera_optical_frame",
        pose=types["geometry_msgs/msg/PoseWithCovariance"](pose=pose_msg, covariance=cov),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=cov))


def _answered_frames(frames: int, skip: tuple[int, ...]):
    """(index, stamp, ground-truth arrays) of every frame but ``skip``, drawn as write_camera_bag draws them."""
    gt_rng = np.random.default_rng(0)
    for i in range(frames):
        gt_rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)  # keep the ground-truth stream in step
        arrays = gt_arrays(i, gt_rng)
        if i not in skip:
            yield i, stamp(i), arrays


def write_prediction_bag(path: Path, frames: int = 10, skip: tuple[int, ...] = (0, 9), seed: int = 1) -> Path:
    """Outputs as the node records them (depth, flow, semantic, motion/mask, odometry) for every frame but ``skip``:
    the ground truth perturbed with noise, relative depth (×0.1), drifting poses."""
    rng = np.random.default_rng(seed)
    with BagWriter(path) as bag:
        for i, t, arrays in _answered_frames(frames, skip):
            depth = arrays["depth"] * 0.1 * rng.uniform(0.8, 1.2, (HEIGHT, WIDTH)).astype(np.float32)
            flow = arrays["flow"] + rng.normal(0, 0.8, arrays["flow"].shape).astype(np.float32)
            semantic = arrays["semantic"].copy()
            semantic[rng.random((HEIGHT, WIDTH)) < 0.2] = 0
            mask = (arrays["motion"] * 255).astype(np.uint8)
            mask[:, :10] = 255
            pose = gt_pose(i)
            pose[:3, 3] = pose[:3, 3] * 0.5 + rng.normal(0, 0.05, 3)
            bag.write_image("/depth/relative", t, depth, "32FC1", "camera_optical_frame")
            bag.write_image("/flow", t, flow, "32FC2", "camera_optical_frame")
            bag.write_image("/semantic", t, semantic, "mono8", "camera_optical_frame")
            bag.write_image("/motion/mask", t, mask, "mono8", "camera_optical_frame")
            bag.write("/odometry", "nav_msgs/msg/Odometry", _odometry(bag, t, pose), t)
    return bag.path


MOREAU_ABSENT = "flow, semantic, motion, camera_info"  # the node's outputs_absent for the Moreau et al. model


def _diagnostics(bag: BagWriter, t: int, outputs_absent: str):
    types = bag.typestore.types
    status = types["diagnostic_msgs/msg/DiagnosticStatus"](
        level=0, name="omeganet_node: processing", message="running", hardware_id="cpu",
        values=[types["diagnostic_msgs/msg/KeyValue"](key="outputs_absent", value=outputs_absent)])
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9),
                                          frame_id="")
    return types["diagnostic_msgs/msg/DiagnosticArray"](header=header, status=[status])


def write_moreau_prediction_bag(path: Path, frames: int = 10, skip: tuple[int, ...] = (0, 9), seed: int = 2) -> Path:
    """Outputs as the node records them with a Moreau et al. checkpoint: depth/relative, instance (mono16), odometry
    and /diagnostics saying what the model does not estimate; no flow, semantic or motion topics. The instances
    are the true cars with the first frames' two touching cars merged into one (a real, imperfect answer)."""
    rng = np.random.default_rng(seed)
    with BagWriter(path) as bag:
        for i, t, arrays in _answered_frames(frames, skip):
            depth = arrays["depth"] * 0.1 * rng.uniform(0.8, 1.2, (HEIGHT, WIDTH)).astype(np.float32)
            cars = np.isin(arrays["instance"], (5, 6))
            instance = np.where(cars, arrays["instance"] - 4, 0).astype(np.uint16)  # ids 1, 2
            if i < 4:
                instance[cars] = 1
            pose = gt_pose(i)
            pose[:3, 3] = pose[:3, 3] * 0.5 + rng.normal(0, 0.05, 3)
            bag.write_image("/depth/relative", t, depth, "32FC1", "camera_optical_frame")
            bag.write_image("/instance", t, instance, "mono16", "camera_optical_frame")
            bag.write("/odometry", "nav_msgs/msg/Odometry", _odometry(bag, t, pose), t)
            bag.write("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", _diagnostics(bag, t, MOREAU_ABSENT), t)
    return bag.path
