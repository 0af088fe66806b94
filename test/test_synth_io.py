"""Synthetic sequences on disk: folder layout, ROS 2 bags that match it (stamps included), the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from omeganet_ros.cli.synth import main as synth_main
from omeganet_ros.data.layout import SequenceFolder
from omeganet_ros.data.rosbag_io import image_to_numpy, image_to_rgb8, iter_messages, list_topics, pose_msg_to_matrix
from omeganet_ros.synth import generate_sequence
from omeganet_ros.synth.writer import TOPICS

FRAMES = 3


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    out = generate_sequence(root / "seq", frames=FRAMES, seed=5, size=(160, 48), bag=root / "run.mcap", fps=20.0)
    return out, root / "run.mcap"


def test_folder_layout(written):
    out, _ = written
    folder = SequenceFolder(out)
    for kind in ("images", "depth", "flow_fw", "flow_bw", "semantic", "instance", "motion"):
        assert folder.indices(kind) == list(range(FRAMES)), kind
    assert folder.read("images", 0).shape == (48, 160, 3)
    assert folder.read("instance", 1).dtype == np.uint16
    assert folder.read("flow_fw", 2).shape == (48, 160, 2)
    poses = folder.poses()
    assert poses.shape == (FRAMES, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-12)
    meta = folder.meta()
    assert meta["seed"] == 5 and meta["size"] == [160, 48] and meta["rate"] == 20.0
    assert meta["classes"][0] == "road" and len(meta["classes"]) == 19 and meta["generator_version"]
    assert np.all(np.diff(meta["stamps_ns"]) == 50_000_000)
    np.testing.assert_allclose(folder.intrinsics(), [[0.58 * 160, 0, 79.5], [0, 1.92 * 48, 23.5], [0, 0, 1]])


def test_bag_matches_folder(written):
    out, bag = written
    folder = SequenceFolder(out)
    meta = folder.meta()
    assert set(list_topics(bag)) == set(TOPICS.values())
    seen: dict[str, list[int]] = {}
    for topic, stamp, _msgtype, msg in iter_messages(bag):
        header_stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert header_stamp == stamp
        index = meta["stamps_ns"].index(stamp)
        seen.setdefault(topic, []).append(stamp)
        if topic == TOPICS["image"]:
            assert msg.encoding == "rgb8" and msg.header.frame_id == "camera_optical_frame"
            np.testing.assert_array_equal(image_to_rgb8(msg), folder.read("images", index))
        elif topic == TOPICS["depth"]:
            assert msg.encoding == "32FC1"
            np.testing.assert_array_equal(image_to_numpy(msg), folder.read("depth", index))
        elif topic == TOPICS["flow"]:
            assert msg.encoding == "32FC2"
            np.testing.assert_array_equal(image_to_numpy(msg), folder.read("flow_fw", index))  # NaN == NaN here
        elif topic == TOPICS["semantic"]:
            np.testing.assert_array_equal(image_to_numpy(msg), folder.read("semantic", index))
        elif topic == TOPICS["instance"]:
            np.testing.assert_array_equal(image_to_numpy(msg), folder.read("instance", index))
        elif topic == TOPICS["motion"]:
            np.testing.assert_array_equal(image_to_numpy(msg), folder.read("motion", index))
        elif topic == TOPICS["pose"]:
            assert msg.header.frame_id == "world"
            np.testing.assert_allclose(pose_msg_to_matrix(msg.pose), folder.poses()[index], atol=1e-8)
        elif topic == TOPICS["camera_info"]:
            np.testing.assert_allclose(np.asarray(msg.k).reshape(3, 3), folder.intrinsics(), atol=1e-9)
            assert (msg.width, msg.height) == (160, 48)
    assert len(seen) == len(TOPICS)
    for topic, stamps in seen.items():
        assert stamps == meta["stamps_ns"], topic


def test_sqlite3_bag_only(tmp_path):
    assert generate_sequence(None, frames=1, seed=2, size=(64, 32), bag=tmp_path / "only.db3") is None
    assert next((tmp_path / "only").glob("*.db3"))
    messages = list(iter_messages(tmp_path / "only", [TOPICS["image"], TOPICS["pose"]]))
    assert [m[0] for m in messages].count(TOPICS["image"]) == 1


def test_existing_sequence_is_not_overwritten(written):
    out, _ = written
    with pytest.raises(FileExistsError, match="already holds"):
        generate_sequence(out, frames=1, size=(64, 32))


def test_cli(tmp_path, capsys):
    assert synth_main(["--out", str(tmp_path / "s"), "--frames", "2", "--seed", "4", "--size", "64x32", "--quiet",
                       "--fps", "5"]) == 0
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["size"] == [64, 32] and meta["seed"] == 4 and meta["rate"] == 5.0
    assert synth_main(["--out", str(tmp_path / "t"), "--size", "64by32", "--quiet"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert synth_main(["--quiet"]) == 2


def test_cli_bag_file_is_written_where_named(tmp_path):
    """--bag FILE.mcap writes exactly FILE.mcap (one self-describing mcap), even beside an --out of the same stem."""
    out, bag = tmp_path / "drive", tmp_path / "drive.mcap"
    assert synth_main(["--out", str(out), "--bag", str(bag), "--frames", "2", "--size", "64x32", "--quiet"]) == 0
    assert bag.is_file() and (out / "meta.json").is_file()
    assert not list(out.glob("*.mcap")) and not list(tmp_path.glob(".*"))
    assert [m[0] for m in iter_messages(bag, [TOPICS["image"]])] == [TOPICS["image"]] * 2
    assert synth_main(["--bag", str(bag), "--frames", "1", "--size", "64x32", "--quiet"]) == 2  # no overwrite
