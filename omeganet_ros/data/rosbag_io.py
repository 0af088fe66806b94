"""ROS image messages ↔ NumPy, and ROS 2 bags read and written with ``rosbags`` (no ROS install needed).

The codec works on plain message fields (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``), so the same functions serve messages
deserialized by ``rosbags`` and ``rclpy`` messages, which share attribute names.

Bags: :class:`BagWriter` writes ``sensor_msgs/Image``, ``sensor_msgs/CameraInfo``,
``geometry_msgs/PoseStamped`` (or any type of its typestore) to a ROS 2 bag;
:func:`iter_messages` and :func:`list_topics` read one back. A ROS 2 bag is a
directory (``metadata.yaml`` plus one storage file); the storage is ``mcap``
or ``sqlite3``. A path ending in ``.mcap`` or ``.db3``/``.sqlite3`` selects that
storage and names the bag directory without the suffix (``run.mcap`` →
directory ``run/`` holding ``run.mcap``), like ``ros2 bag record -o run -s mcap``.
"""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

# encoding → (dtype kind+size, channels); the generic "<bits><U|S|F>C<n>" names are parsed in _encoding_layout.
_NAMED_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "rgb16": ("u2", 3),
    "bgr16": ("u2", 3),
    "rgba16": ("u2", 4),
    "bgra16": ("u2", 4),
    "mono8": ("u1", 1),
    "mono16": ("u2", 1),
    "bayer_rggb8": ("u1", 1),
    "bayer_bggr8": ("u1", 1),
    "bayer_gbrg8": ("u1", 1),
    "bayer_grbg8": ("u1", 1),
}
_GENERIC_ENCODING = re.compile(r"^(8|16|32|64)(U|S|F)C([1-4])$")
_KIND = {"U": "u", "S": "i", "F": "f"}

# OpenCV ≥ 4.x/5 names Bayer patterns by the top-left 2×2 block; the tests check each one on a known colour.
_BAYER_TO_RGB = {
    "bayer_rggb8": "COLOR_BayerRGGB2RGB",
    "bayer_bggr8": "COLOR_BayerBGGR2RGB",
    "bayer_gbrg8": "COLOR_BayerGBRG2RGB",
    "bayer_grbg8": "COLOR_BayerGRBG2RGB",
}
# Older OpenCV only has the legacy names, which are shifted by one pixel (cv_bridge uses them this way).
_BAYER_TO_RGB_LEGACY = {
    "bayer_rggb8": "COLOR_BayerBG2RGB",
    "bayer_bggr8": "COLOR_BayerRG2RGB",
    "bayer_gbrg8": "COLOR_BayerGR2RGB",
    "bayer_grbg8": "COLOR_BayerGB2RGB",
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_NAMED_ENCODINGS) + (
    "8UC1", "8UC3", "8UC4", "16UC1", "16SC1", "32SC1", "32FC1", "32FC2", "64FC1",
)


def _encoding_layout(encoding: str) -> tuple[str, int]:
    """ROS encoding name → (NumPy kind+itemsize such as 'u1', channel count)."""
    if encoding in _NAMED_ENCODINGS:
        return _NAMED_ENCODINGS[encoding]
    match = _GENERIC_ENCODING.match(encoding)
    if match:
        bits, kind, channels = match.groups()
        if kind == "F" and bits not in ("32", "64"):
            raise ValueError(f"unsupported image encoding {encoding!r}: float images must be 32 or 64 bits")
        return f"{_KIND[kind]}{int(bits) // 8}", int(channels)
    raise ValueError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")


def _data_buffer(data: Any) -> np.ndarray:
    """The bytes of a message's ``data`` field (bytes, bytearray, array.array, ndarray or list) as uint8."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def check_image_fields(msg: Any, max_pixels: int | None = None) -> tuple[int, int, int, np.dtype, int]:
    """Validate an Image message's header fields without touching its pixels; returns
    (height, width, channels, dtype, row_bytes). Cheap enough for a subscription callback.

    Raises ``ValueError`` for zero sizes, an unknown encoding, a step shorter than a row,
    ``len(data) != step × height``, or (:class:`ImageTooLarge`) more than ``max_pixels`` pixels.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    encoding = str(msg.encoding)
    if height <= 0 or width <= 0:
        raise ValueError(f"image has zero size: {width}×{height} (encoding {encoding!r})")
    check_input_pixels((width, height), max_pixels, f"image ({encoding!r})")
    kind, channels = _encoding_layout(encoding)
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(
            f"image step {step} is smaller than width × channels × bytes = {width}×{channels}×{dtype.itemsize} = {row_bytes}"
            f" (encoding {encoding!r})"
        )
    size = len(msg.data) if hasattr(msg.data, "__len__") and not isinstance(msg.data, np.ndarray) else _data_buffer(msg.data).size
    if size != step * height:
        raise ValueError(
            f"image data has {size} bytes but step × height = {step}×{height} = {step * height}"
            f" (encoding {encoding!r}, {width}×{height})"
        )
    return height, width, channels, dtype, row_bytes


