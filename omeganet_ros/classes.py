"""Cityscapes class definitions: the 19 train classes, their palette, categories and label ids.

One table serves the networks (19 outputs), the synthetic world, evaluation
(labelIds → trainIds, colour → trainIds, category mIoU) and the ROS node
(colourised semantics, class names in messages).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

IGNORE_ID = 255


class Label(NamedTuple):
    name: str
    label_id: int
    train_id: int  # 255 = not evaluated
    category_id: int  # 0 void, 1 flat, 2 construction, 3 object, 4 nature, 5 sky, 6 human, 7 vehicle
    color: tuple[int, int, int]  # RGB


# The official Cityscapes label table (cityscapesScripts/helpers/labels.py).
LABELS: tuple[Label, ...] = (
    Label("unlabeled", 0, 255, 0, (0, 0, 0)),
    Label("ego vehicle", 1, 255, 0, (0, 0, 0)),
    Label("rectification border", 2, 255, 0, (0, 0, 0)),
    Label("out of roi", 3, 255, 0, (0, 0, 0)),
    Label("static", 4, 255, 0, (0, 0, 0)),
    Label("dynamic", 5, 255, 0, (111, 74, 0)),
    Label("ground", 6, 255, 0, (81, 0, 81)),
    Label("road", 7, 0, 1, (128, 64, 128)),
    Label("sidewalk", 8, 1, 1, (244, 35, 232)),
    Label("parking", 9, 255, 1, (250, 170, 160)),
    Label("rail track", 10, 255, 1, (230, 150, 140)),
    Label("building", 11, 2, 2, (70, 70, 70)),
    Label("wall", 12, 3, 2, (102, 102, 156)),
    Label("fence", 13, 4, 2, (190, 153, 153)),
    Label("guard rail", 14, 255, 2, (180, 165, 180)),
    Label("bridge", 15, 255, 2, (150, 100, 100)),
    Label("tunnel", 16, 255, 2, (150, 120, 90)),
    Label("pole", 17, 5, 3, (153, 153, 153)),
    Label("polegroup", 18, 255, 3, (153, 153, 153)),
    Label("traffic light", 19, 6, 3, (250, 170, 30)),
    Label("traffic sign", 20, 7, 3, (220, 220, 0)),
    Label("vegetation", 21, 8, 4, (107, 142, 35)),
    Label("terrain", 22, 9, 4, (152, 251, 152)),
    Label("sky", 23, 10, 5, (70, 130, 180)),
    Label("person", 24, 11, 6, (220, 20, 60)),
    Label("rider", 25, 12, 6, (255, 0, 0)),
    Label("car", 26, 13, 7, (0, 0, 142)),
    Label("truck", 27, 14, 7, (0, 0, 70)),
    Label("bus", 28, 15, 7, (0, 60, 100)),
    Label("caravan", 29, 255, 7, (0, 0, 90)),
    Label("trailer", 30, 255, 7, (0, 0, 110)),
    Label("train", 31, 16, 7, (0, 80, 100)),
    Label("motorcycle", 32, 17, 7, (0, 0, 230)),
    Label("bicycle", 33, 18, 7, (119, 11, 32)),
    Label("license plate", -1, 255, 7, (0, 0, 142)),
)

TRAIN_LABELS: tuple[Label, ...] = tuple(sorted((l for l in LABELS if l.train_id != IGNORE_ID), key=lambda l: l.train_id))
NUM_CLASSES = len(TRAIN_LABELS)  # 19
CLASS_NAMES: tuple[str, ...] = tuple(l.name for l in TRAIN_LABELS)
CATEGORY_NAMES: tuple[str, ...] = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")

# trainIds of classes that can move by themselves (ΩNet's potentially dynamic set).
DYNAMIC_TRAIN_IDS: tuple[int, ...] = tuple(range(11, 19))  # person … bicycle
# Cityscapes "thing" classes (countable objects with instances): the same eight, person … bicycle.
THING_TRAIN_IDS: tuple[int, ...] = DYNAMIC_TRAIN_IDS

ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = range(8)
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(8, 19)


def train_palette() -> np.ndarray:
    """256×3 uint8 RGB palette indexed by trainId (255 and unused ids are black)."""
    palette = np.zeros((256, 3), np.uint8)
    for label in TRAIN_LABELS:
        palette[label.train_id] = label.color
    return palette


def train_id_to_category() -> np.ndarray:
    """256-entry lookup trainId → category index 0..6 (flat … vehicle); 255 stays 255."""
    lut = np.full(256, IGNORE_ID, np.uint8)
    for label in TRAIN_LABELS:
        lut[label.train_id] = label.category_id - 1
    return lut


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """H×W uint8 trainIds → H×W×3 uint8 RGB in the Cityscapes palette."""
    return np.take(train_palette(), train_ids, axis=0)  # np.take: ~4× faster than fancy indexing here
