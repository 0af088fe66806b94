"""Training data: ``--data`` specs → triplets (t−1, t, t+1) of frames, with proxy labels and augmentation.

Specs (several can be mixed; every frame is resized to the training size)::

    synth:seed=S,frames=N            the procedural world, generated in memory (,follower=0: no car
                                     ahead at the camera's speed)
    sequence:PATH                    a sequence-layout folder (data/layout.py)
    folder:PATH                      any folder of images, sorted by name
    video:PATH                       any video file
    bag:PATH:TOPIC                   an image topic of a ROS 2 bag
    kitti:ROOT:SPLITFILE             KITTI raw, frames listed in a split file
    cityscapes:ROOT                  Cityscapes sequences (leftImg8bit_sequence), one clip per snippet

Options follow as ``,key=value`` (after the path for path kinds):

* ``labels=DIR``: proxy semantic labels, one trainId PNG per frame with the
  frame's file stem (255 = none), searched in DIR and its sub-folders for ``cityscapes``. For ``sequence`` and ``synth``,
  ``labels=gt`` uses the sequence's own ``semantic/`` ground truth.
* ``labels=teacher`` (every kind): proxy labels from a pretrained semantic teacher,
  computed once per frame (at the frame's own resolution, before any resize) and
  cached on disk (``omeganet_ros.teacher.label_cache``, keyed by frame and teacher
  weights). With it: ``teacher=espnet`` (default, the bundled Cityscapes ESPNet) or
  an ESPNet weights file; ``min_confidence=F`` (default 0.5): pixels where the
  teacher's confidence is below F are 255, so the semantic loss ignores them;
  ``labels_cache=DIR`` (default ``~/.cache/omeganet_ros/teacher_labels``).
* ``frames=A:B`` (video, bag): only the decoded frames A … B−1 (either end may be
  left out), e.g. to hold the end of a recording out of training.
* ``intrinsics=FILE``: K (pixels of the original frames) when known: a 3×3 text file or a KITTI
  ``calib.txt`` / ``calib_cam_to_cam.txt`` (``FILE:P0`` picks a camera; default ``P2`` / ``P_rect_02``).
  ``sequence`` and ``synth`` read their own; ``kitti`` reads the calibration.
* ``side=l|r`` (kitti): camera 02 or 03 when the split file does not say.

A frame that cannot be read is skipped: any triplet that needs it is left
out of its batch and counted (``TripletDataset.skipped``); training goes on.

Augmentation as in monodepth2: with probability ½ a colour jitter
(brightness, contrast, saturation ±0.2, hue ±0.1) applied identically to the
three frames — the networks see the jittered frames, the losses compare the
clean ones — and with probability ½ a horizontal flip of everything (frames,
labels, depth, K).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from .. import geometry
from ..classes import IGNORE_ID
from ..data.kitti import read_calib_file, read_depth_file
from ..data.layout import SequenceFolder
from ..instances import thing_instances
from ..teacher import SemanticTeacher

Loader = Callable[[], np.ndarray]
SPEC_KINDS = ("synth", "sequence", "folder", "video", "bag", "kitti", "cityscapes")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class FrameRecord:
    """One frame: a loader of its H×W×3 uint8 RGB image and optional loaders of its labels and ground truth."""

    image: Loader
    name: str
    labels: Loader | None = None  # H×W uint8 trainIds (proxy labels for training)
    depth: Loader | None = None  # H×W float metres, ≤ 0 or non-finite = none (validation)
    flow_fw: Loader | None = None  # H×W×2 pixels t→t+1, NaN = none (validation)
    semantic: Loader | None = None  # H×W trainIds ground truth (validation)
    motion: Loader | None = None  # H×W 0/1 ground truth (validation, τ calibration)
    instance: Loader | None = None  # H×W uint16 ids of thing-class instances, 0 = none (Moreau instance task)


@dataclass
class FrameSequence:
    """An ordered clip of frames and what is known about its camera."""

    name: str
    frames: list[FrameRecord]
    K: np.ndarray | None = None  # 3×3 pixels of the original frames
    centres: list[int] | None = None  # allowed triplet centres (default: all with both neighbours)
    skipped: int = 0  # frames the reader already dropped (video/bag decode errors)
    depth_crop: str | None = None  # evaluation crop for validation ("garg" for KITTI)


@dataclass
class DataSpec:
    kind: str
    args: list[str]
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""


def parse_spec(text: str) -> DataSpec:
    """Parse one ``--data`` spec (see the module docstring); ValueError naming the spec when malformed."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in SPEC_KINDS:
        raise ValueError(f"data spec {text!r}: expected KIND:..., KIND one of {', '.join(SPEC_KINDS)}")
    parts = rest.split(",")
    options: dict[str, str] = {}
    if kind == "synth":
        head, opt_parts = "", parts
    else:
        # Trailing key=value parts are options; the rest (which may contain commas) is the path.
        opt_parts = []
        while len(parts) > 1 and re.fullmatch(r"\w+=.*", parts[-1]):
            opt_parts.insert(0, parts.pop())
        head = ",".join(parts)
    for part in opt_parts:
        if not part:
            continue
        k, eq, v = part.partition("=")
        if not eq:
            raise ValueError(f"data spec {text!r}: option {part!r} is not key=value")
        options[k] = v
    if kind in ("bag", "kitti"):
        path, sep, last = head.rpartition(":")
        if not sep or not path or not last:
            what = "bag:PATH:TOPIC" if kind == "bag" else "kitti:ROOT:SPLITFILE"
            raise ValueError(f"data spec {text!r}: expected {what}")
        args = [path, last]
    elif kind == "synth":
        args = []
    else:
        if not head:
            raise ValueError(f"data spec {text!r}: missing path")
        args = [head]
    return DataSpec(kind, args, options, text)


