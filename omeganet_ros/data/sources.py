"""Frame sources: image folders, video files and ROS 2 bags as one stream of RGB frames.

Each source yields ``(index, stamp, frame)``: ``index`` counts the frames
yielded (0, 1, …), ``stamp`` is in seconds, ``frame`` is H×W×3 uint8 RGB.
Frames that cannot be read or decoded are skipped and counted in
``source.skipped`` (with the reasons in ``source.errors``): one bad frame does
not end a run.

* :class:`ImageFolderSource`: still images (:data:`IMAGE_SUFFIXES`) sorted by
  name; stamps are ``index / rate`` (the folder carries no time). An image whose
  header announces more than ``max_pixels`` is skipped before it is decoded.
* :class:`VideoSource`: OpenCV ``VideoCapture``, PyAV when OpenCV cannot open
  the file; stamps from the container's timestamps.
* :class:`RosbagSource`: one topic of a ROS 2 bag (sqlite3 or mcap) with
  ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` messages; stamps
  from the message headers (the record time where a header stamp is zero).

:func:`open_source` picks the right one from the path.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from . import rosbag_io

# Every still-image format OpenCV reads (PPM/PGM: KITTI odometry tools, FlyingChairs; BMP, TIFF, WebP).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv")
BAG_SUFFIXES = (".db3", ".mcap")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")

Frame = tuple[int, float, np.ndarray]


class FrameSource:
    """Base class: iterate to get ``(index, stamp_seconds, RGB uint8 H×W×3)``."""

    def __init__(self, path):
        self.path = Path(path)
        self.skipped = 0
        self.errors: list[str] = []

    def _skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.errors) < 100:
            self.errors.append(reason)

    def __len__(self) -> int:  # best estimate, for progress bars
        return 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


def _to_rgb(image: np.ndarray, order: str = "bgr") -> np.ndarray:
    """Grey, BGR(A) or RGB(A) image, uint8 or uint16 → H×W×3 uint8 RGB."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"unsupported image shape {image.shape}")
    image = image[..., :3]
    return np.ascontiguousarray(image[..., ::-1] if order == "bgr" else image)


class ImageFolderSource(FrameSource):
    """Images of a folder sorted by file name; stamp = index / ``rate`` seconds."""

    def __init__(self, path, rate: float = 10.0, max_pixels: int | None = rosbag_io.MAX_INPUT_PIXELS):
        super().__init__(path)
        self.max_pixels = max_pixels
        if not self.path.is_dir():
            raise OSError(f"image folder {self.path} does not exist")
        if rate <= 0:
            raise ValueError(f"frame rate must be positive, got {rate}")
        self.rate = rate
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise OSError(f"image folder {self.path} holds no {'/'.join(IMAGE_SUFFIXES)} images")

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for file in self.files:
            try:
                rosbag_io.check_input_pixels(rosbag_io.encoded_image_size(file), self.max_pixels, str(file))
            except ValueError as exc:
                self._skip(str(exc))
                continue
            image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
            if image is None:
                self._skip(f"{file}: cannot be decoded")
                continue
            try:
                rgb = _to_rgb(image, "bgr")
            except ValueError as exc:
                self._skip(f"{file}: {exc}")
                continue
            yield index, index / self.rate, rgb
            index += 1


