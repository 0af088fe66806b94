"""omeganet_node with the real ROS 2 tools: ``ros2 launch``, ros2cli, message_filters, cv_bridge and tf2_ros.

These libraries cannot be installed on the bare-machine set-up (PyPI wheels), so these tests skip there
with the reason; ``.ci/real_ros.sh`` builds them (``../shared/ros2-extras/build.sh``) and runs this file
with ``OMEGANET_REQUIRE_REAL_ROS=1``, which turns a missing tool into a failure. The fallbacks are covered
by the rest of the suite, and here once more next to the real libraries (``OMEGANET_ROS_FORCE_FALLBACK``).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import node_helpers as h

pytestmark = pytest.mark.usefixtures("rclpy_available")

REAL_LIBRARIES = ("launch", "launch_ros", "ros2cli", "message_filters", "cv_bridge", "tf2_ros")
FRAME_PERIOD = 0.1  # a 10 Hz camera
CAMERA_FRAME, BASE_FRAME = "camera_optical_frame", "base_link"
# The camera 1.2 m forward and 1.5 m up on the base, looking forward (optical axes in body axes).
MOUNT_TRANSLATION = (1.2, 0.0, 1.5)
MOUNT_QUATERNION = (-0.5, 0.5, -0.5, 0.5)  # x, y, z, w of OPTICAL_TO_BODY
# Output topic → (type name, encoding or None).
OUTPUTS = {
    "depth/image": ("Image", "32FC1"), "depth/relative": ("Image", "32FC1"), "depth/colored": ("Image", "rgb8"),
    "depth/camera_info": ("CameraInfo", None), "flow": ("Image", "32FC2"), "flow/colored": ("Image", "rgb8"),
    "semantic": ("Image", "mono8"), "semantic/colored": ("Image", "rgb8"),
    "motion/probability": ("Image", "32FC1"), "motion/mask": ("Image", "mono8"),
    "ego_motion": ("EgoMotion", None), "odometry": ("Odometry", None), "points": ("PointCloud2", None),
    "scene": ("SceneUnderstanding", None),
}
PARAMS_YAML = """/**:
  ros__parameters:
    model: random
    device: cpu
    num_threads: 1
    backend: torch
    network_width: {width}
    network_height: {height}
    image_transport: raw
    base_frame: {base}
    odom_frame: odom
    scale_recovery: fixed
    fixed_scale: 2.0
    diagnostics_period: 0.5
"""


def _missing_tools() -> list[str]:
    missing = [name for name in REAL_LIBRARIES if importlib.util.find_spec(name) is None]
    return missing + ([] if shutil.which("ros2") else ["the ros2 command"])


@pytest.fixture(scope="module")
def real_ros():
    missing = _missing_tools()
    if missing:
        message = (f"real ROS 2 tools not available: {', '.join(missing)} (bare-machine set-up; "
                   ".ci/real_ros.sh builds them with ../shared/ros2-extras/build.sh)")
        if os.environ.get("OMEGANET_REQUIRE_REAL_ROS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return True


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "omeganet.yaml"
    path.write_text(PARAMS_YAML.format(width=h.TEST_SIZE[0], height=h.TEST_SIZE[1], base=BASE_FRAME))
    return path


class Launch:
    """``ros2 launch omeganet_ros FILE args…`` in its own process group, output in a file."""

    def __init__(self, launch_file: str, env: dict | None = None, **arguments):
        self.log = tempfile.NamedTemporaryFile("w+b", prefix="omeganet_launch_", suffix=".log", delete=False)
        cmd = ["ros2", "launch", "omeganet_ros", launch_file, *(f"{k}:={v}" for k, v in arguments.items())]
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_bytes().decode(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def node_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"\[omeganet_node-\d+\]: process started with pid \[(\d+)\]",
                                               self.output())]

    def wait_for(self, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.output():
                return True
            time.sleep(0.2)
        return text in self.output()

    def stop(self) -> int:
        """SIGINT, as Ctrl-C would; the exit status of ros2 launch."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def _ros2(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(["ros2", *args], capture_output=True, text=True, timeout=timeout)
    return done.stdout + done.stderr


def _ros2_node_verb(*args: str, attempts: int = 6) -> str:
    """``ros2 param|lifecycle …`` on a node, without the ros2 daemon (no process left behind); discovery on a
    loaded machine can take longer than the CLI's spin time, so "not found" is retried with a longer one
    (1, 2, 4, 8… s: ``ros2 param`` waits up to 5 s for the node's services, but ``ros2 lifecycle get`` looks
    for the node in the graph seen after exactly the spin time)."""
    for attempt in range(attempts):
        output = _ros2(*args[:2], "--no-daemon", "--spin-time", str(min(2 ** attempt, 8)), *args[2:])
        if "not found" not in output.lower():
            break
    return output


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def _message_types():
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from omeganet_ros.msg import EgoMotion, SceneUnderstanding

    return {"Image": Image, "CameraInfo": CameraInfo, "Odometry": Odometry, "PointCloud2": PointCloud2,
            "EgoMotion": EgoMotion, "SceneUnderstanding": SceneUnderstanding}


def _static_mount(client: h.RosClient):
    """A URDF-style static base_link → camera_optical_frame, sent with tf2_ros."""
    import tf2_ros
    from geometry_msgs.msg import TransformStamped

    broadcaster = tf2_ros.StaticTransformBroadcaster(client.node)
    mount = TransformStamped()
    mount.header.stamp = client.node.get_clock().now().to_msg()
    mount.header.frame_id, mount.child_frame_id = BASE_FRAME, CAMERA_FRAME
    mount.transform.translation.x, mount.transform.translation.y, mount.transform.translation.z = MOUNT_TRANSLATION
    r = mount.transform.rotation
    r.x, r.y, r.z, r.w = MOUNT_QUATERNION
    broadcaster.sendTransform(mount)
    return broadcaster


def _run_camera(client: h.RosClient, namespace: str, image_topic: str, info_topic: str | None, outputs: dict,
                alive, timeout: float = 180.0) -> dict:
    """Publish a 10 Hz camera (+ camera_info), collect every output and resolve odom → base_link with tf2_ros.

    Returns {"received": topic → messages, "odom_to_base": TransformStamped, "diagnostics": [...]}.
    """
    import tf2_ros
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.time import Time
    from sensor_msgs.msg import CameraInfo, Image

    types = _message_types()
    prefix = f"/{namespace}" if namespace else ""
    received = {topic: client.collect(types[kind], f"{prefix}/{topic}") for topic, (kind, _) in outputs.items()}
    diagnostics = client.collect(DiagnosticArray, "/diagnostics")
    buffer = tf2_ros.Buffer()
    listener = tf2_ros.TransformListener(buffer, client.node, spin_thread=False)
    mount = _static_mount(client)
    image_pub = client.publisher(Image, image_topic, reliable=False)
    info_pub = client.publisher(CameraInfo, info_topic) if info_topic else None
    frames = h.synthetic_frames(30)
    K = np.array([[120.0, 0.0, 127.5], [0.0, 120.0, 47.5], [0.0, 0.0, 1.0]])
    sent = [0]

    def publish_frame():
        stamp = client.node.get_clock().now().nanoseconds
        if info_pub is not None:
            info_pub.publish(h.camera_info_msg(K, h.FRAME_SIZE, stamp, CAMERA_FRAME))
        image_pub.publish(h.image_msg(frames[sent[0] % len(frames)], stamp, CAMERA_FRAME))
        sent[0] += 1

    timer = client.node.create_timer(FRAME_PERIOD, publish_frame)
    found = {}

    def done():
        if "odom_to_base" not in found:
            try:
                found["odom_to_base"] = buffer.lookup_transform("odom", BASE_FRAME, Time())
            except tf2_ros.TransformException:
                pass
        return "odom_to_base" in found and all(len(messages) >= 2 for messages in received.values())

    end = time.monotonic() + timeout
    while time.monotonic() < end and not done():
        if not alive():
            break
        client.executor.spin_once(timeout_sec=0.05)
    client.node.destroy_timer(timer)
    counts = {topic: len(messages) for topic, messages in received.items()}
    assert done(), f"after {sent[0]} frames: outputs {counts}, odom → {BASE_FRAME}: {'odom_to_base' in found}"
    found["camera_in_odom"] = buffer.lookup_transform("odom", CAMERA_FRAME,
                                                      Time.from_msg(found["odom_to_base"].header.stamp))
    listener.unregister()
    del mount
    return {"received": received, "diagnostics": diagnostics, **found, "frames_sent": sent[0]}


def _check_outputs(result: dict, outputs: dict, node_name: str) -> None:
    """Encodings (read back with the real cv_bridge), frames, covariances, the TF chain, YAML scale, diagnostics."""
    from cv_bridge import CvBridge

    from omeganet_ros.data.rosbag_io import image_to_numpy
    from omeganet_ros.ros.conversions import transform_to_matrix

    bridge = CvBridge()
    for topic, (kind, encoding) in outputs.items():
        for msg in result["received"][topic]:
            if encoding is not None:
                assert msg.encoding == encoding, topic
                assert (msg.width, msg.height) == h.FRAME_SIZE, topic
                # A subscriber using the real cv_bridge reads exactly what the node's codec wrote.
                np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), image_to_numpy(msg), err_msg=topic)
            if kind != "Odometry":
                assert msg.header.frame_id == CAMERA_FRAME, topic
    for odom in result["received"]["odometry"]:
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", BASE_FRAME)
        assert np.all(np.diag(np.reshape(odom.pose.covariance, (6, 6))) > 0)
    # tf2_ros resolves odom → camera through the node's odom → base_link and the static mount.
    base_in_odom = transform_to_matrix(result["odom_to_base"].transform)
    camera_in_odom = transform_to_matrix(result["camera_in_odom"].transform)
    mount = np.linalg.inv(base_in_odom) @ camera_in_odom
    np.testing.assert_allclose(mount[:3, 3], MOUNT_TRANSLATION, atol=1e-6)
    # Depth from the YAML's fixed scale (2.0): depth/image = 2 × depth/relative, +Inf on sky (REP 117/118).
    scene = result["received"]["scene"][-1]
    assert scene.depth_is_metric and scene.depth_scale == pytest.approx(2.0)

    def by_stamp(topic):
        return {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in result["received"][topic]}

    metric, relative, semantic = by_stamp("depth/image"), by_stamp("depth/relative"), by_stamp("semantic")
    common = sorted(set(metric) & set(relative) & set(semantic))
    assert common
    for stamp in common:
        depth, rel = image_to_numpy(metric[stamp]), image_to_numpy(relative[stamp])
        sky = image_to_numpy(semantic[stamp]) == 10
        np.testing.assert_allclose(depth[~sky], 2.0 * rel[~sky], rtol=1e-6)
        assert np.all(np.isposinf(depth[sky])) and np.all(np.isfinite(rel))
    names = {status.name for array in result["diagnostics"] for status in array.status}
    assert f"{node_name}: processing" in names, names


def test_ros2_launch_with_params_file_tf_and_a_10hz_camera(real_ros, params_file):
    """ros2 launch (rviz:=true without rviz2), YAML parameters, every output, tf2_ros odom → base_link."""
    namespace = f"rr_{os.getpid()}"
    expected_prefix = os.environ.get("OMEGANET_EXPECT_PREFIX")
    if expected_prefix:  # which install ros2 finds: the Makefile's install/ or a sourced colcon overlay
        assert _ros2("pkg", "prefix", "omeganet_ros").strip() == expected_prefix
    launch = Launch("omeganet.launch.py", namespace=namespace, params_file=params_file, rviz="true",
                    image=f"/{namespace}_camera/image_raw", camera_info=f"/{namespace}_camera/camera_info")
    try:
        assert launch.wait_for("active: subscribed", 120), launch.output()
        assert "rviz2 is not installed" in launch.output() or "rviz2-" in launch.output()
        with h.RosClient() as client:
            result = _run_camera(client, namespace, f"/{namespace}_camera/image_raw",
                                 f"/{namespace}_camera/camera_info", OUTPUTS, launch.alive)
            _check_outputs(result, OUTPUTS, f"{namespace}/omeganet_node")  # namespaced: instances do not collide
            # message_filters paired camera_info with the images: its K was used, not CamNet's.
            assert not result["received"]["scene"][-1].intrinsics_estimated
            diag = {kv.key: kv.value for array in result["diagnostics"] for s in array.status for kv in s.values}
        assert diag["backend_tf"] == "tf2_ros" and diag["backend_camera_info_sync"] == "message_filters.Cache"
        node = f"/{namespace}/omeganet_node"
        # The params_file's values hold (not replaced by launch defaults); ros2cli sees them.
        assert "String value is: cpu" in _ros2_node_verb("param", "get", node, "device")
        assert "String value is: random" in _ros2_node_verb("param", "get", node, "model")
        assert "String value is: raw" in _ros2_node_verb("param", "get", node, "image_transport")
        assert "active" in _ros2_node_verb("lifecycle", "get", node)
        refused = _ros2_node_verb("param", "set", node, "device", "cuda")
        assert "Setting parameter failed" in refused and "configure" in refused, refused
        assert "String value is: cpu" in _ros2_node_verb("param", "get", node, "device")
        assert "Set parameter successful" in _ros2_node_verb("param", "set", node, "points_stride", "2")
        pids = launch.node_pids()
        assert pids and all(_pid_alive(pid) for pid in pids)
    finally:
        launch.stop()
        output = launch.output()
        launch.close()
    time.sleep(1.0)
    assert not [pid for pid in pids if _pid_alive(pid)], f"node left running after ros2 launch ended:\n{output}"
    # Ctrl-C (SIGINT to the process group, so twice for the node): a clean exit, not "process has died".
    assert re.search(r"\[omeganet_node-\d+\]: process has finished cleanly", output), output[-3000:]


def _reap(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Processes of ``pids`` still running ``timeout`` s after their launch ended, SIGKILLed so that none outlives
    the test (a node left over from one run would slow down and share the ROS domain with the next)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(_pid_alive(pid) for pid in pids):
        time.sleep(0.2)
    leftover = [pid for pid in pids if _pid_alive(pid)]
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return leftover


def _logged_at(lines: str, pattern: str) -> float:
    """Wall-clock time (s) in the first line matching ``pattern``, whose group 1 is the time: rcutils'
    ``[{time}]`` of a node's line (``RCUTILS_CONSOLE_OUTPUT_FORMAT`` below), the leading time of launch.log's."""
    found = re.search(pattern, lines, re.MULTILINE)
    assert found, f"no line matching {pattern!r} in:\n{lines[-3000:]}"
    return float(found.group(1))


def test_bag_launch_plays_only_once_the_node_is_active(real_ros, params_file, tmp_path):
    """Playback starts only once the node is active (the launch file requests the transitions: autostart false).

    Checked with the wall-clock times that the node and launch log (the node's "active: subscribed", written
    in on_activate, against launch's "starting playback"), which need no discovery, and by watching the node's
    lifecycle from here: its ``transition_event`` messages and its ``get_state`` service, polled. This process
    can discover the node only after launch's process did, seconds late on a loaded machine, and then sees
    neither the (volatile) events nor the states before "active": those checks apply to what was seen.
    """
    from lifecycle_msgs.msg import TransitionEvent
    from lifecycle_msgs.srv import GetState

    namespace = f"rb_{os.getpid()}"
    node_name = f"/{namespace}/omeganet_node"
    events = []  # (time.monotonic() at reception, goal state label)
    polls = []  # (sent at, "starting playback" logged before sending, answered at, current state label)
    with h.RosClient() as client:
        client.node.create_subscription(TransitionEvent, f"{node_name}/transition_event",
                                        lambda msg: events.append((time.monotonic(), msg.goal_state.label)), 10)
        get_state = client.node.create_client(GetState, f"{node_name}/get_state")
        client.spin_for(0.5)
        log_dir = tmp_path / "launch_log"
        launch = Launch("omeganet_bag.launch.py", bag=tmp_path / "drive.mcap", namespace=namespace,
                        params_file=params_file, env={"ROS_LOG_DIR": str(log_dir),
                                                      "RCUTILS_CONSOLE_OUTPUT_FORMAT": "[{severity}] [{time}] [{name}]: {message}"})
        try:
            playing_at, pending = None, None

            def seen_active():
                return any(label == "active" for _, label in events) or any(p[3] == "active" for p in polls)

            end = time.monotonic() + 120
            while time.monotonic() < end and launch.alive() and not (playing_at is not None and seen_active()):
                client.spin_for(0.05)
                if pending is not None and pending[2].done():
                    polls.append((pending[0], pending[1], time.monotonic(), pending[2].result().current_state.label))
                    pending = None
                if playing_at is None and "starting playback" in launch.output():
                    playing_at = time.monotonic()
                if pending is None and get_state.service_is_ready():
                    pending = (time.monotonic(), playing_at is not None, get_state.call_async(GetState.Request()))
            client.spin_for(0.5)  # a transition event still on its way
            output = launch.output()
            observed = f"events {events}, polls {polls}, playback logged at {playing_at}"
            assert playing_at is not None, output
            assert seen_active(), f"the node was never seen active: {observed}\n{output}"
            # Playback after the node's on_activate, on the one clock of this machine.
            launch_log = "".join(path.read_text() for path in log_dir.glob("*/launch.log"))
            playback_logged = _logged_at(launch_log, r"^(\d+\.\d+) \[INFO\] \[launch\.user\]: .*starting playback")
            activate_logged = _logged_at(output, rf"\[(\d+\.\d+)\] \[{namespace}\.omeganet_node\]: active: subscribed")
            assert playback_logged >= activate_logged, (playback_logged, activate_logged, output)
            # Never before the transition: a get_state sent after playback began never answers a state other than
            # active (exact: the launch file logs "starting playback" only after the node became active) ...
            assert not [p for p in polls if p[1] and p[3] != "active"], observed
            # ... and of the events that arrived, none up to the first "active" one came after playback began
            # (allowing for the two processes' delivery jitter).
            labels = [label for _, label in events]
            until_active = events[:labels.index("active") + 1] if "active" in labels else events
            assert all(playing_at >= t - 0.2 for t, _ in until_active), observed
            assert "configured:" in output and "active: subscribed" in output
            player = "process started" in output.split("starting playback", 1)[1] or "ros2bag is not installed" in output
            assert player, output
            assert "active" in _ros2_node_verb("lifecycle", "get", node_name)
        finally:
            client.node.destroy_client(get_state)
            pids = launch.node_pids()
            launch.close()
            leftover = _reap(pids)
    assert not leftover, f"omeganet_node {leftover} still running 10 s after ros2 launch ended"
    # A node that cannot configure: nothing is played and the launch ends by itself.
    failing = Launch("omeganet_bag.launch.py", bag=tmp_path / "drive.mcap", namespace=f"rf_{os.getpid()}",
                     params_file=params_file, model=tmp_path / "missing.pt")
    try:
        failing.process.wait(timeout=120)
        output = failing.output()
        assert "failed to configure" in output and "starting playback" not in output, output
        assert str(tmp_path / "missing.pt") in output
    finally:
        pids = failing.node_pids()
        failing.close()
        leftover = _reap(pids)
    assert not leftover, f"omeganet_node {leftover} still running 10 s after ros2 launch ended"


