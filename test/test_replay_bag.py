"""The replay tool's bag side (ROS-free): frames, stamps, and clear errors for bad bags."""
from __future__ import annotations

import pytest

import replay_helpers as helpers
from omeganet_ros.data.rosbag_io import BagWriter
from omeganet_ros.ros.replay_bag import BagError, ReplayBag, header_stamp_ns, with_header_stamp


@pytest.fixture(scope="module")
def camera_bag(tmp_path_factory):
    return helpers.write_camera_bag(tmp_path_factory.mktemp("rb") / "camera.mcap", 6)


def test_frames_carry_camera_info_before_their_image(camera_bag):
    bag = ReplayBag(camera_bag)
    assert bag.camera_info_topic == "/camera/camera_info" and bag.frame_count == 6
    frames = list(bag.frames())
    assert [f.index for f in frames] == list(range(6))
    for i, frame in enumerate(frames):
        assert [m.topic for m in frame.messages] == ["/camera/camera_info", "/camera/image_raw"]
        assert frame.stamp_ns == helpers.stamp(i) == header_stamp_ns(frame.before[0].data)
    assert [f.index for f in ReplayBag(camera_bag, max_frames=3).frames()] == [0, 1, 2]
    assert ReplayBag(camera_bag, camera_info_topic=None).play_topics == ["/camera/image_raw"]


def test_header_stamp_rewrite(camera_bag):
    data = next(iter(ReplayBag(camera_bag).frames())).image.data
    moved = with_header_stamp(data, helpers.stamp(0) + 12_000_000_001)
    assert header_stamp_ns(moved) == helpers.stamp(0) + 12_000_000_001
    assert len(moved) == len(data) and moved[12:] == data[12:]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_is_a_clear_error(tmp_path, storage):
    path = helpers.write_camera_bag(tmp_path / "bag", 4, gt=False, storage=storage)
    storage_file = next(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
    storage_file.write_bytes(storage_file.read_bytes()[: storage_file.stat().st_size // 2])
    with pytest.raises(BagError, match=r"truncated, corrupt") as err:
        ReplayBag(path)
    assert str(path) in str(err.value)


def test_missing_bag_and_missing_topics(tmp_path, camera_bag):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ReplayBag(tmp_path / "nowhere.mcap")
    with pytest.raises(ValueError, match=r"no image topic '/front/image'.*/camera/image_raw \(sensor_msgs/msg/Image\)"):
        ReplayBag(camera_bag, image_topic="/front/image")
    with pytest.raises(ValueError, match="no camera_info topic '/front/camera_info'"):
        ReplayBag(camera_bag, camera_info_topic="/front/camera_info")
    with pytest.raises(ValueError, match="carries sensor_msgs/msg/Image, expected sensor_msgs/msg/CameraInfo"):
        ReplayBag(camera_bag, camera_info_topic="/gt/depth")


def test_unknown_message_type_is_a_clear_error(tmp_path):
    path = tmp_path / "odd.mcap"
    with BagWriter(path) as bag:
        from rosbags.typesys import get_types_from_msg

        bag.typestore.register(get_types_from_msg("uint32 width\nuint8[] pixels", "acme_msgs/msg/RawFrame"))
        msg = bag.typestore.types["acme_msgs/msg/RawFrame"](width=2, pixels=__import__("numpy").zeros(4, "u1"))
        bag.write("/camera/image_raw", "acme_msgs/msg/RawFrame", msg, helpers.stamp(0))
    with pytest.raises(ValueError, match=r"'/camera/image_raw' carries acme_msgs/msg/RawFrame"):
        ReplayBag(bag.path)
