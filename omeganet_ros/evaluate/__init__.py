"""Evaluation: the benchmark protocols of ΩNet and its peers, with a function API and streaming evaluators.

Each protocol has an accumulating evaluator (``add(pred, gt)`` per frame,
``result()`` → dict) for streams such as bag replay, and a one-call function
over matched sequences. :func:`evaluate_paths` runs a protocol on files,
folders or bags (``omeganet-eval``).
"""
from omeganet_ros.evaluate.depth import DepthEvaluator, compute_depth_errors, evaluate_depth
from omeganet_ros.evaluate.flow import FlowEvaluator, evaluate_flow
from omeganet_ros.evaluate.motion import MotionEvaluator, evaluate_motion
from omeganet_ros.evaluate.odometry import evaluate_odometry, umeyama_alignment
from omeganet_ros.evaluate.pose import evaluate_pose, evaluate_pose_snippets
from omeganet_ros.evaluate.runner import METRICS, TASKS, evaluate_paths, markdown_table
from omeganet_ros.evaluate.semantic import SemanticEvaluator, evaluate_semantic
from omeganet_ros.evaluate.trajectory import TrajectoryEvaluator

__all__ = [
    "DepthEvaluator", "FlowEvaluator", "MotionEvaluator", "SemanticEvaluator", "TrajectoryEvaluator", "METRICS", "TASKS",
    "compute_depth_errors", "evaluate_depth", "evaluate_flow", "evaluate_motion", "evaluate_odometry",
    "evaluate_paths", "evaluate_pose", "evaluate_pose_snippets", "evaluate_semantic", "markdown_table",
    "umeyama_alignment",
]
