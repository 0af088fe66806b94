"""Image codec (every encoding, padding, byte order, errors) and bag round trips with rosbags."""
from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from omeganet_ros.data import rosbag_io
from omeganet_ros.data.rosbag_io import (
    BagWriter,
    compressed_to_rgb8,
    image_to_numpy,
    image_to_rgb8,
    iter_messages,
    list_topics,
    numpy_to_image_fields,
    pose_msg_to_matrix,
    stamp_to_ns,
)

RNG = np.random.default_rng(0)


def _msg(**fields):
    return SimpleNamespace(**fields)


def _padded(array_hwc: np.ndarray, encoding: str, pad: int, bigendian: bool = False):
    """Build message fields by hand (independently of numpy_to_image_fields), with `pad` bytes per row."""
    h, w = array_hwc.shape[:2]
    dtype = array_hwc.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(array_hwc, dtype=dtype).reshape(h, -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return _msg(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize(
    "encoding,dtype,channels",
    [
        ("rgb8", np.uint8, 3), ("bgr8", np.uint8, 3), ("rgba8", np.uint8, 4), ("bgra8", np.uint8, 4),
        ("mono8", np.uint8, 1), ("mono16", np.uint16, 1), ("16UC1", np.uint16, 1), ("32FC1", np.float32, 1),
        ("32FC2", np.float32, 2), ("8UC1", np.uint8, 1), ("8UC3", np.uint8, 3), ("bayer_rggb8", np.uint8, 1),
    ],
)
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("bigendian", [False, True])
def test_image_to_numpy_every_encoding(encoding, dtype, channels, pad, bigendian):
    shape = (7, 9) if channels == 1 else (7, 9, channels)
    if np.issubdtype(dtype, np.floating):
        pixels = RNG.normal(size=shape).astype(dtype)
    else:
        pixels = RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    out = image_to_numpy(_padded(pixels, encoding, pad, bigendian))
    assert out.shape == shape and out.dtype == dtype
    np.testing.assert_array_equal(out, pixels)


def test_data_as_array_array_and_list():
    pixels = RNG.integers(0, 255, size=(3, 4, 3), dtype=np.uint8)
    msg = _padded(pixels, "rgb8", 2)
    for data in (array.array("B", msg.data), list(msg.data), np.frombuffer(msg.data, np.uint8)):
        np.testing.assert_array_equal(image_to_numpy(_msg(**{**vars(msg), "data": data})), pixels)


def test_numpy_to_image_fields_round_trip():
    for encoding, pixels in [
        ("rgb8", RNG.integers(0, 255, (5, 6, 3), dtype=np.uint8)),
        ("mono16", RNG.integers(0, 65535, (5, 6), dtype=np.uint16)),
        ("32FC2", RNG.normal(size=(5, 6, 2)).astype(np.float32)),
        ("32FC1", np.array([[np.nan, np.inf], [1.5, -2.0]], np.float32)),
    ]:
        fields = numpy_to_image_fields(pixels, encoding)
        assert fields["step"] * fields["height"] == fields["data"].size
        np.testing.assert_array_equal(image_to_numpy(_msg(**fields)), pixels)


def test_numpy_to_image_fields_rejects_mismatch():
    with pytest.raises(ValueError, match="channel"):
        numpy_to_image_fields(np.zeros((4, 4, 3), np.uint8), "mono8")
    with pytest.raises(ValueError, match="dtype"):
        numpy_to_image_fields(np.zeros((4, 4), np.float32), "mono8")


def test_image_to_numpy_errors():
    good = _padded(np.zeros((4, 5, 3), np.uint8), "rgb8", 0)
    with pytest.raises(ValueError, match="bytes but step"):
        image_to_numpy(_msg(**{**vars(good), "data": good.data[:-1]}))
    with pytest.raises(ValueError, match="zero size"):
        image_to_numpy(_msg(**{**vars(good), "height": 0, "data": b""}))
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422_weird'"):
        image_to_numpy(_msg(**{**vars(good), "encoding": "yuv422_weird"}))
    with pytest.raises(ValueError, match="step"):
        image_to_numpy(_msg(**{**vars(good), "step": 10, "data": good.data[:40]}))


def test_image_to_rgb8_colour_orders():
    rgb = RNG.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((6, 8, 1), 7, np.uint8)], axis=2)
    cases = {
        "rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": rgba, "bgra8": rgba[..., [2, 1, 0, 3]], "8UC3": rgb[..., ::-1],
    }
    for encoding, pixels in cases.items():
        np.testing.assert_array_equal(image_to_rgb8(_padded(pixels, encoding, 3)), rgb, err_msg=encoding)


