"""Real-data checks of a checkpoint (issue 13), each beside its trivial answer; prints JSON.

* **Optical flow** on KITTI 2015 pair 000010 and Middlebury Urban2 (``../shared/data``): EPE against the
  ground truth beside zero flow, at the checkpoint's size as the node runs any camera (frames resized to the
  network size, aspect not kept); Middlebury also at a 4:3 size (``middlebury_urban2_4x3``). Both come as frame pairs, while OFNet reads a triplet (t−1, t, t+1);
  the missing t−1 is filled two ways, both reported: ``repeat`` (t, t, t+1: the past frame equals t)
  and ``mirror`` (t+1, t, t+1).
* **Ego-motion** on ``kitti_raw_tiny`` (7 frames, camera-2 poses from OXTS): for every triplet, does
  CamNet's t→t+1 motion point forward (+z) and turn with the right yaw sign, and how does its
  translation direction compare with the truth; plus the motion on a still triplet (t, t, t),
  which should be near zero. ``kitti_raw_tiny_engine_rotation_from_flow``: the same frames through the engine
  with ``rotation_from_flow`` (the rotation fitted to OFNet's flow on DSNet's depth, K from the calibration),
  torch fp32; ``…_node_defaults``: on the backend and precision the node picks here (``auto``, ``auto``).

    python benchmarks/eval_real.py                                  # the packaged checkpoint
    python benchmarks/eval_real.py --checkpoint runs/ref/stage3/last.pt
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omeganet_ros.checkpoint import build_networks_from_checkpoint, default_checkpoint_path, load_checkpoint  # noqa: E402
from omeganet_ros.data.flow_io import read_flo_with_valid, read_kitti_flow_with_valid  # noqa: E402
from omeganet_ros.evaluate import FlowEvaluator  # noqa: E402
from omeganet_ros.runtime import machine_record  # noqa: E402
from omeganet_ros.synth import parse_size  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def to_tensor(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """H×W×3 uint8 RGB → 1×3×h×w float in [0, 1] at ``size`` = (w, h)."""
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return torch.from_numpy(resized).permute(2, 0, 1)[None].float() / 255.0


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@torch.no_grad()
def flow_pair(ofnet, first: np.ndarray, second: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """OFNet's flow first → second (H×W×2, pixels of the network size) for both fillings of t−1."""
    a, b = to_tensor(first, size), to_tensor(second, size)
    out = {}
    for name, prev in (("repeat", a), ("mirror", b)):
        out[name] = ofnet(prev, a, b, backward=False)["flow_fw"][0][0].permute(1, 2, 0).numpy()
    return out


def evaluate_flow(ofnet, first: Path, second: Path, gt: np.ndarray, valid: np.ndarray,
                  size: tuple[int, int]) -> dict:
    flows = flow_pair(ofnet, read_rgb(first), read_rgb(second), size)
    result = {}
    for name, flow in flows.items():
        evaluator = FlowEvaluator()
        evaluator.add(flow, gt, valid)
        result[f"epe_{name}"] = round(float(evaluator.result()["epe_all"]), 3)
    zero = FlowEvaluator()
    zero.add(np.zeros_like(gt), gt, valid)
    result["trivial"] = {"zero_flow_epe": round(float(zero.result()["epe_all"]), 3)}
    result["network_size"] = list(size)
    return result


def read_poses(path: Path) -> list[np.ndarray]:
    poses = []
    for line in path.read_text().split("\n"):
        if line.strip():
            pose = np.eye(4)
            pose[:3] = np.array(line.split(), float).reshape(3, 4)
            poses.append(pose)
    return poses


