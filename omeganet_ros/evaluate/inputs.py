"""Where predictions and ground truth come from: sequence folders, KITTI files and folders, ROS 2 bags.

Every reader returns :class:`Frames`, a keyed set of lazily loaded arrays:

* sequence folders (the synthetic world's / ``omeganet-infer``'s layout) and
  numbered files are keyed by frame index (``000010.png`` and KITTI's
  ``000010_10.png`` → 10; Cityscapes names → ``city_seq_frame``);
* bags are keyed by header stamp (ns);
* stacked arrays (one .npy holding N maps) are keyed by position.

:func:`match_frames` pairs prediction and ground truth by key when both use
the same kind of key, and by position otherwise (the counts must then agree).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from omeganet_ros.data import kitti
from omeganet_ros.data.cityscapes import color_to_train_ids, label_ids_to_train_ids, read_label
from omeganet_ros.data.flow_io import read_flow
from omeganet_ros.data.layout import SequenceFolder, read_poses

BAG_SUFFIXES = (".mcap", ".db3", ".sqlite3")
CITYSCAPES_SUFFIXES = ("_gtFine_labelTrainIds", "_gtFine_labelIds", "_gtFine_color", "_gtFine_instanceIds",
                       "_leftImg8bit", "_labelTrainIds", "_labelIds", "_color", "_pred")
DEFAULT_GT_TOPICS = {"depth": "/gt/depth", "flow": "/gt/flow", "semantic": "/gt/semantic",
                     "motion": "/gt/motion", "pose": "/gt/pose", "odometry": "/gt/pose", "instance": "/gt/instance"}


@dataclass
class Frames:
    """Frames keyed by ``key_kind`` ("index", "stamp", "name" or "position"), loaded on demand."""

    key_kind: str
    loaders: dict[Any, Callable[[], np.ndarray]] = field(default_factory=dict)
    origin: str = ""

    def keys(self) -> list:
        return sorted(self.loaders)

    def __len__(self) -> int:
        return len(self.loaders)


def match_frames(pred: Frames, gt: Frames) -> list[tuple[Any, Callable, Callable]]:
    """(key, prediction loader, ground-truth loader) for every matched frame, in key order."""
    if not len(pred):
        raise ValueError(f"no predictions found in {pred.origin}")
    if not len(gt):
        raise ValueError(f"no ground truth found in {gt.origin}")
    if pred.key_kind == gt.key_kind and pred.key_kind != "position":
        keys = sorted(set(pred.loaders) & set(gt.loaders))
        if keys:
            return [(k, pred.loaders[k], gt.loaders[k]) for k in keys]
        if len(pred) != len(gt):
            raise ValueError(f"no frame of {pred.origin} (keyed by {pred.key_kind}: {pred.keys()[:3]}…) matches one "
                             f"of {gt.origin} (keyed by {gt.key_kind}: {gt.keys()[:3]}…), and the counts differ "
                             f"({len(pred)} vs {len(gt)}), so they cannot be paired by position either")
        # e.g. omeganet-infer's sequence folder (frames 0, 1, …) against KITTI's 000010_10.png: same count, by position
    if len(pred) != len(gt):
        raise ValueError(f"cannot match {len(pred)} predictions of {pred.origin} (by {pred.key_kind}) with "
                         f"{len(gt)} ground truths of {gt.origin} (by {gt.key_kind}) by position: counts differ")
    return [(i, pred.loaders[kp], gt.loaders[kg]) for i, (kp, kg) in enumerate(zip(pred.keys(), gt.keys()))]


def zip_frames(first: Frames, second: Frames | None) -> Frames:
    """``first``'s frames whose loaders return ``(first, second or None)``: a second map (e.g. KITTI's noc flow)
    that travels with the first through :func:`match_frames`, whatever the prediction's keys are."""
    def load(key):
        other = second.loaders.get(key) if second is not None and second.key_kind == first.key_kind else None
        return first.loaders[key](), (other() if other is not None else None)

    return Frames(first.key_kind, {k: (lambda k=k: load(k)) for k in first.loaders}, first.origin)


