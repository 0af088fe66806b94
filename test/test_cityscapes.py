"""Cityscapes label conversions on the real samples."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from omeganet_ros.classes import LABELS
from omeganet_ros.data.cityscapes import color_to_train_ids, label_ids_to_train_ids, read_label


def test_label_ids_to_train_ids_real(shared_data):
    root = shared_data / "cityscapes"
    label_ids = cv2.imread(str(root / "frankfurt_000000_000294_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
    train_ids = cv2.imread(str(root / "frankfurt_000000_000294_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    converted = label_ids_to_train_ids(label_ids)
    assert converted.dtype == np.uint8 and converted.shape == train_ids.shape
    # The two sample files were downscaled to 256×128 separately, so they disagree on 77 of 32768
    # pixels, every one next to a label boundary. Away from boundaries the conversion must be exact.
    kernel = np.ones((3, 3), np.uint8)  # a pixel and its 8 neighbours
    interior = (cv2.dilate(train_ids, kernel) == cv2.erode(train_ids, kernel)) & \
               (cv2.dilate(label_ids, kernel) == cv2.erode(label_ids, kernel))
    assert interior.mean() > 0.8
    assert np.array_equal(converted[interior], train_ids[interior])
    assert np.mean(converted != train_ids) < 0.003
    # Every class present in the ground truth is produced.
    assert set(np.unique(train_ids)) == set(np.unique(converted))


def test_label_id_table():
    ids = np.array([[label.label_id for label in LABELS if label.label_id >= 0]], np.uint8)
    expected = np.array([[label.train_id for label in LABELS if label.label_id >= 0]], np.uint8)
    assert np.array_equal(label_ids_to_train_ids(ids), expected)
    assert label_ids_to_train_ids(np.array([[7, 26, 200]])).tolist() == [[0, 13, 255]]
    with pytest.raises(ValueError, match="H×W"):
        label_ids_to_train_ids(np.zeros((2, 2, 3), np.uint8))


def test_colour_label_real(shared_data):
    path = shared_data / "cityscapes" / "frankfurt_000001_058914_gtFine_color.png"
    train_ids = read_label(path)  # strict: raises on any colour outside the palette
    assert train_ids.shape == (1024, 2048)
    values = np.unique(train_ids)
    assert set(values.tolist()) <= set(range(19)) | {255}
    assert {0, 2, 13} <= set(values.tolist())  # road, building, car
    # Independent check on the main classes: pixels of the exact palette colours.
    rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    road = np.all(rgb == (128, 64, 128), axis=-1)
    assert road.any() and np.all(train_ids[road] == 0)


def test_colour_ambiguities_and_unknown_colours():
    rgb = np.array([[(153, 153, 153), (0, 0, 142), (0, 0, 0), (111, 74, 0), (220, 20, 60)]], np.uint8)
    assert color_to_train_ids(rgb).tolist() == [[5, 13, 255, 255, 11]]  # pole, car, void, dynamic, person
    odd = np.array([[(1, 2, 3), (128, 64, 128)]], np.uint8)
    with pytest.raises(ValueError, match="outside the Cityscapes palette"):
        color_to_train_ids(odd)
    assert color_to_train_ids(odd, strict=False).tolist() == [[255, 0]]