def image_to_numpy(msg: Any) -> np.ndarray:
    """An Image message (any object with the sensor_msgs/Image fields) → its pixels as stored.

    Returns H×W for one channel, H×W×C otherwise, in native byte order, with
    the row padding of ``step`` removed. Bayer images come back as the raw
    H×W mosaic (use :func:`image_to_rgb8` to demosaic). Raises ``ValueError``
    as :func:`check_image_fields`.
    """
    height, width, channels, dtype, row_bytes = check_image_fields(msg)
    buffer = _data_buffer(msg.data)
    rows = buffer.reshape(height, int(msg.step))[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    pixels = pixels.astype(dtype.newbyteorder("="), copy=False)
    return pixels[..., 0] if channels == 1 else pixels


def _mono_to_u8(mono: np.ndarray) -> np.ndarray:
    """H×W integer or float image → H×W uint8 (16-bit scaled by 1/257, floats taken as [0, 1])."""
    if mono.dtype == np.uint8:
        return mono
    if mono.dtype == np.uint16:
        return ((mono.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(mono.dtype, np.floating):
        return np.clip(np.nan_to_num(mono) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(f"cannot convert {mono.dtype} pixels to 8 bits")


def image_to_rgb8(msg: Any) -> np.ndarray:
    """An Image message of any colour, mono or Bayer encoding → H×W×3 uint8 RGB.

    16-bit images (mono16, 16UC1, rgb16, …) are scaled to 8 bits (÷257); float colour
    images (32FC3, 64FC4, …) are taken as [0, 1] (OpenCV's convention) and refused with
    NaN/Inf values; ``nUC3``/``nUC4`` are BGR/BGRA (the OpenCV convention, like cv_bridge).
    Depth/flow encodings (32FC1, 32FC2, …) and signed colour (8SC3, …) raise ``ValueError``.
    """
    encoding = str(msg.encoding)
    if encoding in ("32FC1", "32FC2", "64FC1", "16SC1", "32SC1") or _GENERIC_ENCODING.match(encoding) and encoding[-1] == "2":
        raise ValueError(f"image encoding {encoding!r} is not a colour or mono image; cannot convert to rgb8")
    pixels = image_to_numpy(msg)
    if encoding in _BAYER_TO_RGB:
        code = getattr(cv2, _BAYER_TO_RGB[encoding], None)
        if code is None:
            code = getattr(cv2, _BAYER_TO_RGB_LEGACY[encoding])
        return cv2.cvtColor(np.ascontiguousarray(pixels), code)
    if pixels.ndim == 2:
        return np.repeat(_mono_to_u8(pixels)[..., None], 3, axis=2)
    if pixels.dtype.kind == "i":
        raise ValueError(f"image encoding {encoding!r} has signed colour channels; no colour camera sends them")
    if pixels.dtype.kind == "f":  # OpenCV's float colour convention: [0, 1]
        if not np.isfinite(pixels[..., :3]).all():
            raise ValueError(f"image ({encoding!r}) has NaN or infinite colour values")
        pixels = np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    bgr_order = encoding.startswith("bgr") or bool(_GENERIC_ENCODING.match(encoding))
    rgb = pixels[..., 2::-1] if bgr_order else pixels[..., :3]
    return np.ascontiguousarray(rgb)


def numpy_to_image_fields(array: np.ndarray, encoding: str) -> dict:
    """H×W or H×W×C array → the sensor_msgs/Image fields (without header) for ``encoding``.

    Returns ``dict(height, width, encoding, is_bigendian, step, data)`` with
    ``data`` a 1-D uint8 ndarray (little-endian, no padding). rosbags takes it
    as is; for rclpy wrap it as ``array.array('B', data.tobytes())``.
    Raises ``ValueError`` when the array's dtype or channels do not match.
    """
    array = np.asarray(array)
    kind, channels = _encoding_layout(encoding)
    dtype = np.dtype(kind)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ValueError(f"encoding {encoding!r} needs {channels} channel(s), got array of shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image has zero size: shape {array.shape}")
    if array.dtype != dtype:
        if dtype.kind == "f" and np.issubdtype(array.dtype, np.floating):
            array = array.astype(dtype)
        else:
            raise ValueError(f"encoding {encoding!r} needs dtype {dtype}, got {array.dtype}")
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * channels * dtype.itemsize,
        "data": data,
    }


MAX_INPUT_PIXELS = 40_000_000  # ≈ 7700×5200: beyond any camera a robot streams; more is a decompression bomb


class ImageTooLarge(ValueError):
    """An encoded image whose header announces more pixels than allowed (checked before decoding)."""


def encoded_image_size(data: bytes | np.ndarray | Path) -> tuple[int, int] | None:
    """(W, H) from an encoded image's header (PNG, JPEG, PPM, BMP, TIFF, WebP), without decoding its pixels;
    None when the header cannot be read (the decoder then reports the problem)."""
    import io

    from PIL import Image

    try:
        source = data if isinstance(data, Path) else io.BytesIO(bytes(data))
        with Image.open(source) as image:
            return image.size
    except Exception:  # noqa: BLE001 — any unreadable header: leave the verdict to the decoder
        return None


def check_input_pixels(size: tuple[int, int] | None, max_pixels: int | None, what: str) -> None:
    """Raise :class:`ImageTooLarge` when ``size`` (W, H) exceeds ``max_pixels`` (None or 0: no limit)."""
    if size is not None and max_pixels and size[0] * size[1] > max_pixels:
        raise ImageTooLarge(f"{what} is {size[0]}×{size[1]} = {size[0] * size[1]:,} pixels, over the limit of "
                            f"{max_pixels:,} (max_input_pixels); not decoded")


def compressed_to_rgb8(format: str, data: Any, max_pixels: int | None = MAX_INPUT_PIXELS) -> np.ndarray:
    """A CompressedImage's ``format`` and ``data`` (jpeg/png/…) → H×W×3 uint8 RGB.

    Raises ``ValueError`` when the bytes cannot be decoded, :class:`ImageTooLarge` (a ValueError) when the
    header announces more than ``max_pixels`` pixels (checked before decoding: a small file can decode to
    gigabytes).
    """
    buffer = _data_buffer(data)
    if buffer.size == 0:
        raise ValueError(f"compressed image ({format!r}) has no data")
    check_input_pixels(encoded_image_size(buffer), max_pixels, f"compressed image ({format!r})")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ValueError(f"could not decode compressed image with format {format!r} ({buffer.size} bytes)")
    if decoded.dtype != np.uint8:
        decoded = _mono_to_u8(decoded) if decoded.ndim == 2 else ((decoded.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if decoded.ndim == 2:
        return cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    if decoded.shape[2] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------------------------- bags

def default_typestore():
    """The rosbags typestore of the newest ROS 2 distribution available (Kilted or later)."""
    from rosbags.typesys import Stores, get_typestore

    for name in ("ROS2_KILTED", "ROS2_LYRICAL", "ROS2_JAZZY", "LATEST"):
        if hasattr(Stores, name):
            return get_typestore(getattr(Stores, name))
    raise RuntimeError("rosbags provides no ROS 2 typestore")  # pragma: no cover


def ns_to_stamp(typestore, stamp_ns: int):
    """Nanoseconds → builtin_interfaces/Time of ``typestore``."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ValueError(f"negative time stamp {stamp_ns} ns")
    return typestore.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rosbags or rclpy) → integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """3×3 rotation matrix → unit quaternion (x, y, z, w), w ≥ 0."""
    from scipy.spatial.transform import Rotation

    quat = Rotation.from_matrix(np.asarray(rotation, dtype=np.float64)).as_quat()
    return -quat if quat[3] < 0 else quat


def quaternion_to_rotation(quat_xyzw: Iterable[float]) -> np.ndarray:
    """Quaternion (x, y, z, w) → 3×3 rotation matrix."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(np.asarray(list(quat_xyzw), dtype=np.float64)).as_matrix()


def _split_bag_path(path: str | Path, storage: str | None) -> tuple[Path, str]:
    path = Path(path)
    suffix = path.suffix.lower()
    by_suffix = {".mcap": "mcap", ".db3": "sqlite3", ".sqlite3": "sqlite3"}
    if suffix in by_suffix:
        if storage is not None and storage != by_suffix[suffix]:
            raise ValueError(f"bag path {path} implies storage {by_suffix[suffix]!r} but storage={storage!r} was given")
        return path.with_suffix(""), by_suffix[suffix]
    storage = storage or "mcap"
    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"unknown bag storage {storage!r}; expected 'mcap' or 'sqlite3'")
    return path, storage


class BagWriter:
    """Writes a ROS 2 bag (mcap or sqlite3) with ``rosbags``; use as a context manager.

    ``path``: the bag directory; or a path ending in ``.mcap``: exactly that one
    self-describing mcap file (``ros2 bag play FILE.mcap`` and the readers here take
    it; written as a bag directory beside it, then moved); or ``.db3`` (the bag
    directory is then the path without the suffix). It must not exist yet.
    Stamps are integer nanoseconds; the bag's receive time equals the header stamp.
    """

    def __init__(self, path: str | Path, storage: str | None = None, typestore=None):
        from rosbags.rosbag2 import StoragePlugin, Writer

        directory, self.storage = _split_bag_path(path, storage)
        single_file = self.storage == "mcap" and Path(path).suffix.lower() == ".mcap"
        self.path = Path(path) if single_file else directory
        self._directory = self.path.with_name(f".{self.path.name}.writing") if single_file else directory
        for target in {self.path, self._directory}:
            if target.exists():
                raise OSError(f"bag {target} exists already; refusing to overwrite")
        self.typestore = typestore or default_typestore()
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._directory, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        self._connections: dict[str, Any] = {}
        self._is_open = False

    def open(self) -> "BagWriter":
        self._writer.open()
        self._is_open = True
        return self

    def close(self) -> None:
        if self._is_open:
            self._writer.close()
            self._is_open = False
            if self._directory != self.path:
                import shutil

                (mcap,) = self._directory.glob("*.mcap")
                mcap.replace(self.path)
                shutil.rmtree(self._directory)

    def __enter__(self) -> "BagWriter":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _header(self, stamp_ns: int, frame_id: str):
        return self.typestore.types["std_msgs/msg/Header"](stamp=ns_to_stamp(self.typestore, stamp_ns), frame_id=frame_id)

    def write(self, topic: str, msgtype: str, msg: Any, stamp_ns: int) -> None:
        """Serialize ``msg`` of ``msgtype`` (e.g. 'sensor_msgs/msg/Image') onto ``topic`` at ``stamp_ns``."""
        if not self._is_open:
            raise RuntimeError(f"bag {self.path} is not open; use BagWriter as a context manager")
        if msgtype not in self.typestore.types:
            raise ValueError(f"unknown message type {msgtype!r}; register it in BagWriter.typestore first")
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._connections[topic] = connection
        elif connection.msgtype != msgtype:
            raise ValueError(f"topic {topic!r} already carries {connection.msgtype}, cannot write {msgtype}")
        self._writer.write(connection, int(stamp_ns), self.typestore.serialize_cdr(msg, msgtype))

    def image_msg(self, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
        """A sensor_msgs/Image of this typestore from an array (see :func:`numpy_to_image_fields`)."""
        fields = numpy_to_image_fields(array, encoding)
        return self.typestore.types["sensor_msgs/msg/Image"](header=self._header(stamp_ns, frame_id), **fields)

    def write_image(self, topic: str, stamp_ns: int, array: np.ndarray, encoding: str, frame_id: str) -> None:
        self.write(topic, "sensor_msgs/msg/Image", self.image_msg(array, encoding, stamp_ns, frame_id), stamp_ns)

    def write_camera_info(
        self,
        topic: str,
        stamp_ns: int,
        K: np.ndarray,
        width: int,
        height: int,
        frame_id: str,
        distortion: Iterable[float] | None = None,
        distortion_model: str = "plumb_bob",
    ) -> None:
        """A pinhole CameraInfo: K 3×3 pixels, R = I, P = [K | 0], distortion (default none: zeros)."""
        types = self.typestore.types
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        projection = np.zeros((3, 4))
        projection[:, :3] = K
        d = np.asarray(list(distortion) if distortion is not None else [0.0] * 5, dtype=np.float64)
        roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        msg = types["sensor_msgs/msg/CameraInfo"](
            header=self._header(stamp_ns, frame_id),
            height=int(height),
            width=int(width),
            distortion_model=distortion_model,
            d=d,
            k=K.reshape(-1),
            r=np.eye(3).reshape(-1),
            p=projection.reshape(-1),
            binning_x=0,
            binning_y=0,
            roi=roi,
        )
        self.write(topic, "sensor_msgs/msg/CameraInfo", msg, stamp_ns)

    def write_pose(self, topic: str, stamp_ns: int, pose: np.ndarray, frame_id: str = "world") -> None:
        """A PoseStamped from a 4×4 pose (e.g. camera-to-world: the camera's pose in ``frame_id``)."""
        types = self.typestore.types
        pose = np.asarray(pose, dtype=np.float64)
        x, y, z, w = rotation_to_quaternion(pose[:3, :3])
        msg = types["geometry_msgs/msg/PoseStamped"](
            header=self._header(stamp_ns, frame_id),
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=float(pose[0, 3]), y=float(pose[1, 3]), z=float(pose[2, 3])),
                orientation=types["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w)),
            ),
        )
        self.write(topic, "geometry_msgs/msg/PoseStamped", msg, stamp_ns)


def pose_msg_to_matrix(pose: Any) -> np.ndarray:
    """geometry_msgs/Pose (rosbags or rclpy) → 4×4 matrix."""
    out = np.eye(4)
    q = pose.orientation
    out[:3, :3] = quaternion_to_rotation((q.x, q.y, q.z, q.w))
    out[:3, 3] = (pose.position.x, pose.position.y, pose.position.z)
    return out


def _resolve_bag_path(path: str | Path) -> Path:
    path = Path(path)
    if path.exists():
        return path
    if path.suffix.lower() in (".mcap", ".db3", ".sqlite3") and path.with_suffix("").is_dir():
        return path.with_suffix("")
    raise FileNotFoundError(f"bag {path} does not exist")


class _OpenBag:
    """Context manager around rosbags' AnyReader that turns its failures into OSError naming the bag."""

    def __init__(self, path: str | Path):
        self.path = _resolve_bag_path(path)

    def __enter__(self):
        from rosbags.highlevel import AnyReader

        try:
            self.reader = AnyReader([self.path], default_typestore=default_typestore())
            self.reader.open()
        except FileNotFoundError:
            raise
        except Exception as err:  # rosbags raises several error types (ReaderError, sqlite3, mcap, yaml)
            raise OSError(f"cannot read bag {self.path}: {err}") from err
        return self.reader

    def __exit__(self, *exc) -> None:
        try:
            self.reader.close()
        except Exception:
            pass


def list_topics(path: str | Path) -> dict[str, str]:
    """Topics of a bag (directory, .mcap or .db3 file) → message type, e.g. 'sensor_msgs/msg/Image'."""
    with _OpenBag(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def iter_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, str, Any]]:
    """Yield ``(topic, timestamp_ns, msgtype, message)`` in time order from a bag.

    ``topics``: the topics to read (all when None); a topic absent from the
    bag raises ``ValueError`` listing the bag's topics. Messages are
    deserialized with the types embedded in the bag (falling back to the
    Kilted typestore). A truncated or corrupt bag raises ``OSError``.
    """
    wanted = None if topics is None else list(topics)
    with _OpenBag(path) as reader:
        available = {c.topic: c.msgtype for c in reader.connections}
        if wanted is not None:
            missing = [t for t in wanted if t not in available]
            if missing:
                raise ValueError(f"bag {path} has no topic(s) {missing}; it has {sorted(available)}")
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for connection in connections:
            if connection.msgtype not in reader.typestore.types:
                raise ValueError(f"bag {path}: topic {connection.topic!r} has unknown message type {connection.msgtype!r}")
        try:
            for connection, timestamp, raw in reader.messages(connections=connections):
                yield connection.topic, int(timestamp), connection.msgtype, reader.deserialize(raw, connection.msgtype)
        except (ValueError, FileNotFoundError):
            raise
        except (sqlite3.Error, Exception) as err:
            if isinstance(err, GeneratorExit):
                raise
            raise OSError(f"bag {path} is truncated or unreadable: {err}") from err
