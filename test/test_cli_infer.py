"""omeganet-infer on a short video, an image folder and a ROS 2 bag; the frame sources behind it."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from omeganet_ros.cli import infer
from omeganet_ros.data.layout import SequenceFolder, read_poses
from omeganet_ros.data.sources import ImageFolderSource, RosbagSource, VideoSource, open_source

W, H = 160, 80  # frames; the network runs at 128×64


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def _frames(n):
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.integers(0, 256, (H, W + 6 * n, 3), dtype=np.uint8), (5, 5), 0)
    return [np.ascontiguousarray(base[:, 6 * i: 6 * i + W]) for i in range(n)]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for f in _frames(5):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_frames(4)):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (folder / "img_001b.png").write_bytes(b"this is not a png")  # sorts between frames 1 and 2
    (folder / "notes.txt").write_text("ignored")
    return folder


def _run(args):
    return infer.main(args + ["--size", "128x64", "--checkpoint", "random", "--quiet", "--threads", "2", "--backend", "torch"])


def test_infer_on_video_writes_sequence_folder(video, tmp_path, capsys):
    out = tmp_path / "pred"
    assert _run(["--input", str(video), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames_read"] == 5 and summary["frames_written"] == 3 and summary["frames_skipped"] == 0
    seq = SequenceFolder(out)
    assert seq.indices("depth") == [1, 2, 3]  # first and last frames lack a neighbour
    assert seq.indices("flow_fw") == [1, 2, 3] and seq.indices("semantic") == [1, 2, 3]
    assert seq.indices("motion") == [1, 2, 3] and not seq.has("images")
    depth = seq.read("depth", 2)
    assert depth.shape == (H, W) and depth.dtype == np.float32 and (depth > 0).all()
    assert seq.read("flow_fw", 2).shape == (H, W, 2)
    assert seq.read("semantic", 1).max() < 19 and set(np.unique(seq.read("motion", 1))) <= {0, 1}
    poses = read_poses(out / "poses.txt")
    assert poses.shape == (5, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)
    first_index = [int(line.split()[0]) for line in (out / "poses.txt").read_text().splitlines()]
    assert first_index == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(poses[:, :3, :3] @ poses[:, :3, :3].transpose(0, 2, 1), np.tile(np.eye(3), (5, 1, 1)), atol=1e-5)
    K = seq.intrinsics()
    assert K.shape == (3, 3) and K[0, 0] > 0 and K[2, 2] == 1
    meta = seq.meta()
    assert meta["depth_metric"] is False and meta["engine"]["random_weights"] is True
    stamps = [float(line.split()[1]) for line in (out / "stamps.txt").read_text().splitlines()]
    assert len(stamps) == 5 and all(b > a for a, b in zip(stamps, stamps[1:]))


def test_infer_on_image_folder_skips_unreadable_frames(image_folder, tmp_path, capsys):
    out = tmp_path / "pred"
    K = "120,118,79.5,39.5"
    assert _run(["--input", str(image_folder), "--out", str(out), "--save-images", "--intrinsics", K,
                 "--depth-scale", "3.0"]) == 0
    seq = SequenceFolder(out)
    meta = seq.meta()
    assert meta["frames_read"] == 4 and meta["frames_skipped"] == 1 and "img_001b.png" in meta["skipped_reasons"][0]
    assert meta["depth_metric"] is True and meta["depth_scale"] == 3.0 and meta["intrinsics"] == "given"
    assert seq.indices("depth") == [1, 2]
    np.testing.assert_allclose(seq.intrinsics(), [[120, 0, 79.5], [0, 118, 39.5], [0, 0, 1]], atol=1e-4)
    # the saved image is the frame the predictions belong to (img_002 has index 2 after the skipped file)
    np.testing.assert_array_equal(seq.read("images", 2), _frames(4)[2])


def test_infer_causal_mode_writes_backward_flow(image_folder, tmp_path):
    out = tmp_path / "pred"
    assert _run(["--input", str(image_folder), "--out", str(out), "--causal"]) == 0
    seq = SequenceFolder(out)
    assert seq.indices("depth") == [1, 2, 3] and seq.indices("flow_bw") == [1, 2, 3] and not seq.has("flow_fw")
    assert read_poses(out / "poses.txt").shape == (4, 4, 4)


def test_infer_rotation_from_flow_is_on_by_default_and_can_be_turned_off(image_folder, tmp_path, capsys):
    out = tmp_path / "pred"
    assert _run(["--input", str(image_folder), "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["engine"]["rotation_from_flow"] is True  # the node's default (pose_proxy.ROTATION_FROM_FLOW_DEFAULT)
    assert read_poses(out / "poses.txt").shape[0] >= 3
    assert _run(["--input", str(image_folder), "--out", str(tmp_path / "off"), "--no-rotation-from-flow"]) == 0
    assert json.loads((tmp_path / "off" / "meta.json").read_text())["engine"]["rotation_from_flow"] is False
    capsys.readouterr()
    # the Moreau model has no flow: the option does not apply to it and is not an error
    assert infer.main(["--input", str(image_folder), "--out", str(tmp_path / "m"), "--checkpoint", "moreau", "--quiet",
                       "--size", "128x64", "--backend", "torch", "--rotation-from-flow"]) == 0
    assert "rotation_from_flow" not in json.loads((tmp_path / "m" / "meta.json").read_text())["engine"]


def _write_bag(path, frames, bad_index=None):
    from omeganet_ros.data.rosbag_io import BagWriter

    with BagWriter(path) as bag:
        for i, f in enumerate(frames):
            stamp = 1_000_000_000 + i * 100_000_000
            if i == bad_index:
                bag.write_image("/cam/image", stamp, np.zeros((H, W), np.float32), "32FC1", "cam")
            else:
                bag.write_image("/cam/image", stamp, f[..., ::-1].copy(), "bgr8", "cam")
        bag.write_camera_info("/cam/info", 1_000_000_000, np.eye(3), W, H, "cam")
    return path


def test_infer_on_rosbag_and_missing_topic(tmp_path, capsys):
    bag = _write_bag(tmp_path / "run.mcap", _frames(5), bad_index=1)
    bag_dir = tmp_path / "run.mcap"
    out = tmp_path / "pred"
    assert _run(["--input", str(bag_dir), "--topic", "/cam/image", "--out", str(out)]) == 0
    meta = SequenceFolder(out).meta()
    assert meta["frames_read"] == 4 and meta["frames_skipped"] == 1 and "32FC1" in meta["skipped_reasons"][0]
    stamps = [float(line.split()[1]) for line in (out / "stamps.txt").read_text().splitlines()]
    np.testing.assert_allclose(stamps, [1.0, 1.2, 1.3, 1.4])  # header stamps; the bad message is skipped
    capsys.readouterr()
    assert _run(["--input", str(bag_dir), "--topic", "/nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no topic '/nope'" in err and "/cam/image" in err
    assert _run(["--input", str(bag_dir), "--topic", "/cam/info", "--out", str(tmp_path / "x")]) == 2
    assert "CameraInfo" in capsys.readouterr().err
    assert _run(["--input", str(bag_dir), "--out", str(tmp_path / "x")]) == 2
    assert "--topic" in capsys.readouterr().err


def test_rosbag_source_reads_sqlite3_bags(tmp_path):
    frames = _frames(3)
    _write_bag(tmp_path / "b.db3", frames)
    source = open_source(tmp_path / "b", topic="/cam/image")
    assert isinstance(source, RosbagSource) and len(source) == 3
    got = list(source)
    assert [i for i, _, _ in got] == [0, 1, 2]
    np.testing.assert_array_equal(got[1][2], frames[1])


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    assert _run(["--input", str(tmp_path / "absent.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "absent.mp4 does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError, match="holds no"):
        ImageFolderSource(empty)
    not_video = tmp_path / "fake.mp4"
    not_video.write_bytes(b"\x00" * 64)
    with pytest.raises(OSError, match="fake.mp4"):
        VideoSource(not_video)
    single = tmp_path / "one.png"
    cv2.imwrite(str(single), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="single image"):
        open_source(single)
    with pytest.raises(SystemExit):
        infer.main(["--input", "x", "--out", "y", "--size", "big"])


def test_video_source_pyav_backend_matches_opencv(video):
    cv_frames = list(VideoSource(video, backend="opencv"))
    av_frames = list(VideoSource(video, backend="pyav"))
    assert len(cv_frames) == len(av_frames) == 5
    assert av_frames[0][2].shape == (H, W, 3)
    assert np.abs(cv_frames[2][2].astype(int) - av_frames[2][2].astype(int)).mean() < 3  # same decode up to YUV rounding
    assert [round(s, 3) for _, s, _ in av_frames] == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "omeganet-infer"
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--checkpoint" in result.stdout and "--topic" in result.stdout


def _run_at(args, size="128x128"):
    return infer.main(args + ["--size", size, "--checkpoint", "random", "--quiet", "--threads", "2", "--backend", "torch"])


def _write_folder(folder, frames, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:06d}{suffix}"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


def test_two_frames_explain_why_nothing_was_written(tmp_path, capsys):
    folder = _write_folder(tmp_path / "two", _frames(2))
    assert _run_at(["--input", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "2 readable frame(s) gave no output" in err and "--causal" in err
    assert _run_at(["--input", str(folder), "--out", str(tmp_path / "c"), "--causal"]) == 0


def test_ppm_folders_are_sequences_and_unknown_files_are_refused(tmp_path):
    folder = _write_folder(tmp_path / "ppm", _frames(3), ".ppm")
    assert [index for index, _, _ in open_source(folder)] == [0, 1, 2]
    with pytest.raises(ValueError, match="single image"):
        open_source(folder / "000000.ppm")
    odd = tmp_path / "frames.xyz"
    odd.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="unknown kind of file"):
        open_source(odd)


def test_huge_images_are_refused_from_the_header_before_decoding(tmp_path):
    from omeganet_ros.data.rosbag_io import ImageTooLarge, compressed_to_rgb8

    folder = _write_folder(tmp_path / "frames", _frames(3))
    bomb = np.zeros((5000, 9000), np.uint8)  # 45 Mpx of one grey: a small file, a large decode
    assert cv2.imwrite(str(folder / "000001b.png"), bomb)
    encoded = (folder / "000001b.png").read_bytes()
    assert len(encoded) < 200_000
    source = open_source(folder)
    assert len(list(source)) == 3 and source.skipped == 1
    assert "over the limit" in source.errors[0] and "000001b.png" in source.errors[0]
    with pytest.raises(ImageTooLarge, match="9000×5000"):
        compressed_to_rgb8("png", encoded)


def test_kitti_calibration_files_give_intrinsics(shared_data, tmp_path):
    from omeganet_ros.data.intrinsics import read_intrinsics
    from omeganet_ros.data.kitti import CamToCam

    raw = next((shared_data / "kitti_raw_tiny").rglob("calib_cam_to_cam.txt"))
    assert np.allclose(read_intrinsics(raw), CamToCam(raw).K(2))
    assert np.allclose(read_intrinsics(f"{raw}:P_rect_00"), CamToCam(raw).K(0))
    odometry = tmp_path / "calib.txt"
    odometry.write_text("".join(f"P{c}: {700 + c} 0 600 {-300 * c} 0 {700 + c} 180 0 0 0 1 0\n" for c in range(4))
                        + "Tr: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    assert read_intrinsics(odometry)[0, 0] == 702  # P2: the left colour camera
    assert read_intrinsics(f"{odometry}:P0")[0, 0] == 700
    assert infer.parse_intrinsics(str(odometry))[1, 2] == 180
    with pytest.raises(ValueError, match="no P7 projection"):
        read_intrinsics(f"{odometry}:P7")


def test_outputs_layers_scene_cuts_and_untrained_networks_are_reported(tmp_path, capsys, caplog):
    from omeganet_ros.train.lineage import untrained_outputs

    blue = np.zeros_like(_frames(1)[0])
    blue[..., 2] = 220
    blue[::3, ::3, 0] = 60
    folder = _write_folder(tmp_path / "cut", _frames(4) + [blue, np.roll(blue, 3, axis=1), np.roll(blue, 6, axis=1)])
    out = tmp_path / "o"
    assert _run_at(["--input", str(folder), "--out", str(out), "--outputs", "depth,semantic"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["window_restarts"] == {"scene_cut": 1}
    assert meta["frames_written"] == 2 + 1  # two from the first scene, one from the second
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["depth", "semantic"]
    with pytest.raises(SystemExit):
        infer.main(["--input", str(folder), "--out", str(tmp_path / "x"), "--outputs", "depth,colour"])
    assert "unknown layer(s) ['colour']" in capsys.readouterr().err
    # A stage-1 checkpoint: OFNet never trained.
    assert untrained_outputs({"networks_trained_by_stage": {"dsnet": 1, "camnet": 1, "ofnet": None},
                              "semantic_head_trained_by_stage": 1}) == ["flow", "motion"]
    assert "semantic" in untrained_outputs({"networks_trained_by_stage": {"dsnet": 1, "camnet": 1, "ofnet": 2},
                                            "semantic_head_trained_by_stage": None})
    assert untrained_outputs({}) is None
