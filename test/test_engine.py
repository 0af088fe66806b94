"""SceneEngine: buffering, stamps, reset, determinism, checkpoints, intrinsics, resolutions, bad input."""
import warnings

import numpy as np
import pytest
import torch

from omeganet_ros import geometry
from omeganet_ros.checkpoint import CheckpointError, save_checkpoint
from omeganet_ros.engine import SceneEngine, SceneOutputs

SIZE = (128, 64)  # network W×H: small keeps the tests fast


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def _frames(n=4, h=80, w=160, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h, w + 8 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 8 * i: 8 * i + w]) for i in range(n)]  # a camera panning right


def _last(engine, frames, **kw):
    """Push ``frames`` (stamps 0, 1, …) and return the last output."""
    return [engine.push(f, float(i), **kw) for i, f in enumerate(frames)][-1]


def _engine(**kw):
    kw.setdefault("checkpoint", "random")
    kw.setdefault("device", "cpu")
    kw.setdefault("size", SIZE)
    return SceneEngine(**kw)


@pytest.fixture(scope="module")
def engine_outputs():
    engine = _engine()
    frames = _frames(4)
    outs = [engine.push(f, 10.0 + 0.1 * i) for i, f in enumerate(frames)]
    return engine, frames, outs


def test_no_output_before_three_frames_then_middle_stamp(engine_outputs):
    _, frames, outs = engine_outputs
    assert outs[0] is None and outs[1] is None
    assert isinstance(outs[2], SceneOutputs) and isinstance(outs[3], SceneOutputs)
    assert outs[2].stamp == pytest.approx(10.1)  # middle of frames 0, 1, 2
    assert outs[3].stamp == pytest.approx(10.2)


def test_outputs_have_documented_shapes_and_types(engine_outputs):
    _, frames, outs = engine_outputs
    o = outs[2]
    h, w = frames[0].shape[:2]
    assert o.size == (w, h)
    assert o.depth.shape == (h, w) and o.depth.dtype == np.float32 and (o.depth > 0).all()
    assert o.semantic.shape == (h, w) and o.semantic.dtype == np.uint8 and o.semantic.max() < 19
    assert o.flow.shape == (h, w, 2) and o.flow.dtype == np.float32
    assert o.rigid_flow.shape == (h, w, 2)
    assert o.motion_probability.shape == (h, w) and 0 <= o.motion_probability.min() <= o.motion_probability.max() <= 1
    assert o.motion_mask.shape == (h, w) and o.motion_mask.dtype == bool
    assert o.ego_motion.shape == (4, 4) and o.motion_from_previous.shape == (4, 4)
    np.testing.assert_allclose(o.ego_motion[:3, :3] @ o.ego_motion[:3, :3].T, np.eye(3), atol=1e-5)
    assert o.intrinsics.shape == (3, 3) and o.intrinsics[2, 2] == 1
    assert not o.depth_is_metric and o.depth_scale == 1.0
    assert o.direction == "forward" and o.intrinsics_source == "camnet"
    assert o.metadata["random_weights"] is True and o.metadata["checkpoint"] is None
    for stage in ("preprocess", "dsnet", "camnet", "ofnet", "motion", "total"):
        assert o.timings_ms[stage] >= 0
    # the mask keeps only potentially dynamic classes above τ
    expected = (o.motion_probability > 0.5) & np.isin(o.semantic, list(range(11, 19)))
    np.testing.assert_array_equal(o.motion_mask, expected)


def test_motion_probability_is_consistent_with_flows(engine_outputs):
    from omeganet_ros.motion import motion_probability
    out = _last(_engine(output_resolution="network"), _frames(3))
    np.testing.assert_allclose(motion_probability(out.flow, out.rigid_flow), out.motion_probability, atol=1e-5)


def test_reset_and_determinism(engine_outputs):
    _, frames, outs = engine_outputs
    engine = _engine()
    first = [engine.push(f, 10.0 + 0.1 * i) for i, f in enumerate(frames[:3])]
    engine.reset()
    assert engine.push(frames[0], 20.0) is None and engine.push(frames[1], 20.1) is None
    again = engine.push(frames[2], 20.2)
    assert again.stamp == pytest.approx(20.1)
    for a, b in ((first[2], outs[2]), (again, outs[2])):  # a second engine, and the same engine after reset
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.flow, b.flow)
        np.testing.assert_array_equal(a.semantic, b.semantic)
        np.testing.assert_array_equal(a.ego_motion, b.ego_motion)