def _imread_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _imread_labels(path: Path) -> np.ndarray:
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise OSError(f"cannot read label image {path}")
    if labels.ndim != 2:
        raise OSError(f"label image {path} must be single-channel trainIds, has shape {labels.shape}")
    return labels


def _label_loader(label_dir: Path | None, stem: str) -> Loader | None:
    if label_dir is None:
        return None
    path = label_dir / (stem + ".png")
    return (lambda p=path: _imread_labels(p)) if path.is_file() else None


def _read_K(spec) -> np.ndarray:
    from ..data.intrinsics import read_intrinsics

    return read_intrinsics(spec)


def _folder_sequence(spec: DataSpec) -> FrameSequence:
    root = Path(spec.args[0])
    if not root.is_dir():
        raise OSError(f"data spec {spec.text!r}: image folder {root} does not exist")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise OSError(f"data spec {spec.text!r}: folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    label_dir = Path(spec.options["labels"]) if "labels" in spec.options else None
    frames = [FrameRecord(image=lambda p=p: _imread_rgb(p), name=str(p), labels=_label_loader(label_dir, p.stem))
              for p in files]
    K = _read_K(spec.options["intrinsics"]) if "intrinsics" in spec.options else None
    return FrameSequence(str(root), frames, K)


def _frame_range(spec: DataSpec) -> tuple[int, int | None]:
    """The ``frames=A:B`` option of a video/bag spec as (start, stop); (0, None) without it."""
    text = spec.options.get("frames")
    if text is None:
        return 0, None
    first, sep, last = text.partition(":")
    try:
        if not sep:
            raise ValueError
        start, stop = (int(first) if first else 0), (int(last) if last else None)
    except ValueError:
        raise ValueError(f"data spec {spec.text!r}: frames must be START:STOP frame indices, got {text!r}") from None
    if start < 0 or (stop is not None and stop <= start):
        raise ValueError(f"data spec {spec.text!r}: frames {text!r} is an empty or negative range")
    return start, stop


def _decoded_sequence(spec: DataSpec, source, size: tuple[int, int], teacher: TeacherLabels | None = None) -> FrameSequence:
    """Decode a video/bag into memory at the training size (their frames cannot be read one by one cheaply).

    With a ``teacher``, each frame is labelled (or found in its cache) at its decoded resolution first.
    """
    width, height = size
    start, stop = _frame_range(spec)
    K_original = _read_K(spec.options["intrinsics"]) if "intrinsics" in spec.options else None
    focal = float(K_original[0, 0]) if K_original is not None else None
    frames, original = [], None
    stream = source
    if teacher is not None:
        from tqdm import tqdm

        stream = tqdm(source, total=len(source) or None, desc=f"teacher labels {source.path.name}", unit="frame",
                      disable=None)
    for index, _stamp, rgb in stream:
        if index < start:
            continue
        if stop is not None and index >= stop:
            break
        original = original or (rgb.shape[1], rgb.shape[0])
        if (rgb.shape[1], rgb.shape[0]) != original:
            source._skip(f"{source.path}: frame {index} is {rgb.shape[1]}×{rgb.shape[0]}, the clip {original[0]}×{original[1]}")
            continue
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        labels = teacher.for_pixels(rgb, focal) if teacher is not None else None
        frames.append(FrameRecord(image=lambda a=small: a, name=f"{source.path}#{index}", labels=labels))
    if teacher is not None:
        stream.close()
    if not frames:
        raise OSError(f"data spec {spec.text!r}: no frame could be decoded")
    K = None
    if K_original is not None:
        K = geometry.scale_intrinsics(torch.from_numpy(K_original), width / original[0], height / original[1]).numpy()
    for message in source.errors[:5]:
        warnings.warn(f"skipped frame: {message}")
    return FrameSequence(spec.text, frames, K, skipped=source.skipped)


def _sequence_folder(spec: DataSpec) -> FrameSequence:
    root = Path(spec.args[0])
    seq = SequenceFolder(root)
    indices = seq.indices("images")
    if not indices:
        raise OSError(f"data spec {spec.text!r}: {root} has no images/ folder of PNG frames")
    labels = spec.options.get("labels")
    label_dir = None if labels in (None, "gt") else Path(labels)

    def maybe(kind, i):
        return (lambda: seq.read(kind, i)) if seq.path(kind, i).is_file() else None

    frames = []
    for i in indices:
        semantic = maybe("semantic", i)
        instance = maybe("instance", i)
        if instance is not None and semantic is not None:
            instance = lambda i=i: thing_instances(seq.read("instance", i), seq.read("semantic", i))  # noqa: E731
        frames.append(FrameRecord(
            image=lambda i=i: seq.read("images", i), name=str(seq.path("images", i)),
            labels=semantic if labels == "gt" else _label_loader(label_dir, f"{i:06d}"),
            depth=maybe("depth", i), flow_fw=maybe("flow_fw", i), semantic=semantic, motion=maybe("motion", i),
            instance=instance))
    K = seq.intrinsics() if (root / "intrinsics.txt").is_file() else None
    if "intrinsics" in spec.options:
        K = _read_K(spec.options["intrinsics"])
    return FrameSequence(str(root), frames, K)


def _synth_sequence(spec: DataSpec, size: tuple[int, int]) -> FrameSequence:
    """The synthetic world, generated in memory (``omeganet_ros.synth``) at the training size.

    Options: ``seed``, ``frames``, ``size=WxH`` (render size, default the training
    size), ``labels=gt`` (its semantic ground truth as proxy labels), ``follower=0`` (no car
    ahead at the camera's own speed: photometrically static, it teaches "car ahead = far").
    """
    try:
        from ..synth import iterate_frames, parse_size
    except ImportError as exc:
        raise ValueError(f"data spec {spec.text!r}: the synthetic world (omeganet_ros.synth) is not available: {exc}") from exc
    known = {"seed", "frames", "size", "labels", "follower"}
    unknown = set(spec.options) - known
    if unknown:
        raise ValueError(f"data spec {spec.text!r}: unknown options {sorted(unknown)}; known: {sorted(known)}")
    try:
        seed = int(spec.options.get("seed", 0))
        frames = int(spec.options.get("frames", 50))
    except ValueError as exc:
        raise ValueError(f"data spec {spec.text!r}: seed and frames must be integers") from exc
    if frames < 3:
        raise ValueError(f"data spec {spec.text!r}: need at least 3 frames, got {frames}")
    render_size = parse_size(spec.options["size"]) if "size" in spec.options else tuple(size)
    use_gt_labels = spec.options.get("labels") == "gt"
    follower = spec.options.get("follower", "1")
    if follower not in ("0", "1"):
        raise ValueError(f"data spec {spec.text!r}: follower must be 0 or 1, got {follower!r}")
    records, K = [], None
    for frame in iterate_frames(frames=frames, seed=seed, size=render_size, follower=follower == "1"):
        K = frame["K"]
        i = frame["index"]
        records.append(FrameRecord(
            image=lambda a=frame["image"]: a, name=f"synth seed={seed} #{i}",
            labels=(lambda a=frame["semantic"]: a) if use_gt_labels else None,
            depth=lambda a=frame["depth"]: a,
            flow_fw=lambda a=frame["flow_fw"]: a,
            semantic=lambda a=frame["semantic"]: a,
            motion=lambda a=frame["motion"]: a,
            instance=lambda a=thing_instances(frame["instance"], frame["semantic"]): a))
    return FrameSequence(spec.text, records, np.asarray(K, np.float64))


def _kitti_calibration(calib_file: Path, camera: str) -> np.ndarray:
    """3×3 K of rectified camera ``camera`` ("02"/"03") from KITTI's calib_cam_to_cam.txt."""
    key = f"P_rect_{camera}"
    calib = read_calib_file(calib_file)
    if key not in calib:
        raise ValueError(f"KITTI calibration {calib_file} has no {key}")
    return calib[key].reshape(3, 4)[:, :3]


def _kitti_sequences(spec: DataSpec) -> list[FrameSequence]:
    """KITTI raw frames listed in a split file.

    Lines are either monodepth2/Zhou style ``DATE/DRIVE FRAME l|r`` or image
    paths relative to ROOT (``DATE/DRIVE/image_02/data/NNNNNNNNNN.png`` …).
    Each listed frame is a triplet centre; its neighbours come from disk.
    Ground-truth depth for validation: ``proj_depth/velodyne/image_0X/*.npz``
    (key ``velodyne_depth``) or ``*.png`` (KITTI depth, value / 256) when present.
    """
    root, split = Path(spec.args[0]), Path(spec.args[1])
    if not root.is_dir():
        raise OSError(f"data spec {spec.text!r}: KITTI root {root} does not exist")
    if not split.is_file():
        raise OSError(f"data spec {spec.text!r}: split file {split} does not exist")
    default_side = spec.options.get("side", "l")
    centres: dict[tuple[str, str], list[int]] = {}
    for lineno, line in enumerate(split.read_text().splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0].lower().endswith(IMAGE_SUFFIXES):
            path = Path(tokens[0])
            drive, camera, index = str(path.parent.parent.parent), path.parent.parent.name[-2:], int(path.stem)
        elif len(tokens) >= 2 and tokens[1].isdigit():
            side = tokens[2] if len(tokens) > 2 else default_side
            drive, camera, index = tokens[0], {"l": "02", "r": "03"}.get(side, "02"), int(tokens[1])
        else:
            raise ValueError(f"{split}:{lineno}: cannot parse {line!r} (expected 'DRIVE FRAME SIDE' or an image path)")
        centres.setdefault((drive, camera), []).append(index)
    sequences = []
    for (drive, camera), wanted in centres.items():
        image_dir = root / drive / f"image_{camera}" / "data"
        files = sorted(image_dir.glob("*.png"))
        if not files:
            raise OSError(f"data spec {spec.text!r}: no images in {image_dir}")
        calib = root / Path(drive).parent / "calib_cam_to_cam.txt"
        K = _kitti_calibration(calib, camera) if calib.is_file() else None
        depth_dir = root / drive / "proj_depth" / "velodyne" / f"image_{camera}"
        by_index = {int(p.stem): p for p in files}
        first = min(by_index)
        records = []
        for idx in range(first, max(by_index) + 1):
            path = by_index.get(idx, image_dir / f"{idx:010d}.png")  # a missing file fails to load → skipped
            records.append(FrameRecord(image=lambda p=path: _imread_rgb(p), name=str(path),
                                       depth=_kitti_depth_loader(depth_dir, idx)))
        sequences.append(FrameSequence(f"{drive} image_{camera}", records, K,
                                       centres=[i - first for i in wanted], depth_crop="garg"))
    return sequences


def _kitti_depth_loader(depth_dir: Path, index: int) -> Loader | None:
    for path in (depth_dir / f"{index:010d}.npz", depth_dir / f"{index:010d}.png"):
        if path.is_file():
            return lambda p=path: read_depth_file(p)
    return None


CITYSCAPES_NAME = re.compile(r"(?P<city>[a-z_]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")


def _cityscapes_sequences(spec: DataSpec) -> list[FrameSequence]:
    """Cityscapes ``leftImg8bit_sequence``: files ``CITY_SEQ_FRAME_leftImg8bit.png`` anywhere under ROOT,
    one clip per run of consecutive frames of a snippet (so no triplet spans two snippets)."""
    root = Path(spec.args[0])
    if not root.is_dir():
        raise OSError(f"data spec {spec.text!r}: Cityscapes folder {root} does not exist")
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    for path in root.rglob("*_leftImg8bit.png"):
        m = CITYSCAPES_NAME.match(path.name)
        if m:
            groups.setdefault((m["city"], m["seq"]), {})[int(m["frame"])] = path
    if not groups:
        raise OSError(f"data spec {spec.text!r}: no CITY_SEQ_FRAME_leftImg8bit.png images under {root}")
    label_files = {}
    if "labels" in spec.options:
        label_files = {p.stem: p for p in Path(spec.options["labels"]).rglob("*.png")}
    K = _read_K(spec.options["intrinsics"]) if "intrinsics" in spec.options else None
    sequences = []
    for (city, seq), frames in sorted(groups.items()):
        run: list[int] = []
        for index in sorted(frames) + [None]:
            if run and (index is None or index != run[-1] + 1):
                if len(run) >= 3:
                    records = []
                    for i in run:
                        path = frames[i]
                        label = label_files.get(path.stem)
                        records.append(FrameRecord(image=lambda p=path: _imread_rgb(p), name=str(path),
                                                   labels=(lambda p=label: _imread_labels(p)) if label else None))
                    sequences.append(FrameSequence(f"{city}_{seq}_{run[0]:06d}", records, K))
                run = []
            if index is not None:
                run.append(index)
    if not sequences:
        raise OSError(f"data spec {spec.text!r}: no snippet under {root} has 3 consecutive frames")
    return sequences


DEFAULT_MIN_CONFIDENCE = 0.5  # teacher pixels below it are ignored (on Cityscapes: 2 % of pixels, 57 % of them wrong)


class TeacherLabels:
    """``labels=teacher`` for one data spec: a semantic teacher's labels, cached on disk, as frames' label loaders.

    Takes the teacher options (``teacher``, ``min_confidence``, ``labels_cache``)
    and ``labels`` out of ``spec.options``, so the kind's own reader sees none of them.
    """

    def __init__(self, spec: DataSpec):
        from ..teacher import load_teacher
        from ..teacher.label_cache import TeacherLabelCache

        options = spec.options
        try:
            self.min_confidence = float(options.pop("min_confidence", DEFAULT_MIN_CONFIDENCE))
        except ValueError:
            raise ValueError(f"data spec {spec.text!r}: min_confidence must be a number in [0, 1]") from None
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"data spec {spec.text!r}: min_confidence must be in [0, 1], got {self.min_confidence}")
        teacher = load_teacher(options.pop("teacher", "espnet"))
        root = options.pop("labels_cache", None)
        del options["labels"]
        # The dataset's identity in the cache: its kind and source, not options that do not change the labels.
        source = [str(Path(spec.args[0]).resolve())] + spec.args[1:] if spec.args else [spec.text]
        self.cache = TeacherLabelCache(teacher, ":".join([spec.kind, *source]), root)
        self.unreadable = 0

    def _loader(self, key: str, rgb_loader, focal: float | None) -> Loader:
        from ..teacher.label_cache import load_labels

        labels_path, conf_path = self.cache.ensure(key, rgb_loader, focal)
        return lambda: load_labels(labels_path, conf_path, self.min_confidence, IGNORE_ID)

    def for_pixels(self, rgb: np.ndarray, focal: float | None = None) -> Loader:
        """The label loader of a decoded H×W×3 uint8 RGB frame (keyed by its pixels); ``focal`` its fx when known."""
        from ..teacher.label_cache import pixel_frame_key

        return self._loader(pixel_frame_key(rgb), lambda: rgb, focal)

    def attach(self, sequences: list[FrameSequence]) -> None:
        """Give every possible triplet centre of ``sequences`` its teacher labels (files keyed by path, size, mtime).

        Where a sequence knows its K, the teacher sizes its input by the focal length (``network_size``).
        """
        from tqdm import tqdm

        from ..teacher.label_cache import file_frame_key, pixel_frame_key

        records = [(seq.frames[c], float(seq.K[0, 0]) if seq.K is not None else None) for seq in sequences
                   for c in (seq.centres if seq.centres is not None else range(1, len(seq.frames) - 1))]
        for record, focal in tqdm(records, desc="teacher labels", unit="frame", disable=None):
            path = Path(record.name)
            try:
                key = file_frame_key(path) if path.is_file() else pixel_frame_key(record.image())
                record.labels = self._loader(key, record.image, focal)
            except (OSError, ValueError) as exc:  # an unreadable frame: its triplets are skipped later anyway
                self.unreadable += 1
                if self.unreadable <= 5:
                    warnings.warn(f"{record.name}: no teacher labels ({exc})")