# --- helpers ----------------------------------------------------------------------------------

def is_bag(path: Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    if path.suffix.lower() in BAG_SUFFIXES:
        return path.is_file() or path.with_suffix("").is_dir()
    return False


def file_key(stem: str):
    """Matching key of a file name: frame number where there is one, else the Cityscapes/plain stem."""
    for suffix in CITYSCAPES_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    match = re.fullmatch(r"(\d+)(_\d+)?", stem)
    return int(match.group(1)) if match else stem


def files_frames(files: list[Path], load: Callable[[Path], np.ndarray], origin: str) -> Frames:
    keyed: dict[Any, Path] = {}
    for path in sorted(files):
        key = file_key(path.stem)
        if key in keyed:
            raise ValueError(f"{origin}: {keyed[key].name} and {path.name} map to the same frame {key!r}")
        keyed[key] = path
    kinds = {type(k) for k in keyed}
    kind = "index" if kinds == {int} else "name"
    if kind == "name":
        keyed = {str(k): p for k, p in keyed.items()}
    return Frames(kind, {k: (lambda p=p: load(p)) for k, p in keyed.items()}, origin)


def list_files(folder: Path, suffixes: tuple[str, ...], recursive: bool = False) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in suffixes)


def bag_frames(path: Path, topic: str | None, convert: Callable[[Any, str], np.ndarray]) -> Frames:
    """One topic of a bag, keyed by header stamp (the record time when the header has none)."""
    from omeganet_ros.data import rosbag_io

    if not topic:
        raise ValueError(f"{path} is a bag: name the topic to read with --topic / --gt-topic "
                         f"(it has {sorted(rosbag_io.list_topics(path))})")
    frames = Frames("stamp", origin=f"{path} {topic}")
    for _, record_ns, msgtype, msg in rosbag_io.iter_messages(path, [topic]):
        header = getattr(msg, "header", None)
        stamp = rosbag_io.stamp_to_ns(header.stamp) if header is not None else 0
        stamp = stamp or record_ns
        array = convert(msg, msgtype)
        frames.loaders[stamp] = lambda a=array: a
    return frames


def _image_msg(msg, msgtype: str) -> np.ndarray:
    from omeganet_ros.data import rosbag_io

    if msgtype != "sensor_msgs/msg/Image":
        raise ValueError(f"expected sensor_msgs/msg/Image messages, got {msgtype}")
    return rosbag_io.image_to_numpy(msg)


def _depth_msg(msg, msgtype: str) -> np.ndarray:
    depth = _image_msg(msg, msgtype)
    if msg.encoding == "16UC1":  # REP 118: millimetres, 0 = none
        return depth.astype(np.float32) / 1000.0
    return depth.astype(np.float32)


