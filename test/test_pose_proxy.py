"""The PnP proxy of CamNet's rotation: a known motion is recovered from depth + flow despite outliers, and the
stage-1 loss pulls CamNet towards it (omeganet_ros.pose_proxy, loss.pose_proxy_weight)."""
import csv

import numpy as np
import pytest
import torch

from omeganet_ros import geometry, pose_proxy
from omeganet_ros.train.trainer import Trainer, merge_config, DEFAULT_CONFIG
from test_train_helpers import one_thread, TINY, corridor, write_sequence  # noqa: F401 (one_thread: autouse fixture)


def _scene(yaw=0.02, forward=0.3, width=160, height=64):
    """(depth H×W, K 3×3, true motion target→source 4×4, rigid flow H×W×2) of a slanted street-like depth map."""
    _, depths, K = corridor(1, width=width, height=height)
    depth = torch.as_tensor(np.minimum(depths[0], 40.0), dtype=torch.float64)[None, None]
    K = torch.as_tensor(K, dtype=torch.float64)
    motion = geometry.pose_vec_to_mat(torch.tensor([0.01, -0.005, forward, 0.002, yaw, -0.003], dtype=torch.float64))
    flow = geometry.rigid_flow(depth, K[None], motion[None])[0].permute(1, 2, 0)
    return depth[0, 0].numpy(), K.numpy(), motion.numpy(), flow.numpy()


def test_recovers_a_known_motion_despite_moving_pixels():
    depth, K, truth, flow = _scene()
    rng = np.random.default_rng(0)
    outliers = rng.random(depth.shape) < 0.25  # a quarter of the pixels move on their own
    flow = flow.copy()
    flow[outliers] += rng.uniform(-8, 8, size=(int(outliers.sum()), 2))
    motion, inliers = pose_proxy.motion_from_depth_and_flow(depth, flow, K)
    assert motion is not None and 0.6 < inliers < 0.85
    rot = geometry.mat_to_pose_vec(torch.as_tensor(motion))[3:].numpy()
    assert np.allclose(rot, geometry.mat_to_pose_vec(torch.as_tensor(truth))[3:].numpy(), atol=2e-4)
    assert np.allclose(motion[:3, 3], truth[:3, 3], atol=5e-3)
    # the opposite yaw gives the opposite answer: the fit reads the flow, not a prior
    _, _, mirrored_truth, mirrored_flow = _scene(yaw=-0.02)
    mirrored, _ = pose_proxy.motion_from_depth_and_flow(depth, mirrored_flow, K)
    assert geometry.mat_to_pose_vec(torch.as_tensor(mirrored))[4] == pytest.approx(-0.02, abs=2e-4)


def test_too_few_usable_pixels_is_a_failed_fit_not_a_guess():
    depth, K, _, flow = _scene()
    motion, inliers = pose_proxy.motion_from_depth_and_flow(depth, flow, K, valid=np.zeros(depth.shape, bool))
    assert motion is None and inliers == 0.0
    batch_motion, found = pose_proxy.proxy_motions(torch.as_tensor(depth)[None, None], torch.as_tensor(flow).permute(2, 0, 1)[None],
                                                   torch.as_tensor(K)[None], torch.zeros(1, *depth.shape, dtype=torch.bool))
    assert not bool(found[0]) and torch.equal(batch_motion[0], torch.eye(4, dtype=batch_motion.dtype))
    with pytest.raises(ValueError, match="depth H×W, flow H×W×2"):
        pose_proxy.motion_from_depth_and_flow(depth, flow[..., :1], K)


def test_rotation_loss_is_zero_at_the_fit_ignores_failed_fits_and_is_in_pixels():
    to_next = geometry.pose_vec_to_mat(torch.tensor([[0.0, 0.0, 0.3, 0.0, 0.01, 0.0]]))
    to_prev = geometry.pose_vec_to_mat(torch.tensor([[0.0, 0.0, -0.3, 0.0, -0.01, 0.0]]))
    vecs = torch.stack([geometry.mat_to_pose_vec(geometry.invert_rigid(to_prev)), geometry.mat_to_pose_vec(to_next)], 1)
    vecs = vecs.clone().requires_grad_(True)
    found = torch.tensor([[True, True]])
    focal = torch.tensor([200.0])
    assert float(pose_proxy.rotation_proxy_loss(vecs, to_prev, to_next, found, focal).detach()) == pytest.approx(0.0, abs=1e-5)
    off = vecs.detach().clone()
    off[0, 1, 4] += 0.005  # 0.005 rad of yaw at f = 200 px: a 1-px shift, on one of the two motions
    assert float(pose_proxy.rotation_proxy_loss(off, to_prev, to_next, found, focal)) == pytest.approx(0.5, rel=1e-3)
    assert float(pose_proxy.rotation_proxy_loss(off, to_prev, to_next, torch.tensor([[True, False]]), focal)) == pytest.approx(0.0, abs=1e-5)
    pose_proxy.rotation_proxy_loss(vecs, to_prev, to_next, torch.tensor([[False, False]]), focal).backward()
    assert vecs.grad is not None and float(vecs.grad.abs().sum()) == 0.0


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    images, depths, K = corridor(8)
    return write_sequence(tmp_path_factory.mktemp("corridor"), images, depths, K)