def test_launch_refuses_arguments_outside_their_choices(real_ros):
    launch = Launch("omeganet.launch.py", image_transport="jpeg", namespace=f"rc_{os.getpid()}")
    try:
        launch.process.wait(timeout=60)
        assert launch.process.returncode != 0
        assert "provided value \"jpeg\" is not valid" in launch.output(), launch.output()
        assert not launch.node_pids()
    finally:
        launch.close()


def test_rviz_config_follows_namespace_image_and_odom_frame(real_ros, tmp_path):
    import yaml

    prefix = Path(_ros2("pkg", "prefix", "omeganet_ros").strip())
    spec = importlib.util.spec_from_file_location("omeganet_launch", prefix / "share/omeganet_ros/launch/omeganet.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = tmp_path / "p.yaml"
    params.write_text("/robot1/perception/omeganet_node:\n  ros__parameters:\n    odom_frame: robot1/odom\n")
    path = module._rviz_config(prefix / "share/omeganet_ros/config/omeganet.rviz", "robot1/perception",
                               "/robot1/front/image", module._odom_frame(str(params)))
    config = yaml.safe_load(Path(path).read_text())
    Path(path).unlink()
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]
    assert "/robot1/front/image" in topics and "/robot1/perception/depth/colored" in topics
    assert not [t for t in topics if t.startswith("/omeganet/") or t == "/camera/image_raw"], topics
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "robot1/odom"


