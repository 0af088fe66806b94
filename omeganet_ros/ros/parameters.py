"""The node's parameters: names, defaults, descriptions and ranges, declared in one table.

``config/omeganet.yaml`` lists the same names with their defaults, and
README.md (section "The node") documents them; ``test_node_launch.py``
checks that the three agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends import BACKEND_CHOICES, DEFAULT_BACKEND
from ..classes import DYNAMIC_TRAIN_IDS
from ..motion import MOTION_THRESHOLD
from ..pose_proxy import ROTATION_FROM_FLOW_DEFAULT


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    range: tuple | None = None          # (low, high) inclusive, ints or floats
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    live: bool = False  # applied at once while configured; other changes are refused until cleanup


OUTPUTS = ("depth", "flow", "semantic", "motion", "ego_motion", "odometry", "tf", "points", "scene", "camera_info",
           "instance")

PARAMETERS: tuple[Param, ...] = (
    Param("autostart", True, "Configure and activate the lifecycle node on start-up (false: wait for lifecycle "
          "transitions from a manager)", read_only=True),
    # --- model
    Param("model", "", "Checkpoint file (omeganet_ros.checkpoint), ΩNet or Moreau et al. (depth, ego-motion and "
          "instances; no flow, semantics or motion). Empty: the bundled ΩNet reference checkpoint (random weights "
          "with a warning while none is installed); 'moreau': the bundled Moreau et al. reference; 'random': "
          "random ΩNet weights on purpose (tests, benchmarks)"),
    Param("device", "auto", "Where the networks run: auto (CUDA when available), cpu or cuda",
          choices=("auto", "cpu", "cuda")),
    Param("precision", "auto", "Arithmetic: auto (bf16 on a CPU with native bf16, AMX or AVX-512-BF16: the fastest "
          "measured; else fp32), fp32, bf16 (autocast) or fp16 (CUDA only), int8 (backend openvino only: NNCF "
          "post-training quantization at the first export; faster, but flow off by ~2.6 px on average: not recommended)",
          choices=("auto", "fp32", "bf16", "fp16", "int8")),
    Param("backend", DEFAULT_BACKEND, "Inference backend: auto (the fastest installed: openvino, else torch; torch on CUDA or "
          "with compile), torch, onnxruntime or openvino (graphs exported once per model, size and precision, "
          "cached in ~/.cache/omeganet_ros; ΩNet only)", choices=BACKEND_CHOICES),
    Param("backend_export", "background", "When the backend (openvino, onnxruntime) has no exported graphs for this "
          "model, size and precision yet: background (configure at once, run on torch while they export in a "
          "child process, ~25–50 s on 2 cores, then switch; both logged) or wait (configure waits for the "
          "export). Export ahead with omeganet-export", choices=("background", "wait")),
    Param("graph_cache", "", "Folder of the backends' exported graphs (empty: $OMEGANET_CACHE_DIR, else "
          "~/.cache/omeganet_ros); omeganet-export --out writes one"),
    Param("compile", False, "torch.compile the networks (faster after a slow first frames; ΩNet only)"),
    Param("num_threads", 0, "PyTorch CPU threads (0: PyTorch's default)", range=(0, 256)),
    Param("network_width", 0, "Network input width in pixels (frames are resized to it); 0: the width the checkpoint "
          "was trained at (640 for random weights). Multiple of 64 recommended", range=(0, 4096)),
    Param("network_height", 0, "Network input height in pixels; 0: the height the checkpoint was trained at "
          "(192 for random weights). Multiple of 64 recommended", range=(0, 4096)),
    Param("output_resolution", "input", "Resolution of every output image: input (the camera's) or network",
          choices=("input", "network")),
    Param("causal", False, "Describe the newest frame without the one-frame delay; flow and ego_motion then "
          "point to the previous frame (t→t−1) instead of the next"),
    Param("rotation_from_flow", ROTATION_FROM_FLOW_DEFAULT, "Ego-motion rotation from a PnP-RANSAC fit of the optical flow on the depth "
          "(static classes), CamNet's translation kept (unseen synthetic seeds: yaw correlation 0.74 → 0.95; KITTI raw: "
          "yaw sign right on 5/5 frames instead of 0/5); runs OFNet on every frame; false: ΩNet's CamNet alone. "
          "No effect on the Moreau et al. model (no optical flow)"),
    Param("motion_threshold", -1.0, "τ: motion probability above which a pixel of a dynamic class is marked "
          f"moving (ΩNet only); -1: the τ calibrated into the checkpoint ({MOTION_THRESHOLD} if it has none)", range=(-1.0, 1.0)),
    Param("dynamic_classes", list(DYNAMIC_TRAIN_IDS), "Cityscapes trainIds that may be marked moving "
          "(person … bicycle by default; ΩNet only)"),
    Param("motion_any_class", False, "Mark moving pixels of any class (ignore dynamic_classes; ΩNet only)"),
    # --- input
    Param("image_transport", "raw", "Input: raw (sensor_msgs/Image on 'image') or compressed "
          "(sensor_msgs/CompressedImage on 'image/compressed')", choices=("raw", "compressed")),
    Param("image_qos", "sensor_data", "QoS of the image subscription: sensor_data (best effort, keep last) "
          "or reliable", choices=("sensor_data", "reliable")),
    Param("image_queue_depth", 5, "History depth of the image and camera_info subscriptions", range=(1, 100)),
    Param("use_camera_info", True, "Use K from 'camera_info' when a valid one matches the image stamp "
          "(else CamNet's estimate)"),
    Param("camera_info_slop", 0.02, "Largest stamp difference (s) between an image and its camera_info",
          range=(0.0, 10.0), live=True),
    Param("max_frame_gap", 0.5, "A gap (s) in the input stream (no image received) longer than this restarts "
          "the three-frame window (0: never); frames the node skips while busy are not a gap",
          range=(0.0, 3600.0), live=True),
    Param("scene_cut_threshold", 0.5, "Colour-histogram correlation of consecutive processed frames below which "
          "the three-frame window restarts (a cut in the video; 0: never)", range=(0.0, 1.0), live=True),
    Param("max_input_pixels", 40_000_000, "Images whose header announces more pixels are dropped before decoding "
          "(counted as image_too_large; 0: no limit)", range=(0, 2_000_000_000), live=True),
    # --- metric scale
    Param("scale_recovery", "none", "Metric scale: none (relative depth), camera_height (ground-plane fit "
          "to road pixels and the known camera height) or fixed (fixed_scale)",
          choices=("none", "camera_height", "fixed")),
    Param("camera_height", 1.65, "Height of the camera's optical centre above the road (m), for "
          "scale_recovery: camera_height", range=(0.05, 20.0)),
    Param("fixed_scale", 1.0, "Metres per network depth unit, for scale_recovery: fixed", range=(1e-6, 1e6)),
    Param("scale_window", 15, "Frames whose median gives the camera_height scale", range=(1, 1000)),
    # --- outputs
    *(Param(f"publish_{name}", True, f"Publish the {name} output(s)") for name in OUTPUTS),
    Param("output_queue_depth", 2, "History depth of the (reliable) output publishers", range=(1, 100)),
    Param("points_stride", 4, "Keep every n-th pixel in rows and columns for 'points'", range=(1, 64), live=True),
    Param("points_max_depth", 80.0, "Leave out points farther than this (depth units) from 'points' (0: no limit)",
          range=(0.0, 1e6), live=True),
    Param("odom_frame", "odom", "Frame of the accumulated odometry (REP 105)"),
    Param("base_frame", "", "Robot base frame (REP 105, e.g. base_link): publish odom → base_frame, using the "
          "base_frame → camera transform from TF. Empty: odom → the camera optical frame (camera only)"),
    Param("camera_frame", "", "Camera optical frame for outputs (empty: the input image's frame_id)"),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages", range=(0.05, 60.0)),
    Param("error_log_throttle", 5.0, "At most one error log per reason every this many seconds",
          range=(0.0, 3600.0), live=True),
)

BY_NAME = {p.name: p for p in PARAMETERS}


def declare(node) -> None:
    """Declare every parameter on ``node`` with its description and range (rcl_interfaces descriptors)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    for p in PARAMETERS:
        descriptor = ParameterDescriptor(name=p.name, description=p.description, read_only=p.read_only)
        if isinstance(p.default, bool):
            descriptor.type = ParameterType.PARAMETER_BOOL
        elif isinstance(p.default, int):
            descriptor.type = ParameterType.PARAMETER_INTEGER
        elif isinstance(p.default, float):
            descriptor.type = ParameterType.PARAMETER_DOUBLE
        elif isinstance(p.default, str):
            descriptor.type = ParameterType.PARAMETER_STRING
        elif isinstance(p.default, list):
            descriptor.type = ParameterType.PARAMETER_INTEGER_ARRAY
        if p.range is not None:
            low, high = p.range
            if isinstance(p.default, float):
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
            else:
                descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        if p.choices is not None:
            descriptor.additional_constraints = "one of: " + ", ".join(p.choices)
        node.declare_parameter(p.name, p.default, descriptor)


def check(p: Param, value) -> str | None:
    """What is wrong with ``value`` for parameter ``p`` (choices, trainIds), or None (ranges: rcl checks them)."""
    if p.choices is not None and value not in p.choices:
        return f"parameter {p.name!r} = {value!r}; must be one of {', '.join(p.choices)}"
    if p.name == "dynamic_classes":
        bad = [c for c in (value or []) if not 0 <= int(c) < 19]
        if bad:
            return f"parameter 'dynamic_classes' has trainIds outside 0–18: {bad}"
    return None


def read(node) -> dict:
    """Current values, checked: ``ValueError`` naming the parameter for a value outside its choices."""
    values = {p.name: node.get_parameter(p.name).value for p in PARAMETERS}
    for p in PARAMETERS:
        problem = check(p, values[p.name])
        if problem is not None:
            raise ValueError(problem)
    values["dynamic_classes"] = [int(c) for c in (values["dynamic_classes"] or [])]
    return values
