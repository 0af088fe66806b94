"""benchmarks/eval_reference.py --only pose: CamNet alone gives the full evaluation's pose figures, plus its input
sensitivity (reversed and still triplets), in a fraction of the time."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from omeganet_ros.checkpoint import save_checkpoint
from omeganet_ros.nets import build_networks

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("eval_reference", ROOT / "benchmarks" / "eval_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    nets = build_networks()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pt", nets, input_size=(128, 64))


def test_pose_only_matches_the_full_evaluation_and_reports_sensitivity(checkpoint):
    torch.set_num_threads(1)
    module = _module()
    size = (128, 64)
    pose_only = module.evaluate_pose_only(str(checkpoint), [201], 9, size, None)
    full = module.evaluate_checkpoint(str(checkpoint), [201], 9, size, size)
    assert pose_only["pose"]["snippets"] == full["pose"]["snippets"] > 0
    # the engine folds BatchNorm into the convolutions: equal up to float rounding
    assert pose_only["pose"]["ate_5frame_m"] == pytest.approx(full["pose"]["ate_5frame_m"], rel=1e-3)
    assert pose_only["pose"]["trivial"]["ate_5frame_m"] == pytest.approx(full["pose"]["trivial"]["ate_5frame_m"])
    sensitivity = pose_only["sensitivity"]
    assert 0.0 <= sensitivity["reversed_yaw_flips"] <= 1.0
    # an untrained CamNet hardly reads the frames: the still triplet moves about as much as the moving one
    assert sensitivity["still_translation_ratio_median"] == pytest.approx(1.0, abs=0.2)
    assert pose_only["camnet"] == {"reversal_symmetric": False, "still_subtracted": False}
    with pytest.raises(ValueError, match="needs a checkpoint file"):
        module.evaluate_pose_only("random", [201], 9, size, None)