def test_stamp_going_back_restarts_buffer():
    engine = _engine()
    f = _frames(3)
    assert engine.push(f[0], 1.0) is None and engine.push(f[1], 1.1) is None
    assert engine.push(f[2], 0.5) is None  # time jumped back (bag restarted): buffer restarts


def test_bad_frames_raise_clear_errors():
    engine = _engine()
    good = _frames(1)[0]
    with pytest.raises(ValueError, match="uint8"):
        engine.push(good.astype(np.float32), 0.0)
    with pytest.raises(ValueError, match="H×W×3"):
        engine.push(good[..., :2], 0.0)
    with pytest.raises(ValueError, match="H×W×3"):
        engine.push(good[..., 0], 0.0)
    with pytest.raises(ValueError, match="empty"):
        engine.push(np.zeros((0, 0, 3), np.uint8), 0.0)
    with pytest.raises(ValueError, match="numpy array"):
        engine.push(torch.zeros(10, 10, 3, dtype=torch.uint8), 0.0)
    with pytest.raises(ValueError, match="stamp"):
        engine.push(good, float("nan"))
    with pytest.raises(ValueError, match="intrinsics"):
        engine.push(good, 0.0, K=np.zeros((3, 3)))
    assert engine.frames_pushed == 0  # nothing bad entered the buffer


def test_bad_options_raise():
    with pytest.raises(ValueError, match="precision"):
        _engine(precision="int8")
    with pytest.raises(ValueError, match="fp16"):
        _engine(precision="fp16")
    with pytest.raises(ValueError, match="at least 64"):
        _engine(size=(32, 32))
    with pytest.raises(ValueError, match="output_resolution"):
        _engine(output_resolution="full")


def test_checkpoint_round_trip(tmp_path, engine_outputs):
    _, frames, outs = engine_outputs
    source = _engine(seed=7)
    path = save_checkpoint(tmp_path / "engine.pt", source.networks, input_size=SIZE, provenance={"test": True})
    loaded = _engine(checkpoint=path, seed=0)  # seed of random init must not matter
    assert loaded.random_weights is False and loaded.describe()["checkpoint"] == str(path)
    a = [source.push(f, i) for i, f in enumerate(frames[:3])][2]
    b = [loaded.push(f, i) for i, f in enumerate(frames[:3])][2]
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.flow, b.flow)
    assert b.metadata["random_weights"] is False
    # and it differs from a differently-seeded random engine (the weights did load)
    assert not np.array_equal(b.depth, outs[2].depth)


def test_network_size_defaults_to_the_checkpoints_training_size(tmp_path):
    source = _engine(seed=3)
    path = save_checkpoint(tmp_path / "trained_at_192x64.pt", source.networks, input_size=(192, 64))
    assert SceneEngine(checkpoint=path, device="cpu").size == (192, 64)
    assert SceneEngine(checkpoint=path, device="cpu", size=(128, 64)).size == (128, 64)  # an explicit size wins
    assert SceneEngine(checkpoint="random", device="cpu").size == (640, 192)