def _run(sequence, out, steps, **overrides):
    trainer = Trainer(merge_config(merge_config(DEFAULT_CONFIG, TINY), overrides), [f"sequence:{sequence}"], out,
                      progress=False)
    trainer.train(steps)
    return trainer


def test_stage1_pose_proxy_needs_a_trained_ofnet_and_reaches_camnet(sequence, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="pose_proxy_weight .* OFNet is untrained"):
        _run(sequence, tmp_path / "bad", 1, loss={"pose_proxy_weight": 1.0})
    _run(sequence, tmp_path / "s2", 1, stage=2)
    calls = []
    original = pose_proxy.rotation_proxy_loss

    def spy(*args, **kwargs):
        loss = original(*args, **kwargs)
        calls.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(pose_proxy, "rotation_proxy_loss", spy)
    cont = _run(sequence, tmp_path / "proxy", 2, init=str(tmp_path / "s2" / "last.pt"), frozen_networks=["dsnet"],
                loss={"pose_proxy_weight": 1.0})
    assert len(calls) == 2 and all(c > 0 for c in calls)
    with open(tmp_path / "proxy" / "log.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("pose_proxy_px")]
    assert rows and all(float(row["pose_proxy_px"]) > 0 for row in rows)
    assert not any(p.requires_grad for p in cont.nets["ofnet"].parameters())  # OFNet only supplies the flow


# --- inference: rotation_from_flow (the engine's option) ------------------------------------------------------------

def _stub_networks(depth: torch.Tensor, K: torch.Tensor, flow: torch.Tensor, camnet_vec: torch.Tensor):
    """SceneNetworks (batch 1) whose DSNet gives ``depth`` (road everywhere), CamNet ``camnet_vec`` for both motions
    and K, OFNet ``flow``, whatever the frames or the engine's cached features: the refinement alone decides what
    differs from CamNet."""
    from omeganet_ros.inference import SceneNetworks

    def dsnet(image):
        logits = torch.zeros(image.shape[0], 19, *image.shape[-2:])
        logits[:, 0] = 1.0
        return {"disp_full": torch.ones_like(depth).expand(image.shape[0], -1, -1, -1), "semantic": logits}

    def cam_decode(prev, cur, nxt, h, w):
        return {"motion": camnet_vec.expand(1, 2, 6).clone(), "K": K.expand(1, 3, 3).clone()}  # batch 1

    def flow_decode(prev, cur, nxt, h, w, backward=False):
        return {"flow_fw": [flow.clone()]}

    return SceneNetworks(dsnet=dsnet, cam_encode=lambda image: image, cam_decode=cam_decode,
                         flow_encode=lambda image: image, flow_decode=flow_decode,
                         depth_from_disp=lambda disp: depth.expand(disp.shape[0], -1, -1, -1).float())


@pytest.fixture(scope="module")
def known_scene():
    """Depth 1×1×64×128, K, a true motion t→t+1 with 0.02 rad of yaw, its flow, and CamNet's answer (no rotation)."""
    depth, K, truth, flow = _scene(width=128, height=64)
    camnet_vec = torch.tensor([0.02, 0.0, 0.25, 0.0, 0.0, 0.0])
    return (torch.as_tensor(depth, dtype=torch.float32)[None, None], torch.as_tensor(K, dtype=torch.float32),
            torch.as_tensor(truth, dtype=torch.float32), torch.as_tensor(flow, dtype=torch.float32).permute(2, 0, 1)[None],
            camnet_vec)


def test_infer_scene_takes_the_rotation_from_the_flow_and_keeps_camnet_translation(known_scene):
    from omeganet_ros.inference import infer_scene

    depth, K, truth, flow, camnet_vec = known_scene
    nets = _stub_networks(depth, K, flow, camnet_vec)
    frames = [torch.rand(1, 3, 64, 128) for _ in range(3)]
    plain = infer_scene(nets, *frames)
    refined = infer_scene(nets, *frames, rotation_from_flow=True)
    assert plain.rotation_fitted is None and torch.allclose(plain.ego_motion[0, :3, :3], torch.eye(3))
    assert bool(refined.rotation_fitted[0])
    assert torch.allclose(refined.ego_motion[0, :3, :3], truth[:3, :3], atol=2e-4)
    assert torch.allclose(refined.ego_motion[0, :3, 3], camnet_vec[:3])  # the translation stays CamNet's
    rigid = geometry.rigid_flow(depth, K[None], refined.ego_motion)
    assert torch.allclose(refined.rigid_flow, rigid)  # rigid flow (and the motion probability) follow the refinement
    # every pixel of a dynamic class (here: all, the crowded fallback) still fits: RANSAC alone decides
    car = _stub_networks(depth, K, flow, camnet_vec)
    car_logits = car.dsnet

    def cars(image):
        out = car_logits(image)
        out["semantic"][:, 13] = 2.0
        return out

    car.dsnet = cars
    assert bool(infer_scene(car, *frames, rotation_from_flow=True).rotation_fitted[0])


@pytest.mark.parametrize("causal", [False, True])
def test_engine_motion_from_previous_uses_the_fitted_rotation(known_scene, causal):
    from omeganet_ros.engine import SceneEngine

    depth, K, truth, flow, camnet_vec = known_scene
    engine = SceneEngine("random", device="cpu", size=(128, 64), output_resolution="network", causal=causal,
                         rotation_from_flow=True)
    stub = _stub_networks(depth, K, flow, camnet_vec)
    engine._networks = lambda: stub
    frames = [np.random.default_rng(i).integers(0, 255, (64, 128, 3), dtype=np.uint8) for i in range(4)]
    outputs = [out for i, frame in enumerate(frames) if (out := engine.push(frame, 0.1 * i)) is not None]
    assert engine.describe()["rotation_from_flow"] is True
    fitted = truth[:3, :3].double().numpy()
    for out in outputs:
        assert np.allclose(out.ego_motion[:3, :3], fitted, atol=2e-4)
    if causal:  # ego-motion t→t−1: the motion from the previous frame is its inverse rotation
        assert all(np.allclose(out.motion_from_previous[:3, :3], fitted.T, atol=2e-4) for out in outputs)
    else:  # the first output has no earlier fit (CamNet's: no rotation); the next takes the previous output's
        assert np.allclose(outputs[0].motion_from_previous[:3, :3], np.eye(3), atol=1e-6)
        assert np.allclose(outputs[1].motion_from_previous[:3, :3], fitted, atol=2e-4)
    engine.reset()
    engine.rotation_from_flow = False
    plain = [out for i, frame in enumerate(frames) if (out := engine.push(frame, 1.0 + 0.1 * i)) is not None]
    assert np.allclose(plain[-1].ego_motion[:3, :3], np.eye(3), atol=1e-6)


def test_stage3_rigid_rotation_flow_fits_the_teachers_flows(sequence, tmp_path, monkeypatch):
    _run(sequence, tmp_path / "s2", 1, stage=2)
    seen = []
    original = pose_proxy.with_fitted_rotation

    def spy(motion, depth, flow, K, valid=None):
        out, found = original(motion, depth, flow, K, valid)
        seen.append((motion.clone(), out, found))
        return out, found

    monkeypatch.setattr(pose_proxy, "with_fitted_rotation", spy)
    _run(sequence, tmp_path / "camnet", 1, stage=3, init=str(tmp_path / "s2" / "last.pt"))
    assert not seen  # ΩNet's: CamNet's motions
    _run(sequence, tmp_path / "flow", 1, stage=3, init=str(tmp_path / "s2" / "last.pt"), rigid_rotation="flow")
    assert len(seen) == 2  # t→t−1 and t→t+1 of the step
    for before, after, found in seen:
        assert torch.equal(after[:, :3, 3], before[:, :3, 3])  # CamNet's translation stays
        assert torch.equal(after[~found], before[~found])
    with pytest.raises(ValueError, match="rigid_rotation must be 'camnet' or 'flow'"):
        _run(sequence, tmp_path / "bad", 1, stage=3, init=str(tmp_path / "s2" / "last.pt"), rigid_rotation="imu")
