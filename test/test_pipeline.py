"""ScenePipeline: the frame window's restarts (input gaps, not own drops; size; stamps; scene cuts), metric
scale and the trajectory, with the real engine where the network matters and a scripted one where the
arithmetic of the policy is checked exactly."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from omeganet_ros.engine import SceneEngine, SceneOutputs
from omeganet_ros.pipeline import SceneCutDetector, ScenePipeline
from omeganet_ros.scale_recovery import ScaleRecovery
from omeganet_ros.synth import iterate_frames

SIZE = (128, 128)


@pytest.fixture(scope="module")
def street():
    """18 frames of a synthetic street at 10 Hz."""
    return [(f["image"], f["stamp_ns"] * 1e-9) for f in iterate_frames(frames=18, seed=3, size=SIZE)]


@pytest.fixture(scope="module")
def engine():
    return SceneEngine("random", device="cpu", size=SIZE)


def _translation(z: float) -> np.ndarray:
    motion = np.eye(4)
    motion[2, 3] = z
    return motion


class ScriptedEngine:
    """Paper-mode stand-in for SceneEngine: the motion between two frames is 1 unit of z per second of stamp."""

    depth_is_metric = False

    def __init__(self):
        self.frames = deque(maxlen=3)
        self.resets = 0

    def reset(self):
        self.frames.clear()
        self.resets += 1

    def push(self, frame, stamp, K=None):
        if self.frames and stamp <= self.frames[-1]:
            self.frames.clear()
        self.frames.append(stamp)
        if len(self.frames) < 3:
            return None
        prev, cur, nxt = self.frames
        h, w = frame.shape[:2]
        return SceneOutputs(stamp=cur, depth=np.full((h, w), 2.0, np.float32), depth_is_metric=False, depth_scale=1.0,
                            semantic=np.zeros((h, w), np.uint8), flow=np.zeros((h, w, 2), np.float32),
                            motion_probability=np.zeros((h, w), np.float32), motion_mask=np.zeros((h, w), bool),
                            ego_motion=_translation(nxt - cur), motion_from_previous=_translation(cur - prev),
                            intrinsics=np.array([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]), timings_ms={})


def test_own_drops_do_not_restart_the_window_and_odometry_spans_them(street, engine):
    """A node at 10 Hz that can only process every third frame: gaps are in its own processing, not the camera."""
    pipeline = ScenePipeline(engine, max_input_gap=0.15)
    processed = outputs = 0
    for i, (image, stamp) in enumerate(street):
        pipeline.observe(stamp)  # the subscription saw it
        if i % 3:
            continue  # dropped: the node was busy
        processed += 1
        outputs += pipeline.push(image, stamp) is not None
    assert sum(pipeline.restarts.values()) == 0, pipeline.restarts
    assert outputs == processed - 2  # every processed frame after the first two (paper mode, one frame late)

    # Without observe(), the same stream looks like a camera with 0.3 s gaps: each push restarts the window.
    blind = ScenePipeline(ScriptedEngine(), max_input_gap=0.15)
    assert not any(blind.push(image, stamp) for image, stamp in street[::3])
    assert blind.restarts["gap"] == len(street[::3]) - 1


def test_odometry_chains_every_processed_pair_and_reaches_the_last_frame():
    pipeline = ScenePipeline(ScriptedEngine(), max_input_gap=0.5)
    frame = np.zeros((48, 64, 3), np.uint8)
    stamps = [0.0, 0.1, 0.4, 0.5, 0.9, 1.0]  # irregular: frames were skipped in between
    results = [r for s in stamps if (r := pipeline.push(frame, s, tag=f"frame@{s}")) is not None]
    assert [r.frame.tag for r in results] == [f"frame@{s}" for s in stamps[1:-1]]
    for result, stamp in zip(results, stamps[1:-1]):
        assert result.pose[2, 3] == pytest.approx(stamp)  # the motion from frame 0, skipped frames included
    assert results[0].previous.tag == "frame@0.0" and results[0].neighbour.tag == "frame@0.4"
    assert results[-1].dt == pytest.approx(0.4)
    last, pose = pipeline.final_pose()
    assert last.tag == "frame@1.0" and pose[2, 3] == pytest.approx(1.0)


def test_a_real_input_gap_restarts_the_window_but_keeps_the_trajectory():
    engine = ScriptedEngine()
    pipeline = ScenePipeline(engine, max_input_gap=0.5)
    frame = np.zeros((48, 64, 3), np.uint8)
    for stamp in (0.0, 0.1, 0.2, 0.3):
        pipeline.observe(stamp)
        pipeline.push(frame, stamp)
    pose_before = pipeline.pose
    for stamp in (2.0, 2.1, 2.2):  # the camera was silent for 1.7 s
        pipeline.observe(stamp)
        result = pipeline.push(frame, stamp)
    assert pipeline.restarts == {"gap": 1}
    assert result.trajectory == 0
    assert result.pose[2, 3] == pytest.approx(pose_before[2, 3] + 0.1)  # the gap's motion is unknown: none


def test_stamp_going_back_starts_a_new_trajectory_and_size_change_restarts():
    pipeline = ScenePipeline(ScriptedEngine())
    small, large = np.zeros((48, 64, 3), np.uint8), np.zeros((96, 128, 3), np.uint8)
    for stamp in (10.0, 10.1, 10.2, 10.3):
        pipeline.push(small, stamp)
    assert pipeline.pose[2, 3] == pytest.approx(0.2)
    for stamp in (0.0, 0.1, 0.2):  # a bag looped
        result = pipeline.push(small, stamp)
    assert pipeline.restarts["stamp_went_back"] == 1 and result.trajectory == 1
    assert result.pose[2, 3] == pytest.approx(0.1)
    assert pipeline.push(large, 0.3) is None
    assert pipeline.restarts["image_size_changed"] == 1
    with pytest.raises(ValueError, match="repeats the previous frame"):
        pipeline.push(large, 0.3)


def test_metric_scale_multiplies_depth_and_translations():
    pipeline = ScenePipeline(ScriptedEngine(), scale_recovery=ScaleRecovery("fixed", fixed_scale=3.0))
    frame = np.zeros((48, 64, 3), np.uint8)
    for stamp in (0.0, 0.1, 0.3):
        result = pipeline.push(frame, stamp)
    assert result.metric and result.scale == 3.0 and result.outputs.depth_is_metric
    assert np.allclose(result.outputs.depth, 6.0)
    assert result.outputs.motion_from_previous[2, 3] == pytest.approx(0.3)
    assert result.outputs.ego_motion[2, 3] == pytest.approx(0.6)
    assert result.pose[2, 3] == pytest.approx(0.3)


def test_scene_cut_restarts_the_window(street):
    engine = ScriptedEngine()
    pipeline = ScenePipeline(engine)
    for image, stamp in street[:6]:
        pipeline.push(image, stamp)
    assert not pipeline.restarts, "consecutive frames of one street are not a cut"
    other = np.zeros_like(street[0][0])
    other[..., 2] = 200  # a different scene: all blue
    other[::2, ::2, 0] = 90
    pipeline.push(other, street[6][1])
    assert pipeline.restarts == {"scene_cut": 1}
    assert pipeline.scene_cuts.last_correlation < 0.5


def test_scene_cut_on_real_video_between_two_recordings(shared_data):
    """KITTI frames in a row are one scene, even three frames apart; a switch to the Udacity clip is a cut."""
    import cv2

    kitti = sorted((shared_data / "kitti_raw_tiny").rglob("image_02/data/*.png"))[:7]
    if len(kitti) < 7:
        pytest.skip("kitti_raw_tiny frames not found")
    detector = SceneCutDetector()
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in kitti]
    assert not any(detector.is_cut(f) for f in frames[::3])
    video = cv2.VideoCapture(str(shared_data / "driving" / "solidWhiteRight.mp4"))
    ok, bgr = video.read()
    assert ok
    assert detector.is_cut(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
