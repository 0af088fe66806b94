"""``omeganet_node``: a ROS 2 lifecycle node running the ΩNet SceneEngine (or, for a Moreau et al. checkpoint,
the MoreauEngine: depth, ego-motion and instances, no flow, semantics or motion) on a camera stream.

Lifecycle: *configure* loads the model and creates the publishers (it fails
cleanly, naming the file and the reason, when the model cannot be loaded);
*activate* subscribes and starts the inference thread; *deactivate* stops
both; *cleanup* releases the model and its memory. With ``autostart`` (the
default) the node configures and activates itself.

Threads: the image callback only checks the header and leaves the message in a
one-slot mailbox (newest frame wins, an unprocessed frame it replaces is
counted as dropped); a dedicated inference thread takes frames from the
mailbox, decodes them, runs the engine and publishes. The subscription is
never blocked by inference and no queue builds up.

Topics, parameters and conventions: README.md, section "The node".
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

from ..runtime import prefer_passive_openmp

prefer_passive_openmp()  # before anything loads torch (the engine, at configure)

import numpy as np  # noqa: E402

import rclpy  # noqa: E402
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from ..classes import DYNAMIC_TRAIN_IDS
from ..motion_covariance import MotionSpread, rotate_covariance
from ..data import rosbag_io
from . import compat, conversions, parameters

NODE_NAME = "omeganet_node"
# Outputs that need OFNet: the engine skips it (compute_flow) while none of them has a subscriber.
FLOW_OUTPUTS = ("flow", "flow/colored", "motion/probability", "motion/mask", "scene")
# Outputs that need the Moreau model's instance clustering (OPTICS, the costly part): skipped likewise.
INSTANCE_OUTPUTS = ("instance", "instance/colored", "scene")
# The topics of each publish_* switch whose output a model may not estimate (moreau_engine.absent_outputs).
TOPICS_OF_OUTPUT = {"flow": ("flow", "flow/colored"), "semantic": ("semantic", "semantic/colored"),
                    "motion": ("motion/probability", "motion/mask"), "camera_info": ("camera_info/estimated",),
                    "instance": ("instance", "instance/colored")}
# Parameters that configure what only ΩNet has (motion segmentation, torch.compile of its networks), with the
# value that leaves them unused: a Moreau checkpoint with another value fails configure, naming the parameter.
# (rotation_from_flow is not one: it is on by default, and the Moreau model, which has no flow, keeps its pose.)
OMEGANET_ONLY = {"compile": False, "motion_threshold": -1.0, "motion_any_class": False,
                 "dynamic_classes": list(DYNAMIC_TRAIN_IDS)}


class ModelParameterError(ValueError):
    """A parameter set for what the loaded model does not have (e.g. ``compile`` for the Moreau model)."""


@dataclass
class _Frame:
    """An image waiting in the mailbox."""

    msg: object
    received: float  # time.monotonic() at the callback


@dataclass
class _Stats:
    """Counters for /diagnostics (totals, plus a window reset at each diagnostics message)."""

    received: int = 0
    processed: int = 0           # frames pushed into the engine
    published: int = 0           # output sets published
    dropped_busy: int = 0        # replaced in the mailbox before the engine could take them
    waiting_for_tf: int = 0      # outputs without odometry: base_frame → camera not in TF yet
    bad: dict = field(default_factory=dict)  # reason → count
    buffer_resets: dict = field(default_factory=dict)  # reason → count
    window_received: int = 0
    window_processed: int = 0
    window_latency_ms: list = field(default_factory=list)
    window_engine_ms: list = field(default_factory=list)
    window_start: float = field(default_factory=time.monotonic)

    def count_bad(self, reason: str) -> None:
        self.bad[reason] = self.bad.get(reason, 0) + 1


def _release_memory() -> None:
    """Return freed memory to the OS (glibc keeps it otherwise) and empty the CUDA cache."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


def _network_size(cfg: dict) -> tuple[int, int] | None:
    """(W, H) from the parameters; None (both 0): the size the checkpoint was trained at."""
    if cfg["network_width"] == 0 and cfg["network_height"] == 0:
        return None
    return cfg["network_width"], cfg["network_height"]


def _same_value(a, b) -> bool:
    """Parameter values equal (integer arrays arrive as array.array or lists)."""
    if isinstance(a, (list, tuple)) or hasattr(a, "tolist") or isinstance(b, (list, tuple)) or hasattr(b, "tolist"):
        return list(a or []) == list(b or [])
    return a == b


def _motion_threshold(cfg: dict) -> float | None:
    """τ from the parameters; None (negative, -1 by default): the τ calibrated into the checkpoint."""
    return cfg["motion_threshold"] if cfg["motion_threshold"] >= 0 else None