def test_fallbacks_next_to_the_real_libraries(real_ros, params_file):
    """ros2 launch with OMEGANET_ROS_FORCE_FALLBACK: StampCache and the tf2_msgs TF fallback, checked with tf2_ros."""
    outputs = {**OUTPUTS, "camera_info/estimated": ("CameraInfo", None)}
    namespace = f"rfb_{os.getpid()}"
    launch = Launch("omeganet.launch.py", env={"OMEGANET_ROS_FORCE_FALLBACK": "1"}, namespace=namespace,
                    params_file=params_file, image=f"/{namespace}_camera/image_raw",
                    camera_info=f"/{namespace}_camera/camera_info")
    try:
        assert launch.wait_for("active: subscribed", 120), launch.output()
        with h.RosClient() as client:  # no camera_info: CamNet's intrinsics, published on camera_info/estimated
            result = _run_camera(client, namespace, f"/{namespace}_camera/image_raw", None, outputs, launch.alive)
            _check_outputs(result, outputs, f"{namespace}/omeganet_node")
            diag = {kv.key: kv.value for array in result["diagnostics"] for s in array.status
                    if s.name.startswith(namespace) for kv in s.values}
        assert diag["backend_tf"].startswith("fallback") and diag["backend_camera_info_sync"].startswith("fallback")
        assert result["received"]["scene"][-1].intrinsics_estimated
    finally:
        launch.close()
