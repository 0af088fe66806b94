"""One inference path: the engine, training validation and stage 4's τ calibration compute the same outputs."""
import numpy as np
import pytest
import torch

from omeganet_ros.checkpoint import save_checkpoint
from omeganet_ros.engine import SceneEngine
from omeganet_ros.inference import frame_to_tensor, infer_scene, network_intrinsics, predict_frames, resize_scene
from omeganet_ros.nets import build_networks
from omeganet_ros.train.data import build_dataset
from omeganet_ros.train.scene import predict_triplet
from test_train_helpers import one_thread  # noqa: F401 (autouse fixture)

SIZE = (128, 64)          # network (W, H)
FRAME_SIZE = (160, 96)    # frames bigger than the network: resizing in and out is part of the path
SYNTH = f"synth:seed=5,frames=6,size={FRAME_SIZE[0]}x{FRAME_SIZE[1]}"
FIELDS = ("depth", "semantic", "flow", "rigid_flow", "motion_probability", "motion_from_previous", "ego_motion",
          "intrinsics")


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(7)
    return {name: net.eval() for name, net in build_networks().items()}


@pytest.fixture(scope="module")
def checkpoint(networks, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("inference") / "nets.pt", networks, input_size=SIZE)


def exact_engine(checkpoint, **kwargs):
    """The node's engine, running the unfolded fp32 modules in NCHW so the comparison can be exact."""
    return SceneEngine(checkpoint=checkpoint, device="cpu", precision="fp32", size=SIZE, fold_batch_norm=False,
                       channels_last=False, **kwargs)


def engine_outputs(engine, frames, K=None):
    engine.reset()
    outs = [engine.push(frame, 0.1 * i, K=K) for i, frame in enumerate(frames)]
    assert outs[:2] == [None, None] and outs[2] is not None
    return outs[2]


def as_outputs(scene):
    """SceneTensors (batch of one) → the engine's numpy layout, for comparison."""
    image = lambda t: t[0].permute(1, 2, 0).numpy() if t.dim() == 4 else t[0].numpy()  # noqa: E731
    return {"depth": scene.depth[0, 0].numpy(), "semantic": scene.semantic[0].numpy().astype(np.uint8),
            "flow": image(scene.flow), "rigid_flow": image(scene.rigid_flow),
            "motion_probability": scene.motion_probability[0].numpy(),
            "motion_from_previous": scene.motion_from_previous[0].double().numpy(),
            "ego_motion": scene.ego_motion[0].double().numpy(), "intrinsics": scene.K[0].double().numpy()}


def synth_frames(seed=5, n=3):
    from omeganet_ros.synth import iterate_frames

    frames = list(iterate_frames(frames=n, seed=seed, size=FRAME_SIZE))
    return [f["image"] for f in frames], np.asarray(frames[0]["K"], np.float64)


@pytest.mark.parametrize("given_K", [False, True], ids=["camnet_K", "given_K"])
def test_engine_and_predict_frames_give_identical_outputs(networks, checkpoint, given_K):
    frames, K = synth_frames()
    K = K if given_K else None
    out = engine_outputs(exact_engine(checkpoint), frames, K)
    scene = as_outputs(predict_frames(networks, frames, SIZE, K))
    for name in FIELDS:
        np.testing.assert_array_equal(scene[name], getattr(out, name), err_msg=name)
    assert out.intrinsics_source == ("given" if given_K else "camnet")


def test_infer_scene_is_batched(networks):
    triplets = [synth_frames(seed)[0] for seed in (1, 2)]
    tensors = [[frame_to_tensor(f, SIZE) for f in frames] for frames in triplets]
    batch = infer_scene(networks, *(torch.cat([t[i] for t in tensors]) for i in range(3)))
    for b, t in enumerate(tensors):
        single = infer_scene(networks, *t)
        for name in ("depth", "flow", "ego_motion", "K"):  # the same up to the summation order of a batch
            torch.testing.assert_close(getattr(batch, name)[b:b + 1], getattr(single, name), atol=1e-4, rtol=1e-4)
        # the probability is a ratio of flow magnitudes: rounding shows where both flows nearly vanish
        diff = (batch.motion_probability[b:b + 1] - single.motion_probability).abs()
        assert float(diff.max()) < 0.02 and float((diff > 1e-3).float().mean()) < 1e-3
        assert (batch.semantic[b] == single.semantic[0]).float().mean() > 0.999


