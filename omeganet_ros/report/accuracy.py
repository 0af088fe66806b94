"""Accuracy of a replay: the node's recorded outputs against the input bag's ground truth, by stamp.

Every figure comes from the evaluation suite (:func:`omeganet_ros.evaluate.runner.evaluate_paths`
reading both bags), so a report says exactly what ``omeganet-eval`` says on the same bags.
A task whose prediction or ground-truth topic is absent is skipped with the reason; a task whose output the
node's model does not estimate (the node's ``outputs_absent`` on /diagnostics, e.g. flow for the Moreau et al.
model) is reported as absent — never evaluated on something in its place.
"""
from __future__ import annotations

from pathlib import Path

from omeganet_ros.data import rosbag_io
from omeganet_ros.evaluate.runner import METRICS, TASKS, evaluate_paths

# The synthetic world's ground-truth topics (``omeganet-synth``), and the node's outputs they are compared with.
DEFAULT_GT_TOPICS = {"depth": "/gt/depth", "flow": "/gt/flow", "semantic": "/gt/semantic",
                     "motion": "/gt/motion", "pose": "/gt/pose", "odometry": "/gt/pose", "instance": "/gt/instance"}
# The node's depth: depth/relative always; depth/image (REP 118 metres) only when its depth is metric.
METRIC_DEPTH_TOPIC = "depth/image"
DEFAULT_PRED_TOPICS = {"depth": "depth/relative", "flow": "flow", "semantic": "semantic",
                       "motion": "motion/mask", "pose": "odometry", "odometry": "odometry",
                       "instance": "instance"}  # the Moreau model's ids (mono16)
# The node output (its publish_* switch, moreau_engine.absent_outputs) that each task evaluates.
TASK_OUTPUT = {"depth": "depth", "flow": "flow", "semantic": "semantic", "motion": "motion", "pose": "odometry",
               "odometry": "odometry", "instance": "instance"}


def resolve_topic(name: str, namespace: str = "/") -> str:
    """A relative topic name in ``namespace`` → its absolute name (absolute names are kept)."""
    if name.startswith("/"):
        return name
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{namespace}/{name}"


def evaluate_run(pred_bag: str | Path, gt_bag: str | Path, pred_topics: dict | None = None,
                 gt_topics: dict | None = None, *, namespace: str = "/", depth_median_scaling: bool = True,
                 depth_crop: str | None = None, flow_direction: str = "forward",
                 tasks=TASKS, outputs_absent=None) -> dict:
    """{task: metrics} for every task that both bags support; {task: {"skipped": reason}} otherwise.

    ``pred_topics`` / ``gt_topics`` override :data:`DEFAULT_PRED_TOPICS` /
    :data:`DEFAULT_GT_TOPICS` per task (relative prediction topics are taken
    in ``namespace``). ``depth_median_scaling``: scale each depth map by the
    ground-truth median ratio (for up-to-scale depth). ``depth_crop``: None,
    "garg" or "eigen" (the KITTI crops; None for the synthetic world).
    ``flow_direction``: "backward" (the node's causal mode: flow t→t−1) skips
    the flow task, as the bag's flow ground truth looks forward. ``outputs_absent``: the outputs the node's
    model does not estimate (:func:`omeganet_ros.report.run_data.read_outputs_absent`); their tasks come back as
    ``{"skipped": reason, "absent": True}``.
    """
    pred_topics = {**DEFAULT_PRED_TOPICS, **(pred_topics or {})}
    gt_topics = {**DEFAULT_GT_TOPICS, **(gt_topics or {})}
    pred_available = rosbag_io.list_topics(pred_bag)
    gt_available = rosbag_io.list_topics(gt_bag)
    results: dict = {}
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        pred_topic = resolve_topic(pred_topics[task], namespace)
        gt_topic = gt_topics[task]
        where = {"prediction_topic": pred_topic, "ground_truth_topic": gt_topic}
        if not gt_topic or gt_topic not in gt_available:
            results[task] = {"skipped": f"no ground truth: the input bag has no topic {gt_topic!r}", **where}
            continue
        if TASK_OUTPUT[task] in (outputs_absent or ()):
            results[task] = {"skipped": f"absent: the node's model does not estimate {TASK_OUTPUT[task]} "
                                        "(outputs_absent on its /diagnostics)", "absent": True, **where}
            continue
        if pred_topic not in pred_available:
            results[task] = {"skipped": f"the output bag has no topic {pred_topic!r} (output disabled or not recorded)",
                             **where}
            continue
        if task == "flow" and flow_direction != "forward":
            results[task] = {"skipped": "the node's flow looks backward (t→t−1, causal mode); "
                                        f"{gt_topic} holds forward flow", **where}
            continue
        options = {}
        if task == "depth":
            options = {"median_scaling": depth_median_scaling, "crop": depth_crop}
        elif task == "instance":  # thing instances only, told by the bag's semantic ground truth
            options = {"gt_semantic_topic": gt_topics["semantic"] or None}
        try:
            metrics = evaluate_paths(task, pred_bag, gt_bag, topic=pred_topic, gt_topic=gt_topic, **options)
        except ValueError as err:  # e.g. no frame matched by stamp, too few poses
            results[task] = {"skipped": str(err), **where}
            continue
        if task == "depth":
            metrics = {**metrics, "median_scaling": depth_median_scaling, "crop": depth_crop}
        results[task] = {**metrics, **where}
    return results


def headline(results: dict) -> dict:
    """{task: {metric: value}} with only the protocol's headline metrics of the evaluated tasks."""
    return {task: {name: result[name] for name in METRICS[task] if name in result}
            for task, result in results.items() if "skipped" not in result}
