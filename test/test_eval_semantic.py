"""Semantic metrics: self-evaluation, known confusions, the ignore and NaN conventions."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from omeganet_ros.classes import BUILDING, CAR, PERSON, ROAD, SIDEWALK, TRUCK
from omeganet_ros.evaluate.semantic import SemanticEvaluator, confusion_matrix, evaluate_semantic


def test_label_against_itself(shared_data):
    gt = cv2.imread(str(shared_data / "cityscapes" / "frankfurt_000000_000294_gtFine_labelTrainIds.png"),
                    cv2.IMREAD_UNCHANGED)
    result = evaluate_semantic([gt], [gt])
    assert result["miou"] == 1.0 and result["miou_category"] == 1.0 and result["pixel_acc"] == 1.0
    assert result["num_pixels"] == int(np.sum(gt != 255))
    assert result["iou_per_class"]["wall"] is None  # absent from both: left out of the mean


def test_known_confusion():
    gt = np.array([[ROAD, ROAD, ROAD, SIDEWALK, CAR, CAR, 255, 255]], np.uint8)
    pred = np.array([[ROAD, ROAD, SIDEWALK, SIDEWALK, TRUCK, 255, CAR, ROAD]], np.uint8)
    result = evaluate_semantic([pred], [gt])
    iou = result["iou_per_class"]
    assert iou["road"] == pytest.approx(2 / 3)  # TP 2, FN 1 (ignored GT pixels give no FP)
    assert iou["sidewalk"] == pytest.approx(1 / 2)  # TP 1, FP 1
    assert iou["car"] == 0.0  # TP 0, FN 2 (one predicted truck, one predicted "none")
    assert iou["truck"] == 0.0  # FP 1
    assert result["miou"] == pytest.approx((2 / 3 + 1 / 2 + 0 + 0) / 4)
    assert result["pixel_acc"] == pytest.approx(3 / 6)
    cat = result["iou_per_category"]
    assert cat["flat"] == 1.0  # road/sidewalk confusion stays inside "flat"
    assert cat["vehicle"] == pytest.approx(1 / 2)  # car→truck right at category level, car→none wrong
    assert result["miou_category"] == pytest.approx(0.75)


def test_accumulates_over_images_and_resizes():
    evaluator = SemanticEvaluator()
    evaluator.add(np.full((2, 2), BUILDING, np.uint8), np.full((2, 2), BUILDING, np.uint8))
    evaluator.add(np.full((2, 2), PERSON, np.uint8), np.full((4, 4), BUILDING, np.uint8))  # resized (nearest)
    result = evaluator.result()
    assert result["iou_per_class"]["building"] == pytest.approx(4 / 20)
    assert result["iou_per_class"]["person"] == 0.0
    assert result["num_images"] == 2


def test_confusion_matrix_shape_and_errors():
    conf = confusion_matrix(np.array([[0, 18, 255]]), np.array([[0, 18, 3]]))
    assert conf.shape == (19, 20) and conf[0, 0] == 1 and conf[18, 18] == 1 and conf[3, 19] == 1
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no ground-truth"):
        evaluate_semantic([np.zeros((2, 2))], [np.full((2, 2), 255)])