class VideoSource(FrameSource):
    """Frames of a video file; OpenCV first, PyAV when OpenCV cannot open it."""

    def __init__(self, path, backend: str = "auto"):
        super().__init__(path)
        if not self.path.is_file():
            raise OSError(f"video file {self.path} does not exist")
        if backend not in ("auto", "opencv", "pyav"):
            raise ValueError(f"unknown video backend {backend!r}")
        self.backend = backend
        self._count = 0
        if backend in ("auto", "opencv"):
            cap = cv2.VideoCapture(str(self.path))
            if cap.isOpened():
                self._count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
                self.backend = "opencv"
            elif backend == "opencv":
                raise OSError(f"video file {self.path}: OpenCV cannot open it")
            cap.release()
        if self.backend != "opencv":
            self._open_pyav()  # raises a clear OSError if PyAV cannot open it either
            self.backend = "pyav"

    def _open_pyav(self):
        try:
            import av
        except ImportError as exc:
            raise OSError(f"video file {self.path}: OpenCV cannot open it and PyAV is not installed") from exc
        try:
            container = av.open(str(self.path))
        except Exception as exc:  # av.error.* have no common public base across versions
            raise OSError(f"video file {self.path}: cannot be opened ({exc})") from exc
        if not container.streams.video:
            container.close()
            raise OSError(f"video file {self.path} has no video stream")
        self._count = container.streams.video[0].frames or self._count
        return container

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Frame]:
        yield from (self._iter_opencv() if self.backend == "opencv" else self._iter_pyav())

    def _iter_opencv(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(str(self.path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        index = 0
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                if image is None or image.size == 0:
                    self._skip(f"{self.path}: empty frame after {index}")
                    continue
                stamp = msec / 1000.0 if msec and msec > 0 else (index / fps if fps > 0 else float(index))
                yield index, stamp, _to_rgb(image, "bgr")
                index += 1
        finally:
            cap.release()

    def _iter_pyav(self) -> Iterator[Frame]:
        container = self._open_pyav()
        stream = container.streams.video[0]
        index = 0
        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except Exception as exc:  # corrupt packet: skip, keep going
                    self._skip(f"{self.path}: undecodable packet ({exc})")
                    continue
                for frame in decoded:
                    stamp = float(frame.time) if frame.time is not None else float(index)
                    yield index, stamp, frame.to_ndarray(format="rgb24")
                    index += 1
        finally:
            container.close()


def _decode_image_message(msg, msgtype: str) -> np.ndarray:
    """sensor_msgs Image / CompressedImage → RGB uint8, with the package's codec (:mod:`.rosbag_io`)."""
    if msgtype.endswith("CompressedImage"):
        return rosbag_io.compressed_to_rgb8(msg.format, msg.data)
    return rosbag_io.image_to_rgb8(msg)


class RosbagSource(FrameSource):
    """Image messages of one topic of a ROS 2 bag (a bag folder, or its .db3/.mcap file)."""

    def __init__(self, path, topic: str):
        super().__init__(path)
        if not self.path.exists():
            raise OSError(f"bag {self.path} does not exist")
        self.topic = topic
        topics = rosbag_io.list_topics(self.path)  # OSError naming the bag when unreadable
        if topic not in topics:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
            raise ValueError(f"bag {self.path} has no topic {topic!r}; topics: {listing}")
        if topics[topic] not in IMAGE_TYPES:
            raise ValueError(f"bag {self.path}: topic {topic!r} carries {topics[topic]}, not {' or '.join(IMAGE_TYPES)}")
        with self._open() as reader:
            self._count = sum(c.msgcount for c in reader.connections if c.topic == topic)

    @contextlib.contextmanager
    def _open(self):
        from rosbags.highlevel import AnyReader

        # A .db3/.mcap file inside its bag folder is read through the folder; a lone .mcap file as it is.
        in_folder = self.path.is_file() and (self.path.parent / "metadata.yaml").is_file()
        bag = self.path.parent if in_folder else self.path
        reader = AnyReader([bag], default_typestore=rosbag_io.default_typestore())
        try:
            reader.open()
        except Exception as exc:  # rosbags raises several unrelated error types
            raise OSError(f"bag {self.path} cannot be opened ({type(exc).__name__}: {exc})") from exc
        try:
            yield reader
        finally:
            reader.close()

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        with self._open() as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for connection, record_ns, raw in reader.messages(connections=connections):
                try:
                    msg = reader.deserialize(raw, connection.msgtype)
                    rgb = _decode_image_message(msg, connection.msgtype)
                except Exception as exc:  # one bad message never ends the run
                    self._skip(f"{self.path} {self.topic} @ {record_ns} ns: {exc}")
                    continue
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                yield index, (stamp if stamp > 0 else record_ns * 1e-9), rgb
                index += 1


def is_bag(path) -> bool:
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in BAG_SUFFIXES
    return path.is_dir() and ((path / "metadata.yaml").is_file() or any(p.suffix in BAG_SUFFIXES for p in path.iterdir()))


def open_source(path, topic: str | None = None, rate: float = 10.0) -> FrameSource:
    """A frame source for ``path``: a ROS 2 bag (needs ``topic``), a video file or a folder of images."""
    path = Path(path)
    if not path.exists():
        raise OSError(f"input {path} does not exist")
    if is_bag(path):
        if not topic:
            raise ValueError(f"input {path} is a ROS 2 bag: give the image topic to read (--topic)")
        return RosbagSource(path, topic)
    if path.is_dir():
        return ImageFolderSource(path, rate=rate)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"input {path} is a single image; give the folder that holds the sequence")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"input {path}: unknown kind of file ({path.suffix or 'no suffix'}); expected a folder of "
                         f"images, a video ({'/'.join(VIDEO_SUFFIXES)}) or a ROS 2 bag ({'/'.join(BAG_SUFFIXES)})")
    return VideoSource(path)
