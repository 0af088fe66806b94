"""Helpers for the node tests: start ``omeganet_node`` in its own process, talk to it over DDS from this one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEST_SIZE = (192, 64)        # network W×H used by the tests (small: 2 shared CPU cores)
FRAME_SIZE = (256, 96)       # input frames W×H


def param_args(params: dict) -> list[str]:
    """{name: value} → ['-p', 'name:=value', ...] in ROS 2 command-line syntax."""
    args = []
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = "[" + ",".join(str(v) for v in value) + "]"
        elif isinstance(value, str):
            text = value if value else "''"
        else:
            text = repr(value)
        args += ["-p", f"{name}:={text}"]
    return args


class NodeProcess:
    """``python -m omeganet_ros.ros.node --ros-args ...`` in a child process, output captured to a file."""

    def __init__(self, params: dict | None = None, *, params_file: Path | None = None, name: str | None = None,
                 extra_ros_args: list[str] | None = None, env: dict | None = None):
        self.name = name or f"omeganet_test_{os.getpid()}_{int(time.monotonic() * 1000) % 100000}"
        ros_args = ["--ros-args", "-r", f"__node:={self.name}"]
        if params_file is not None:
            ros_args += ["--params-file", str(params_file)]
        # backend torch: the outputs compared with a directly called engine, no graph export per test
        ros_args += param_args({"model": "random", "device": "cpu", "num_threads": 1, "backend": "torch",
                                "network_width": TEST_SIZE[0], "network_height": TEST_SIZE[1], **(params or {})})
        ros_args += extra_ros_args or []
        self.log = tempfile.NamedTemporaryFile("w+b", prefix="omeganet_node_", suffix=".log", delete=False)
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0", **(env or {}))
        self.process = subprocess.Popen([sys.executable, "-m", "omeganet_ros.ros.node", *ros_args],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_bytes().decode(errors="replace")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RosClient:
    """An rclpy context + node in this (test) process with helpers to publish, collect and wait."""

    def __init__(self, namespace: str = ""):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"omeganet_test_client_{os.getpid()}", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}
        self.arrival: dict[str, list] = {}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def publisher(self, msg_type, topic: str, reliable: bool = True, depth: int = 5):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic: str, depth: int = 50) -> list:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        bucket = self.received.setdefault(topic, [])
        times = self.arrival.setdefault(topic, [])

        def keep(msg):
            bucket.append(msg)
            times.append(time.monotonic())

        self.node.create_subscription(msg_type, topic, keep, QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))
        return bucket

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0.0)))

    def spin_until(self, predicate, timeout: float, node: NodeProcess | None = None) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            if node is not None and not node.alive():
                raise AssertionError(f"node process exited ({node.process.returncode}):\n{node.output()}")
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def wait_for_subscriber(self, publisher, timeout: float = 60.0, node: NodeProcess | None = None) -> None:
        if not self.spin_until(lambda: publisher.get_subscription_count() > 0, timeout, node):
            raise AssertionError(f"no subscriber on {publisher.topic_name} after {timeout} s"
                                 + (f"; node output:\n{node.output()}" if node else ""))

    def latest_diagnostics(self, node_name: str) -> dict | None:
        """Key/values of the newest /diagnostics status of ``node_name`` (needs collect(DiagnosticArray, '/diagnostics'))."""
        for array in reversed(self.received.get("/diagnostics", [])):
            for status in array.status:
                if status.name.startswith(node_name + ":"):
                    values = {kv.key: kv.value for kv in status.values}
                    values["_level"] = int.from_bytes(status.level, "little") if isinstance(status.level, bytes) else int(status.level)
                    values["_message"] = status.message
                    return values
        return None


def synthetic_frames(count: int, size=FRAME_SIZE, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB uint8 frames (H×W×3) of a textured scene sliding sideways: real content for the networks."""
    width, height = size
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width + 8 * count, 3), dtype=np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (5, 5), 0)
    return [np.ascontiguousarray(base[:, 8 * i: 8 * i + width]) for i in range(count)]


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical_frame", encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    msg.header.frame_id = frame_id
    if encoding == "bgr8":
        rgb = rgb[..., ::-1]
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = rgb.shape[1] * (rgb.shape[2] if rgb.ndim == 3 else 1) * rgb.dtype.itemsize
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def publish_waiting_for_scenes(client: "RosClient", pub, node: "NodeProcess", frames, stamps) -> list:
    """Publish ``frames`` as images stamped ``stamps`` (ns), from the third on only once the node's ``scene`` for
    frame i−1 arrived (a paper-mode node answers a frame when the next one comes): no frame is dropped.
    Needs ``client.collect(SceneUnderstanding, "scene")``. Returns the messages sent."""
    sent = []
    for i, (frame, stamp) in enumerate(zip(frames, stamps)):
        msg = image_msg(frame, stamp)
        sent.append(msg)
        pub.publish(msg)
        if i >= 2:
            assert client.spin_until(lambda: len(client.received["scene"]) >= i - 1, 60, node), node.output()
        else:
            client.spin_for(0.3)
    return sent


def camera_info_msg(K: np.ndarray, size, stamp_ns: int, frame_id: str = "camera_optical_frame"):
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.width, msg.height = size
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(K, dtype=np.float64).ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(K[0][0]), 0.0, float(K[0][2]), 0.0, 0.0, float(K[1][1]), float(K[1][2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def image_array(msg) -> np.ndarray:
    from omeganet_ros.data.rosbag_io import image_to_numpy

    return image_to_numpy(msg)


def random_moreau_checkpoint(path: Path, size=TEST_SIZE, seed: int = 0) -> Path:
    """A Moreau et al. checkpoint (MT: depth + instances) with random weights, whose instance head gives a few
    instances per frame: offsets 0 and a random thing logit with ~10 % of the pixels above ½ (an untrained head
    starts at probability exactly ½ everywhere, which clusters nothing)."""
    import torch

    from omeganet_ros.checkpoint import save_checkpoint
    from omeganet_ros.nets import build_networks

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        networks = build_networks(architecture="moreau")
        head = networks["moreau"].instance_head[1]
        with torch.no_grad():
            torch.nn.init.normal_(head.weight, std=1.0)
            head.weight[:2] = 0.0
            head.bias.copy_(torch.tensor([0.0, 0.0, -0.06]))
    return save_checkpoint(path, {name: net.half() for name, net in networks.items()}, input_size=size,
                           provenance={"note": "random weights for the node tests"}, classes=[])
