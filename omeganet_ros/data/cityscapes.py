"""Cityscapes label conversions: labelIds → trainIds and colour labels → trainIds.

Colour ambiguities of the Cityscapes palette, and how they are resolved here:

* ``polegroup`` (ignored in evaluation) is drawn in the colour of ``pole``:
  a colour label cannot tell them apart, so (153, 153, 153) → pole (trainId 5).
  Poles are far more common, and a pole group is physically poles.
* ``license plate`` (id −1) is drawn in the colour of ``car``: (0, 0, 142) →
  car (trainId 13); the plate is part of the car, as in labelTrainIds, where
  plate pixels are labelled with the car around them.
* The five void labels coloured black, and every other void colour, → 255.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from omeganet_ros.classes import IGNORE_ID, LABELS


def label_id_lut() -> np.ndarray:
    """256-entry uint8 lookup labelId → trainId (unknown ids → 255)."""
    lut = np.full(256, IGNORE_ID, np.uint8)
    for label in LABELS:
        if 0 <= label.label_id < 256:
            lut[label.label_id] = label.train_id
    return lut


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """H×W Cityscapes labelIds (uint8/int) → H×W uint8 trainIds (255 = ignored)."""
    label_ids = np.asarray(label_ids)
    if label_ids.ndim != 2:
        raise ValueError(f"labelIds must be an H×W array, got shape {label_ids.shape}")
    if label_ids.min(initial=0) < 0 or label_ids.max(initial=0) > 255:
        raise ValueError(f"labelIds outside 0…255: min {label_ids.min()}, max {label_ids.max()}")
    return label_id_lut()[label_ids.astype(np.int64)]


def color_table() -> dict[tuple[int, int, int], int]:
    """RGB colour → trainId, with the ambiguities resolved as the module docstring says."""
    table: dict[tuple[int, int, int], int] = {}
    for label in LABELS:
        color = tuple(label.color)
        if label.train_id != IGNORE_ID:
            table[color] = label.train_id  # a train class wins over void labels sharing its colour
        else:
            table.setdefault(color, IGNORE_ID)
    return table


def color_to_train_ids(color: np.ndarray, strict: bool = True) -> np.ndarray:
    """H×W×3 RGB (or RGBA) Cityscapes colour label → H×W uint8 trainIds.

    ``strict``: raise ValueError on colours outside the palette; otherwise they map to 255.
    """
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[2] not in (3, 4) or color.dtype != np.uint8:
        raise ValueError(f"colour label must be H×W×3 uint8 RGB, got {color.dtype} {color.shape}")
    packed = (color[..., 0].astype(np.int64) << 16) | (color[..., 1].astype(np.int64) << 8) | color[..., 2]
    table = color_table()
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in table], np.int64)
    values = np.array(list(table.values()), np.uint8)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[pos] == packed
    if strict and not known.all():
        unknown = np.unique(packed[~known])
        shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in unknown[:5])
        raise ValueError(f"{int((~known).sum())} pixels have colours outside the Cityscapes palette: {shown}")
    return np.where(known, values[pos], IGNORE_ID).astype(np.uint8)


def read_label(path: str | Path) -> np.ndarray:
    """Read a Cityscapes label image as trainIds: ``*labelTrainIds.png`` as is, ``*labelIds.png``
    converted, ``*color.png`` (or any 3-channel label) converted from colours."""
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OSError(f"could not read label image {path}")
    if image.ndim == 3:
        rgb = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
        return color_to_train_ids(rgb)
    if path.name.endswith("labelIds.png") and not path.name.endswith("labelTrainIds.png"):
        return label_ids_to_train_ids(image)
    return image.astype(np.uint8)
