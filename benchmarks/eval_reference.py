"""Evaluate a checkpoint on synthetic sequences of unseen seeds with the evaluation suite; prints JSON.

The synthetic world (``omeganet_ros.synth``) is generated in memory at the
frames' size, pushed through :class:`~omeganet_ros.engine.SceneEngine` (paper
mode: outputs of frame t once t+1 is pushed) and compared with its exact
ground truth:

* depth: abs_rel, sq_rel, rmse, a1 with per-image median scaling (the network
  depth is relative), no crop, 1e-3–80 m (``evaluate.depth``); abs_rel also on the static and the moving
  pixels alone (the image's median scale);
* flow: end-point error t→t+1 in pixels where the ground truth is defined
  (not occluded, in view) and Fl (``evaluate.flow``); also split into static
  and moving pixels, and the EPE of the rigid flow (depth + ego-motion) on
  static pixels, which tells depth/pose errors from optical-flow errors;
* motion: IoU of the moving class and mean IoU of the motion mask against the
  moving-object ground truth (``evaluate.motion``);
* pose: 5-frame snippet ATE in metres, scale aligned per snippet
  (``evaluate.pose``, the SfMLearner/monodepth2 protocol);
* semantic: mIoU over the 19 Cityscapes classes (``evaluate.semantic``).

Beside every figure the trivial answer a collapsed network would give, through
the same evaluator (``"trivial"`` entries): depth, a constant plane (with median
scaling: the ground truth's median depth); flow, zero flow; pose, constant
velocity (the sequence's mean true motion every frame — an oracle constant, so
a CamNet that outputs one motion cannot beat it); semantic, the majority class
of the evaluated ground truth everywhere; motion, nothing moving. Ego-motion is
also judged by the correlation of CamNet's yaw (rotation about the camera's y
axis) and forward translation with the truth, which a constant output cannot fake.

``--only pose`` runs CamNet alone on the triplets (no engine, no depth or flow; minutes instead of tens of
minutes on a CPU): the pose block, plus CamNet's input sensitivity over every triplet — how often its yaw
flips sign when the triplet is reversed (t+1, t, t−1), and its translation on the still triplet (t, t, t)
relative to the moving one (a CamNet that reads one frame's appearance gives ~0 % and ~1.0).

Examples::

    python benchmarks/eval_reference.py                                   # the packaged default checkpoint
    python benchmarks/eval_reference.py --only pose --checkpoint runs/stage1b/last.pt   # ego-motion only
    python benchmarks/eval_reference.py --checkpoint random               # untrained networks, for comparison
    python benchmarks/eval_reference.py --checkpoint runs/stage2/last.pt --seeds 201 202 --frames 40

The seeds used for training the reference checkpoint are 1 (training) and 101
(validation); the defaults here (201, 202) were never seen.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from omeganet_ros.checkpoint import default_checkpoint_path
from omeganet_ros.engine import SceneEngine
from omeganet_ros.runtime import machine_record
from omeganet_ros.evaluate import DepthEvaluator, FlowEvaluator, MotionEvaluator, SemanticEvaluator
from omeganet_ros.evaluate import trivial
from omeganet_ros.evaluate.pose import evaluate_pose_snippets, motions_from_poses
from omeganet_ros.synth import iterate_frames, parse_size


def evaluate_sequence(engine: SceneEngine, seed: int, frames: int, size: tuple[int, int], given_K: bool,
                      evaluators: dict) -> dict:
    """Push one synthetic sequence through ``engine``, feeding ``evaluators``; returns pose inputs of this sequence.

    Returns {"pred_motions": K×4×4, "gt_motions": K×4×4} for consecutive output frames (camera
    motion t → t+1, geometry convention).
    """
    engine.reset()
    truth = {}
    pred_motions, gt_motions = [], []
    for frame in iterate_frames(frames=frames, seed=seed, size=size):
        index = frame["index"]
        truth[index] = frame
        stamp = frame["stamp_ns"] * 1e-9
        out = engine.push(frame["image"], stamp, K=frame["K"] if given_K else None)
        if out is None:
            continue
        t = index - 1  # paper mode: the middle frame of (t−1, t, t+1)
        gt = truth.pop(t)
        following = truth[index]
        moving = gt["motion"].astype(bool)
        regions = {"static": ~moving, "moving": moving}
        evaluators["depth"].add(out.depth, gt["depth"], regions)
        evaluators["depth_trivial"].add(trivial.depth_plane(gt["depth"]), gt["depth"], regions)
        evaluators["flow"].add(out.flow, gt["flow_fw"])
        evaluators["flow_trivial"].add(trivial.zero_flow(out.flow), gt["flow_fw"])
        static_gt = np.where(moving[..., None], np.nan, gt["flow_fw"]).astype(np.float32)
        evaluators["flow_static"].add(out.flow, static_gt)
        evaluators["flow_moving"].add(out.flow, np.where(moving[..., None], gt["flow_fw"], np.nan).astype(np.float32))
        if out.rigid_flow is not None:  # depth + ego-motion as a flow: right only where nothing moves
            evaluators["rigid_flow_static"].add(out.rigid_flow, static_gt)
        evaluators["semantic"].add(out.semantic, gt["semantic"])
        evaluators["motion"].add(out.motion_mask, gt["motion"])
        pred_motions.append(out.ego_motion)
        gt_motions.append(motions_from_poses(np.stack([gt["pose"], following["pose"]]))[0])
        truth.pop(t - 1, None)
    return {"pred_motions": np.array(pred_motions), "gt_motions": np.array(gt_motions)}


def evaluate_checkpoint(checkpoint, seeds, frames: int, size: tuple[int, int], network_size, given_K: bool = True,
                        precision: str = "fp32", rotation_from_flow: bool = False) -> dict:
    """Metrics of ``checkpoint`` (path, None for the packaged default, or "random") on the synthetic seeds;
    ``rotation_from_flow``: the engine's option (ego-motion rotation fitted to the flow, CamNet's translation)."""
    kwargs = {"device": "cpu", "precision": precision, "rotation_from_flow": rotation_from_flow}
    if network_size is not None:
        kwargs["size"] = network_size
    engine = SceneEngine(checkpoint, **kwargs)
    evaluators = {"depth": DepthEvaluator(median_scaling=True, crop=None), "flow": FlowEvaluator(),
                  "flow_static": FlowEvaluator(), "flow_moving": FlowEvaluator(), "rigid_flow_static": FlowEvaluator(),
                  "semantic": SemanticEvaluator(), "motion": MotionEvaluator(),
                  "depth_trivial": DepthEvaluator(median_scaling=True, crop=None), "flow_trivial": FlowEvaluator(),
}
    ates, ates_trivial, all_pred, all_gt = [], [], [], []
    start = time.perf_counter()
    for seed in seeds:
        motions = evaluate_sequence(engine, seed, frames, size, given_K, evaluators)
        if len(motions["pred_motions"]) >= 1:
            pose = evaluate_pose_snippets(motions["pred_motions"], motions["gt_motions"])
            ates.append((pose["ate_mean"], pose["num_snippets"]))
            constant = evaluate_pose_snippets(trivial.constant_velocity(motions["gt_motions"]), motions["gt_motions"])
            ates_trivial.append((constant["ate_mean"], constant["num_snippets"]))
            all_pred.append(motions["pred_motions"])
            all_gt.append(motions["gt_motions"])
    depth = evaluators["depth"].result()
    flow = evaluators["flow"].result()
    semantic = evaluators["semantic"].result()
    motion = evaluators["motion"].result()
    weights = np.array([n for _, n in ates], np.float64)
    ate = float(np.sum([a * n for a, n in ates]) / weights.sum()) if ates else float("nan")
    ate_trivial = float(np.sum([a * n for a, n in ates_trivial]) / weights.sum()) if ates else float("nan")
    correlations = trivial.motion_correlations(np.concatenate(all_pred), np.concatenate(all_gt)) if all_pred else {}
    depth_trivial = evaluators["depth_trivial"].result()
    flow_trivial = evaluators["flow_trivial"].result()
    semantic_trivial = trivial.majority_class(evaluators["semantic"].confusion)
    motion_trivial = trivial.nothing_moves(evaluators["motion"].confusion)
    return {
        "checkpoint": "random" if engine.random_weights else str(engine.checkpoint_path),
        "network_size": list(engine.size),
        "frame_size": list(size),
        "seeds": list(seeds),
        "frames_per_seed": frames,
        "intrinsics": "given (ground-truth K)" if given_K else "CamNet estimate",
        "ego_motion": "CamNet translation, rotation fitted to the flow" if rotation_from_flow else "CamNet",
        "depth": {"abs_rel_median_scaled": depth["abs_rel"], "sq_rel": depth["sq_rel"], "rmse": depth["rmse"],
                  "a1": depth["a1"],
                  **{f"abs_rel_{name}": depth["regions"][name]["abs_rel"] for name in ("static", "moving")},
                  "trivial": {"answer": trivial.ANSWERS["depth"], "abs_rel_median_scaled": depth_trivial["abs_rel"],
                              "rmse": depth_trivial["rmse"], "a1": depth_trivial["a1"],
                              **{f"abs_rel_{name}": depth_trivial["regions"][name]["abs_rel"]
                                 for name in ("static", "moving")}}},
        "flow": {"epe": flow["epe_all"], "fl_all": flow["fl_all"],
                 "epe_static": evaluators["flow_static"].result()["epe_all"],
                 "epe_moving": evaluators["flow_moving"].result()["epe_all"],
                 "rigid_flow_epe_static": evaluators["rigid_flow_static"].result()["epe_all"],
                 "trivial": {"answer": trivial.ANSWERS["flow"], "epe": flow_trivial["epe_all"], "fl_all": flow_trivial["fl_all"]}},
        "motion": {"iou_moving": motion["iou_moving"], "mean_iou": motion["mean_iou"],
                   "trivial": {"answer": motion_trivial["answer"], "iou_moving": motion_trivial["iou_moving"],
                               "mean_iou": motion_trivial["mean_iou"]}},
        "pose": {"ate_5frame_m": ate, "snippets": int(weights.sum()), **correlations,
                 "trivial": {"answer": trivial.ANSWERS["pose"],
                             "ate_5frame_m": ate_trivial, "yaw_correlation": None}},
        "semantic": {"miou": semantic["miou"], "pixel_acc": semantic["pixel_acc"],
                     "trivial": {k: semantic_trivial[k] for k in ("answer", "class", "miou", "pixel_acc")}},
        "seconds": round(time.perf_counter() - start, 1),
        **machine_record(), "note": "CPU; cores shared with other jobs",
    }


@torch.no_grad()
def evaluate_pose_only(checkpoint, seeds, frames: int, size: tuple[int, int], network_size) -> dict:
    """The ``"pose"`` block of :func:`evaluate_checkpoint` from CamNet alone, plus its input sensitivity.

    Each frame is resized as the engine does (:func:`~omeganet_ros.inference.frame_to_tensor`) and encoded once;
    CamNet's motion t→t+1 of (t−1, t, t+1) is compared with the truth. ``"sensitivity"``: the fraction of
    triplets whose yaw changes sign on the reversed triplet (t+1, t, t−1) (the truth's does), and the median over
    triplets of |translation| on (t, t, t) / |translation| on (t−1, t, t+1) (the truth: 0).
    """
    from omeganet_ros import geometry
    from omeganet_ros.checkpoint import build_networks_from_checkpoint, load_checkpoint
    from omeganet_ros.inference import frame_to_tensor

    path = checkpoint if checkpoint is not None else default_checkpoint_path()
    if path == "random" or path is None:
        raise ValueError("--only pose needs a checkpoint file")
    ckpt = load_checkpoint(path)
    camnet = build_networks_from_checkpoint(ckpt, ["camnet"])["camnet"].eval()
    net_size = tuple(network_size) if network_size is not None else tuple(ckpt.input_size)
    start = time.perf_counter()
    ates, ates_trivial, all_pred, all_gt, flips, still_ratios = [], [], [], [], [], []
    for seed in seeds:
        sequence = list(iterate_frames(frames=frames, seed=seed, size=size))
        images = [frame_to_tensor(f["image"], net_size) for f in sequence]
        features = [camnet.encode(image) for image in images]
        h, w = images[0].shape[-2:]
        pred, gt = [], []
        for t in range(1, len(sequence) - 1):
            motion = camnet.decode(features[t - 1], features[t], features[t + 1], h, w)["motion"]
            reversed_ = camnet.decode(features[t + 1], features[t], features[t - 1], h, w)["motion"]
            still = camnet.decode(features[t], features[t], features[t], h, w)["motion"]
            pred.append(geometry.pose_vec_to_mat(motion[:, 1])[0].double().numpy())
            gt.append(motions_from_poses(np.stack([sequence[t]["pose"], sequence[t + 1]["pose"]]))[0])
            flips.append(bool(np.sign(float(reversed_[0, 1, 4])) == -np.sign(float(motion[0, 1, 4]))))
            still_ratios.append(float(still[0, 1, :3].norm() / (motion[0, 1, :3].norm() + 1e-12)))
        pred, gt = np.array(pred), np.array(gt)
        pose = evaluate_pose_snippets(pred, gt)
        ates.append((pose["ate_mean"], pose["num_snippets"]))
        constant = evaluate_pose_snippets(trivial.constant_velocity(gt), gt)
        ates_trivial.append((constant["ate_mean"], constant["num_snippets"]))
        all_pred.append(pred)
        all_gt.append(gt)
    weights = np.array([n for _, n in ates], np.float64)
    return {
        "checkpoint": str(path), "network_size": list(net_size), "frame_size": list(size), "seeds": list(seeds),
        "frames_per_seed": frames, "only": "pose",
        "camnet": {k: v for k, v in camnet.config().items() if k != "encoder_channels"},
        "pose": {"ate_5frame_m": float(np.sum([a * n for a, n in ates]) / weights.sum()), "snippets": int(weights.sum()),
                 **trivial.motion_correlations(np.concatenate(all_pred), np.concatenate(all_gt)),
                 "trivial": {"answer": trivial.ANSWERS["pose"],
                             "ate_5frame_m": float(np.sum([a * n for a, n in ates_trivial]) / weights.sum()),
                             "yaw_correlation": None}},
        "sensitivity": {"reversed_yaw_flips": float(np.mean(flips)),
                        "still_translation_ratio_median": float(np.median(still_ratios)),
                        "trivial": {"answer": "a CamNet that reads one frame's appearance",
                                    "reversed_yaw_flips": 0.0, "still_translation_ratio_median": 1.0},
                        "truth": {"reversed_yaw_flips": 1.0, "still_translation_ratio_median": 0.0}},
        "seconds": round(time.perf_counter() - start, 1), **machine_record(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint path, 'random' for untrained networks (default: the packaged checkpoint)")
    p.add_argument("--seeds", type=int, nargs="+", default=[201, 202], help="synthetic world seeds (unseen in training)")
    p.add_argument("--frames", type=int, default=40, help="frames per seed")
    p.add_argument("--size", default="320x96", help="frame size WxH of the synthetic sequences (rendered at this size)")
    p.add_argument("--network-size", default="checkpoint",
                   help="network input WxH, or 'checkpoint' (the size the checkpoint was trained at; default)")
    p.add_argument("--estimate-intrinsics", action="store_true", help="use CamNet's K instead of the true K")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for PyTorch")
    p.add_argument("--rotation-from-flow", action="store_true",
                   help="the engine's rotation_from_flow: ego-motion rotation = PnP fit of the flow on the depth")
    p.add_argument("--only", choices=["pose"], default=None,
                   help="pose: CamNet alone (ego-motion metrics and input sensitivity, no engine; much faster)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint
    if args.network_size == "checkpoint":
        from omeganet_ros.checkpoint import load_checkpoint
        path = checkpoint if checkpoint not in (None, "random") else (default_checkpoint_path() if checkpoint is None else None)
        network_size = load_checkpoint(path).input_size if path else None
    else:
        network_size = parse_size(args.network_size)
    if args.frames < 3:
        print("--frames must be at least 3 (paper mode needs t−1, t, t+1)", file=sys.stderr)
        return 2
    if args.only == "pose":
        result = evaluate_pose_only(checkpoint, args.seeds, args.frames, parse_size(args.size), network_size)
    else:
        result = evaluate_checkpoint(checkpoint, args.seeds, args.frames, parse_size(args.size), network_size,
                                     given_K=not args.estimate_intrinsics, rotation_from_flow=args.rotation_from_flow)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