def test_motion_threshold_defaults_to_the_checkpoints_calibrated_tau(tmp_path):
    source = _engine(seed=3)
    calibrated = save_checkpoint(tmp_path / "calibrated.pt", source.networks, input_size=SIZE,
                                 provenance={"motion_threshold": 0.3})
    plain = save_checkpoint(tmp_path / "plain.pt", source.networks, input_size=SIZE)
    assert SceneEngine(checkpoint=calibrated, device="cpu").motion_threshold == 0.3
    assert SceneEngine(checkpoint=calibrated, device="cpu", motion_threshold=0.7).motion_threshold == 0.7
    assert SceneEngine(checkpoint=plain, device="cpu").motion_threshold == 0.5
    assert SceneEngine(checkpoint="random", device="cpu").motion_threshold == 0.5


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt"):
        _engine(checkpoint=tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        _engine(checkpoint=corrupt)
    from omeganet_ros.nets import DSNet
    partial = save_checkpoint(tmp_path / "dsnet_only.pt", {"dsnet": DSNet()}, input_size=SIZE)
    with pytest.raises(CheckpointError, match=r"dsnet_only.pt.*lacks network\(s\) \['camnet', 'ofnet'\]"):
        _engine(checkpoint=partial)


def test_random_weights_warn_loudly(monkeypatch):
    from omeganet_ros import checkpoint
    monkeypatch.setattr(checkpoint, "DEFAULT_CHECKPOINT", checkpoint.DEFAULT_CHECKPOINT.with_name("absent.pt"))
    with pytest.warns(RuntimeWarning, match="RANDOM weights"):
        engine = SceneEngine(checkpoint=None, device="cpu", size=SIZE)
    assert engine.random_weights


def test_network_resolution_and_scaled_intrinsics_and_flow():
    frames = _frames(3, h=96, w=256)
    a = _last(_engine(output_resolution="network"), frames)
    b = _last(_engine(output_resolution="input"), frames)
    assert a.depth.shape == (64, 128) and b.depth.shape == (96, 256)
    expected_K = geometry.scale_intrinsics(torch.from_numpy(a.intrinsics), 256 / 128, 96 / 64).numpy()
    np.testing.assert_allclose(b.intrinsics, expected_K, rtol=1e-6)
    expected_flow = geometry.resize_flow(torch.from_numpy(a.flow).permute(2, 0, 1)[None], 96, 256)[0].permute(1, 2, 0)
    np.testing.assert_allclose(b.flow, expected_flow.numpy(), atol=1e-4)


def test_given_intrinsics_are_used_for_rigid_flow():
    frames = _frames(3, h=96, w=256)
    K = np.array([[150.0, 0, 127.5], [0, 140.0, 47.5], [0, 0, 1]])
    engine = _engine(output_resolution="input")
    out = [engine.push(f, i, K=K) for i, f in enumerate(frames)][2]
    assert out.intrinsics_source == "given"
    np.testing.assert_allclose(out.intrinsics, K, rtol=1e-5, atol=1e-4)
    # rigid flow at network resolution recomputed from depth, given K and ego-motion
    engine_net = _engine(output_resolution="network")
    o = [engine_net.push(f, i, K=K) for i, f in enumerate(frames)][2]
    K_net = geometry.scale_intrinsics(torch.from_numpy(K), 128 / 256, 64 / 96).float()
    rigid = geometry.rigid_flow(torch.from_numpy(o.depth)[None, None], K_net[None], torch.from_numpy(o.ego_motion).float()[None])
    np.testing.assert_allclose(o.rigid_flow, rigid[0].permute(1, 2, 0).numpy(), atol=1e-3)
    # differs from the CamNet-intrinsics run
    o2 = _last(_engine(output_resolution="network"), frames)
    assert not np.allclose(o.rigid_flow, o2.rigid_flow, atol=1e-3)


def test_depth_scale_makes_depth_and_translation_metric():
    frames = _frames(3)
    rel = _last(_engine(), frames)
    engine = _engine()
    engine.set_depth_scale(2.5)
    met = [engine.push(f, i) for i, f in enumerate(frames)][2]
    assert met.depth_is_metric and met.depth_scale == 2.5
    np.testing.assert_allclose(met.depth, rel.depth * 2.5, rtol=1e-6)
    np.testing.assert_allclose(met.ego_motion[:3, 3], rel.ego_motion[:3, 3] * 2.5, rtol=1e-6)
    np.testing.assert_array_equal(met.motion_probability, rel.motion_probability)  # unchanged
    with pytest.raises(ValueError, match="depth scale"):
        engine.set_depth_scale(-1.0)
    engine.set_depth_scale(None)
    assert not engine.depth_is_metric


def test_causal_mode_describes_newest_frame():
    engine = _engine(causal=True)
    frames = _frames(3)
    assert engine.latency_frames == 0
    assert engine.push(frames[0], 1.0) is None
    out = engine.push(frames[1], 1.1)
    assert out is not None and out.stamp == pytest.approx(1.1) and out.direction == "backward"
    out2 = engine.push(frames[2], 1.2)
    assert out2.stamp == pytest.approx(1.2)


def test_class_probabilities_optional():
    engine = _engine(class_probabilities=True)
    out = [engine.push(f, i) for i, f in enumerate(_frames(3))][2]
    assert out.class_probabilities.shape == (19,) + out.depth.shape
    np.testing.assert_allclose(out.class_probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(out.class_probabilities.argmax(axis=0), out.semantic)


def test_bf16_runs_close_to_fp32():
    frames = _frames(3)
    a = _last(_engine(), frames)
    b = _last(_engine(precision="bf16"), frames)
    assert b.depth.dtype == np.float32
    np.testing.assert_allclose(b.depth, a.depth, rtol=0.1)
