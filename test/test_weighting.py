"""Multi-task loss weightings: equal, Dynamic Weight Average, homoscedastic uncertainty."""
import math

import pytest
import torch

from omeganet_ros.train.weighting import DynamicWeightAverage, build_weighting


def losses(a, b):
    return {"depth": torch.tensor(float(a)), "semantic": torch.tensor(float(b))}


def test_equal_weighting_sums():
    w = build_weighting("equal", ["depth", "semantic"])
    assert w(losses(1.5, 2.0)).item() == pytest.approx(3.5)


def test_dwa_gives_more_weight_to_the_task_that_learns_slower():
    w = build_weighting("dwa", ["depth", "semantic"], temperature=2.0, period=2)
    # Period 1 and 2: weights stay 1.
    for a, b in [(1.0, 1.0), (1.0, 1.0)]:
        assert w(losses(a, b)).item() == pytest.approx(a + b)
    for a, b in [(0.5, 1.0), (0.5, 1.0)]:  # depth halves, semantic stalls
        w(losses(a, b))
    weights = w.weights()
    # r = (0.5, 1.0): w = 2·softmax(r / 2)
    e = [math.exp(0.25), math.exp(0.5)]
    assert weights["depth"] == pytest.approx(2 * e[0] / sum(e))
    assert weights["semantic"] == pytest.approx(2 * e[1] / sum(e))
    assert weights["semantic"] > weights["depth"]
    assert sum(weights.values()) == pytest.approx(2.0)
    assert w(losses(1.0, 1.0)).item() == pytest.approx(2.0)


def test_dwa_state_resumes_exactly():
    a = DynamicWeightAverage(["depth", "semantic"], period=2)
    for v in [(1, 1), (1, 1), (0.3, 1), (0.3, 1), (0.2, 0.4)]:
        a(losses(*v))
    b = DynamicWeightAverage(["depth", "semantic"], period=2)
    b.load_state_dict(a.state_dict())
    for v in [(0.2, 0.3), (0.1, 0.3)]:
        assert a(losses(*v)).item() == b(losses(*v)).item()
    assert a.weights() == b.weights()


def test_uncertainty_weighting_learns_to_down_weight_the_noisy_task():
    w = build_weighting("uncertainty", ["depth", "semantic"])
    assert w(losses(1.0, 2.0)).item() == pytest.approx(3.0)  # s = 0 → plain sum
    opt = torch.optim.SGD(w.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        w(losses(0.1, 4.0)).backward()
        opt.step()
    # Optimum s_k = log L_k: weight exp(−s_k) = 1 / L_k.
    assert w.weights()["depth"] == pytest.approx(10.0, rel=0.05)
    assert w.weights()["semantic"] == pytest.approx(0.25, rel=0.05)


def test_bad_names_and_missing_tasks_are_clear_errors():
    with pytest.raises(ValueError, match="unknown loss weighting"):
        build_weighting("magic", ["depth"])
    with pytest.raises(ValueError, match="missing"):
        build_weighting("equal", ["depth", "semantic"])({"depth": torch.tensor(1.0)})
