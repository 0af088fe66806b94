"""The Moreau et al. model: networks, centroid offsets, OPTICS instances, PQ, its training stage, engine and tools."""
import json

import numpy as np
import pytest
import torch

from omeganet_ros.checkpoint import load_checkpoint
from omeganet_ros.evaluate.instance import InstanceEvaluator
from omeganet_ros.evaluate.trivial import connected_components
from omeganet_ros.instances import ClusterConfig, centroid_offsets, cluster_instances, thing_instances
from omeganet_ros.moreau_engine import MoreauEngine, open_engine
from omeganet_ros.nets import Monodepth2PoseNet, MoreauNet
from omeganet_ros.train.moreau_stage import instance_loss
from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config
from test_train_helpers import one_thread, TINY  # noqa: F401 (one_thread: autouse fixture)



def two_cars():
    """64×96 ids: two touching boxes (1, 2), a separate one (3), and a 3×3 speck (4, below min_area)."""
    ids = np.zeros((64, 96), np.int64)
    ids[10:30, 5:30] = 1
    ids[10:30, 30:50] = 2
    ids[40:60, 70:90] = 3
    ids[0:3, 0:3] = 4
    return ids


# --- networks -------------------------------------------------------------------------------------------

def test_moreau_net_outputs_and_the_st_variant_has_no_instance_branch():
    torch.manual_seed(0)
    net = MoreauNet().eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 70, 100))  # not a multiple of 32: padded inside, cropped back
    assert [tuple(d.shape) for d in out["disp"]] == [(2, 1, 70, 100), (2, 1, 35, 50), (2, 1, 18, 25), (2, 1, 9, 13)]
    assert out["instance_offset"].shape == (2, 2, 70, 100) and out["thing_logit"].shape == (2, 1, 70, 100)
    depth = net.depth_from_disp(out["disp_full"])
    assert torch.allclose((1 / depth).mean((2, 3)), torch.ones(2, 1), atol=1e-5)  # mean-normalised (the default)
    plain = MoreauNet(depth_normalization="none").depth_from_disp(out["disp_full"])  # monodepth2's mapping
    assert float(plain.min()) >= 0.1 and float(plain.max()) <= 100.0
    with pytest.raises(ValueError, match="depth_normalization"):
        MoreauNet(depth_normalization="median")
    st = MoreauNet(tasks=["depth"])
    assert "instance_offset" not in st(torch.rand(1, 3, 64, 64))
    assert not any(k.startswith("instance_head") or ".instance." in k for k in st.state_dict())
    with pytest.raises(ValueError, match="depth"):
        MoreauNet(tasks=["instance"])


def test_depth_scale_cannot_be_traded_for_the_pose_translation():
    """Issue 17: self-supervision fixes depth × translation only up to a scale; with monodepth2's plain mapping the
    training shrank the translation, the depths followed down to the 0.1 floor and the sigmoid saturated (every run
    collapsed to a constant plane). The depth the loss sees must not change when the whole disparity map is scaled."""
    torch.manual_seed(0)
    net = MoreauNet(tasks=["depth"])
    disp = torch.rand(2, 1, 24, 32) * 0.09 + 0.01
    nearer = (disp * 9.99 + 0.01) * 10 - 0.01  # monodepth2's scaled disparity ×10: every depth ÷10
    nearer = nearer / 9.99
    assert torch.allclose(net.depth_from_disp(nearer), net.depth_from_disp(disp), rtol=1e-4)
    plain = MoreauNet(tasks=["depth"], depth_normalization="none")
    assert torch.allclose(plain.depth_from_disp(nearer), plain.depth_from_disp(disp) / 10, rtol=1e-4)
    # So the photometric loss's gradient has no component along a global change of the disparity's scale.
    from omeganet_ros import geometry
    from omeganet_ros.train.losses import depth_pose_loss
    from test_train_helpers import corridor

    images, _, K = corridor(3)
    frames = [torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255 for im in images]
    frames = [torch.nn.functional.interpolate(f, size=(24, 32), mode="bilinear", align_corners=False) for f in frames]
    K = geometry.scale_intrinsics(torch.as_tensor(K, dtype=torch.float32)[None], 32 / images[0].shape[1],
                                  24 / images[0].shape[0])
    motion = torch.eye(4)[None].clone()
    motion[0, 2, 3] = 0.05
    logits = torch.zeros(1, 1, 24, 32, requires_grad=True)

    def along_scale(network):
        loss = depth_pose_loss(frames[1], [frames[0], frames[2]], [torch.sigmoid(logits)], K,
                               [torch.linalg.inv(motion), motion], automask=False, smoothness_weight=0.0,
                               to_depth=network.depth_from_disp)["loss"]
        grad, = torch.autograd.grad(loss, logits)
        return float(grad.sum().abs() / grad.abs().sum())  # 1: all pixels pushed the same way; 0: none net

    assert along_scale(net) < 1e-4 and along_scale(plain) > 0.1  # measured: ~1e-8 and 0.36


