"""The synthetic world's ground truth is exact and self-consistent (in memory, small frames)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omeganet_ros import geometry
from omeganet_ros.classes import BUILDING, CAR, DYNAMIC_TRAIN_IDS, PERSON, POLE, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION
from omeganet_ros.synth import SynthConfig, SyntheticSequence, iterate_frames

SIZE = (320, 96)
FRAMES = 6


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(2)
    return SyntheticSequence(SynthConfig(frames=FRAMES, seed=7, width=SIZE[0], height=SIZE[1]))


@pytest.fixture(scope="module")
def frames(world):
    return list(world)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` (H×W×3) at p + flow(p) with bilinear interpolation (torch grid_sample)."""
    h, w = flow.shape[:2]
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    x = (u + np.nan_to_num(flow[..., 0])) / (w - 1) * 2 - 1
    y = (v + np.nan_to_num(flow[..., 1])) / (h - 1) * 2 - 1
    grid = torch.from_numpy(np.stack([x, y], axis=-1).astype(np.float32))[None]
    src = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    return F.grid_sample(src, grid, mode="bilinear", align_corners=True)[0].permute(1, 2, 0).numpy()


def _rigid_flow(frame, pose_other):
    depth = torch.from_numpy(np.where(np.isfinite(frame["depth"]), frame["depth"], 1.0))[None, None].double()
    K = torch.from_numpy(frame["K"])[None]
    motion = torch.from_numpy(np.linalg.inv(frame["pose"]) @ pose_other)[None]
    return geometry.rigid_flow(depth, K, motion)[0].permute(1, 2, 0).numpy()


def test_output_shapes_and_types(frames):
    f = frames[0]
    w, h = SIZE
    assert f["image"].shape == (h, w, 3) and f["image"].dtype == np.uint8
    assert f["depth"].shape == (h, w) and f["depth"].dtype == np.float32
    assert f["flow_fw"].shape == (h, w, 2) and f["flow_bw"].dtype == np.float32
    assert f["semantic"].dtype == np.uint8 and f["instance"].dtype == np.uint16 and f["motion"].dtype == np.uint8
    np.testing.assert_array_equal(frames[0]["pose"], np.eye(4))
    assert [x["index"] for x in frames] == list(range(FRAMES))
    stamps = [x["stamp_ns"] for x in frames]
    assert np.all(np.diff(stamps) == 100_000_000)  # 10 Hz default
    # KITTI-like motion: 0.5-1.5 m per frame and small rotations.
    for a, b in zip(frames, frames[1:]):
        motion = np.linalg.inv(a["pose"]) @ b["pose"]
        assert 0.45 < np.linalg.norm(motion[:3, 3]) < 1.55
        angle = np.degrees(np.arccos(np.clip((np.trace(motion[:3, :3]) - 1) / 2, -1, 1)))
        assert angle < 3.0


@pytest.mark.parametrize("direction", ["fw", "bw"])
def test_photometric_consistency_with_gt_flow(frames, direction):
    for t in range(1, FRAMES - 1):
        frame = frames[t]
        other = frames[t + 1] if direction == "fw" else frames[t - 1]
        flow = frame[f"flow_{direction}"]
        valid = np.isfinite(flow[..., 0])
        assert valid.mean() > 0.5
        target = frame["image"].astype(np.float32)
        warped = _warp(other["image"], flow)
        warped_error = np.abs(warped - target).mean(-1)[valid].mean()
        identity_error = np.abs(other["image"].astype(np.float32) - target).mean(-1)[valid].mean()
        assert warped_error < 0.35 * identity_error, (warped_error, identity_error)
        assert warped_error < 8.0  # 8-bit units: near-exact apart from resampling
        # Static pixels warped with depth + pose + K (rigid flow) are just as consistent.
        static = valid & (frame["motion"] == 0) & np.isfinite(frame["depth"])
        rigid = _rigid_flow(frame, other["pose"])
        rigid_error = np.abs(_warp(other["image"], rigid) - target).mean(-1)[static].mean()
        assert rigid_error < 0.35 * np.abs(other["image"].astype(np.float32) - target).mean(-1)[static].mean()


def test_rigid_flow_equals_gt_flow_exactly_on_static_pixels(frames):
    seen_moving = 0
    for t in range(FRAMES - 1):
        frame = frames[t]
        flow = frame["flow_fw"]
        solid = np.isfinite(flow[..., 0]) & np.isfinite(frame["depth"])
        diff = np.linalg.norm(_rigid_flow(frame, frames[t + 1]["pose"]) - flow, axis=-1)
        static = solid & (frame["motion"] == 0)
        moving = solid & (frame["motion"] == 1)
        assert np.percentile(diff[static], 99.9) < 5e-3 and diff[static].max() < 0.05
        # Where rigid flow and the true flow disagree, the pixel is exactly one of the motion mask's.
        assert np.all(frame["motion"][solid & (diff > 0.05)] == 1)
        if moving.any():
            seen_moving += moving.sum()
            assert np.mean(diff[moving] > 0.05) > 0.95
            for inst in np.unique(frame["instance"][moving]):
                pixels = moving & (frame["instance"] == inst)
                if pixels.sum() >= 20:  # far objects moving along the line of sight can differ by little
                    assert np.max(diff[pixels]) > 0.02, inst
    assert seen_moving > 100