def _load_array_file(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: cannot load without unpickling Python objects (refused for safety; "
                         f"save one array per frame or a numeric N×H×W stack instead): {err}") from err


def _stack_frames(stack: np.ndarray, origin: str) -> Frames:
    return Frames("position", {i: (lambda a=stack[i]: a) for i in range(len(stack))}, origin)


# --- depth ------------------------------------------------------------------------------------

def depth_frames(path: str | Path, topic: str | None = None, cam: int = 2, disparity: bool = False) -> Frames:
    """Depth maps (H×W metres; 0/NaN/inf = none) from any supported source.

    Folders: the sequence layout (``depth/*.npy``); a KITTI raw drive
    (``velodyne_points/data/*.bin`` projected with the date folder's
    calibration, else ``proj_depth/velodyne/image_0C/*.npz``, else
    ``proj_depth/groundtruth/image_0C/*.png``); or files (.npy/.npz/.png).
    Files: one map, or a .npy/.npz stack N×H×W. ``disparity``: values are
    inverse depth (e.g. monodepth2's ``pred_disps.npy``) and are inverted.
    """
    path = Path(path)
    frames = _depth_frames(path, topic, cam)
    if disparity:
        for key, load in list(frames.loaders.items()):
            frames.loaders[key] = lambda load=load: _invert(load())
    return frames


def _invert(disp: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(disp > 0, 1.0 / disp, 0.0).astype(np.float32)


def _depth_frames(path: Path, topic: str | None, cam: int) -> Frames:
    if is_bag(path):
        return bag_frames(path, topic, _depth_msg)
    if not path.exists():
        raise FileNotFoundError(f"depth source {path} does not exist")
    if path.is_file():
        if path.suffix.lower() in (".npy", ".npz"):
            data = _load_array_file(path)
            if isinstance(data, dict):
                if "velodyne_depth" in data or "depth" in data or len(data) == 1:
                    data = data.get("velodyne_depth", data.get("depth", next(iter(data.values()))))
                elif "data" in data:
                    data = data["data"]
                else:
                    raise ValueError(f"{path}: no 'velodyne_depth', 'depth' or 'data' array among {sorted(data)}")
            data = np.asarray(data, np.float32)
            if data.ndim == 2:
                return Frames("position", {0: lambda d=data: d}, str(path))
            if data.ndim == 3:
                return _stack_frames(data, str(path))
            raise ValueError(f"{path}: depth array must be H×W or N×H×W, got {data.shape}")
        return Frames("position", {0: lambda: kitti.read_depth_file(path)}, str(path))
    seq = SequenceFolder(path)
    if seq.has("depth"):
        return Frames("index", {i: (lambda i=i: seq.read("depth", i)) for i in seq.indices("depth")}, str(path))
    velodyne = sorted((path / "velodyne_points" / "data").glob("*.bin"))
    if velodyne:
        calib_dir = path.parent
        cam_to_cam = kitti.CamToCam(calib_dir / "calib_cam_to_cam.txt")
        T_cam0_velo = kitti.read_velo_to_cam(calib_dir / "calib_velo_to_cam.txt")
        load = lambda p: kitti.velodyne_to_depth(kitti.load_velodyne_points(p), cam_to_cam, T_cam0_velo, cam)  # noqa: E731
        return files_frames(velodyne, load, str(path))
    for sub in (f"proj_depth/velodyne/image_0{cam}", f"proj_depth/groundtruth/image_0{cam}"):
        files = list_files(path / sub, (".npz", ".png", ".npy")) if (path / sub).is_dir() else []
        if files:
            return files_frames(files, kitti.read_depth_file, str(path / sub))
    files = list_files(path, (".npy", ".npz", ".png"))
    if not files:
        raise ValueError(f"{path}: no depth found (expected depth/*.npy, a KITTI raw drive, or .npy/.npz/.png files)")
    return files_frames(files, kitti.read_depth_file, str(path))


# --- flow -------------------------------------------------------------------------------------

def flow_frames(path: str | Path, topic: str | None = None) -> tuple[Frames, Frames | None]:
    """(all-pixel flow, non-occluded flow or None), H×W×2 pixels, NaN = invalid.

    Folders: the sequence layout (``flow_fw/*.npy``), a KITTI 2015 folder
    (``flow_occ/*_10.png`` and ``flow_noc/*_10.png``), or flow files
    (.png KITTI, .flo, .npy). A bag topic carries 32FC2 images.
    """
    path = Path(path)
    if is_bag(path):
        return bag_frames(path, topic, lambda m, t: _image_msg(m, t).astype(np.float32)), None
    if not path.exists():
        raise FileNotFoundError(f"flow source {path} does not exist")
    if path.is_file():
        return Frames("position", {0: lambda: read_flow(path)}, str(path)), None
    seq = SequenceFolder(path)
    if seq.has("flow_fw"):
        return Frames("index", {i: (lambda i=i: seq.read("flow_fw", i)) for i in seq.indices("flow_fw")}, str(path)), None
    if (path / "flow_occ").is_dir():
        occ = files_frames(sorted((path / "flow_occ").glob("*_10.png")), read_flow, str(path / "flow_occ"))
        noc_files = sorted((path / "flow_noc").glob("*_10.png")) if (path / "flow_noc").is_dir() else []
        noc = files_frames(noc_files, read_flow, str(path / "flow_noc")) if noc_files else None
        return occ, noc
    files = list_files(path, (".flo", ".npy"))
    if not files:  # a folder of KITTI flow PNGs; a Middlebury folder has .flo files beside its frame PNGs
        files = [p for p in list_files(path, (".png",)) if not re.fullmatch(r"\d+_11", p.stem)]
    if not files:
        raise ValueError(f"{path}: no flow found (expected flow_fw/*.npy, flow_occ/, or .png/.flo/.npy files)")
    return files_frames(files, read_flow, str(path)), None


# --- semantics --------------------------------------------------------------------------------

LABEL_FORMATS = ("auto", "trainids", "labelids", "color")


def read_label_as(path: Path, label_format: str = "auto") -> np.ndarray:
    """A label image → H×W uint8 trainIds, by ``label_format`` (auto: by name and channel count)."""
    if label_format == "auto":
        return read_label(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OSError(f"could not read label image {path}")
    if label_format == "color":
        if image.ndim != 3:
            raise ValueError(f"{path}: a colour label needs 3 channels, got shape {image.shape}")
        return color_to_train_ids(cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB))
    if image.ndim != 2:
        raise ValueError(f"{path}: a {label_format} label must be single-channel, got shape {image.shape}")
    return label_ids_to_train_ids(image) if label_format == "labelids" else image.astype(np.uint8)


def semantic_frames(path: str | Path, topic: str | None = None, label_format: str = "auto") -> Frames:
    """H×W uint8 trainIds (255 = none) from the sequence layout (``semantic/``), label PNGs
    (searched recursively, as in Cityscapes' ``gtFine/val/CITY/``), one PNG, or a mono8 bag topic."""
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"unknown label format {label_format!r}; expected one of {LABEL_FORMATS}")
    path = Path(path)
    if is_bag(path):
        return bag_frames(path, topic, _image_msg)
    if not path.exists():
        raise FileNotFoundError(f"semantic source {path} does not exist")
    load = lambda p: read_label_as(p, label_format)  # noqa: E731
    if path.is_file():
        return Frames("position", {0: lambda: load(path)}, str(path))
    seq = SequenceFolder(path)
    if seq.has("semantic"):
        return Frames("index", {i: (lambda i=i: seq.read("semantic", i)) for i in seq.indices("semantic")}, str(path))
    files = list_files(path, (".png",), recursive=True)
    # A Cityscapes gtFine folder holds several label kinds per frame: take the best one.
    for preferred in ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png", "_gtFine_color.png"):
        chosen = [p for p in files if p.name.endswith(preferred)]
        if chosen:
            files = chosen
            break
    files = [p for p in files if not p.name.endswith("instanceIds.png")]
    if not files:
        raise ValueError(f"{path}: no label PNGs found")
    return files_frames(files, load, str(path))


# --- motion -----------------------------------------------------------------------------------

def read_motion_png(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise OSError(f"could not read motion mask {path}")
    if mask.ndim != 2:
        raise ValueError(f"{path}: a motion mask must be single-channel, got shape {mask.shape}")
    return mask


MOTION_GT_FORMATS = ("auto", "nonzero")


def normalise_motion_gt(mask: np.ndarray, motion_format: str = "auto") -> np.ndarray:
    """Ground-truth motion mask → 0 static / 1 moving / other = ignored.

    ``auto``: 0/1 as is (other values ignored), and a pure 0/255 mask (the
    node's mono8 output convention) read as 0/1. ``nonzero``: every non-zero
    pixel is moving (e.g. KITTI 2015 ``obj_map`` instance ids, as EPC++ uses it).
    """
    if motion_format not in MOTION_GT_FORMATS:
        raise ValueError(f"unknown motion ground-truth format {motion_format!r}; expected one of {MOTION_GT_FORMATS}")
    if motion_format == "nonzero":
        return (mask != 0).astype(np.uint8)
    values = np.unique(mask)
    if values.size and set(values.tolist()) <= {0, 255} and 255 in values:
        return (mask == 255).astype(np.uint8)
    return mask


def motion_frames(path: str | Path, topic: str | None = None) -> Frames:
    """H×W motion masks from the sequence layout (``motion/``), PNG files, one PNG, or a bag topic
    (mono8 mask, or 32FC1 probability)."""
    path = Path(path)
    if is_bag(path):
        return bag_frames(path, topic, _image_msg)
    if not path.exists():
        raise FileNotFoundError(f"motion source {path} does not exist")
    if path.is_file():
        return Frames("position", {0: lambda: read_motion_png(path)}, str(path))
    seq = SequenceFolder(path)
    if seq.has("motion"):
        return Frames("index", {i: (lambda i=i: seq.read("motion", i)) for i in seq.indices("motion")}, str(path))
    files = list_files(path, (".png",))
    if not files:
        raise ValueError(f"{path}: no motion PNGs found")
    return files_frames(files, read_motion_png, str(path))


def instance_frames(path: str | Path, topic: str | None = None, things_only: bool = False,
                    semantic_topic: str | None = None) -> Frames:
    """H×W instance ids (0 = none) from the sequence layout (``instance/``) or a 16UC1/mono16 bag topic.

    ``things_only`` (ground truth): keep the ids on thing-class pixels only, using the folder's ``semantic/``
    or, in a bag, the trainIds of ``semantic_topic`` (default ``/gt/semantic``) of the same stamp (the
    synthetic world numbers buildings, poles and trees too).
    """
    from omeganet_ros.instances import thing_instances

    path = Path(path)
    if is_bag(path):
        frames = bag_frames(path, topic, _image_msg)
        if not things_only:
            return frames
        from omeganet_ros.data import rosbag_io

        semantic_topic = semantic_topic or DEFAULT_GT_TOPICS["semantic"]
        if semantic_topic not in rosbag_io.list_topics(path):
            raise ValueError(f"{path}: no {semantic_topic} topic to tell thing instances from the others")
        semantic = bag_frames(path, semantic_topic, _image_msg)
        return Frames("stamp", {k: (lambda k=k: thing_instances(frames.loaders[k](), semantic.loaders[k]()))
                                for k in frames.loaders if k in semantic.loaders}, frames.origin)
    if not path.is_dir():
        raise FileNotFoundError(f"instance source {path} is not a sequence folder or a bag")
    seq = SequenceFolder(path)
    if not seq.has("instance"):
        raise ValueError(f"{path}: no instance/ folder of uint16 PNGs")
    if things_only and not seq.has("semantic"):
        raise ValueError(f"{path}: no semantic/ folder to tell thing instances from the others")

    def load(i):
        ids = seq.read("instance", i)
        return thing_instances(ids, seq.read("semantic", i)) if things_only else ids

    return Frames("index", {i: (lambda i=i: load(i)) for i in seq.indices("instance")}, str(path))


# --- trajectories -----------------------------------------------------------------------------

@dataclass
class Trajectory:
    """Camera-to-world poses (N×4×4) with their keys (frame indices or stamps)."""

    key_kind: str
    keys: np.ndarray
    poses: np.ndarray
    origin: str = ""


def _pose_from_msg(msg, msgtype: str) -> np.ndarray:
    from omeganet_ros.data import rosbag_io

    if msgtype == "geometry_msgs/msg/PoseStamped":
        return rosbag_io.pose_msg_to_matrix(msg.pose)
    if msgtype in ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseWithCovarianceStamped"):
        return rosbag_io.pose_msg_to_matrix(msg.pose.pose)
    if msgtype == "geometry_msgs/msg/TransformStamped":
        t, q = msg.transform.translation, msg.transform.rotation
        out = np.eye(4)
        out[:3, :3] = rosbag_io.quaternion_to_rotation((q.x, q.y, q.z, q.w))
        out[:3, 3] = (t.x, t.y, t.z)
        return out
    raise ValueError(f"cannot read a pose from {msgtype}; expected PoseStamped, Odometry, "
                     "PoseWithCovarianceStamped or TransformStamped")


def trajectory(path: str | Path, topic: str | None = None, cam: int = 2) -> Trajectory:
    """A camera trajectory from: a KITTI pose file (12 values a line, or 13 with a leading frame index),
    a sequence folder (``poses.txt``), a .npy N×4×4 / N×3×4 array, a KITTI raw drive (OXTS), or a bag
    topic (PoseStamped, Odometry, TransformStamped), keyed by stamp."""
    path = Path(path)
    if is_bag(path):
        frames = bag_frames(path, topic, _pose_from_msg)
        keys = np.array(frames.keys(), np.int64)
        return Trajectory("stamp", keys, np.stack([frames.loaders[k]() for k in frames.keys()]), frames.origin)
    if not path.exists():
        raise FileNotFoundError(f"pose source {path} does not exist")
    if path.is_dir():
        if (path / "poses.txt").is_file():
            path = path / "poses.txt"
        elif (path / "oxts" / "data").is_dir():
            poses = kitti.read_drive_camera_poses(path, cam)
            return Trajectory("index", np.arange(len(poses)), poses, str(path))
        else:
            raise ValueError(f"{path}: no poses.txt or oxts/ found")
    if path.suffix.lower() == ".npy":
        poses = np.load(path, allow_pickle=False).astype(np.float64)
        if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)):
            raise ValueError(f"{path}: poses must be N×4×4 or N×3×4, got {poses.shape}")
        if poses.shape[1] == 3:
            poses = np.concatenate([poses, np.tile([[[0, 0, 0, 1.0]]], (len(poses), 1, 1))], axis=1)
        return Trajectory("index", np.arange(len(poses)), poses, str(path))
    poses = read_poses(path)
    first = next((line.split() for line in path.read_text().splitlines() if line.split()), [])
    if len(first) == 13:
        keys = np.array([float(line.split()[0]) for line in path.read_text().splitlines() if line.split()])
        if not np.all(keys == np.round(keys)):
            raise ValueError(f"{path}: the leading frame indices must be whole numbers")
        keys = keys.astype(np.int64)
    else:
        keys = np.arange(len(poses))
    return Trajectory("index", keys, poses, str(path))


def match_trajectories(pred: Trajectory, gt: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gt poses, pred poses, indices of the matched pred frames in the gt sequence), pred order by key."""
    if pred.key_kind == gt.key_kind:
        gt_pos = {int(k): i for i, k in enumerate(gt.keys)}
        order = np.argsort(pred.keys, kind="stable")
        keep = [i for i in order if int(pred.keys[i]) in gt_pos]
        if len(keep) < 2:
            raise ValueError(f"only {len(keep)} poses of {pred.origin} match frames of {gt.origin}")
        indices = np.array([gt_pos[int(pred.keys[i])] for i in keep])
        return gt.poses, pred.poses[keep], indices
    if len(pred.poses) != len(gt.poses):
        raise ValueError(f"cannot match {len(pred.poses)} poses of {pred.origin} (by {pred.key_kind}) with "
                         f"{len(gt.poses)} of {gt.origin} (by {gt.key_kind}) by position: counts differ")
    order_pred = np.argsort(pred.keys, kind="stable")
    order_gt = np.argsort(gt.keys, kind="stable")
    return gt.poses[order_gt], pred.poses[order_pred], np.arange(len(pred.poses))