def test_image_to_rgb8_mono():
    mono8 = RNG.integers(0, 255, size=(4, 5), dtype=np.uint8)
    out = image_to_rgb8(_padded(mono8, "mono8", 1))
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[..., 1], mono8)
    mono16 = np.array([[0, 257, 65535, 32896]], np.uint16)
    for encoding in ("mono16", "16UC1"):
        out = image_to_rgb8(_padded(mono16, encoding, 0, bigendian=True))
        np.testing.assert_array_equal(out[..., 0], [[0, 1, 255, 128]])
    with pytest.raises(ValueError, match="not a colour"):
        image_to_rgb8(_padded(np.zeros((2, 2), np.float32), "32FC1", 0))


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_demosaic_recovers_colour(pattern):
    colour = np.array([200, 120, 40], np.uint8)
    h, w = 8, 10
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.zeros((h, w), np.uint8)
    for dy in range(2):
        for dx in range(2):
            mosaic[dy::2, dx::2] = colour[channel[pattern[2 * dy + dx]]]
    out = image_to_rgb8(_padded(mosaic, f"bayer_{pattern}8", 2))
    assert out.shape == (h, w, 3)
    np.testing.assert_allclose(out[2:-2, 2:-2].reshape(-1, 3), np.tile(colour, ((h - 4) * (w - 4), 1)), atol=2)


