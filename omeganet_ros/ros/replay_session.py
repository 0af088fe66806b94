"""The DDS side of ``omeganet-replay``: publishes the bag's frames and /clock, records the node's outputs.

One rclpy node (``omeganet_replay``) spun in a background thread:

* publishers for the played topics (raw CDR bytes straight from the bag) and
  ``/clock`` (rosgraph_msgs/Clock, the bag's time, for a node run with
  ``use_sim_time``);
* raw subscriptions to every topic the target node publishes, with QoS
  matching each publisher, written into an mcap bag as they arrive
  (no deserialization);
* the result topic (``scene``) also feeds a :class:`~omeganet_ros.report.timing.RunTiming`
  with the wall-clock time each frame's result came back.
"""
from __future__ import annotations

import importlib
import os
import re
import threading
import time
from pathlib import Path

from omeganet_ros.data import rosbag_io
from omeganet_ros.report.timing import RunTiming
from omeganet_ros.ros.replay_bag import header_stamp_ns

DEFAULT_RECORD_EXCLUDE = r"^/(rosout|parameter_events)$"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def message_class(msgtype: str):
    """'pkg/msg/Type' → the rclpy message class; ``ValueError`` when it cannot be imported."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise ValueError(f"unknown message type {msgtype!r}: expected 'package/msg/Type'")
    package, kind, name = parts
    try:
        module = importlib.import_module(f"{package}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"unknown message type {msgtype!r}: its Python interface cannot be imported ({err})") from err


def _msg_files(package: str) -> list[Path]:
    """The .msg files of ``package`` from the ament index (AMENT_PREFIX_PATH) or, for this package, msg/."""
    roots = [Path(p) / "share" / package / "msg" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if package == "omeganet_ros":
        roots.append(PACKAGE_ROOT / "msg")
    for root in roots:
        files = sorted(root.glob("*.msg"))
        if files:
            return files
    return []


def register_types(typestore, msgtypes) -> None:
    """Register in ``typestore`` the message types it lacks, from their .msg definitions (custom interfaces)."""
    from rosbags.typesys import get_types_from_msg

    missing = sorted({m for m in msgtypes if m not in typestore.types})
    for msgtype in missing:
        if msgtype in typestore.types:
            continue
        package = msgtype.split("/")[0]
        files = _msg_files(package)
        if not files:
            raise ValueError(f"unknown message type {msgtype!r}: no .msg definition found for package "
                             f"{package!r} on AMENT_PREFIX_PATH")
        types = {}
        for path in files:
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
        typestore.register(types)
        if msgtype not in typestore.types:
            raise ValueError(f"unknown message type {msgtype!r}: not among {package}'s .msg files")


def _has_header(typestore, msgtype: str) -> bool:
    fields = typestore.fielddefs.get(msgtype, (None, []))[1]
    return bool(fields) and fields[0][0] == "header" and fields[0][1][1] == "std_msgs/msg/Header"


class ReplaySession:
    """rclpy side of a replay. Use as a context manager; ``namespace`` is the target node's namespace."""

    def __init__(self, node_name: str = "omeganet_node", namespace: str = "/", result_topic: str = "scene"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = rclpy.create_node("omeganet_replay", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.target_name = node_name
        self.target_namespace = "/" + namespace.strip("/") if namespace.strip("/") else "/"
        self.result_topic = self.resolve(result_topic)
        self._publishers: dict[str, object] = {}
        self._clock_pub = None
        self._recording_subs: list = []
        self._writer = None
        self._connections: dict[str, object] = {}
        self._writing = False
        self._lock = threading.Condition()
        self.timing = RunTiming()
        self.received_counts: dict[str, int] = {}
        self.last_result_wall: float | None = None
        self.clock_ns = 0
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, name="omeganet_replay_spin", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- lifecycle

    def _spin(self) -> None:
        while self._spinning and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutting down
                if not self._spinning:
                    break
                raise

    def close(self) -> None:
        self.stop_recording()
        self._spinning = False
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.context)

    def __enter__(self) -> "ReplaySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resolve(self, name: str) -> str:
        if name.startswith("/"):
            return name
        prefix = "" if self.target_namespace == "/" else self.target_namespace
        return f"{prefix}/{name}"

    # ----------------------------------------------------------------- discovery

    def target_publishers(self) -> dict[str, str]:
        """{topic: 'pkg/msg/Type'} of the target node's publishers (empty until discovered)."""
        try:
            found = self.node.get_publisher_names_and_types_by_node(self.target_name, self.target_namespace)
        except Exception:  # the node is not (yet) known to the graph
            return {}
        return {topic: types[0] for topic, types in found if types}

    def node_state(self) -> str | None:
        """The target's lifecycle state label ('active', …), or None when it has no lifecycle services."""
        from lifecycle_msgs.srv import GetState

        service = self.resolve(f"{self.target_name}/get_state") if self.target_namespace != "/" \
            else f"/{self.target_name}/get_state"
        client = self.node.create_client(GetState, service)
        try:
            if not client.wait_for_service(timeout_sec=0.5):
                return None
            future = client.call_async(GetState.Request())
            deadline = time.monotonic() + 2.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            return future.result().current_state.label if future.done() and future.result() else None
        finally:
            self.node.destroy_client(client)

    def wait_for_node(self, input_topics: list[str], timeout: float, alive=lambda: True,
                      need_topics: tuple[str, ...] = ()) -> dict[str, str]:
        """Wait until the target node publishes ``result_topic`` (+ ``need_topics``), subscribes to every
        input topic we publish, and is active when it is a lifecycle node. Returns its publishers.

        ``alive``: returns False (or raises) when a launched node died, to stop waiting early.
        Raises ``TimeoutError`` naming what was missing.
        """
        deadline = time.monotonic() + timeout
        needed = {self.result_topic, *(self.resolve(t) for t in need_topics)}
        while True:
            alive()
            publishers = self.target_publishers()
            missing = sorted(needed - set(publishers))
            unsubscribed = [t for t in input_topics if self._publishers[t].get_subscription_count() == 0]
            state = self.node_state() if not missing and not unsubscribed else None
            if not missing and not unsubscribed and state in (None, "active"):
                return publishers
            if time.monotonic() > deadline:
                seen = sorted(n for n, _ in self.node.get_node_names_and_namespaces())
                raise TimeoutError(
                    f"node {self.target_name!r} in namespace {self.target_namespace!r} not ready after {timeout:.0f} s: "
                    + (f"it publishes no {missing}; " if missing else "")
                    + (f"nothing subscribes to {unsubscribed}; " if unsubscribed else "")
                    + (f"its lifecycle state is {state!r}; " if state not in (None, "active") else "")
                    + f"nodes seen: {seen}")
            time.sleep(0.2)

    # ----------------------------------------------------------------- publishing

    def add_publisher(self, topic: str, msgtype: str) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self._publishers[topic] = self.node.create_publisher(message_class(msgtype), topic, qos)

    def enable_clock(self) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._clock_pub = self.node.create_publisher(Clock, "/clock",
                                                     QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self._clock_msg = Clock()

    def publish_clock(self, stamp_ns: int) -> None:
        if self._clock_pub is None:
            return
        self.clock_ns = int(stamp_ns)
        self._clock_msg.clock.sec, self._clock_msg.clock.nanosec = divmod(self.clock_ns, 1_000_000_000)
        self._clock_pub.publish(self._clock_msg)

    def publish_raw(self, topic: str, data: bytes) -> None:
        self._publishers[topic].publish(data)

    # ----------------------------------------------------------------- recording

    def start_recording(self, bag_path: Path, publishers: dict[str, str], exclude: str = DEFAULT_RECORD_EXCLUDE) -> list[str]:
        """Subscribe (raw) to every topic in ``publishers`` but ``exclude`` (regex) and write them to an
        mcap bag at ``bag_path``; returns the recorded topics."""
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosbags.rosbag2 import StoragePlugin, Writer

        pattern = re.compile(exclude) if exclude else None
        topics = {t: m for t, m in sorted(publishers.items()) if not (pattern and pattern.search(t))}
        typestore = rosbag_io.default_typestore()
        register_types(typestore, topics.values())
        self._typestore = typestore
        self._header_first = {m: _has_header(typestore, m) for m in topics.values()}
        bag_path = Path(bag_path)
        if bag_path.exists():
            raise OSError(f"output bag {bag_path} exists already; refusing to overwrite")
        self._writer = Writer(bag_path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        for topic, msgtype in topics.items():
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=typestore)
        self._writing = True
        for topic, msgtype in topics.items():
            infos = self.node.get_publishers_info_by_topic(topic)
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos) if infos else True
            latched = any(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                             reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
            callback = (lambda data, topic=topic, msgtype=msgtype: self._on_message(topic, msgtype, data))
            self._recording_subs.append(
                self.node.create_subscription(message_class(msgtype), topic, callback, qos, raw=True))
        if self.result_topic not in topics:  # still needed for timing
            msgtype = publishers[self.result_topic]
            self._recording_subs.append(self.node.create_subscription(
                message_class(msgtype), self.result_topic,
                lambda data: self._on_message(self.result_topic, msgtype, data), 100, raw=True))
        self.recorded_topics = list(topics)
        return self.recorded_topics

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        now = time.monotonic()
        stamp = None
        if self._header_first.get(msgtype):
            try:
                stamp = header_stamp_ns(data)
            except ValueError:
                stamp = None
        with self._lock:
            self.received_counts[topic] = self.received_counts.get(topic, 0) + 1
            if topic == self.result_topic and stamp is not None:
                self.timing.receive(stamp, now)
                self.last_result_wall = now
                self._lock.notify_all()
            if self._writing and topic in self._connections:
                self._writer.write(self._connections[topic], stamp if stamp else self.clock_ns, bytes(data))

    def stop_recording(self) -> None:
        """Close the output bag (results are still timed afterwards)."""
        with self._lock:
            if self._writer is not None and self._writing:
                self._writing = False
                self._writer.close()

    def new_timing(self) -> RunTiming:
        """Start timing a new run (e.g. a throughput trial); returns the previous run's timing."""
        with self._lock:
            previous, self.timing = self.timing, RunTiming()
            return previous

    def wait_for_result(self, stamps: set[int], timeout: float) -> bool:
        """Block until a result for one of ``stamps`` has arrived, or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(s in self.timing.received_wall for s in stamps):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))
            return True

    def drain(self, expected: set[int], quiet: float, timeout: float) -> None:
        """Wait until every ``expected`` stamp has a result, or none arrived for ``quiet`` s, or ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            with self._lock:
                if expected <= set(self.timing.received_wall):
                    return
                last = self.last_result_wall or start
            if time.monotonic() - max(last, start) > quiet:
                return
            time.sleep(0.05)
