"""Stage 1 really learns: on a synthetic corridor, the photometric loss falls and the depth error on an
unseen corridor drops clearly below the untrained network's, within 100 CPU steps at 128×64."""
import csv

import pytest
import torch

from omeganet_ros.train.trainer import DEFAULT_CONFIG, Trainer, merge_config
from test_train_helpers import one_thread, TINY, corridor, write_sequence  # noqa: F401 (one_thread: autouse fixture)

STEPS = 100



def test_depth_error_drops_well_below_the_untrained_value(tmp_path):
    images, depths, K = corridor(12, seed=0)
    train = write_sequence(tmp_path / "train", images, depths, K)
    images, depths, K = corridor(6, seed=5, step=0.3)  # other textures, other speed
    val = write_sequence(tmp_path / "val", images, depths, K)
    config = merge_config(merge_config(DEFAULT_CONFIG, TINY), {
        "optimizer": {"lr": 2e-3}, "log_every": 5, "validation": {"max_items": 4}})

    untrained = Trainer(config, [f"sequence:{train}"], tmp_path / "untrained", val_specs=[f"sequence:{val}"],
                        progress=False).train(0)
    trained = Trainer(config, [f"sequence:{train}"], tmp_path / "trained", val_specs=[f"sequence:{val}"],
                      progress=False).train(STEPS)

    rows = [r for r in csv.DictReader((tmp_path / "trained" / "log.csv").open()) if r.get("photometric")]
    first = sum(float(r["photometric"]) for r in rows[:4]) / 4
    last = sum(float(r["photometric"]) for r in rows[-4:]) / 4
    print({"untrained_abs_rel": untrained["depth_abs_rel"], "trained_abs_rel": trained["depth_abs_rel"],
           "photometric_first": first, "photometric_last": last})
    assert last < 0.75 * first
    assert trained["depth_abs_rel"] < 0.7 * untrained["depth_abs_rel"]
    assert trained["depth_a1"] > untrained["depth_a1"]