class OmeganetNode(LifecycleNode):
    """The lifecycle node; see the module docstring and README.md."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        parameters.declare(self)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._mailbox: _Frame | None = None
        self._running = False
        self._worker: threading.Thread | None = None
        self._engine = None
        self._config: dict = {}
        self._model_status = "not loaded (node not configured)"
        self._model_ok = False
        self._outputs: dict = {}
        self._absent: tuple[str, ...] = ()  # outputs the loaded model does not estimate (flow, semantic, …)
        self._subscribed: dict[str, bool] = {}
        self._inputs: list = []
        self._camera_info = None
        self._tf = None
        self._scale = None
        self._stats = _Stats()
        self._last_error_log: dict[str, float] = {}
        self._last_stamp_ns: int | None = None
        self._pipeline = None  # ScenePipeline: the frame window, metric scale and trajectory (ROS-free)
        self._pose_optical = np.eye(4)
        self._trajectory = 0
        self._spread = MotionSpread()
        self._tf_lookup = None
        self._camera_in_base: np.ndarray | None = None
        self._state_name = "unconfigured"
        self._last_scale_status = "-"
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._info_group = MutuallyExclusiveCallbackGroup()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = float(self.get_parameter("diagnostics_period").value)
        self._diag_timer = self.create_timer(period, self._publish_diagnostics, callback_group=self._diag_group)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, params):
        """Runtime changes: applied at once (``live`` parameters) or refused with the reason, never ignored."""
        from rcl_interfaces.msg import SetParametersResult

        configured = self._state_name in ("inactive", "active")
        live = {}
        for param in params:
            spec = parameters.BY_NAME.get(param.name)
            if spec is None:
                continue
            problem = parameters.check(spec, param.value)
            unchanged = _same_value(param.value, self.get_parameter(param.name).value)
            if problem is None and configured and not spec.live and not unchanged:
                problem = (f"'{param.name}' takes effect at configure: deactivate and clean up the node, set it, "
                           "then configure again (or set it in the parameters file before start-up)")
            if problem is not None:
                return SetParametersResult(successful=False, reason=problem)
            live[param.name] = param.value
        if configured:
            self._config.update(live)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._config = parameters.read(self)
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._model_status = f"not loaded: {exc}"
            return TransitionCallbackReturn.FAILURE
        cfg = self._config
        try:
            self._engine = self._build_engine(cfg)
        except Exception as exc:  # CheckpointError (names the file), ValueError, OSError, RuntimeError
            from ..checkpoint import CheckpointError

            if isinstance(exc, CheckpointError):
                cause = f"cannot load model {cfg['model'] or 'the bundled reference checkpoint'}"
            elif isinstance(exc, ModelParameterError):
                cause = f"the parameters do not fit model {cfg['model']}"
            else:  # e.g. device cuda without CUDA, fp16 on CPU, a network size too small
                cause = (f"cannot create the scene engine (device {cfg['device']}, precision {cfg['precision']}, "
                         f"backend {cfg['backend']}, "
                         f"network {cfg['network_width']}×{cfg['network_height']})")
            self._model_status = f"not loaded: {cause}: {exc}"
            self.get_logger().error(f"configure failed: {cause}: {type(exc).__name__}: {exc}")
            self._engine = None
            _release_memory()
            return TransitionCallbackReturn.FAILURE
        from ..scale_recovery import ScaleRecovery

        if cfg["scale_recovery"] == "camera_height" and "semantic" in self._absent:
            cause = ("scale_recovery 'camera_height' fits the ground plane to road pixels from the semantic "
                     "segmentation, which this model (Moreau et al.) does not estimate; use scale_recovery "
                     "'fixed' (fixed_scale) or 'none'")
            self._model_status = f"{self._model_status} (not configured: {cause})"
            self.get_logger().error(f"configure failed: {cause}")
            self._drop_engine()
            _release_memory()
            return TransitionCallbackReturn.FAILURE
        try:
            self._scale = ScaleRecovery(cfg["scale_recovery"], camera_height=cfg["camera_height"],
                                        fixed_scale=cfg["fixed_scale"], window=cfg["scale_window"])
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._drop_engine()
            _release_memory()
            return TransitionCallbackReturn.FAILURE
        from ..pipeline import ScenePipeline

        self._pipeline = ScenePipeline(self._engine, scale_recovery=self._scale, max_input_gap=cfg["max_frame_gap"],
                                       scene_cut_threshold=cfg["scene_cut_threshold"], keep_rgb=True)
        if cfg["base_frame"] and not compat.TF_AVAILABLE:
            cause = (f"base_frame '{cfg['base_frame']}' needs the base_frame → camera transform from TF, "
                     f"and TF cannot be read here ({compat.BACKENDS['tf']}); leave base_frame empty for "
                     "odometry of the camera frame")
            self._model_status = f"{self._model_status} (not configured: {cause})"
            self.get_logger().error(f"configure failed: {cause}")
            self._drop_engine()
            self._scale = None
            _release_memory()
            return TransitionCallbackReturn.FAILURE
        self._create_publishers(cfg)
        self._state_name = "inactive"
        pending = getattr(self._engine, "backend_pending", None)
        self.get_logger().info(f"configured: {self._model_status}; device {self._engine.device}, "
                               f"network {self._engine.size[0]}×{self._engine.size[1]}, {self._engine.precision}, "
                               f"backend {getattr(self._engine, 'backend', 'torch')}"
                               + (f" (until {pending} is exported)" if pending else "") + "; "
                               f"backends {compat.BACKENDS}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self._config
        self._reset_sequence("activate")
        self._stats = _Stats()
        self._pipeline.restarts.clear()
        self._running = True
        self._worker = threading.Thread(target=self._process_loop, name="omeganet_inference", daemon=True)
        self._worker.start()
        qos = self._image_qos(cfg)
        if cfg["image_transport"] == "compressed":
            sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image, qos,
                                           callback_group=self._image_group)
        else:
            sub = self.create_subscription(Image, "image", self._on_image, qos, callback_group=self._image_group)
        self._inputs = [sub]
        if cfg["use_camera_info"]:
            self._camera_info = compat.CameraInfoSource(self, CameraInfo, "camera_info", qos, self._on_camera_info,
                                                        callback_group=self._info_group)
        self._state_name = "active"
        self.get_logger().info(f"active: subscribed to {sub.topic_name}"
                               + (" and camera_info" if cfg["use_camera_info"] else ""))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()  # also drops the buffered frames and their cached features
        self._state_name = "inactive"
        _release_memory()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_publishers()
        self._drop_engine()
        self._pipeline = None
        self._scale = None
        self._model_ok = False
        self._model_status = "not loaded (cleaned up)"
        self._state_name = "unconfigured"
        _release_memory()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_publishers()
        self._drop_engine()
        self._state_name = "finalized"
        _release_memory()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error("lifecycle error: stopping processing and releasing the model")
        self._stop_processing()
        self._destroy_publishers()
        self._drop_engine()
        _release_memory()
        self._state_name = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    # ---------------------------------------------------------------------------------------- setup

    def _build_engine(self, cfg: dict):
        """The engine the ``model`` checkpoint needs (``moreau_engine.open_engine``): ΩNet's SceneEngine, or the
        MoreauEngine for a Moreau et al. checkpoint (``model: moreau``: the packaged one). Sets ``_absent``."""
        import warnings

        from ..checkpoint import DEFAULT_CHECKPOINT
        from ..moreau_engine import absent_outputs, is_moreau_checkpoint, open_engine, resolve_checkpoint

        checkpoint = resolve_checkpoint(cfg["model"] or None)  # loaded once: CheckpointError names the file
        moreau = checkpoint not in (None, "random") and is_moreau_checkpoint(checkpoint)
        options = dict(device=cfg["device"], precision=cfg["precision"], size=_network_size(cfg),
                       output_resolution=cfg["output_resolution"], causal=cfg["causal"],
                       num_threads=cfg["num_threads"] or None)
        if moreau:
            for name, unused in OMEGANET_ONLY.items():
                if cfg[name] != unused:
                    raise ModelParameterError(
                        f"parameter '{name}' = {cfg[name]!r} applies to ΩNet only; the Moreau et al. model of "
                        f"{checkpoint.path} has no motion segmentation and runs uncompiled (leave it at {unused!r})")
            if cfg["backend"] not in ("auto", "torch"):
                raise ModelParameterError(f"parameter 'backend' = {cfg['backend']!r} applies to ΩNet only; the "
                                          f"Moreau et al. model of {checkpoint.path} runs on torch")
        else:
            options.update(compile=cfg["compile"], backend=cfg["backend"], graph_cache=cfg["graph_cache"] or None,
                           background_export=cfg["backend_export"] == "background", backend_log=self._backend_event,
                           motion_threshold=_motion_threshold(cfg), rotation_from_flow=cfg["rotation_from_flow"],
                           dynamic_classes=None if cfg["motion_any_class"] else cfg["dynamic_classes"])
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            engine = open_engine(checkpoint, **options)
        self._absent = absent_outputs(engine)
        if engine.random_weights:
            reason = ("requested (model: random)" if checkpoint == "random"
                      else f"no checkpoint given and none installed at {DEFAULT_CHECKPOINT}")
            self._model_status = f"RANDOM WEIGHTS ({reason}): outputs are meaningless"
            self._model_ok = False
            self.get_logger().warning(f"model: {self._model_status}")
        else:
            kind = "Moreau et al. model" if moreau else "ΩNet model"
            self._model_status = f"loaded {kind} {engine.checkpoint_path}"
            self._model_ok = True
        if moreau and cfg["rotation_from_flow"]:
            self.get_logger().info("rotation_from_flow: no effect on the Moreau et al. model (no optical flow); "
                                   "its pose network gives the whole ego-motion")
        return engine

    def _drop_engine(self) -> None:
        """Release the engine, stopping a background graph export first (its child process)."""
        close = getattr(self._engine, "close", None)
        if close is not None:
            close()
        self._engine = None

    def _backend_event(self, level: int, message: str) -> None:
        """The engine's background-export events (started, done, switched, failed) in the node's log."""
        import logging

        logger = self.get_logger()
        (logger.error if level >= logging.ERROR else logger.warning if level >= logging.WARNING else logger.info)(message)

    def _image_qos(self, cfg: dict) -> QoSProfile:
        if cfg["image_qos"] == "reliable":
            return QoSProfile(depth=cfg["image_queue_depth"], reliability=ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("history", "reliability", "durability")},
                         depth=cfg["image_queue_depth"])
        return qos

    def _create_publishers(self, cfg: dict) -> None:
        from omeganet_ros.msg import EgoMotion, SceneUnderstanding

        qos = QoSProfile(depth=cfg["output_queue_depth"], reliability=ReliabilityPolicy.RELIABLE)
        topics: dict[str, tuple] = {}
        if cfg["publish_depth"]:
            # One namespace, so that camera_info is the sibling of every depth image (image_transport,
            # depth_image_proc): depth/image only while metric (REP 118), depth/relative always.
            topics.update({"depth/image": (Image, "depth/image"), "depth/relative": (Image, "depth/relative"),
                           "depth/colored": (Image, "depth/colored"),
                           "depth/camera_info": (CameraInfo, "depth/camera_info")})
        if cfg["publish_flow"]:
            topics.update({"flow": (Image, "flow"), "flow/colored": (Image, "flow/colored")})
        if cfg["publish_semantic"]:
            topics.update({"semantic": (Image, "semantic"), "semantic/colored": (Image, "semantic/colored")})
        if cfg["publish_motion"]:
            topics.update({"motion/probability": (Image, "motion/probability"), "motion/mask": (Image, "motion/mask")})
        if cfg["publish_instance"]:
            topics.update({"instance": (Image, "instance"), "instance/colored": (Image, "instance/colored")})
        if cfg["publish_ego_motion"]:
            topics["ego_motion"] = (EgoMotion, "ego_motion")
        if cfg["publish_odometry"]:
            topics["odometry"] = (Odometry, "odometry")
        if cfg["publish_camera_info"]:
            topics["camera_info/estimated"] = (CameraInfo, "camera_info/estimated")
        if cfg["publish_points"]:
            topics["points"] = (PointCloud2, "points")
        if cfg["publish_scene"]:
            topics["scene"] = (SceneUnderstanding, "scene")
        # No topic for what the model does not estimate (nothing faked); said once, here.
        absent = [t for output in self._absent for t in TOPICS_OF_OUTPUT[output] if t in topics]
        for topic in absent:
            del topics[topic]
        if absent:
            self.get_logger().info(f"the model does not estimate {', '.join(self._absent)}: topics "
                                   f"{', '.join(absent)} are not published (empty in 'scene')")
        self._outputs = {key: self.create_publisher(msg_type, topic, qos) for key, (msg_type, topic) in topics.items()}
        self._tf = compat.TransformPublisher(self) if cfg["publish_tf"] else None
        self._tf_lookup = compat.TransformLookup(self, self._info_group) if cfg["base_frame"] else None
        self._camera_in_base = None

    def _destroy_publishers(self) -> None:
        for pub in self._outputs.values():
            self.destroy_publisher(pub)
        self._outputs = {}
        if self._tf is not None:
            self._tf.destroy()
            self._tf = None
        if self._tf_lookup is not None:
            self._tf_lookup.destroy()
            self._tf_lookup = None

    def _stop_processing(self) -> None:
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []
        if self._camera_info is not None:
            self._camera_info.destroy()
            self._camera_info = None
        with self._wake:
            self._running = False
            self._mailbox = None
            self._wake.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=60.0)
        self._worker = None
        self._reset_sequence("deactivate")

    def _reset_sequence(self, reason: str) -> None:
        """Restart the three-frame buffer (engine and node bookkeeping)."""
        if self._pipeline is not None:
            self._pipeline.reset()
        self._last_stamp_ns = None

    # ------------------------------------------------------------------------------------- callbacks

    def _log_error(self, reason: str, text: str, dropped: bool = True) -> None:
        """An error log at most once per ``error_log_throttle`` seconds per reason."""
        now = time.monotonic()
        throttle = float(self._config.get("error_log_throttle", 5.0))
        if now - self._last_error_log.get(reason, -math.inf) >= throttle:
            self._last_error_log[reason] = now
            self.get_logger().error(f"{text} ({'dropped; ' if dropped else ''}counted as '{reason}' on /diagnostics)")

    def _on_camera_info(self, msg) -> None:
        try:
            conversions.camera_info_to_K(msg)
        except ValueError as exc:
            with self._lock:
                self._stats.count_bad("bad_camera_info")
            self._log_error("bad_camera_info", f"invalid camera_info: {exc}; using estimated intrinsics")

    def _on_image(self, msg) -> None:
        """Subscription callback: header checks only (a bad frame never displaces a good waiting one),
        then the input stamp to the pipeline and the frame to the newest-frame mailbox."""
        received = time.monotonic()
        stamp = compat.stamp_ns(msg.header.stamp)
        invalid = self._check_header(msg)
        if invalid is not None:
            with self._lock:
                self._stats.received += 1
                self._stats.window_received += 1
                self._stats.count_bad(invalid[0])
            self._log_error(*invalid)
            return
        with self._wake:
            self._stats.received += 1
            self._stats.window_received += 1
            if stamp == 0:
                self._stats.count_bad("zero_stamp")
                reason = ("zero_stamp", "image with a zero stamp")
            elif stamp == self._last_stamp_ns:
                self._stats.count_bad("duplicate_stamp")
                reason = ("duplicate_stamp", f"image with the same stamp as the previous one ({stamp} ns)")
            else:
                reason = None
                self._last_stamp_ns = stamp
                if self._pipeline is not None:
                    self._pipeline.observe(stamp * 1e-9)
                if self._mailbox is not None:
                    self._stats.dropped_busy += 1
                self._mailbox = _Frame(msg, received)
                self._wake.notify()
        if reason is not None:
            self._log_error(*reason)

    def _check_header(self, msg) -> tuple[str, str] | None:
        """(drop reason, message) for an image whose header fields already rule it out, else None. Reads no
        pixels: sizes, encoding, step and data length for raw images; the announced size for compressed ones."""
        limit = int(self._config.get("max_input_pixels", 0)) or None
        try:
            if isinstance(msg, CompressedImage):
                if len(msg.data) == 0:
                    raise ValueError(f"compressed image ({msg.format!r}) has no data")
                rosbag_io.check_input_pixels(rosbag_io.encoded_image_size(msg.data), limit,
                                             f"compressed image ({msg.format!r})")
            else:
                rosbag_io.check_image_fields(msg, limit)
        except rosbag_io.ImageTooLarge as exc:
            return "image_too_large", f"bad input image: {exc}"
        except ValueError as exc:
            kind = "undecodable_compressed" if isinstance(msg, CompressedImage) else "bad_image"
            return kind, f"bad input image: {exc}"
        return None

    # ------------------------------------------------------------------------------------ inference

    def _process_loop(self) -> None:
        while True:
            with self._wake:
                while self._running and self._mailbox is None:
                    self._wake.wait(timeout=0.5)
                if not self._running:
                    return
                frame, self._mailbox = self._mailbox, None
            try:
                self._process(frame)
            except Exception as exc:  # never let one frame stop the node
                with self._lock:
                    self._stats.count_bad("processing_error")
                self._log_error("processing_error", f"processing a frame failed: {type(exc).__name__}: {exc}")
                self._reset_sequence("error")

    def _decode(self, frame: _Frame) -> np.ndarray | None:
        msg = frame.msg
        try:
            if isinstance(msg, CompressedImage):
                return conversions.decode_compressed(msg, max_pixels=None)  # _check_header applied max_input_pixels
            return conversions.decode_image(msg)
        except ValueError as exc:
            reason = "undecodable_compressed" if isinstance(msg, CompressedImage) else "bad_image"
            with self._lock:
                self._stats.count_bad(reason)
            self._log_error(reason, f"bad input image: {exc}")
            return None

    def _intrinsics_for(self, header, size: tuple[int, int]) -> np.ndarray | None:
        if self._camera_info is None:
            return None
        slop = int(self._config["camera_info_slop"] * 1e9)
        info = self._camera_info.nearest(compat.stamp_ns(header.stamp), slop)
        if info is None:
            return None
        try:
            return conversions.camera_info_to_K(info, size)
        except ValueError:
            return None  # counted when it arrived

    def _process(self, frame: _Frame) -> None:
        rgb = self._decode(frame)
        if rgb is None:
            return
        header = frame.msg.header
        if self._config["camera_frame"]:
            header.frame_id = self._config["camera_frame"]
        stamp = conversions.stamp_seconds(header.stamp)
        size = (rgb.shape[1], rgb.shape[0])
        K = self._intrinsics_for(header, size)
        if "flow" not in self._absent:
            self._engine.compute_flow = self._flow_wanted()
        if "instance" not in self._absent:
            self._engine.instances = self._instances_wanted()
        self._pipeline.max_input_gap = self._config["max_frame_gap"]  # live parameters
        self._pipeline.scene_cuts.threshold = self._config["scene_cut_threshold"]
        restarts = sum(self._pipeline.restarts.values())
        started = time.perf_counter()
        result = self._pipeline.push(rgb, stamp, K=K, tag=header)
        engine_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            self._stats.processed += 1
            self._stats.window_processed += 1
            self._stats.buffer_resets = dict(self._pipeline.restarts)
        if sum(self._pipeline.restarts.values()) != restarts:
            self.get_logger().info(f"restarted the frame window: {dict(self._pipeline.restarts)} so far")
        if result is not None:
            self._publish(result, frame.received, engine_ms)

    # ------------------------------------------------------------------------------------ publishing

    def _flow_wanted(self) -> bool:
        """Whether any subscribed output needs OFNet (flow, motion, or the scene bundle carrying them), or the
        ego-motion does (``rotation_from_flow``)."""
        cfg = self._config
        if cfg["rotation_from_flow"] and "flow" not in self._absent:
            return True
        if not (cfg["publish_flow"] or cfg["publish_motion"]):
            return False
        return any(self._outputs[key].get_subscription_count() > 0 for key in FLOW_OUTPUTS if key in self._outputs)

    def _instances_wanted(self) -> bool:
        """Whether any subscribed output needs the Moreau model's instance clustering (instance ids, or scene)."""
        if not self._config["publish_instance"]:
            return False
        return any(self._outputs[key].get_subscription_count() > 0 for key in INSTANCE_OUTPUTS if key in self._outputs)

    def _wanted(self, key: str) -> bool:
        """Whether output ``key`` is enabled and has a subscriber (counted once per frame in _publish)."""
        return self._subscribed.get(key, False)

    def _publish(self, result, triggered: float, engine_ms: float) -> None:
        """Publish every wanted output of ``result`` (a :class:`~omeganet_ros.pipeline.SceneResult`: outputs
        already scaled, the frame's header as its tag, its pose in the trajectory); ``triggered``: monotonic time
        the completing frame arrived, ``engine_ms``: wall time of the pipeline call that produced it."""
        self._subscribed = {key: pub.get_subscription_count() > 0 for key, pub in self._outputs.items()}
        cfg = self._config
        out = result.outputs
        header = result.frame.tag
        other = result.neighbour
        self._last_scale_status = result.scale_status
        relative = result.relative_depth
        metric, scale = result.metric, result.scale
        ego, from_previous = out.ego_motion, out.motion_from_previous  # metres when metric
        height, width = relative.shape

        want_scene = self._wanted("scene")
        images = {}

        def image(key, array_fn, encoding, topic_key, switch, in_scene=True):
            """The message of one output, built once, only when its ``publish_*`` switch is on (a disabled output
            stays empty in `scene` too) and someone (or `scene`, when it carries it) wants it."""
            if key not in images and cfg[switch] and ((want_scene and in_scene) or self._wanted(topic_key)):
                array = array_fn()
                if array is not None:  # flow and motion are None when the engine skipped OFNet (nobody wanted them)
                    images[key] = conversions.image_msg(array, encoding, header)
            return images.get(key)

        metric_depth = (lambda: conversions.depth_with_no_return(relative * np.float32(scale), out.semantic))
        instance_msg = image("instance", lambda: out.instance, "mono16", "instance", "publish_instance")
        depth_msg = image("depth", metric_depth, "32FC1", "depth/image", "publish_depth") if metric else None
        relative_msg = image("relative", lambda: relative, "32FC1", "depth/relative", "publish_depth",
                             in_scene=not metric)
        flow_msg = image("flow", lambda: out.flow, "32FC2", "flow", "publish_flow")
        semantic_msg = image("semantic", lambda: out.semantic, "mono8", "semantic", "publish_semantic")
        prob_msg = image("motion_probability", lambda: out.motion_probability, "32FC1", "motion/probability",
                         "publish_motion")
        mask_msg = image("motion_mask", lambda: None if out.motion_mask is None else conversions.mask_to_mono8(out.motion_mask), "mono8", "motion/mask",
                         "publish_motion")
        info_msg = conversions.K_to_camera_info(out.intrinsics, width, height, header)

        publish = self._outputs
        for key, msg in (("depth/image", depth_msg), ("depth/relative", relative_msg), ("flow", flow_msg),
                         ("semantic", semantic_msg), ("motion/probability", prob_msg), ("motion/mask", mask_msg),
                         ("instance", instance_msg)):
            if msg is not None and key in publish and self._wanted(key):
                publish[key].publish(msg)
        if "depth/camera_info" in publish:
            publish["depth/camera_info"].publish(info_msg)
        if "camera_info/estimated" in publish and out.intrinsics_source == "camnet":
            publish["camera_info/estimated"].publish(info_msg)
        if self._wanted("depth/colored"):
            publish["depth/colored"].publish(conversions.image_msg(conversions.colorize_depth(relative), "rgb8", header))
        if self._wanted("flow/colored") and out.flow is not None:
            publish["flow/colored"].publish(conversions.image_msg(conversions.colorize_flow(out.flow), "rgb8", header))
        if self._wanted("semantic/colored") and out.semantic is not None:
            publish["semantic/colored"].publish(
                conversions.image_msg(conversions.colorize_semantic(out.semantic), "rgb8", header))
        if self._wanted("instance/colored") and out.instance is not None:
            publish["instance/colored"].publish(
                conversions.image_msg(conversions.colorize_instances(out.instance), "rgb8", header))
        if self._wanted("points"):
            rgb = result.frame.rgb
            if rgb.shape[:2] != relative.shape:
                import cv2

                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
            points = conversions.depth_to_points(relative * np.float32(scale), out.intrinsics, rgb,
                                                 out.semantic, stride=cfg["points_stride"],
                                                 max_depth=cfg["points_max_depth"] or math.inf)
            publish["points"].publish(conversions.point_cloud_msg(points, header))

        # Odometry: the chained camera motion, of the camera optical frame (no base_frame) or of the base
        # (base_frame, REP 105) once TF gives the camera's mounting on it. Covariances: motion_covariance.py.
        if result.trajectory != self._trajectory:  # a looping or restarted bag: odometry starts again
            self._trajectory = result.trajectory
            self._spread.reset()
        self._pose_optical = result.pose
        step_covariance = self._spread.add(from_previous, self._pose_optical[:3, :3])  # camera frame
        stamp_to = other.tag.stamp if other is not None else header.stamp
        ego_msg = conversions.ego_motion_msg(header, ego, stamp_to, metric, step_covariance)
        if "ego_motion" in publish:
            publish["ego_motion"].publish(ego_msg)
        odometry = self._odometry(header.frame_id, from_previous, step_covariance)
        if odometry is not None:
            child_frame, pose_in_odom, step, pose_covariance, twist_covariance = odometry
            dt = result.dt
            if "odometry" in publish:
                publish["odometry"].publish(conversions.odometry_msg(
                    header, cfg["odom_frame"], child_frame, pose_in_odom, step, dt, pose_covariance, twist_covariance))
            if self._tf is not None:
                self._tf.send(conversions.transform_stamped(header.stamp, cfg["odom_frame"], child_frame,
                                                            pose_in_odom))

        if want_scene:
            from omeganet_ros.msg import SceneUnderstanding

            empty = conversions.empty_image(header)
            scene = SceneUnderstanding()
            scene.header = header
            scene.depth = (depth_msg if metric else relative_msg) or empty
            scene.depth_scale = float(scale)
            scene.depth_is_metric = metric
            scene.flow = flow_msg or empty
            scene.semantic = semantic_msg or empty
            scene.class_names = conversions.class_names()
            scene.motion_probability = prob_msg or empty
            scene.motion_mask = mask_msg or empty
            scene.instance = instance_msg or empty
            scene.ego_motion = ego_msg
            scene.camera_info = info_msg
            scene.intrinsics_estimated = out.intrinsics_source == "camnet"
            scene.engine_ms = engine_ms
            scene.latency_ms = (time.monotonic() - triggered) * 1000.0
            publish["scene"].publish(scene)
        latency_ms = (time.monotonic() - triggered) * 1000.0
        with self._lock:
            self._stats.published += 1
            self._stats.window_latency_ms.append(latency_ms)
            self._stats.window_engine_ms.append(engine_ms)

    def _odometry(self, camera_frame: str, from_previous: np.ndarray, step_covariance: np.ndarray):
        """(child frame, its pose in odom, this step in the child frame, pose covariance, step covariance in the
        child frame) for the current frame; None while the base's mounting is not in TF yet.

        Without ``base_frame``: the camera optical frame in odom (REP 103 body axes at the first camera pose).
        With it: the base in odom (the first base pose), using the ``base_frame → camera`` transform
        looked up from TF once (a rigid mounting).
        """
        base = self._config["base_frame"]
        if not base:
            first_camera_in_odom = conversions.OPTICAL_TO_BODY
            return (camera_frame, conversions.optical_pose_in_odom(self._pose_optical), from_previous,
                    rotate_covariance(self._spread.pose_covariance, first_camera_in_odom), step_covariance)
        if self._camera_in_base is None:
            self._camera_in_base = self._tf_lookup.lookup(base, camera_frame) if self._tf_lookup else None
            if self._camera_in_base is None:
                with self._lock:
                    self._stats.waiting_for_tf += 1
                self._log_error("waiting_for_tf", f"no TF transform {base} → {camera_frame} yet: odometry and "
                                                  f"{self._config['odom_frame']} → {base} not published", dropped=False)
                return None
            self.get_logger().info(f"camera {camera_frame} mounted on {base} at "
                                   f"{np.round(self._camera_in_base[:3, 3], 4).tolist()} (from TF)")
        mount = self._camera_in_base  # odom = the first base pose, so the first camera's rotation in odom is the mount's
        return (base, conversions.camera_motion_in_base(self._pose_optical, mount),
                conversions.camera_motion_in_base(from_previous, mount),
                rotate_covariance(self._spread.pose_covariance, mount[:3, :3]),
                rotate_covariance(step_covariance, mount[:3, :3]))

    # ----------------------------------------------------------------------------------- diagnostics

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        engine = self._engine  # read once: cleanup may clear it concurrently
        with self._lock:
            s = self._stats
            elapsed = max(now - s.window_start, 1e-6)
            input_rate, processed_rate = s.window_received / elapsed, s.window_processed / elapsed
            latencies, engine_times = s.window_latency_ms, s.window_engine_ms
            values = {
                "state": self._state_name,
                "model": self._model_status,
                # what the loaded model does not estimate (no topics for them): the replay report reads this
                "outputs_absent": ", ".join(self._absent) if engine is not None else "-",
                "device": str(engine.device) if engine is not None else "-",
                "precision": self._config.get("precision", "-"),
                "backend": getattr(engine, "backend", "torch") if engine is not None else "-",
                # the backend whose graphs export in the background (parameter backend_export), and why one failed
                "backend_exporting": getattr(engine, "backend_pending", None) or "-" if engine is not None else "-",
                "backend_export_error": getattr(engine, "backend_error", None) or "-" if engine is not None else "-",
                "input_rate_hz": f"{input_rate:.2f}",
                "processed_rate_hz": f"{processed_rate:.2f}",
                "frames_received": str(s.received),
                "frames_processed": str(s.processed),
                "outputs_published": str(s.published),
                "dropped_busy": str(s.dropped_busy),
                "dropped_bad_input": str(sum(s.bad.values())),
                "latency_ms_mean": f"{np.mean(latencies):.1f}" if latencies else "-",
                "latency_ms_max": f"{np.max(latencies):.1f}" if latencies else "-",
                "engine_ms_mean": f"{np.mean(engine_times):.1f}" if engine_times else "-",
                "buffer_resets": str(sum(s.buffer_resets.values())),
                "odometry_frame": (f"{self._config.get('odom_frame', '-')} → "
                                   f"{self._config.get('base_frame') or 'camera optical frame'}"),
                "odometry_waiting_for_tf": str(s.waiting_for_tf),
                "scale_recovery": f"{self._config.get('scale_recovery', '-')}: {self._last_scale_status}",
            }
            for reason, count in sorted(s.bad.items()):
                values[f"dropped_{reason}"] = str(count)
            for reason, count in sorted(s.buffer_resets.items()):
                values[f"buffer_reset_{reason}"] = str(count)
            for name, backend in compat.BACKENDS.items():
                values[f"backend_{name}"] = backend
            s.window_received = s.window_processed = 0
            s.window_latency_ms, s.window_engine_ms = [], []
            s.window_start = now
        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name().lstrip('/')}: processing"  # namespaced: no collisions
        status.hardware_id = values["device"]
        if self._state_name != "active" or engine is None:
            status.level, status.message = DiagnosticStatus.WARN, f"{self._state_name}; model {self._model_status}"
        elif not self._model_ok:
            status.level, status.message = DiagnosticStatus.WARN, f"running with {self._model_status}"
        elif s.bad or s.dropped_busy:
            status.level, status.message = DiagnosticStatus.OK, "running (some frames dropped, see values)"
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        if self._model_status.startswith("not loaded:"):
            status.level = DiagnosticStatus.ERROR
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diagnostics_pub.publish(array)


