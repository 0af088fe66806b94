"""A torch Dataset of frame triplets (t−1, t, t+1) over one or more sequence folders.

Each item is a dict of tensors:

* ``image_prev``, ``image``, ``image_next``: 3×H×W float32 RGB in [0, 1]
* ``K``: 3×3 float32 intrinsics of the returned size (``intrinsics.txt``; when a
  folder has none, ``default_K`` must be given)
* ground truth of the middle frame t, when the folder has it:
  ``depth`` 1×H×W metres (inf = sky), ``flow_fw`` / ``flow_bw`` 2×H×W pixels (NaN undefined),
  ``semantic`` H×W int64 trainIds, ``instance`` H×W int64, ``motion`` 1×H×W float32 0/1,
  ``pose_prev``, ``pose``, ``pose_next`` 4×4 float64 camera-to-world, and the camera motions
  ``motion_fw`` = M_{t→t+1}, ``motion_bw`` = M_{t→t−1} (geometry.py conventions)
* ``sequence`` (folder path, str) and ``index`` (frame index t)

With ``size=(W, H)`` images are resized (area/bilinear), ground truth with
nearest neighbour (flow values scaled), and K with the pixel-centre convention.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..geometry import scale_intrinsics
from .layout import SequenceFolder

GT_KINDS = ("depth", "flow_fw", "flow_bw", "semantic", "instance", "motion")


class SequenceTripletDataset(Dataset):
    def __init__(self, roots: str | Path | Sequence[str | Path], size: tuple[int, int] | None = None,
                 with_gt: bool = True, default_K: np.ndarray | None = None):
        if isinstance(roots, (str, Path)):
            roots = [roots]
        self.folders = [SequenceFolder(r) for r in roots]
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.with_gt = with_gt
        self.default_K = None if default_K is None else np.asarray(default_K, np.float64).reshape(3, 3)
        self.items: list[tuple[int, int, int, int]] = []  # (folder, prev, index, next)
        self._poses: dict[int, np.ndarray] = {}
        self._K: dict[int, np.ndarray] = {}
        self._gt: dict[int, tuple[str, ...]] = {}
        for f, folder in enumerate(self.folders):
            if not folder.root.is_dir():
                raise FileNotFoundError(f"sequence folder {folder.root} does not exist")
            indices = folder.indices("images")
            if len(indices) < 3:
                raise ValueError(f"sequence folder {folder.root} has {len(indices)} images; triplets need at least 3")
            present = set(indices)
            self.items += [(f, i - 1, i, i + 1) for i in indices if i - 1 in present and i + 1 in present]
            if (folder.root / "intrinsics.txt").exists():
                self._K[f] = folder.intrinsics()
            elif self.default_K is not None:
                self._K[f] = self.default_K
            else:
                raise ValueError(f"{folder.root} has no intrinsics.txt and no default_K was given")
            if (folder.root / "poses.txt").exists():
                poses = folder.poses()
                if len(poses) < max(indices) + 1:
                    raise ValueError(f"{folder.root / 'poses.txt'} has {len(poses)} poses for frames up to {max(indices)}")
                self._poses[f] = poses
            self._gt[f] = tuple(kind for kind in GT_KINDS if folder.has(kind)) if with_gt else ()

    def __len__(self) -> int:
        return len(self.items)

    def _image(self, folder: SequenceFolder, index: int) -> torch.Tensor:
        image = folder.read("images", index)
        if self.size is not None and (image.shape[1], image.shape[0]) != self.size:
            shrink = self.size[0] < image.shape[1]
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)

    def _nearest(self, array: np.ndarray) -> np.ndarray:
        if self.size is None or (array.shape[1], array.shape[0]) == self.size:
            return array
        return cv2.resize(array, self.size, interpolation=cv2.INTER_NEAREST)

    def __getitem__(self, i: int) -> dict:
        f, prev, index, nxt = self.items[i]
        folder = self.folders[f]
        item = {
            "image_prev": self._image(folder, prev),
            "image": self._image(folder, index),
            "image_next": self._image(folder, nxt),
            "sequence": str(folder.root),
            "index": index,
        }
        native_h, native_w = None, None
        for kind in self._gt[f]:
            array = folder.read(kind, index)
            native_h, native_w = array.shape[:2]
            resized = self._nearest(array)
            if kind in ("flow_fw", "flow_bw"):
                resized = resized * np.array([resized.shape[1] / native_w, resized.shape[0] / native_h], np.float32)
                item[kind] = torch.from_numpy(np.ascontiguousarray(resized, np.float32)).permute(2, 0, 1)
            elif kind == "depth":
                item[kind] = torch.from_numpy(np.ascontiguousarray(resized, np.float32))[None]
            elif kind == "motion":
                item[kind] = torch.from_numpy(resized.astype(np.float32))[None]
            else:
                item[kind] = torch.from_numpy(resized.astype(np.int64))
        K = torch.from_numpy(self._K[f].astype(np.float32))
        if self.size is not None:
            h0, w0 = folder.read("images", index).shape[:2] if native_h is None else (native_h, native_w)
            K = scale_intrinsics(K, self.size[0] / w0, self.size[1] / h0)
        item["K"] = K
        if f in self._poses and self.with_gt:
            poses = self._poses[f]
            item["pose_prev"] = torch.from_numpy(poses[prev])
            item["pose"] = torch.from_numpy(poses[index])
            item["pose_next"] = torch.from_numpy(poses[nxt])
            item["motion_fw"] = torch.from_numpy(np.linalg.inv(poses[index]) @ poses[nxt])
            item["motion_bw"] = torch.from_numpy(np.linalg.inv(poses[index]) @ poses[prev])
        return item
