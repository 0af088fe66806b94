"""Write a synthetic sequence to the sequence-folder layout and, optionally, to a ROS 2 bag.

Bag topics (all stamped with the frame's stamp; the bag's receive time equals it):

==========================  ==============================  ============================================
``/camera/image_raw``       sensor_msgs/Image rgb8          frame_id ``camera_optical_frame``
``/camera/camera_info``     sensor_msgs/CameraInfo          K, R = I, P = [K|0], no distortion
``/gt/depth``               sensor_msgs/Image 32FC1         metres, +inf for sky (REP 118)
``/gt/flow``                sensor_msgs/Image 32FC2         forward flow t→t+1, pixels, NaN undefined
``/gt/semantic``            sensor_msgs/Image mono8         Cityscapes trainIds
``/gt/instance``            sensor_msgs/Image 16UC1         instance ids, 0 = none
``/gt/motion``              sensor_msgs/Image mono8         1 = moving in the world
``/gt/pose``                geometry_msgs/PoseStamped       camera-to-world, frame_id ``world``
==========================  ==============================  ============================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..data.layout import SequenceFolder
from ..data.rosbag_io import BagWriter
from .world import SynthConfig, SyntheticSequence

CAMERA_FRAME_ID = "camera_optical_frame"
WORLD_FRAME_ID = "world"
TOPICS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "depth": "/gt/depth",
    "flow": "/gt/flow",
    "semantic": "/gt/semantic",
    "instance": "/gt/instance",
    "motion": "/gt/motion",
    "pose": "/gt/pose",
}


def write_frame_to_bag(bag: BagWriter, frame: dict) -> None:
    """All topics of one frame dict (as yielded by :class:`SyntheticSequence`)."""
    stamp = frame["stamp_ns"]
    h, w = frame["depth"].shape
    bag.write_image(TOPICS["image"], stamp, frame["image"], "rgb8", CAMERA_FRAME_ID)
    bag.write_camera_info(TOPICS["camera_info"], stamp, frame["K"], w, h, CAMERA_FRAME_ID)
    bag.write_image(TOPICS["depth"], stamp, frame["depth"].astype(np.float32), "32FC1", CAMERA_FRAME_ID)
    bag.write_image(TOPICS["flow"], stamp, frame["flow_fw"].astype(np.float32), "32FC2", CAMERA_FRAME_ID)
    bag.write_image(TOPICS["semantic"], stamp, frame["semantic"], "mono8", CAMERA_FRAME_ID)
    bag.write_image(TOPICS["instance"], stamp, frame["instance"].astype(np.uint16), "16UC1", CAMERA_FRAME_ID)
    bag.write_image(TOPICS["motion"], stamp, frame["motion"], "mono8", CAMERA_FRAME_ID)
    bag.write_pose(TOPICS["pose"], stamp, frame["pose"], WORLD_FRAME_ID)


def write_sequence(sequence: SyntheticSequence, out_dir: str | Path | None, bag: str | Path | None = None,
                   bag_storage: str | None = None, progress: bool = False, overwrite: bool = False) -> Path | None:
    """Render every frame of ``sequence`` into ``out_dir`` (sequence-folder layout) and/or ``bag``.

    ``bag``: a bag directory, or a path ending in .mcap / .db3 (see :class:`BagWriter`); it must not exist.
    Raises ``FileExistsError`` if ``out_dir`` already holds a sequence and ``overwrite`` is False.
    """
    if out_dir is None and bag is None:
        raise ValueError("nothing to write: give an output folder, a bag, or both")
    folder = None
    if out_dir is not None:
        folder = SequenceFolder(out_dir)
        if folder.has("images") and not overwrite:
            raise FileExistsError(f"{out_dir} already holds a sequence (images/); choose another folder")
    frames: Iterable[dict] = sequence
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=len(sequence), desc="omeganet-synth", unit="frame")
    poses = []
    bag_writer = BagWriter(bag, storage=bag_storage) if bag is not None else None
    try:
        if bag_writer is not None:
            bag_writer.open()
        for frame in frames:
            if folder is not None:
                folder.write(frame["index"], images=frame["image"], depth=frame["depth"], flow_fw=frame["flow_fw"],
                             flow_bw=frame["flow_bw"], semantic=frame["semantic"], instance=frame["instance"],
                             motion=frame["motion"])
            if bag_writer is not None:
                write_frame_to_bag(bag_writer, frame)
            poses.append(frame["pose"])
    finally:
        if bag_writer is not None:
            bag_writer.close()
    if folder is not None:
        folder.write_poses(np.stack(poses))
        folder.write_intrinsics(sequence.K)
        meta = sequence.meta()
        if bag_writer is not None:
            meta["bag"] = {"path": str(bag_writer.path), "storage": bag_writer.storage, "topics": TOPICS}
        folder.write_meta(meta)
        return folder.root
    return None


def generate_sequence(out_dir: str | Path | None, frames: int = 100, seed: int = 0, size: tuple[int, int] = (640, 192),
                      bag: str | Path | None = None, fps: float = 10.0, progress: bool = False,
                      overwrite: bool = False, bag_storage: str | None = None, **options) -> Path | None:
    """Generate a sequence with ground truth into ``out_dir`` (and ``bag``); ``options``: :class:`SynthConfig` fields."""
    config = SynthConfig(frames=frames, seed=seed, width=int(size[0]), height=int(size[1]), fps=fps, **options)
    return write_sequence(SyntheticSequence(config), out_dir, bag=bag, bag_storage=bag_storage, progress=progress,
                          overwrite=overwrite)