SPIN_PERIOD_S = 0.5  # longest wait before the spin loop sees a stop request (SIGINT, SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Console script ``omeganet-node`` (and ``ros2 run omeganet_ros omeganet_node``): accepts ``--ros-args ...``."""
    argv = sys.argv if argv is None else argv
    non_ros = rclpy.utilities.remove_ros_args(args=argv)[1:]
    parser = argparse.ArgumentParser(prog="omeganet-node", description=__doc__.split("\n\n")[0],
                                     epilog="Parameters and remappings go after --ros-args "
                                            "(e.g. --ros-args -p device:=cpu -r image:=/camera/image_raw).")
    parser.parse_args(non_ros)
    # SIGINT and SIGTERM set a flag that the spin loop below reads at least every SPIN_PERIOD_S, instead of
    # rclpy's handlers, which wake the executor from C: in about 1 of 6 runs of test_replay's running-node test
    # a SIGTERM left the node spinning (thread dump: main thread in rcl_wait, inference worker idle). The flag
    # also lets a second Ctrl-C (ros2 launch forwards it after the terminal's) arrive without cutting the
    # clean-up short.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        node = OmeganetNode()
    except Exception as exc:  # e.g. a parameter outside its range
        print(f"omeganet-node: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    # Callbacks only file frames and publish diagnostics; inference has its own thread. One executor
    # thread is enough, and fewer Python threads contending for the GIL keep the added latency low.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    if node.get_parameter("autostart").value:
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        else:
            node.get_logger().error("autostart: configure failed; the node stays unconfigured "
                                    "(fix the parameters and configure it again through its lifecycle services)")
    try:
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_processing()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        # The interpreter's exit puts SIG_DFL back for Python-set handlers (not for SIG_IGN): a stop request
        # arriving then, like ros2 launch's forwarded SIGINT after the terminal's, would kill the process
        # with -2 and launch would report "process has died". The node has stopped; further requests are moot.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
