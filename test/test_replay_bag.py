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


class _FakeSession:
    """Stands in for ReplaySession in play_frames: records what would go on the wire; a paper-mode node
    answers frame k−1 as soon as frame k is published."""

    def __init__(self, answer_lag: int | None = 1):
        from omeganet_ros.report.timing import RunTiming

        self.timing = RunTiming()
        self.published, self.clock, self.waits = [], [], []
        self.answer_lag = answer_lag

    def publish_clock(self, stamp_ns):
        self.clock.append(stamp_ns)

    def publish_raw(self, topic, data):
        import time

        self.published.append((topic, header_stamp_ns(data), time.monotonic()))
        if topic == "/image" and self.answer_lag is not None:
            offered = self.timing.offered_stamps
            if len(offered) > self.answer_lag:
                self.timing.receive(offered[-1 - self.answer_lag], time.monotonic())

    def wait_for_result(self, stamps, timeout):
        self.waits.append((set(stamps), timeout))
        return any(s in self.timing.received_wall for s in stamps)


TOPIC_MAP = {"/camera/image_raw": "/image", "/camera/camera_info": "/camera_info"}


def test_original_timing_at_a_rate_factor_with_clock(camera_bag):
    from omeganet_ros.ros.replay import play_frames

    session = _FakeSession()
    sent = play_frames(session, ReplayBag(camera_bag).frames(), TOPIC_MAP, pacing="timed", rate=2.0)
    assert sent == [helpers.stamp(i) for i in range(6)]
    images = [(s, t) for topic, s, t in session.published if topic == "/image"]
    assert [s for s, _ in images] == sent
    # 0.5 s of bag at twice the speed: at least 0.25 s of wall time, each frame no earlier than its slot.
    for i, (_, t) in enumerate(images):
        assert t - images[0][1] >= i * 0.05 - 1e-3
    assert images[-1][1] - images[0][1] < 2.0
    assert session.clock == sorted(session.clock) and session.clock[0] == helpers.stamp(0)
    assert helpers.stamp(0) <= min(session.clock) and max(session.clock) <= helpers.stamp(5)
    # camera_info goes out right before the image of the same stamp.
    topics = [topic for topic, _, _ in session.published]
    assert topics == ["/camera_info", "/image"] * 6


def test_keep_up_waits_for_the_result_each_frame_enables(camera_bag):
    from omeganet_ros.ros.replay import play_frames

    session = _FakeSession(answer_lag=1)
    offset = 30_000_000_000
    sent = play_frames(session, ReplayBag(camera_bag).frames(), TOPIC_MAP, pacing="keep-up",
                       keep_up_timeout=7.0, stamp_offset_ns=offset)
    assert sent == [helpers.stamp(i) + offset for i in range(6)]
    assert all(s == helpers.stamp(i // 2) + offset for i, (_, s, _) in enumerate(session.published))
    # Warm-up: short waits until the first answer shows the node answers frame k−1; then exactly that one.
    assert session.waits[:2] == [({sent[0]}, 1.0), ({sent[1]}, 1.0)]   # frame 0 was answered when 1 went out
    assert [w for w, _ in session.waits[2:]] == [{sent[k - 1]} for k in range(2, 6)]
    assert all(timeout == 7.0 for _, timeout in session.waits[2:])


def test_fixed_rate_pacing_and_bad_pacing(camera_bag):
    from omeganet_ros.ros.replay import play_frames

    session = _FakeSession(answer_lag=None)
    play_frames(session, ReplayBag(camera_bag, max_frames=4).frames(), TOPIC_MAP, pacing="fps", fps=20.0)
    times = [t for topic, _, t in session.published if topic == "/image"]
    assert len(times) == 4 and times[-1] - times[0] >= 3 * 0.05 - 1e-3
    with pytest.raises(ValueError, match="--fps must be positive"):
        play_frames(session, [], TOPIC_MAP, pacing="fps", fps=0)
    with pytest.raises(ValueError, match="unknown pacing"):
        play_frames(session, [], TOPIC_MAP, pacing="burst")
