"""Run one protocol on prediction and ground-truth sources (paths or bags): the engine of ``omeganet-eval``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from omeganet_ros.data.layout import SequenceFolder
from omeganet_ros.evaluate import inputs, trivial
from omeganet_ros.evaluate.depth import DepthEvaluator
from omeganet_ros.evaluate.flow import FlowEvaluator
from omeganet_ros.evaluate.instance import InstanceEvaluator
from omeganet_ros.evaluate.motion import MotionEvaluator
from omeganet_ros.evaluate.odometry import evaluate_odometry
from omeganet_ros.evaluate.pose import evaluate_pose, evaluate_pose_snippets, motions_from_poses
from omeganet_ros.evaluate.semantic import SemanticEvaluator

TASKS = ("depth", "flow", "semantic", "motion", "pose", "odometry", "instance")

# The headline metrics of each protocol, in table order.
METRICS = {
    "depth": ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"),
    "flow": ("epe_noc", "epe_all", "fl_all"),
    "semantic": ("miou", "miou_category", "pixel_acc"),
    "motion": ("pixel_acc", "mean_acc", "mean_iou", "fw_iou"),
    "pose": ("ate_mean", "ate_std"),
    "odometry": ("t_err", "r_err", "ate", "rpe_trans", "rpe_rot"),
    "instance": ("pq", "sq", "rq", "precision", "recall"),
}
UNITS = {"abs_rel": "", "sq_rel": "m", "rmse": "m", "rmse_log": "", "a1": "", "a2": "", "a3": "",
         "epe_noc": "px", "epe_all": "px", "fl_all": "%", "miou": "", "miou_category": "", "pixel_acc": "",
         "mean_acc": "", "mean_iou": "", "fw_iou": "", "ate_mean": "m", "ate_std": "m", "t_err": "%",
         "r_err": "deg/100 m", "ate": "m", "rpe_trans": "m", "rpe_rot": "deg",
         "pq": "", "sq": "", "rq": "", "precision": "", "recall": ""}


def _gt_topic(task: str, gt_topic: str | None) -> str:
    return gt_topic or inputs.DEFAULT_GT_TOPICS[task]


def evaluate_paths(task: str, pred: str | Path, gt: str | Path, topic: str | None = None,
                   gt_topic: str | None = None, *, median_scaling: bool | None = None, crop: str | None = "garg",
                   disparity: bool = False, cam: int = 2, label_format: str = "auto",
                   gt_label_format: str = "auto", motion_gt: str = "auto",
                   alignment: str | None = "7dof", gt_semantic_topic: str | None = None) -> dict:
    """Evaluate predictions at ``pred`` against ground truth at ``gt`` with the protocol ``task``.

    ``topic`` / ``gt_topic``: topics when a side is a bag (``gt_topic``
    defaults to the synthetic world's ``/gt/<task>``). ``median_scaling``:
    None = automatic, i.e. on unless the prediction is a sequence folder whose
    ``meta.json`` says ``"depth_metric": true``. ``gt_semantic_topic`` (instance task, ground truth in a bag):
    the trainIds that tell thing instances from the rest (default ``/gt/semantic``). Returns the metric dict.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if task == "depth":
        pairs = inputs.match_frames(inputs.depth_frames(pred, topic, cam, disparity),
                                    inputs.depth_frames(gt, _gt_topic(task, gt_topic), cam))
        if median_scaling is None:
            median_scaling = not predictions_are_metric(pred)
        evaluator = DepthEvaluator(median_scaling=median_scaling, crop=crop)
        baseline = DepthEvaluator(median_scaling=True, crop=crop)
        for _, load_pred, load_gt in pairs:
            depth_gt = load_gt()
            evaluator.add(load_pred(), depth_gt)
            baseline.add(trivial.depth_plane(depth_gt), depth_gt)
        return {**evaluator.result(), "median_scaling": median_scaling,
                "trivial": {"answer": trivial.ANSWERS["depth"], **_headline("depth", baseline.result())}}
    if task == "flow":
        pred_frames, _ = inputs.flow_frames(pred, topic)
        gt_all, gt_noc = inputs.flow_frames(gt, _gt_topic(task, gt_topic))
        pairs = inputs.match_frames(pred_frames, inputs.zip_frames(gt_all, gt_noc))
        evaluator, baseline = FlowEvaluator(), FlowEvaluator()
        for _, load_pred, load_gt in pairs:
            flow_all, flow_noc = load_gt()
            evaluator.add(load_pred(), flow_all, gt_noc=flow_noc)
            baseline.add(trivial.zero_flow(flow_all), flow_all, gt_noc=flow_noc)
        out = evaluator.result()
        out["trivial"] = {"answer": trivial.ANSWERS["flow"], **_headline("flow", baseline.result())}
        out["noc_mask"] = "separate" if gt_noc is not None else "same as all (single validity mask)"
        return out
    if task == "semantic":
        pairs = inputs.match_frames(inputs.semantic_frames(pred, topic, label_format),
                                    inputs.semantic_frames(gt, _gt_topic(task, gt_topic), gt_label_format))
        evaluator = SemanticEvaluator()
        for _, load_pred, load_gt in pairs:
            evaluator.add(load_pred(), load_gt())
        baseline = trivial.majority_class(evaluator.confusion)
        return {**evaluator.result(), "trivial": {"answer": baseline["answer"], "class": baseline["class"],
                                                  **_headline("semantic", baseline)}}
    if task == "motion":
        pairs = inputs.match_frames(inputs.motion_frames(pred, topic),
                                    inputs.motion_frames(gt, _gt_topic(task, gt_topic)))
        evaluator = MotionEvaluator()
        for _, load_pred, load_gt in pairs:
            evaluator.add(load_pred(), inputs.normalise_motion_gt(load_gt(), motion_gt))
        baseline = trivial.nothing_moves(evaluator.confusion)
        return {**evaluator.result(), "trivial": {"answer": baseline["answer"], **_headline("motion", baseline)}}
    if task == "instance":
        pairs = inputs.match_frames(inputs.instance_frames(pred, topic),
                                    inputs.instance_frames(gt, gt_topic or "/gt/instance", things_only=True,
                                                           semantic_topic=gt_semantic_topic))
        evaluator, baseline = InstanceEvaluator(), InstanceEvaluator()
        for _, load_pred, load_gt in pairs:
            instance_gt = load_gt()
            evaluator.add(load_pred(), instance_gt)
            baseline.add(trivial.connected_components(instance_gt), instance_gt)
        return {**evaluator.result(), "trivial": {"answer": trivial.ANSWERS["instance"],
                                                  **_headline("instance", baseline.result())}}
    if task == "odometry":
        pred_dir, gt_dir = Path(pred), Path(gt)
        if pred_dir.is_dir() and not inputs.is_bag(pred_dir) and not (pred_dir / "poses.txt").exists() \
                and not (pred_dir / "oxts").exists():
            return evaluate_odometry_folders(pred_dir, gt_dir, alignment)
    pred_traj = inputs.trajectory(pred, topic, cam)
    gt_traj = inputs.trajectory(gt, _gt_topic(task, gt_topic), cam)
    gt_poses, pred_poses, indices = inputs.match_trajectories(pred_traj, gt_traj)
    if task == "pose":
        result = evaluate_pose(pred_poses, gt_poses[indices])
        gt_motions = motions_from_poses(gt_poses[indices])
        baseline = evaluate_pose_snippets(trivial.constant_velocity(gt_motions), gt_motions)
        result.update(trivial.motion_correlations(motions_from_poses(pred_poses), gt_motions))
        result["trivial"] = {"answer": trivial.ANSWERS["pose"], **_headline("pose", baseline)}
        return result
    return evaluate_odometry(gt_poses, pred_poses, indices, alignment)


def _headline(task: str, result: dict) -> dict:
    return {name: result[name] for name in METRICS[task] if name in result}


def predictions_are_metric(pred: str | Path) -> bool:
    """True when ``pred`` is a sequence folder whose meta.json declares metric depth."""
    path = Path(pred)
    if path.is_dir() and (path / "meta.json").is_file():
        return bool(SequenceFolder(path).meta().get("depth_metric", False))
    return False


def evaluate_odometry_folders(pred_dir: Path, gt_dir: Path, alignment: str | None = "7dof") -> dict:
    """kitti-odom-eval's folder mode: every ``NN.txt`` of ``pred_dir`` against ``gt_dir[/poses]/NN.txt``.

    Returns the metrics averaged over sequences plus ``sequences`` (per-sequence dicts).
    """
    gt_root = gt_dir / "poses" if (gt_dir / "poses").is_dir() else gt_dir
    sequences = {}
    for path in sorted(pred_dir.glob("*.txt")):
        gt_path = gt_root / path.name
        if not gt_path.is_file():
            continue
        pred_traj = inputs.trajectory(path)
        gt_traj = inputs.trajectory(gt_path)
        gt_poses, pred_poses, indices = inputs.match_trajectories(pred_traj, gt_traj)
        sequences[path.stem] = evaluate_odometry(gt_poses, pred_poses, indices, alignment)
    if not sequences:
        raise ValueError(f"no pose file of {pred_dir} has a ground truth of the same name in {gt_root}")
    out = {name: float(np.mean([s[name] for s in sequences.values()])) for name in METRICS["odometry"]}
    out["sequences"] = sequences
    return out


def markdown_table(task: str, result: dict) -> str:
    """The headline metrics of ``result`` as a Markdown table, with the trivial answer's row when it has one."""
    names = [n for n in METRICS[task] if n in result]
    header = "| " + " | ".join(f"{n} ({UNITS[n]})" if UNITS[n] else n for n in names) + " |"
    rule = "|" + "|".join("---:" for _ in names) + "|"
    row = "| " + " | ".join(_cell(result.get(n)) for n in names) + " |"
    lines = [header, rule, row]
    if "trivial" in result:  # the trivial answer's row, so a collapse cannot pass for learning
        base = result["trivial"]
        lines = ["| | " + header[2:], "|---|" + rule[1:], "| prediction | " + row[2:],
                 f"| trivial: {base['answer']} | " + " | ".join(_cell(base.get(n)) for n in names) + " |"]
    if "sequences" in result:
        lines = ["| sequence | " + header[2:], "|---|" + rule[1:]]
        for seq, figures in result["sequences"].items():
            lines.append(f"| {seq} | " + " | ".join(_cell(figures.get(n)) for n in names) + " |")
        lines.append("| mean | " + row[2:])
    return "\n".join(lines)


def _cell(value) -> str:
    """A metric for a table: 4 decimals, "—" when absent or not finite."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return f"{value:.4f}"
    return "—"