def build_sequences(spec_text: str, size: tuple[int, int]) -> list[FrameSequence]:
    """The frame sequences of one ``--data`` spec; ``size`` (W, H) is the training size."""
    spec = parse_spec(spec_text)
    teacher = TeacherLabels(spec) if spec.options.get("labels") == "teacher" else None
    if spec.kind in ("video", "bag"):
        from ..data import sources  # OpenCV/PyAV/rosbags readers

        source = (sources.VideoSource(spec.args[0]) if spec.kind == "video"
                  else sources.RosbagSource(spec.args[0], spec.args[1]))
        return [_decoded_sequence(spec, source, size, teacher)]
    if "frames" in spec.options and spec.kind != "synth":
        raise ValueError(f"data spec {spec.text!r}: the frames=A:B option is for video and bag specs")
    if spec.kind == "folder":
        sequences = [_folder_sequence(spec)]
    elif spec.kind == "sequence":
        sequences = [_sequence_folder(spec)]
    elif spec.kind == "synth":
        sequences = [_synth_sequence(spec, size)]
    elif spec.kind == "kitti":
        sequences = _kitti_sequences(spec)
    else:
        sequences = _cityscapes_sequences(spec)
    if teacher is not None:
        teacher.attach(sequences)
    return sequences


# --------------------------------------------------------------------------------------------
# Augmentation