def raw_clip(root: Path) -> tuple[list[Path], list[np.ndarray]]:
    """kitti_raw_tiny's camera-2 frames (sorted paths) and their camera-to-world poses from OXTS."""
    frames = sorted((root / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data").glob("*.png"))
    return frames, read_poses(root / "cam2_poses_from_oxts.txt")


def true_motion_and_yaw(poses: list[np.ndarray], t: int) -> tuple[np.ndarray, float]:
    """The true camera motion t → t+1 (4×4) and its yaw (rotation about the camera's y axis, radians)."""
    truth = np.linalg.inv(poses[t]) @ poses[t + 1]
    return truth, float(Rotation.from_matrix(truth[:3, :3]).as_rotvec()[1])


@torch.no_grad()
def evaluate_ego_motion(camnet, root: Path, size: tuple[int, int]) -> dict:
    frames, poses = raw_clip(root)
    images = [to_tensor(read_rgb(p), size) for p in frames]
    rows = []
    for t in range(1, len(images) - 1):
        motion = camnet(images[t - 1], images[t], images[t + 1])["motion"][0, 1].numpy()  # t → t+1
        truth, true_yaw = true_motion_and_yaw(poses, t)
        true_t, pred_t = truth[:3, 3], motion[:3]
        cosine = float(pred_t @ true_t / (np.linalg.norm(pred_t) * np.linalg.norm(true_t) + 1e-12))
        rows.append({"frame": t, "forward": bool(pred_t[2] > 0), "yaw_pred": float(motion[4]), "yaw_true": true_yaw,
                     "yaw_sign_right": bool(np.sign(motion[4]) == np.sign(true_yaw)),
                     "translation_cosine": round(cosine, 4), "translation_norm": float(np.linalg.norm(pred_t))})
    still = camnet(images[3], images[3], images[3])["motion"][0, 1].numpy()
    moving = np.mean([r["translation_norm"] for r in rows])
    return {
        "triplets": len(rows), "all_forward": all(r["forward"] for r in rows),
        "yaw_sign_right": sum(r["yaw_sign_right"] for r in rows),
        "mean_translation_cosine": round(float(np.mean([r["translation_cosine"] for r in rows])), 4),
        "still_triplet_translation_ratio": round(float(np.linalg.norm(still[:3]) / (moving + 1e-12)), 4),
        "per_triplet": rows,
        "trivial": {"note": "a collapsed CamNet gives one motion for every triplet, the still one included "
                            "(ratio 1.0); the truth's yaw magnitudes are in per_triplet"},
    }


@torch.no_grad()
def evaluate_engine_ego_motion(checkpoint: Path, root: Path, size: tuple[int, int], backend: str = "torch",
                               precision: str = "fp32") -> dict:
    """Forward and yaw-sign checks of the engine's ego-motion t→t+1 with ``rotation_from_flow`` (paper mode), on
    ``backend`` at ``precision`` (``"auto"``, ``"auto"``: what the node runs on this machine)."""
    from omeganet_ros.data.kitti import CamToCam
    from omeganet_ros.engine import SceneEngine

    frames, poses = raw_clip(root)
    K = CamToCam(root / "2011_09_26" / "calib_cam_to_cam.txt").K(2)
    engine = SceneEngine(checkpoint, device="cpu", size=size, rotation_from_flow=True, output_resolution="network",
                         backend=backend, precision=precision)
    rows = []
    for index, path in enumerate(frames):
        result = engine.push(read_rgb(path), 0.1 * index, K=K)
        if result is None:
            continue
        t = index - 1
        _, true_yaw = true_motion_and_yaw(poses, t)
        yaw = float(Rotation.from_matrix(result.ego_motion[:3, :3]).as_rotvec()[1])
        rows.append({"frame": t, "forward": bool(result.ego_motion[2, 3] > 0), "yaw_pred": yaw, "yaw_true": true_yaw,
                     "yaw_sign_right": bool(np.sign(yaw) == np.sign(true_yaw))})
    described = engine.describe()
    return {"triplets": len(rows), "all_forward": all(r["forward"] for r in rows),
            "yaw_sign_right": sum(r["yaw_sign_right"] for r in rows),
            "backend": described.get("backend", backend), "precision": described.get("backend_precision", described["precision"]),
            "per_triplet": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the packaged one)")
    p.add_argument("--data", type=Path, default=DATA, help="../shared/data")
    p.add_argument("--kitti-size", default=None, help="network size for KITTI (default: the checkpoint's)")
    p.add_argument("--middlebury-size", default=None,
                   help="network size for Middlebury (default: the checkpoint's, as the node runs any camera)")
    p.add_argument("--middlebury-size-4x3", default="256x192",
                   help="a second Middlebury figure at this size, which keeps the frames' 4:3 aspect")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    ckpt = load_checkpoint(path)
    nets = build_networks_from_checkpoint(ckpt, ["dsnet", "camnet", "ofnet"])
    for net in nets.values():
        net.eval()
    kitti_size = parse_size(args.kitti_size) if args.kitti_size else tuple(ckpt.input_size)
    out = {"checkpoint": str(path), "input_size": list(ckpt.input_size)}
    kitti = args.data / "kitti_flow"
    if kitti.is_dir():
        gt, valid = read_kitti_flow_with_valid(kitti / "flow_occ" / "000010_10.png")
        out["kitti_flow_000010"] = evaluate_flow(nets["ofnet"], kitti / "image_2" / "000010_10.png",
                                                 kitti / "image_2" / "000010_11.png", gt, valid, kitti_size)
    urban = args.data / "middlebury_flow" / "Urban2"
    if urban.is_dir():
        gt, valid = read_flo_with_valid(urban / "flow10.flo")
        middlebury_size = parse_size(args.middlebury_size) if args.middlebury_size else tuple(ckpt.input_size)
        for key, size in (("middlebury_urban2", middlebury_size),
                          ("middlebury_urban2_4x3", parse_size(args.middlebury_size_4x3))):
            out[key] = evaluate_flow(nets["ofnet"], urban / "frame10.png", urban / "frame11.png", gt, valid, size)
    raw = args.data / "kitti_raw_tiny"
    if raw.is_dir():
        out["kitti_raw_tiny_ego_motion"] = evaluate_ego_motion(nets["camnet"], raw, kitti_size)
        out["kitti_raw_tiny_engine_rotation_from_flow"] = evaluate_engine_ego_motion(path, raw, kitti_size)
        out["kitti_raw_tiny_engine_rotation_from_flow_node_defaults"] = evaluate_engine_ego_motion(
            path, raw, kitti_size, backend="auto", precision="auto")
    out.update(machine_record())
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
