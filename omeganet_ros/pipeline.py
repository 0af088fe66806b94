"""ScenePipeline: the one ROS-free path from a stream of frames to final, fully described scene outputs.

Every caller — the ROS node, ``omeganet-infer``, replay, the benchmarks — pushes
frames here and gets back :class:`SceneResult`: the engine's outputs for one
frame, already in metres when a metric scale is known, with the frame it
describes and its neighbour (the caller's own metadata, e.g. a ROS header or a
file index, handed back untouched), and the camera's pose in the trajectory.
The policy around the engine lives here and only here:

* **The frame window** (the engine keeps the last three frames): it restarts
  when the image size changes, a stamp goes back (a looping bag: the
  trajectory restarts too), the *input* stream has a gap longer than
  ``max_input_gap`` seconds, or the scene cuts (:class:`SceneCutDetector`).
  Gaps are measured between frames the camera delivered (:meth:`observe`),
  not between frames processed: a node that skips frames under load keeps its
  window, and the motion between two processed frames spans the skipped ones.
* **Metric scale** (:class:`~omeganet_ros.scale_recovery.ScaleRecovery`):
  depth and translations of every result are multiplied by the current scale.
* **The trajectory**: every result's ``motion_from_previous`` is chained into
  ``pose`` (REP 103 optical frame of the first frame of the trajectory). A
  window restart keeps the trajectory (the motion across the restart is
  unknown and taken as none); a stamp going back starts a new one.

Thread safety: :meth:`observe` may be called from another thread (a ROS
subscription callback) while :meth:`push` runs; everything else belongs to the
thread that pushes.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from .engine import SceneEngine, SceneOutputs, check_frame
from .scale_recovery import ScaleRecovery

log = logging.getLogger(__name__)

RESTART_REASONS = ("image_size_changed", "stamp_went_back", "gap", "scene_cut")
DEFAULT_SCENE_CUT_THRESHOLD = 0.5


@dataclass
class FrameMeta:
    """A pushed frame as the caller described it."""

    stamp: float                 # seconds, as pushed
    size: tuple[int, int]        # (W, H) of the pushed image
    intrinsics_given: bool       # K came with the frame (camera_info, a calibration file)
    tag: Any = None              # the caller's own: a ROS header, a file index, …
    rgb: np.ndarray | None = None  # H×W×3 uint8, kept only when the pipeline was asked to (point colours)


@dataclass
class SceneResult:
    """The final outputs for one frame."""

    outputs: SceneOutputs        # depth, ego-motion and motion_from_previous scaled when ``metric``
    relative_depth: np.ndarray   # H×W float32: the network's depth before any scale (relative units)
    frame: FrameMeta             # the frame the outputs describe (t)
    neighbour: FrameMeta | None  # the other end of flow / ego-motion: t+1 (forward) or t−1 (backward)
    previous: FrameMeta | None   # t−1, the start of ``motion_from_previous`` (None at a window start)
    pose: np.ndarray             # 4×4 camera pose of t in the trajectory (optical frame of its first frame)
    trajectory: int              # which trajectory (0, 1, … after each stamp going back)
    metric: bool                 # depth and translations are in metres
    scale: float                 # metres per network unit applied (1.0 when not metric)
    scale_status: str            # for diagnostics

    @property
    def dt(self) -> float | None:
        """Seconds from ``previous`` to ``frame`` (None at a window start)."""
        return None if self.previous is None else self.frame.stamp - self.previous.stamp


class SceneCutDetector:
    """A scene cut between two frames, photometrically: the correlation of their colour histograms.

    Camera motion, even fast, keeps most of a scene's colour distribution; a cut
    to another scene does not. Frames are compared at 64×48 with 8 bins per RGB
    channel; a correlation below ``threshold`` is a cut. 0 disables detection.
    """

    def __init__(self, threshold: float = DEFAULT_SCENE_CUT_THRESHOLD):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"scene cut threshold must be in [0, 1] (0 = off), got {threshold}")
        self.threshold = float(threshold)
        self._previous: np.ndarray | None = None
        self.last_correlation: float | None = None

    @staticmethod
    def histogram(rgb: np.ndarray) -> np.ndarray:
        small = cv2.resize(rgb, (64, 48), interpolation=cv2.INTER_AREA)
        hist = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256])
        return cv2.normalize(hist, hist).astype(np.float32)

    def is_cut(self, rgb: np.ndarray) -> bool:
        """Whether ``rgb`` starts a new scene after the previous frame given (the first frame never does)."""
        if self.threshold == 0.0:  # detection off: no histogram on the hot path
            self._previous = self.last_correlation = None
            return False
        hist = self.histogram(rgb)
        previous, self._previous = self._previous, hist
        if previous is None:
            self.last_correlation = None
            return False
        self.last_correlation = float(cv2.compareHist(previous, hist, cv2.HISTCMP_CORREL))
        return self.last_correlation < self.threshold

    def reset(self) -> None:
        self._previous = None


class _InputStamps:
    """Stamps of the frames the camera delivered since the last push (thread-safe)."""

    def __init__(self, maxlen: int = 4096):
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque(maxlen=maxlen)

    def add(self, stamp: float) -> None:
        with self._lock:
            self._stamps.append(float(stamp))

    def largest_gap(self, start: float, end: float) -> float:
        """The longest interval between consecutive delivered stamps from ``start`` to ``end`` (both ends included)."""
        with self._lock:
            inside = sorted(s for s in self._stamps if start < s < end)
            self._stamps = deque((s for s in self._stamps if s > end), maxlen=self._stamps.maxlen)
        points = [start, *inside, end]
        return max(b - a for a, b in zip(points, points[1:]))


def apply_scale(outputs: SceneOutputs, scale: float) -> SceneOutputs:
    """A copy of relative ``outputs`` with depth and camera translations multiplied by ``scale`` (metres/unit)."""
    ego = outputs.ego_motion.copy()
    ego[:3, 3] *= scale
    from_previous = outputs.motion_from_previous.copy()
    from_previous[:3, 3] *= scale
    return replace(outputs, depth=outputs.depth * np.float32(scale), depth_is_metric=True, depth_scale=float(scale),
                   ego_motion=ego, motion_from_previous=from_previous)


class ScenePipeline:
    """Engine + frame-window policy + metric scale + trajectory + scene cuts (see the module docstring).

    Args:
        engine: the :class:`SceneEngine` (relative depth: the pipeline owns the scale).
        scale_recovery: a :class:`ScaleRecovery` (None: relative depth).
        max_input_gap: seconds without any delivered frame after which the window restarts (0: never).
        scene_cut_threshold: histogram correlation below which a frame starts a new scene (0: off).
        keep_rgb: keep each pushed image in its :class:`FrameMeta` (for coloured point clouds).
    """

    def __init__(self, engine: SceneEngine, *, scale_recovery: ScaleRecovery | None = None,
                 max_input_gap: float = 0.0, scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD,
                 keep_rgb: bool = False):
        if engine.depth_is_metric:
            raise ValueError("the engine already applies a depth scale; give it to the pipeline's scale_recovery "
                             "(ScaleRecovery('fixed', fixed_scale=…)) instead")
        if not (np.isfinite(max_input_gap) and max_input_gap >= 0):
            raise ValueError(f"max_input_gap must be ≥ 0 seconds (0 = off), got {max_input_gap}")
        self.engine = engine
        self.scale_recovery = scale_recovery or ScaleRecovery("none")
        self.max_input_gap = float(max_input_gap)
        self.scene_cuts = SceneCutDetector(scene_cut_threshold)
        self.keep_rgb = bool(keep_rgb)
        self.restarts: Counter = Counter()
        self.trajectory_index = 0
        self._window: deque[FrameMeta] = deque(maxlen=3)
        self._inputs = _InputStamps()
        self._pose = np.eye(4)
        self._last_ego: np.ndarray | None = None  # the last result's (scaled) ego-motion, towards its neighbour
        self.last_result: SceneResult | None = None

    # ------------------------------------------------------------------ input

    def observe(self, stamp: float) -> None:
        """Note that the camera delivered a frame with ``stamp`` (seconds), processed or not (any thread)."""
        self._inputs.add(stamp)

    def push(self, frame: np.ndarray, stamp: float, K=None, tag: Any = None) -> SceneResult | None:
        """Add a frame (H×W×3 uint8 RGB) with its stamp (seconds) and optional K (3×3, pixels of this frame).

        ``tag`` is handed back in the :class:`FrameMeta` of the result that describes this frame.
        Returns the result of the frame the engine answers for (see ``SceneEngine.push``), or None.
        Raises ``ValueError`` for a bad frame or a stamp equal to the previous frame's (nothing changes then).
        """
        check_frame(frame)
        stamp = float(stamp)
        meta = FrameMeta(stamp, (frame.shape[1], frame.shape[0]), K is not None, tag,
                         frame if self.keep_rgb else None)
        reason = self._restart_reason(meta, frame)
        if reason is not None:
            self._restart(reason)
        outputs = self.engine.push(frame, stamp, K=K)
        self._window.append(meta)
        if outputs is None:
            return None
        return self._describe(outputs)

    def reset(self, new_trajectory: bool = False) -> None:
        """Forget the window (e.g. the node was deactivated); ``new_trajectory`` also restarts the pose at identity."""
        self.engine.reset()
        self._window.clear()
        self.scene_cuts.reset()
        if new_trajectory:
            self._new_trajectory()

    # ------------------------------------------------------------------ trajectory

    @property
    def pose(self) -> np.ndarray:
        """The newest camera pose in the trajectory (4×4, optical frame of the trajectory's first frame)."""
        return self._pose.copy()

    def final_pose(self) -> tuple[FrameMeta, np.ndarray] | None:
        """The pose of the newest frame reached by a result's ego-motion (paper mode: the last frame pushed,
        which never gets outputs of its own), for writing out a whole trajectory; None before any result."""
        result = self.last_result
        if result is None:
            return None
        if result.outputs.direction == "forward" and result.neighbour is not None and self._last_ego is not None:
            return result.neighbour, result.pose @ self._last_ego
        return result.frame, result.pose

    # ------------------------------------------------------------------ internals

    def _restart_reason(self, meta: FrameMeta, frame: np.ndarray) -> str | None:
        cut = self.scene_cuts.is_cut(frame)
        if not self._window:
            self._inputs.largest_gap(meta.stamp, meta.stamp)  # forget stamps before the window starts
            return None
        last = self._window[-1]
        if last.size != meta.size:
            return "image_size_changed"
        if meta.stamp == last.stamp:
            raise ValueError(f"frame stamp {meta.stamp:.9f} s repeats the previous frame's (a duplicate?)")
        if meta.stamp < last.stamp:
            return "stamp_went_back"
        gap = self._inputs.largest_gap(last.stamp, meta.stamp)
        if 0 < self.max_input_gap < gap:
            return "gap"
        if cut:
            return "scene_cut"
        return None

    def _restart(self, reason: str) -> None:
        self.restarts[reason] += 1
        log.info("restarting the frame window: %s", reason.replace("_", " "))
        self.engine.reset()
        self._window.clear()
        if reason == "stamp_went_back":
            self._new_trajectory()

    def _new_trajectory(self) -> None:
        self._pose = np.eye(4)
        self._last_ego = None
        self.trajectory_index += 1
        self.scale_recovery.reset()

    def _describe(self, outputs: SceneOutputs) -> SceneResult:
        window = list(self._window)
        index = next(i for i, m in enumerate(window) if m.stamp == outputs.stamp)
        frame = window[index]
        previous = window[index - 1] if index > 0 else None
        if outputs.direction == "backward":
            neighbour = previous
        else:
            neighbour = window[index + 1] if index + 1 < len(window) else None
        relative_depth = outputs.depth
        estimate = self.scale_recovery.update(outputs.depth, outputs.intrinsics, outputs.semantic)
        if estimate.metric:
            outputs = apply_scale(outputs, estimate.scale)
        if previous is not None:
            # Chained from the frame posed last: t−1 itself, except right after a window restart, where the
            # motion from the last posed frame to the new window's first is unknown and taken as none.
            self._pose = self._pose @ outputs.motion_from_previous
        self._last_ego = outputs.ego_motion
        result = SceneResult(outputs=outputs, relative_depth=relative_depth, frame=frame, neighbour=neighbour, previous=previous,
                             pose=self._pose.copy(), trajectory=self.trajectory_index, metric=estimate.metric,
                             scale=estimate.scale if estimate.metric else 1.0, scale_status=estimate.status)
        self.last_result = result
        return result
