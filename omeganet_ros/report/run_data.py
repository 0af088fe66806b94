"""Reading a replay back: input frames and the node's outputs by stamp, the trajectories, the scene metadata."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from omeganet_ros.data import rosbag_io

# Output topics (relative to the node's namespace) drawn in the mosaic and the video.
PANEL_TOPICS = {"depth": "depth/relative", "flow": "flow", "semantic": "semantic", "motion": "motion/mask",
                "instance": "instance"}
DIAGNOSTICS_TOPIC = "/diagnostics"


@dataclass
class FrameRecord:
    """One input frame and whatever the node answered for it (arrays at display size; None = no answer)."""

    stamp_ns: int
    image: np.ndarray                       # H×W×3 uint8 RGB
    outputs: dict = field(default_factory=dict)  # "depth" H×W float32, "flow" H×W×2, "semantic" H×W uint8, "motion" H×W uint8, "instance" H×W uint16

    @property
    def answered(self) -> bool:
        return bool(self.outputs)


def _display_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    if width <= max_width:
        return width, height
    scale = max_width / width
    return max_width, max(1, int(round(height * scale)))


def _shrink(array: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    if array.shape[1::-1] == size:
        return array
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(array, size, interpolation=interpolation)


def collect_frames(input_bag: str | Path, image_topic: str, output_bag: str | Path | None,
                   topics: dict[str, str] | None = None, max_width: int = 640) -> list[FrameRecord]:
    """Every input frame of ``image_topic`` with the node's outputs of the same header stamp.

    ``topics``: {"depth"|"flow"|"semantic"|"motion"|"instance": absolute output topic}
    (missing topics are left out). Images wider than ``max_width`` are shrunk
    for display (flow vectors are not rescaled: colours only show direction
    and relative magnitude).
    """
    frames: dict[int, FrameRecord] = {}
    size = None
    for _, record_ns, msgtype, msg in rosbag_io.iter_messages(input_bag, [image_topic]):
        stamp = rosbag_io.stamp_to_ns(msg.header.stamp) or record_ns
        if msgtype == "sensor_msgs/msg/CompressedImage":
            rgb = rosbag_io.compressed_to_rgb8(msg.format, msg.data)
        else:
            rgb = rosbag_io.image_to_rgb8(msg)
        size = size or _display_size(rgb.shape[1], rgb.shape[0], max_width)
        frames[stamp] = FrameRecord(stamp, _shrink(rgb, size, nearest=False))
    if output_bag is not None and frames:
        available = rosbag_io.list_topics(output_bag)
        wanted = {topic: kind for kind, topic in (topics or {}).items() if topic in available}
        if wanted:
            for topic, _, _, msg in rosbag_io.iter_messages(output_bag, list(wanted)):
                stamp = rosbag_io.stamp_to_ns(msg.header.stamp)
                record = frames.get(stamp)
                if record is None:
                    continue
                kind = wanted[topic]
                array = rosbag_io.image_to_numpy(msg)
                if kind == "depth":
                    array = array.astype(np.float32)
                record.outputs[kind] = _shrink(array, size, nearest=kind in ("semantic", "motion", "instance"))
    return [frames[s] for s in sorted(frames)]


@dataclass
class SceneInfo:
    """Per-frame facts the node put in its ``scene`` messages."""

    stamps: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    depth_is_metric: list[bool] = field(default_factory=list)
    direction: str | None = None          # "forward" (paper mode), "backward" (causal) or None (unknown)


def read_scene_info(output_bag: str | Path, scene_topic: str) -> SceneInfo:
    """Latency, engine time, metric flag and flow direction from the ``SceneUnderstanding`` messages.

    Returns an empty :class:`SceneInfo` when the bag has no such topic.
    """
    info = SceneInfo()
    if scene_topic not in rosbag_io.list_topics(output_bag):
        return info
    directions = set()
    for _, _, _, msg in rosbag_io.iter_messages(output_bag, [scene_topic]):
        info.stamps.append(rosbag_io.stamp_to_ns(msg.header.stamp))
        info.latency_ms.append(float(msg.latency_ms))
        info.engine_ms.append(float(msg.engine_ms))
        info.depth_is_metric.append(bool(msg.depth_is_metric))
        start, end = rosbag_io.stamp_to_ns(msg.ego_motion.stamp_from), rosbag_io.stamp_to_ns(msg.ego_motion.stamp_to)
        if end != start:
            directions.add("forward" if end > start else "backward")
    info.direction = directions.pop() if len(directions) == 1 else None
    return info


def read_outputs_absent(output_bag: str | Path) -> list[str] | None:
    """The outputs the node's model does not estimate, from the ``outputs_absent`` value of its recorded
    /diagnostics (the last one): e.g. ``["flow", "semantic", "motion", "camera_info"]`` for the Moreau et al.
    model, ``["instance"]`` for ΩNet. None when the bag holds no such value (diagnostics not recorded, an older
    node): then nothing is known to be absent."""
    if DIAGNOSTICS_TOPIC not in rosbag_io.list_topics(output_bag):
        return None
    found = None
    for _, _, _, msg in rosbag_io.iter_messages(output_bag, [DIAGNOSTICS_TOPIC]):
        for status in msg.status:
            for pair in status.values:
                if pair.key == "outputs_absent" and pair.value != "-":
                    found = pair.value
    return None if found is None else [name.strip() for name in found.split(",") if name.strip()]


def read_positions(bag: str | Path, topic: str) -> tuple[np.ndarray, np.ndarray]:
    """(stamps N int64 ns, camera positions N×3) of a pose topic (PoseStamped, Odometry, TransformStamped)."""
    from omeganet_ros.evaluate import inputs

    trajectory = inputs.trajectory(bag, topic)
    return np.asarray(trajectory.keys, np.int64), trajectory.poses[:, :3, 3].copy()