def test_encoders_use_the_torchvision_and_monodepth2_parameter_names():
    keys = set(MoreauNet().state_dict())
    assert {"encoder.conv1.weight", "encoder.bn1.running_mean", "encoder.layer1.0.conv1.weight",
            "encoder.layer4.1.bn2.weight", "encoder.layer2.0.downsample.0.weight"} <= keys
    pose = Monodepth2PoseNet().state_dict()
    assert pose["encoder.conv1.weight"].shape == (64, 6, 7, 7)  # monodepth2's pose_encoder.pth
    assert [pose[f"net.{i}.weight"].shape[:2] for i in range(4)] == [(256, 512), (256, 256), (256, 256), (12, 256)]


def test_pose_network_gives_rigid_motions():
    torch.manual_seed(0)
    motion = Monodepth2PoseNet().eval()(torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96))
    rotation = motion[:, :3, :3]
    assert torch.allclose(rotation @ rotation.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert torch.allclose(motion[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(2, 4))


# --- offsets, clustering, PQ ----------------------------------------------------------------------------

def test_pixel_plus_offset_is_the_instance_centroid():
    ids = two_cars()
    offsets = centroid_offsets(torch.from_numpy(ids)[None])[0].numpy()
    h, w = ids.shape
    ys, xs = np.mgrid[0:h, 0:w]
    for k in (1, 2, 3):
        inside = ids == k
        np.testing.assert_allclose(xs[inside] + offsets[0][inside] * w, xs[inside].mean(), atol=1e-3)
        np.testing.assert_allclose(ys[inside] + offsets[1][inside] * h, ys[inside].mean(), atol=1e-3)
    assert not offsets[:, ids == 0].any()


def test_optics_separates_touching_instances_that_connected_components_merge():
    ids = two_cars()
    ids[ids == 4] = 0
    offsets = centroid_offsets(torch.from_numpy(ids)[None])[0].numpy()
    offsets += np.random.default_rng(0).normal(0, 0.004, offsets.shape).astype(np.float32)  # a network is not exact
    clustered = cluster_instances(offsets, ids > 0, ClusterConfig(max_points=400))
    ours, baseline = InstanceEvaluator(), InstanceEvaluator()
    ours.add(clustered, ids)
    baseline.add(connected_components(ids), ids)
    assert ours.result()["pq"] > 0.95 and ours.result()["tp"] == 3
    assert baseline.result()["tp"] == 2 and baseline.result()["fn"] == 1  # the touching pair is one blob
    assert cluster_instances(offsets, np.zeros_like(ids, bool)).max() == 0


def test_panoptic_quality_counts_matches_misses_false_positives_and_void():
    gt = two_cars()
    ev = InstanceEvaluator(min_area=20)
    pred = np.zeros_like(gt)
    pred[10:30, 5:30] = 7       # instance 1 exactly
    pred[40:60, 70:80] = 8      # half of instance 3: IoU 0.5 is not a match → FP + FN
    pred[0:3, 0:3] = 9          # on the void speck: neither FP nor TP
    pred[50:60, 0:10] = 10      # on nothing: FP
    counts = ev.add(pred, gt)
    assert counts == {"tp": 1, "fp": 2, "fn": 2}
    result = ev.result()
    assert result["sq"] == pytest.approx(1.0) and result["rq"] == pytest.approx(1 / (1 + 0.5 * 2 + 0.5 * 2))
    assert result["pq"] == pytest.approx(result["sq"] * result["rq"])


def test_thing_instances_drop_stuff_ids():
    ids = np.array([[5, 6], [7, 0]], np.uint16)
    semantic = np.array([[13, 2], [11, 0]], np.uint8)  # car, building, person, road
    np.testing.assert_array_equal(thing_instances(ids, semantic), [[5, 0], [7, 0]])


# --- losses and training --------------------------------------------------------------------------------

def test_instance_loss_is_zero_only_for_the_true_offsets_and_skips_images_without_ground_truth():
    ids = torch.from_numpy(two_cars())[None]
    target = centroid_offsets(ids)
    logit = torch.where(ids[:, None] > 0, 20.0, -20.0)
    assert float(instance_loss(target, logit, ids, torch.tensor([True]))["loss"]) < 1e-6
    wrong = instance_loss(torch.zeros_like(target, requires_grad=True), logit, ids, torch.tensor([True]))
    assert float(wrong["offset_l2"].detach()) > 1e-3
    wrong["loss"].backward()
    assert float(instance_loss(torch.zeros_like(target), logit, ids, torch.tensor([False]))["loss"]) == 0.0


def test_instance_head_learns_offsets():
    torch.manual_seed(0)
    net = MoreauNet().train()
    ids = torch.from_numpy(two_cars())[None].expand(2, -1, -1).contiguous()
    image = torch.rand(1, 3, 64, 96).expand(2, -1, -1, -1).contiguous()
    image[:, :, ids[0] > 0] = 0.9  # the objects are visible
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        out = net(image)
        loss = instance_loss(out["instance_offset"], out["thing_logit"], ids, torch.tensor([True, True]))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


@pytest.fixture(scope="module")
def synth_mt_run(tmp_path_factory):
    """A two-step MT training run on the synthetic world (instance ids from its ground truth)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("moreau_mt")
    config = merge_config(merge_config(DEFAULT_CONFIG, TINY), {"architecture": "moreau", "intrinsics": "given",
                                                                 "weighting": {"name": "uncertainty"}})
    trainer = Trainer(config, ["synth:seed=3,frames=5,size=128x64"], out, progress=False)
    trainer.train(2)
    return out / "last.pt"


def test_mt_training_checkpoint_holds_both_networks_and_its_tasks(synth_mt_run):
    ckpt = load_checkpoint(synth_mt_run)
    assert set(ckpt.architecture) == {"moreau", "posenet"}
    assert ckpt.architecture["moreau"]["kwargs"]["tasks"] == ["depth", "instance"]
    assert ckpt.provenance["architecture"] == "moreau" and ckpt.provenance["tasks"] == ["depth", "instance"]
    assert set(ckpt.provenance["loss_weights"]) == {"depth", "instance"}
    assert ckpt.provenance["networks_trained_by_stage"] == {"moreau": 1, "posenet": 1}


def test_st_training_and_data_without_instances_train_depth_only(tmp_path):
    from test_train_helpers import corridor, write_sequence

    images, depths, K = corridor(5)
    folder = write_sequence(tmp_path / "corridor", images, depths, K)
    config = merge_config(merge_config(DEFAULT_CONFIG, TINY), {"architecture": "moreau", "intrinsics": "given"})
    with pytest.warns(UserWarning, match="no instance ids"):
        trainer = Trainer(config, [f"sequence:{folder}"], tmp_path / "run", progress=False)
        trainer.train(1)
    assert trainer.tasks == ["depth"]
    st = merge_config(config, {"moreau": {"tasks": ["depth"]}})
    trainer = Trainer(st, ["synth:seed=3,frames=4,size=128x64"], tmp_path / "st", progress=False)
    trainer.train(1)
    assert trainer.tasks == ["depth"] and "instance_head.1.weight" not in trainer.nets["moreau"].state_dict()
    with pytest.raises(ValueError, match="learned"):
        Trainer(merge_config(config, {"intrinsics": "learned"}), [f"sequence:{folder}"], tmp_path / "x").train(1)


# --- engine, infer, eval --------------------------------------------------------------------------------

def test_engine_for_a_moreau_checkpoint_gives_depth_pose_instances_and_no_omeganet_outputs(synth_mt_run):
    engine = open_engine(str(synth_mt_run), device="cpu")
    assert isinstance(engine, MoreauEngine) and engine.size == (128, 64)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 160, 3), dtype=np.uint8) for _ in range(3)]
    assert engine.push(frames[0], 0.0) is None and engine.push(frames[1], 0.1) is None
    out = engine.push(frames[2], 0.2)
    assert out.depth.shape == (96, 160) and out.instance.shape == (96, 160) and out.instance.dtype == np.uint16
    assert out.flow is None and out.semantic is None and out.motion_mask is None and out.motion_probability is None
    assert out.ego_motion.shape == (4, 4) and out.intrinsics_source == "default"
    with pytest.raises(ValueError, match="motion_threshold"):
        open_engine(str(synth_mt_run), device="cpu", motion_threshold=0.5)
    causal = MoreauEngine(str(synth_mt_run), device="cpu", causal=True, instances=False)
    causal.push(frames[0], 0.0)
    backward = causal.push(frames[1], 0.1)
    assert backward.direction == "backward" and backward.instance is None
    np.testing.assert_allclose(backward.ego_motion @ backward.motion_from_previous, np.eye(4), atol=1e-5)


def test_infer_writes_uint16_instances_and_no_absent_layers_then_eval_scores_them(synth_mt_run, tmp_path):
    from omeganet_ros.cli.eval import main as eval_main
    from omeganet_ros.cli.infer import main as infer_main
    from omeganet_ros.data.layout import SequenceFolder
    from omeganet_ros.synth import generate_sequence

    gt = tmp_path / "gt"
    generate_sequence(gt, frames=4, seed=5, size=(128, 64))
    assert infer_main(["--checkpoint", str(synth_mt_run), "--input", str(gt / "images"), "--out", str(tmp_path / "pred"),
                       "--quiet"]) == 0
    pred = SequenceFolder(tmp_path / "pred")
    assert pred.indices("instance") == [1, 2] and not pred.has("flow_fw") and not pred.has("semantic")
    assert pred.read("instance", 1).dtype == np.uint16
    meta = json.loads((tmp_path / "pred" / "meta.json").read_text())
    assert meta["model"] == "moreau" and meta["outputs_absent"] == ["flow", "semantic", "motion"]
    assert eval_main(["instance", "--pred", str(tmp_path / "pred"), "--gt", str(gt), "--json"]) == 0
    assert eval_main(["instance", "--pred", str(gt), "--gt", str(tmp_path / "pred")]) == 2  # no semantic/ in pred