def test_the_engines_post_processing_is_resize_scene(networks):
    frames, K = synth_frames()
    tensors = [frame_to_tensor(f, SIZE) for f in frames]
    scene = infer_scene(networks, *tensors, network_intrinsics(K, FRAME_SIZE, SIZE))
    big = resize_scene(networks, scene, FRAME_SIZE, class_probabilities=True)
    assert big.size == FRAME_SIZE and big.flow.shape[-2:] == (FRAME_SIZE[1], FRAME_SIZE[0])
    # flow vectors are rescaled with the image, K too, and the labels agree with the probabilities
    torch.testing.assert_close(big.K[0, 0, 0], scene.K[0, 0, 0] * FRAME_SIZE[0] / SIZE[0])
    assert torch.equal(big.semantic, big.class_probabilities.argmax(1))
    same = resize_scene(networks, scene, SIZE)
    assert same.depth is scene.depth and torch.equal(same.semantic, scene.semantic)


def test_validation_and_calibration_see_what_the_node_publishes(networks, checkpoint):
    # predict_triplet (Trainer.validate, stage 4) on a dataset item = the engine on the same frames (the node path).
    dataset = build_dataset([SYNTH], SIZE, augment=False)
    engine = exact_engine(checkpoint)
    for index in (0, len(dataset) - 1):
        seq, _, frames = dataset.load_frames(index)
        scene = as_outputs(predict_triplet(networks, dataset, index))
        out = engine_outputs(engine, frames, seq.K)
        for name in FIELDS:
            np.testing.assert_array_equal(scene[name], getattr(out, name), err_msg=name)


@pytest.mark.filterwarnings("ignore:no proxy semantic labels")
def test_trainer_validation_metrics_are_those_of_the_engines_outputs(checkpoint, tmp_path):
    from omeganet_ros.evaluate.depth import DepthEvaluator
    from omeganet_ros.evaluate.semantic import SemanticEvaluator
    from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config
    from test_train_helpers import TINY

    config = merge_config(merge_config(DEFAULT_CONFIG, TINY), {"init": str(checkpoint), "validation": {"max_items": 0}})
    trainer = Trainer(config, [SYNTH], tmp_path / "run", progress=False)
    trainer._setup()  # what train() does first: data, networks from the checkpoint
    metrics = trainer.validate()
    dataset = trainer._validation_dataset()
    engine = exact_engine(checkpoint)
    depth, semantic = None, SemanticEvaluator()
    for index in range(len(dataset)):
        seq, c, frames = dataset.load_frames(index)
        record = seq.frames[c]
        out = engine_outputs(engine, frames, seq.K)
        depth = depth or DepthEvaluator(median_scaling=True, crop=seq.depth_crop)
        depth.add(out.depth, np.asarray(record.depth(), np.float32))
        semantic.add(out.semantic, np.asarray(record.semantic()))
    assert metrics["depth_abs_rel"] == pytest.approx(depth.result()["abs_rel"], rel=1e-9)
    assert metrics["semantic_miou"] == pytest.approx(semantic.result()["miou"], rel=1e-9)


def test_stage_4_calibrates_tau_on_what_the_node_publishes(networks, checkpoint):
    # For every τ, the IoU stage 4 scores is the IoU of the engine's (the node's) motion mask at that τ.
    # Before, stage 4 thresholded its own probability at the network size (frames resized by the dataset)
    # and resized the mask: IoUs off by up to 2e-3 from the node's, so τ was chosen on another path.
    from omeganet_ros.evaluate.motion import MotionEvaluator
    from omeganet_ros.train.stages import calibrate_motion_threshold

    dataset = build_dataset([SYNTH], SIZE, augment=False)
    taus = [0.3, 0.5, 0.7]
    result = calibrate_motion_threshold(networks, dataset, thresholds=taus)
    assert result["num_images"] == len(dataset)
    for tau in taus:
        engine, evaluator = exact_engine(checkpoint, motion_threshold=tau), MotionEvaluator()
        for index in range(len(dataset)):
            seq, c, frames = dataset.load_frames(index)
            evaluator.add(engine_outputs(engine, frames, seq.K).motion_mask, np.asarray(seq.frames[c].motion()))
        expected = evaluator.result()["iou_moving"] or 0.0
        assert result["per_threshold"][f"{tau:.2f}"] == pytest.approx(expected, rel=1e-12, abs=1e-12), tau
