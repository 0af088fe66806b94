"""Teacher labels computed once and kept on disk, per dataset, keyed by frame and teacher.

Layout (``root`` defaults to ``$XDG_CACHE_HOME/omeganet_ros/teacher_labels``, else
``~/.cache/omeganet_ros/teacher_labels``)::

    ROOT/<teacher fingerprint, 16 hex>/<dataset name>-<12 hex>/
        manifest.json             the teacher (weights, sha256, input width) and the dataset it labels
        <frame key>.png           uint8 trainIds at the frame's own resolution, 255 = void
        <frame key>.conf.png      uint8 confidence × 255

Keys, so that a stale label is never reused:

* the teacher's ``fingerprint`` hashes its weights file (sha256), input width and
  labelling version: other weights or settings → another folder;
* a frame read from a file is keyed by its absolute path, size and modification
  time (nanoseconds): an edited or replaced image gets new labels; a decoded frame
  (video, bag, generated) by the sha1 of its pixels.

Each entry is written to a temporary file and renamed, the labels last, so an
interrupted run leaves only complete entries and the next run fills in the rest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "omeganet_ros" / "teacher_labels"


def file_frame_key(path) -> str:
    """Key of a frame stored in a file: its absolute path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return hashlib.sha1(f"file|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()


def pixel_frame_key(rgb: np.ndarray) -> str:
    """Key of a decoded frame: the sha1 of its pixels and shape."""
    digest = hashlib.sha1(f"pixels|{rgb.shape}|{rgb.dtype}|".encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


def _write_png_atomic(path: Path, image: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        if not cv2.imwrite(tmp, image):
            raise OSError(f"cannot write {path}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_label_png(path) -> np.ndarray:
    """A single-channel uint8 PNG (trainIds or quantised confidence); OSError naming the file otherwise."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2 or image.dtype != np.uint8:
        raise OSError(f"cached teacher label {path} is unreadable or not a single-channel uint8 PNG")
    return image


class TeacherLabelCache:
    """The labels of one dataset by one teacher (see the module docstring).

    ``teacher``: an object with ``labels(rgb) -> (trainIds, confidence)``, a
    ``fingerprint`` and ``describe()`` (:class:`~omeganet_ros.teacher.ESPNetTeacher`);
    ``dataset``: a name for the dataset (its spec or path); ``root``: the cache root.
    ``computed`` / ``reused`` count the frames labelled by the teacher / found on disk.
    """

    def __init__(self, teacher, dataset: str, root=None):
        self.teacher = teacher
        self.root = Path(root) if root else default_cache_root()
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(dataset).split(",")[0]).name)[:40] or "data"
        digest = hashlib.sha1(str(dataset).encode()).hexdigest()[:12]
        self.folder = self.root / teacher.fingerprint[:16] / f"{slug}-{digest}"
        self.computed = 0
        self.reused = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            manifest.write_text(json.dumps({"dataset": str(dataset), **teacher.describe()}, indent=2) + "\n")

    def paths(self, key: str) -> tuple[Path, Path]:
        """(labels PNG, confidence PNG) of a frame key."""
        return self.folder / f"{key}.png", self.folder / f"{key}.conf.png"

    def ensure(self, key: str, rgb_loader, focal_px: float | None = None) -> tuple[Path, Path]:
        """The cached label files of frame ``key``, computing them from ``rgb_loader()`` (H×W×3 uint8 RGB) when absent.

        ``focal_px``: the frame's focal length when known; the teacher sizes its input by it, so it is part of the key.
        """
        if focal_px is not None:
            key = f"{key}-f{focal_px:.1f}"
        labels_path, conf_path = self.paths(key)
        if labels_path.is_file() and conf_path.is_file():
            self.reused += 1
            return labels_path, conf_path
        labels, confidence = self.teacher.labels(rgb_loader(), focal_px=focal_px)
        _write_png_atomic(conf_path, np.clip(np.rint(confidence * 255.0), 0, 255).astype(np.uint8))
        _write_png_atomic(labels_path, labels.astype(np.uint8))
        self.computed += 1
        return labels_path, conf_path


def load_labels(labels_path, conf_path, min_confidence: float = 0.0, ignore_id: int = 255) -> np.ndarray:
    """Cached trainIds with pixels whose confidence is below ``min_confidence`` set to ``ignore_id``."""
    labels = read_label_png(labels_path)
    if min_confidence > 0:
        confidence = read_label_png(conf_path)
        if confidence.shape != labels.shape:
            raise OSError(f"cached teacher confidence {conf_path} is {confidence.shape}, its labels {labels.shape}")
        labels = np.where(confidence < min_confidence * 255.0, np.uint8(ignore_id), labels)
    return labels