def test_compressed_to_rgb8():
    rgb = RNG.integers(0, 255, size=(6, 7, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb8("png", png.tobytes()), rgb)
    with pytest.raises(ValueError, match="could not decode"):
        compressed_to_rgb8("jpeg", b"not an image at all")


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_bag_round_trip(tmp_path, suffix):
    rgb = RNG.integers(0, 255, size=(4, 6, 3), dtype=np.uint8)
    depth = RNG.uniform(1, 80, size=(4, 6)).astype(np.float32)
    K = np.array([[50.0, 0, 3], [0, 50, 2], [0, 0, 1]])
    pose = np.eye(4)
    angle = 0.3
    pose[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    pose[:3, 3] = [1.0, -2.0, 3.5]
    stamps = [1_000_000_000, 1_100_000_000]
    with BagWriter(tmp_path / f"run{suffix}") as bag:
        for stamp in stamps:
            bag.write_image("/camera/image_raw", stamp, rgb, "rgb8", "camera_optical_frame")
            bag.write_image("/gt/depth", stamp, depth, "32FC1", "camera_optical_frame")
            bag.write_camera_info("/camera/camera_info", stamp, K, 6, 4, "camera_optical_frame")
            bag.write_pose("/gt/pose", stamp, pose)
    bag_path = tmp_path / ("run.mcap" if suffix == ".mcap" else "run")  # one mcap file; a sqlite3 bag folder
    assert bag_path.is_file() if suffix == ".mcap" else bag_path.is_dir()
    topics = list_topics(bag_path)
    assert topics == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/gt/depth": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/gt/pose": "geometry_msgs/msg/PoseStamped",
    }
    seen = {}
    for topic, stamp, msgtype, msg in iter_messages(tmp_path / f"run{suffix}", topics=list(topics)):
        assert stamp == stamp_to_ns(msg.header.stamp)
        seen.setdefault(topic, []).append(stamp)
        if topic == "/camera/image_raw":
            np.testing.assert_array_equal(image_to_rgb8(msg), rgb)
            assert msg.header.frame_id == "camera_optical_frame"
        elif topic == "/gt/depth":
            np.testing.assert_array_equal(image_to_numpy(msg), depth)
        elif topic == "/camera/camera_info":
            np.testing.assert_allclose(np.asarray(msg.k).reshape(3, 3), K)
        else:
            np.testing.assert_allclose(pose_msg_to_matrix(msg.pose), pose, atol=1e-12)
            assert msg.header.frame_id == "world"
    assert all(v == stamps for v in seen.values()) and len(seen) == 4


def test_bag_errors(tmp_path):
    with BagWriter(tmp_path / "bag.mcap") as bag:
        bag.write_pose("/gt/pose", 5, np.eye(4))
    with pytest.raises(ValueError, match="no topic"):
        list(iter_messages(tmp_path / "bag.mcap", ["/camera/image_raw"]))
    with pytest.raises(OSError, match="exists already"):
        BagWriter(tmp_path / "bag.mcap")
    with pytest.raises(FileNotFoundError):
        list_topics(tmp_path / "nothing_here")
    with BagWriter(tmp_path / "other.mcap") as bag:
        with pytest.raises(ValueError, match="unknown message type"):
            bag.write("/x", "my_msgs/msg/Nope", None, 0)
    # Truncate the storage file: reading must fail with OSError naming the bag, not crash obscurely.
    storage = tmp_path / "bag.mcap"  # one mcap file
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    with pytest.raises(OSError, match="bag"):
        list(iter_messages(storage))


def test_sqlite_truncated(tmp_path):
    with BagWriter(tmp_path / "bag.db3") as bag:
        for i in range(20):
            bag.write_image("/camera/image_raw", i, np.zeros((16, 16, 3), np.uint8), "rgb8", "cam")
    storage = next((tmp_path / "bag").glob("*.db3"))
    storage.write_bytes(b"garbage" + storage.read_bytes()[100:300])
    with pytest.raises(OSError, match="bag"):
        list(iter_messages(tmp_path / "bag"))


def test_default_typestore_is_ros2():
    store = rosbag_io.default_typestore()
    assert "sensor_msgs/msg/Image" in store.types


def _packed(array, encoding):
    return _msg(**rosbag_io.numpy_to_image_fields(array, encoding))


def test_float_colour_images_convert_and_signed_or_nan_ones_are_refused():
    rgb = np.array([[[0.0, 0.5, 1.0], [0.25, 0.75, 0.1]]], np.float32)  # 1×2 pixels, channels in BGR order
    converted = rosbag_io.image_to_rgb8(_packed(rgb, "32FC3"))
    assert converted.tolist() == [[[255, 128, 0], [26, 191, 64]]]  # [0, 1] → 0…255, BGR → RGB
    four = np.concatenate([rgb, np.ones((1, 2, 1), np.float32)], axis=2).astype(np.float64)
    assert rosbag_io.image_to_rgb8(_packed(four, "64FC4")).tolist() == converted.tolist()
    with pytest.raises(ValueError, match="NaN or infinite"):
        rosbag_io.image_to_rgb8(_packed(np.where(rgb > 0.9, np.nan, rgb).astype(np.float32), "32FC3"))
    with pytest.raises(ValueError, match="signed colour"):
        rosbag_io.image_to_rgb8(_packed(np.zeros((2, 2, 3), np.int8), "8SC3"))


def test_header_checks_without_decoding():
    good = _packed(np.zeros((4, 5, 3), np.uint8), "rgb8")
    assert rosbag_io.check_image_fields(good)[:3] == (4, 5, 3)
    with pytest.raises(rosbag_io.ImageTooLarge, match="5×4 = 20 pixels"):
        rosbag_io.check_image_fields(good, max_pixels=19)
    short = _packed(np.zeros((4, 5, 3), np.uint8), "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(ValueError, match="59 bytes but step × height"):
        rosbag_io.check_image_fields(short)
