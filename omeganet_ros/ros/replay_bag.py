"""The input side of ``omeganet-replay``: a ROS 2 bag read with rosbags as raw CDR messages, grouped into frames.

No rclpy here. A *frame* is one message of the image topic plus the other
played messages (camera_info) with the same or an earlier record time since the
previous image, so camera_info always goes out just before its image. Raw CDR
bytes are published as they are (rclpy publishes serialized messages), and the
header stamp is read and, for throughput trials, rewritten in place.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from omeganet_ros.data import rosbag_io

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


class BagError(OSError):
    """The bag cannot be read (missing, truncated, corrupt); the message names the file."""


@dataclass
class RawMessage:
    topic: str
    msgtype: str
    record_ns: int      # the bag's record time
    data: bytes         # CDR with its 4-byte encapsulation header


@dataclass
class Frame:
    """One image and the messages that go out before it."""

    index: int
    image: RawMessage
    stamp_ns: int                        # the image's header stamp (record time when it has none)
    before: list[RawMessage] = field(default_factory=list)

    @property
    def messages(self) -> list[RawMessage]:
        return [*self.before, self.image]


def header_stamp_ns(data: bytes) -> int:
    """Header stamp (ns) of a CDR-serialized message whose first field is std_msgs/Header."""
    if len(data) < 12:
        raise ValueError(f"serialized message of {len(data)} bytes is too short to hold a header")
    fmt = "<iI" if data[1] & 1 else ">iI"
    sec, nanosec = struct.unpack_from(fmt, data, 4)
    return sec * 1_000_000_000 + nanosec


def with_header_stamp(data: bytes, stamp_ns: int) -> bytes:
    """A copy of a CDR message (header first) with its header stamp replaced."""
    if stamp_ns < 0:
        raise ValueError(f"negative stamp {stamp_ns}")
    fmt = "<iI" if data[1] & 1 else ">iI"
    out = bytearray(data)
    struct.pack_into(fmt, out, 4, stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    return bytes(out)


def _open_reader(path: Path):
    from rosbags.highlevel import AnyReader

    if not path.exists():
        suffixless = path.with_suffix("")
        if path.suffix.lower() in (".mcap", ".db3", ".sqlite3") and suffixless.is_dir():
            path = suffixless
        else:
            raise FileNotFoundError(f"bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=rosbag_io.default_typestore())
        reader.open()
    except Exception as err:  # rosbags raises its own error types for every kind of damage
        raise BagError(f"cannot read bag {path}: it is truncated, corrupt or not a ROS 2 bag ({err})") from err
    return reader, path


class ReplayBag:
    """A bag opened for replay: checks the topics and types, then yields :class:`Frame` s.

    ``image_topic``: sensor_msgs/Image or CompressedImage. ``camera_info_topic``:
    a CameraInfo topic, "auto" (the one whose name is the image topic's
    namespace + ``camera_info``, e.g. /camera/camera_info for /camera/image_raw
    or /camera/image_raw/compressed, when present) or
    None. Raises ``FileNotFoundError``, :class:`BagError` (unreadable or
    truncated) or ``ValueError`` (a missing topic, an unknown or wrong message
    type) naming the bag.
    """

    def __init__(self, path: str | Path, image_topic: str = "/camera/image_raw",
                 camera_info_topic: str | None = "auto", max_frames: int | None = None):
        self.requested_path = Path(path)
        reader, self.path = _open_reader(self.requested_path)
        try:
            self.topics = {c.topic: c.msgtype for c in reader.connections}
            self.counts: dict[str, int] = {}
            for c in reader.connections:
                self.counts[c.topic] = self.counts.get(c.topic, 0) + int(c.msgcount)
            self.duration_ns = int(reader.duration) if self.topics else 0
            self._known_types = set(reader.typestore.types)
        finally:
            reader.close()
        if image_topic not in self.topics:
            raise ValueError(f"bag {self.path} has no image topic {image_topic!r}; its topics: "
                             + ", ".join(f"{t} ({m})" for t, m in sorted(self.topics.items())))
        if self.topics[image_topic] not in IMAGE_TYPES:
            raise ValueError(f"bag {self.path}: topic {image_topic!r} carries {self.topics[image_topic]}, "
                             f"expected one of {IMAGE_TYPES}")
        if camera_info_topic == "auto":
            base = image_topic[: -len("/compressed")] if image_topic.endswith("/compressed") else image_topic
            guess = base.rsplit("/", 1)[0] + "/camera_info"
            camera_info_topic = guess if self.topics.get(guess) == CAMERA_INFO_TYPE else None
        elif camera_info_topic is not None:
            if camera_info_topic not in self.topics:
                raise ValueError(f"bag {self.path} has no camera_info topic {camera_info_topic!r}; its topics: "
                                 f"{sorted(self.topics)}")
            if self.topics[camera_info_topic] != CAMERA_INFO_TYPE:
                raise ValueError(f"bag {self.path}: topic {camera_info_topic!r} carries "
                                 f"{self.topics[camera_info_topic]}, expected {CAMERA_INFO_TYPE}")
        self.image_topic = image_topic
        self.camera_info_topic = camera_info_topic
        for topic in self.play_topics:
            if self.topics[topic] not in self._known_types:
                raise ValueError(f"bag {self.path}: topic {topic!r} has unknown message type {self.topics[topic]!r}")
        self.max_frames = max_frames

    @property
    def play_topics(self) -> list[str]:
        return [self.image_topic] + ([self.camera_info_topic] if self.camera_info_topic else [])

    @property
    def frame_count(self) -> int:
        count = self.counts.get(self.image_topic, 0)
        return min(count, self.max_frames) if self.max_frames else count

    def frames(self) -> Iterator[Frame]:
        """The frames in record order. A bag that breaks while being read raises :class:`BagError`."""
        reader, _ = _open_reader(self.path)
        pending: list[RawMessage] = []
        held: Frame | None = None   # the last image, until no more messages share its record time
        index = 0
        try:
            connections = [c for c in reader.connections if c.topic in self.play_topics]
            iterator = reader.messages(connections=connections)
            while True:
                try:
                    connection, record_ns, data = next(iterator)
                except StopIteration:
                    break
                except Exception as err:
                    raise BagError(f"bag {self.path} is truncated or corrupt: reading failed after {index} "
                                   f"frames ({err})") from err
                message = RawMessage(connection.topic, connection.msgtype, int(record_ns), bytes(data))
                if held is not None and message.record_ns > held.image.record_ns:
                    yield held
                    held = None
                    if self.max_frames and index >= self.max_frames:
                        return
                if connection.topic != self.image_topic:
                    # camera_info recorded at the same time as its image but after it still goes first
                    (held.before if held is not None else pending).append(message)
                    continue
                if held is not None:
                    yield held
                    if self.max_frames and index >= self.max_frames:
                        return
                try:
                    stamp = header_stamp_ns(message.data) or message.record_ns
                except ValueError as err:
                    raise BagError(f"bag {self.path}: image {index} on {self.image_topic} is damaged ({err})") from err
                held = Frame(index, message, stamp, pending)
                pending = []
                index += 1
            if held is not None:
                yield held
        finally:
            reader.close()
