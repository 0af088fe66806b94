"""Triplet dataset over sequence folders (written by the synthetic world)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from omeganet_ros.data.layout import SequenceFolder
from omeganet_ros.data.sequence_dataset import SequenceTripletDataset
from omeganet_ros.synth import generate_sequence


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    a = generate_sequence(root / "a", frames=4, seed=1, size=(96, 32))
    b = generate_sequence(root / "b", frames=3, seed=2, size=(96, 32))
    return a, b


def test_triplets_and_ground_truth(folders):
    a, b = folders
    data = SequenceTripletDataset([a, b])
    assert len(data) == 2 + 1
    item = data[1]
    assert item["index"] == 2 and item["sequence"] == str(a)
    for key in ("image_prev", "image", "image_next"):
        assert item[key].shape == (3, 32, 96) and item[key].dtype == torch.float32
        assert 0 <= item[key].min() and item[key].max() <= 1
    folder = SequenceFolder(a)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy() * 255, folder.read("images", 2), atol=1e-3)
    np.testing.assert_allclose(item["image_prev"].permute(1, 2, 0).numpy() * 255, folder.read("images", 1), atol=1e-3)
    assert item["depth"].shape == (1, 32, 96) and item["flow_fw"].shape == (2, 32, 96)
    assert item["semantic"].shape == (32, 96) and item["motion"].shape == (1, 32, 96)
    poses = folder.poses()
    np.testing.assert_allclose(item["motion_fw"].numpy(), np.linalg.inv(poses[2]) @ poses[3], atol=1e-12)
    np.testing.assert_allclose(item["K"].numpy(), folder.intrinsics(), atol=1e-5)
    assert data[2]["sequence"] == str(b)


def test_resize_scales_intrinsics_and_flow(folders):
    a, _ = folders
    full = SequenceTripletDataset(a)[0]
    half = SequenceTripletDataset(a, size=(48, 16))[0]
    assert half["image"].shape == (3, 16, 48) and half["depth"].shape == (1, 16, 48)
    assert half["K"][0, 0] == pytest.approx(full["K"][0, 0] / 2)
    assert half["K"][0, 2] == pytest.approx((full["K"][0, 2] + 0.5) / 2 - 0.5)
    flow_full = full["flow_fw"][:, 0::2, 0::2]  # cv2 nearest neighbour picks the even pixels
    both = torch.isfinite(flow_full) & torch.isfinite(half["flow_fw"])
    assert both.any()
    torch.testing.assert_close(half["flow_fw"][both], flow_full[both] / 2)


def test_images_only_and_errors(tmp_path, folders):
    a, _ = folders
    item = SequenceTripletDataset(a, with_gt=False)[0]
    assert "depth" not in item and "pose" not in item and "K" in item
    with pytest.raises(FileNotFoundError):
        SequenceTripletDataset(tmp_path / "missing")
    short = generate_sequence(tmp_path / "short", frames=2, size=(32, 16))
    with pytest.raises(ValueError, match="at least 3"):
        SequenceTripletDataset(short)
