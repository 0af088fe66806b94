"""ΩNet motion probability and mask on hand-made flows."""
import numpy as np
import pytest
import torch

from omeganet_ros import classes
from omeganet_ros.motion import dynamic_class_mask, motion_mask, motion_probability


def _flow(*vectors):
    """1×2×1×N flow from N (du, dv) vectors."""
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, 2, 1, -1)


def test_identical_flows_have_zero_probability():
    f = _flow((3.0, 4.0), (-1.0, 0.5), (1e-3, 0.0))
    prob = motion_probability(f, f.clone())
    assert prob.shape == (1, 1, 3)
    torch.testing.assert_close(prob, torch.zeros(1, 1, 3), atol=1e-6, rtol=0)


def test_zero_flows_have_the_authors_probability_one_half():
    # tf.nn.l2_normalize maps a zero vector to zero: cosine 0, direction term 0.5 (their code, kept).
    zero = _flow((0.0, 0.0), (0.0, 0.0))
    prob = motion_probability(zero, _flow((0.0, 0.0), (2.0, 0.0)))
    torch.testing.assert_close(prob, torch.tensor([[[0.5, 1.0]]]), atol=1e-6, rtol=0)


def test_opposite_flows_have_probability_one():
    f = _flow((3.0, 4.0), (-2.0, 0.0))
    prob = motion_probability(f, -f)
    torch.testing.assert_close(prob, torch.ones(1, 1, 2))


def test_orthogonal_equal_magnitude_is_one_half():
    prob = motion_probability(_flow((1.0, 0.0)), _flow((0.0, 1.0)))
    assert prob.item() == pytest.approx(0.5, abs=1e-6)


def test_magnitude_ratio_same_direction():
    eps = 1e-3
    # |F| = 2, |R| = 8 → 1 − (ε + 2)/(ε + 8); symmetric in F and R
    expected = 1 - (eps + 2.0) / (eps + 8.0)
    p1 = motion_probability(_flow((2.0, 0.0)), _flow((8.0, 0.0)), eps=eps)
    p2 = motion_probability(_flow((8.0, 0.0)), _flow((2.0, 0.0)), eps=eps)
    assert p1.item() == pytest.approx(expected, abs=1e-6)
    assert p2.item() == pytest.approx(expected, abs=1e-6)
    # one flow zero, the other not: the magnitude term flags it
    assert motion_probability(_flow((0.0, 0.0)), _flow((5.0, 0.0))).item() > 0.99


def test_numpy_interface_matches_torch():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(5, 6, 2)).astype(np.float32)
    r = rng.normal(size=(5, 6, 2)).astype(np.float32)
    p_np = motion_probability(f, r)
    assert isinstance(p_np, np.ndarray) and p_np.shape == (5, 6) and p_np.dtype == np.float32
    p_t = motion_probability(torch.from_numpy(f).permute(2, 0, 1)[None], torch.from_numpy(r).permute(2, 0, 1)[None])
    np.testing.assert_allclose(p_np, p_t[0].numpy(), atol=1e-6)
    assert (p_np >= 0).all() and (p_np <= 1).all()


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        motion_probability(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))


def test_mask_is_restricted_to_dynamic_classes():
    prob = np.array([[0.9, 0.9, 0.9, 0.2]], dtype=np.float32)
    semantic = np.array([[classes.CAR, classes.BUILDING, classes.PERSON, classes.CAR]], dtype=np.uint8)
    mask = motion_mask(prob, semantic)
    np.testing.assert_array_equal(mask, [[True, False, True, False]])
    # without the restriction the building counts too
    np.testing.assert_array_equal(motion_mask(prob, semantic, dynamic_classes=None), [[True, True, True, False]])
    # configurable class set and threshold
    np.testing.assert_array_equal(motion_mask(prob, semantic, dynamic_classes=[classes.BUILDING]), [[False, True, False, False]])
    np.testing.assert_array_equal(motion_mask(prob, semantic, threshold=0.1), [[True, False, True, True]])


def test_mask_torch_and_class_set():
    prob = torch.tensor([[[0.6, 0.6, 0.4]]])
    semantic = torch.tensor([[[classes.BICYCLE, classes.SKY, classes.BUS]]], dtype=torch.uint8)
    assert motion_mask(prob, semantic).tolist() == [[[True, False, False]]]
    assert set(classes.DYNAMIC_TRAIN_IDS) == set(range(11, 19))
    assert dynamic_class_mask(torch.arange(19)).sum() == 8


def test_threshold_must_be_a_probability():
    with pytest.raises(ValueError, match="threshold"):
        motion_mask(np.zeros((2, 2)), threshold=1.5)