def test_car_at_camera_speed_is_moving_but_still_in_the_image():
    """On a straight road without sway, the ego-lane car ahead keeps its place in the image exactly,
    yet it moves in the world: motion mask 1 and a large rigid-flow residual."""
    world = SyntheticSequence(SynthConfig(frames=3, seed=3, width=SIZE[0], height=SIZE[1], curviness=0.0, sway=0.0))
    frames = list(world)
    follower = int(world.scene.instance[world.scene.follow == 1][0])
    frame = frames[1]
    pixels = (frame["instance"] == follower) & np.isfinite(frame["flow_fw"][..., 0])
    assert pixels.sum() > 50 and np.all(frame["motion"][pixels] == 1) and np.all(frame["semantic"][pixels] == CAR)
    assert np.abs(frame["flow_fw"][pixels]).max() < 1e-3
    assert np.abs(frame["flow_bw"][pixels]).max() < 1e-3
    rigid_norm = np.linalg.norm(_rigid_flow(frame, frames[2]["pose"])[pixels], axis=-1)
    assert np.median(rigid_norm) > 0.3


def test_depth_semantics_instances_agree(frames):
    classes = set()
    for frame in frames:
        depth, sem, inst, motion = frame["depth"], frame["semantic"], frame["instance"], frame["motion"]
        sky = sem == SKY
        assert sky.any()
        np.testing.assert_array_equal(~np.isfinite(depth), sky)  # sky is +inf, nothing else is
        assert np.all(depth[~sky] > 0)
        assert np.all(np.isin(sem[motion == 1], DYNAMIC_TRAIN_IDS))
        assert np.all(inst[motion == 1] > 0)
        stuff = np.isin(sem, [ROAD, SIDEWALK, TERRAIN, SKY])
        np.testing.assert_array_equal(inst == 0, stuff)  # every object has an instance, stuff none
        for i in np.unique(inst[inst > 0]):
            assert len(np.unique(sem[inst == i])) == 1  # one class per instance
        # Forward/backward flow defined together per pixel (both components NaN or neither).
        for key in ("flow_fw", "flow_bw"):
            np.testing.assert_array_equal(np.isnan(frame[key][..., 0]), np.isnan(frame[key][..., 1]))
        classes |= set(np.unique(sem).tolist())
    assert {ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, CAR, PERSON} <= classes


def test_valid_flow_lands_inside_and_on_the_same_object(frames):
    for t in range(FRAMES - 1):
        frame, nxt = frames[t], frames[t + 1]
        h, w = frame["depth"].shape
        flow = frame["flow_fw"]
        valid = np.isfinite(flow[..., 0]) & np.isfinite(frame["depth"])
        v, u = np.nonzero(valid)
        tu = np.round(u + flow[v, u, 0]).astype(int)
        tv = np.round(v + flow[v, u, 1]).astype(int)
        assert tu.min() >= 0 and tu.max() < w and tv.min() >= 0 and tv.max() < h
        # The surface point seen at t is the one seen at t+1 at the flow's target: same instance there.
        np.testing.assert_array_equal(nxt["instance"][tv, tu], frame["instance"][v, u])
        # Out-of-view pixels are invalid: the left/right borders lose pixels when moving forward.
        assert not np.all(np.isfinite(flow[:, 0, 0]) & np.isfinite(flow[:, -1, 0]))


def test_same_seed_identical_different_seed_different():
    a = list(iterate_frames(frames=2, seed=11, size=(160, 48)))
    b = list(iterate_frames(frames=2, seed=11, size=(160, 48)))
    c = list(iterate_frames(frames=2, seed=12, size=(160, 48)))
    for x, y in zip(a, b):
        for key in ("image", "depth", "flow_fw", "flow_bw", "semantic", "instance", "motion", "pose"):
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    assert np.abs(a[1]["image"].astype(int) - c[1]["image"].astype(int)).mean() > 10
    assert not np.array_equal(a[1]["pose"], c[1]["pose"])


def test_intrinsics_default_and_custom():
    default = SynthConfig(width=640, height=192).K()
    np.testing.assert_allclose(default, [[371.2, 0, 319.5], [0, 368.64, 95.5], [0, 0, 1]])
    seq = SyntheticSequence(SynthConfig(frames=1, width=96, height=64, intrinsics=(80, 80, 40, 30)))
    frame = next(iter(seq))
    np.testing.assert_allclose(frame["K"], [[80, 0, 40], [0, 80, 30], [0, 0, 1]])
    with pytest.raises(ValueError, match="frames"):
        SynthConfig(frames=0)


def test_exposure_and_noise_options_change_only_the_image():
    base = next(iterate_frames(frames=1, seed=3, size=(96, 48)))
    noisy = next(iterate_frames(frames=1, seed=3, size=(96, 48), noise_std=4.0, exposure_jitter=0.2))
    assert np.abs(base["image"].astype(int) - noisy["image"].astype(int)).mean() > 1
    np.testing.assert_array_equal(base["depth"], noisy["depth"])
    np.testing.assert_array_equal(base["flow_fw"], noisy["flow_fw"])


def test_pipelined_rendering_gives_identical_frames():
    config = dict(frames=3, seed=9, width=96, height=48)
    threaded = list(SyntheticSequence(SynthConfig(pipeline=True, **config)))
    serial = list(SyntheticSequence(SynthConfig(pipeline=False, **config)))
    for x, y in zip(threaded, serial):
        for key in ("image", "depth", "flow_fw", "flow_bw", "instance"):
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
