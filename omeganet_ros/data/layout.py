"""The sequence-folder layout: written by the synthetic world and ``omeganet-infer``, read by evaluation and training.

::

    images/NNNNNN.png     RGB uint8
    depth/NNNNNN.npy      float32 H×W, metres (or relative, see meta.json "depth_metric")
    flow_fw/NNNNNN.npy    float32 H×W×2, pixels, frame t → t+1, NaN where undefined
    flow_bw/NNNNNN.npy    float32 H×W×2, pixels, frame t → t−1, NaN where undefined
    semantic/NNNNNN.png   uint8 Cityscapes trainIds, 255 = none
    instance/NNNNNN.png   uint16 instance ids, 0 = no instance
    motion/NNNNNN.png     uint8 0/1 (1 = moving in the world)
    poses.txt             KITTI odometry format: one camera-to-world 3×4 row-major matrix per line
    intrinsics.txt        3×3 K in pixels
    meta.json             seed, size, rate, classes, generator version, …
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

IMAGE_KINDS = {"images": ".png", "semantic": ".png", "instance": ".png", "motion": ".png"}
ARRAY_KINDS = {"depth": ".npy", "flow_fw": ".npy", "flow_bw": ".npy"}
KINDS = {**IMAGE_KINDS, **ARRAY_KINDS}


def frame_name(index: int) -> str:
    return f"{index:06d}"


def read_poses(path: str | Path) -> np.ndarray:
    """KITTI odometry pose file → N×4×4 camera-to-world poses.

    Accepts 12 values per line, or 13 with a leading frame index (the
    kitti-odom-eval convention); blank lines are ignored.
    """
    rows = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        values = line.split()
        if not values:
            continue
        if len(values) == 13:
            values = values[1:]
        if len(values) != 12:
            raise ValueError(f"{path}:{lineno}: expected 12 (or 13 with a frame index) numbers, got {len(values)}")
        rows.append(np.array(values, dtype=np.float64).reshape(3, 4))
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    if rows:
        poses[:, :3, :] = np.stack(rows)
    return poses


def write_poses(path: str | Path, poses: np.ndarray) -> None:
    """N×4×4 (or N×3×4) camera-to-world poses → KITTI odometry pose file."""
    lines = [" ".join(f"{v:.9e}" for v in np.asarray(p)[:3, :4].reshape(-1)) for p in poses]
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


class SequenceFolder:
    """Reader/writer of one sequence in the layout above."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, kind: str, index: int) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
        return self.root / kind / (frame_name(index) + KINDS[kind])

    def indices(self, kind: str = "images") -> list[int]:
        """Sorted frame indices present for ``kind``."""
        folder = self.root / kind
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*" + KINDS[kind]) if p.stem.isdigit())

    def has(self, kind: str) -> bool:
        return bool(self.indices(kind))

    def write(self, index: int, **arrays: np.ndarray) -> None:
        """Write any of images=, depth=, flow_fw=, flow_bw=, semantic=, instance=, motion= for one frame."""
        for kind, array in arrays.items():
            if array is None:
                continue
            path = self.path(kind, index)
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind in ARRAY_KINDS:
                np.save(path, np.asarray(array, dtype=np.float32))
            else:
                array = np.asarray(array)
                if kind == "images":
                    array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
                elif kind == "instance":
                    array = array.astype(np.uint16)
                else:
                    array = array.astype(np.uint8)
                if not cv2.imwrite(str(path), array):
                    raise OSError(f"could not write {path}")

    def read(self, kind: str, index: int) -> np.ndarray:
        path = self.path(kind, index)
        if kind in ARRAY_KINDS:
            return np.load(path)
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise OSError(f"could not read {path}")
        if kind == "images":
            if array.ndim == 2:
                array = cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
            else:
                array = cv2.cvtColor(array[..., :3], cv2.COLOR_BGR2RGB)
        return array

    def write_poses(self, poses: np.ndarray) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_poses(self.root / "poses.txt", poses)

    def poses(self) -> np.ndarray:
        return read_poses(self.root / "poses.txt")

    def write_intrinsics(self, K: np.ndarray) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        np.savetxt(self.root / "intrinsics.txt", np.asarray(K, dtype=np.float64).reshape(3, 3), fmt="%.9f")

    def intrinsics(self) -> np.ndarray:
        return np.loadtxt(self.root / "intrinsics.txt").reshape(3, 3)

    def write_meta(self, meta: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def meta(self) -> dict:
        path = self.root / "meta.json"
        return json.loads(path.read_text()) if path.exists() else {}