def _jitter_params(gen: torch.Generator) -> tuple[float, float, float, float]:
    u = torch.rand(4, generator=gen, dtype=torch.float64).tolist()
    return 0.8 + 0.4 * u[0], 0.8 + 0.4 * u[1], 0.8 + 0.4 * u[2], -0.1 + 0.2 * u[3]


def color_jitter(image: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float) -> torch.Tensor:
    """monodepth2's ColorJitter (torchvision semantics), 3×H×W in [0, 1]; ``hue`` in turns (±0.1)."""
    from kornia.enhance import adjust_hue

    def gray(x):
        return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)

    image = (image * brightness).clamp(0, 1)
    image = ((image - gray(image).mean()) * contrast + gray(image).mean()).clamp(0, 1)
    g = gray(image)
    image = ((image - g) * saturation + g).clamp(0, 1)
    image = adjust_hue(image.unsqueeze(0), hue * 2 * np.pi).squeeze(0).clamp(0, 1)
    return image


# --------------------------------------------------------------------------------------------
# The dataset


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255.0)


class TripletDataset(Dataset):
    """Triplets (t−stride, t, t+stride) of one or more sequences, resized to ``size`` = (W, H).

    Items are dicts of tensors: ``prev``, ``cur``, ``next`` (3×H×W clean, for
    the losses), ``prev_aug``, ``cur_aug``, ``next_aug`` (the networks'
    inputs), ``K`` 3×3 and ``has_K`` (bool), ``labels`` H×W long (255 = none),
    ``has_labels`` (bool), ``depth`` 1×H×W ground truth (0 = none, nearest-resized)
    and ``has_depth``, ``instance`` H×W long thing-instance ids (0 = none, nearest-resized) and
    ``has_instance`` (the frame has instance ground truth). An item whose frames cannot be read is None (the
    collate function drops it and counts it). ``context=1`` adds the frames t ± 2·stride as ``prev2``,
    ``next2`` (and ``*_aug``), so that flows from the neighbours back to t come from proper triplets
    (t, t+1, t+2) and (t−2, t−1, t) (stage 2); items then need those frames to exist.

    Randomness (augmentation) is a function of (seed, epoch, index) only, so
    runs and resumed runs see the same data, with any number of workers.
    """

    def __init__(self, sequences: list[FrameSequence], size: tuple[int, int], *, stride: int = 1,
                 augment: bool = True, seed: int = 0, context: int = 0):
        self.sequences = sequences
        self.width, self.height = int(size[0]), int(size[1])
        if self.width < 64 or self.height < 64:
            raise ValueError(f"training size must be at least 64×64, got {self.width}×{self.height}")
        self.stride = int(stride)
        if context not in (0, 1):
            raise ValueError(f"context must be 0 (triplets) or 1 (five frames), got {context}")
        self.context = int(context)
        reach = (1 + self.context) * self.stride
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.items: list[tuple[int, int]] = []
        for s, seq in enumerate(sequences):
            n = len(seq.frames)
            centres = seq.centres if seq.centres is not None else range(n)
            self.items += [(s, c) for c in centres if c - reach >= 0 and c + reach < n]
        if not self.items:
            raise ValueError(f"no triplet of frames (stride {self.stride}, context {self.context}) in "
                             f"{[s.name for s in sequences]}: each sequence needs at least {3 + 2 * self.context} frames")
        self.decode_skipped = sum(s.skipped for s in sequences)
        self.has_any_labels = any(f.labels is not None for s in sequences for f in s.frames)
        self.has_any_instances = any(f.instance is not None for s in sequences for f in s.frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def _resize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise OSError(f"frame has shape {rgb.shape}, expected H×W×3")
        if rgb.shape[:2] == (self.height, self.width):
            return rgb
        return cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def _resize_nearest(self, array: np.ndarray) -> np.ndarray:
        if array.shape[:2] == (self.height, self.width):
            return array
        return cv2.resize(array, (self.width, self.height), interpolation=cv2.INTER_NEAREST)

    def load_frames(self, index: int):
        """(sequence, centre, [3 + 2·context RGB uint8 frames at their original size, oldest first]);
        raises OSError for unreadable frames."""
        s, c = self.items[index]
        seq = self.sequences[s]
        frames = []
        for i in range(c - (1 + self.context) * self.stride, c + (2 + self.context) * self.stride, self.stride):
            try:
                rgb = seq.frames[i].image()
            except Exception as exc:  # cv2/PIL/numpy raise various errors for broken files
                raise OSError(f"{seq.frames[i].name}: {exc}") from exc
            if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise OSError(f"{seq.frames[i].name}: not an H×W×3 uint8 image")
            frames.append(rgb)
        if len({f.shape for f in frames}) != 1:
            raise OSError(f"frames around {seq.frames[c].name} differ in size")
        return seq, c, frames

    def __getitem__(self, index: int):
        try:
            return self._item(index)
        except OSError as exc:
            self._warned = getattr(self, "_warned", 0) + 1
            if self._warned <= 20:  # the trainer counts them all; the first few say why
                warnings.warn(f"skipping triplet {index}: {exc}")
            return None

    def _item(self, index: int) -> dict:
        seq, c, frames = self.load_frames(index)
        orig_h, orig_w = frames[0].shape[:2]
        images = [_to_tensor(self._resize_rgb(f)) for f in frames]
        if seq.K is not None:
            K = geometry.scale_intrinsics(torch.as_tensor(seq.K, dtype=torch.float32),
                                          self.width / orig_w, self.height / orig_h)
        else:
            K = torch.eye(3)
        record = seq.frames[c]
        labels = torch.full((self.height, self.width), IGNORE_ID, dtype=torch.long)
        if record.labels is not None:
            try:
                labels = torch.from_numpy(self._resize_nearest(record.labels()).astype(np.int64))
            except (OSError, ValueError) as exc:
                warnings.warn(f"{record.name}: labels unreadable, used without ({exc})")
        depth = torch.zeros(1, self.height, self.width)
        if record.depth is not None:
            try:
                d = np.nan_to_num(np.asarray(record.depth(), np.float32), nan=0.0, posinf=0.0, neginf=0.0)
                depth = torch.from_numpy(self._resize_nearest(d)).unsqueeze(0)
            except (OSError, ValueError, KeyError) as exc:
                warnings.warn(f"{record.name}: depth unreadable ({exc})")
        instance = torch.zeros(self.height, self.width, dtype=torch.long)
        if record.instance is not None:
            try:
                instance = torch.from_numpy(self._resize_nearest(np.asarray(record.instance())).astype(np.int64))
            except (OSError, ValueError) as exc:
                warnings.warn(f"{record.name}: instance ids unreadable, used without ({exc})")
        augmented = images
        if self.augment:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 7_919 + index)
            do_jitter, do_flip = (torch.rand(2, generator=gen) < 0.5).tolist()
            params = _jitter_params(gen)
            if do_flip:
                images = [im.flip(-1) for im in images]
                labels, depth, instance = labels.flip(-1), depth.flip(-1), instance.flip(-1)
                K = K.clone()
                K[0, 2] = self.width - 1 - K[0, 2]
            augmented = [color_jitter(im, *params) for im in images] if do_jitter else images
        extra = {}
        if self.context:
            extra = {"prev2": images[0], "next2": images[-1], "prev2_aug": augmented[0], "next2_aug": augmented[-1]}
            images, augmented = images[1:-1], augmented[1:-1]
        return {
            **extra,
            "prev": images[0], "cur": images[1], "next": images[2],
            "prev_aug": augmented[0], "cur_aug": augmented[1], "next_aug": augmented[2],
            "K": K, "has_K": torch.tensor(seq.K is not None),
            "labels": labels, "has_labels": torch.tensor(bool((labels != IGNORE_ID).any())),
            "depth": depth, "has_depth": torch.tensor(bool((depth > 0).any())),
            "instance": instance, "has_instance": torch.tensor(record.instance is not None),
        }


def collate_triplets(items: list) -> dict:
    """Stack the readable items; ``skipped`` counts the unreadable ones. All unreadable → {"skipped": n}."""
    good = [it for it in items if it is not None]
    batch = {k: torch.stack([it[k] for it in good]) for k in good[0]} if good else {}
    batch["skipped"] = len(items) - len(good)
    return batch


def build_dataset(specs: list[str], size: tuple[int, int], *, stride: int = 1, augment: bool = True,
                  seed: int = 0, context: int = 0) -> TripletDataset:
    """One dataset over all specs (their sequences concatenated)."""
    if not specs:
        raise ValueError("no --data given")
    sequences: list[FrameSequence] = []
    for spec in specs:
        sequences += build_sequences(spec, size)
    return TripletDataset(sequences, size, stride=stride, augment=augment, seed=seed, context=context)


__all__ = ["SemanticTeacher", "TeacherLabels", "FrameRecord", "FrameSequence", "DataSpec", "parse_spec", "build_sequences",
           "TripletDataset", "collate_triplets", "build_dataset", "color_jitter", "ConcatDataset"]
