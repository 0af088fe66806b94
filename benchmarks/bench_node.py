"""Benchmark of omeganet_node over real DDS (loopback) and of its metric-scale recovery; prints JSON.

Measures, with the node in its own process (``python -m omeganet_ros.ros.node``):

* ``latency``: image published → ``scene`` received, minus the engine time the
  node reports for that frame (``SceneUnderstanding.engine_ms``), i.e. what
  the node and DDS add. Frames are sent one at a time (each once the previous
  output arrived), so no frame waits behind another. In paper mode the output
  of frame t is triggered by frame t+1: the latency is measured from
  publishing frame t+1.
* ``fps``: outputs per second while frames arrive faster than the engine runs
  (newest-frame policy), with the dropped count.
* ``memory``: the node's resident memory after ``--rss-frames`` processed frames
  (e.g. 100 and 1000).
* ``publish_overhead``: the node's per-frame work besides the engine (its
  ``_publish``: messages, colourised images, point cloud, odometry,
  serialisation) in process, with every output subscribed and with only
  ``scene`` (the target: ≤ 5 ms at 640×192 with every output).
* ``scale_recovery``: the ground-plane scale (``scale_recovery: camera_height``)
  on the synthetic world, whose depth, labels and camera height are exact:
  relative depth = true depth / an unknown factor (optionally with per-pixel
  noise), and the recovered factor is compared to the true one.

The machine's CPU may be shared: the JSON records the load average before and
after, and figures from a loaded machine are upper bounds on time.

    .venv/bin/python benchmarks/bench_node.py                     # everything, defaults below
    .venv/bin/python benchmarks/bench_node.py --skip-node         # scale recovery only (no ROS)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))


def _ros_env() -> None:
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_local.xml"))
    os.environ.setdefault("ROS_LOG_DIR", f"/tmp/omeganet_bench_ros_log_{os.getpid()}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _synth_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    from omeganet_ros.synth.world import iterate_frames

    return [f["image"] for f in iterate_frames(frames=count, seed=seed, size=size)]


def _stats(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "median": round(float(np.median(values)), 2),
            "mean": round(float(values.mean()), 2), "p90": round(float(np.percentile(values, 90)), 2),
            "min": round(float(values.min()), 2), "max": round(float(values.max()), 2)}


class _NodeRun:
    def __init__(self, size, params: dict):
        import node_helpers as h
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        from omeganet_ros.msg import SceneUnderstanding

        self.h = h
        h.TEST_SIZE = size
        self.node = h.NodeProcess({"model": params.pop("model", ""), "diagnostics_period": 0.5, **params})
        self.client = h.RosClient()
        self.pub = self.client.publisher(Image, "image", reliable=True, depth=1)
        self.scenes = self.client.collect(SceneUnderstanding, "scene", depth=5)
        self.arrival = self.client.arrival["scene"]
        self.client.collect(DiagnosticArray, "/diagnostics")
        self.client.wait_for_subscriber(self.pub, timeout=180, node=self.node)
        assert self.client.spin_until(lambda: self.client.node.count_publishers("/scene") > 0, 60, self.node)
        self.client.spin_for(1.0)
        self.stamp = 1_700_000_000_000_000_000

    def publish(self, frame) -> tuple[int, float]:
        self.stamp += 100_000_000
        msg = self.h.image_msg(frame, self.stamp)
        now = time.monotonic()
        self.pub.publish(msg)
        return self.stamp, now

    def diag(self) -> dict:
        return self.client.latest_diagnostics(self.node.name) or {}

    def close(self):
        self.client.close()
        self.node.stop()


def bench_latency_and_fps(frames, size, params, latency_frames: int, fps_seconds: float) -> dict:
    run = _NodeRun(size, dict(params))
    try:
        model = None
        published = {}
        overhead, e2e, engine, internal = [], [], [], []
        warmup = 3
        for i in range(latency_frames + warmup + 2):
            stamp, t = run.publish(frames[i % len(frames)])
            published[stamp] = t
            if i < 2:  # no output yet: wait until the node has taken the frame, so none is dropped
                ok = run.client.spin_until(lambda: int(run.diag().get("frames_processed", 0)) >= i + 1, 120, run.node)
                if not ok:
                    raise RuntimeError(f"frame {i} not processed: {run.diag()}")
                continue
            wanted = i - 1  # outputs so far: frames 1 … i−1
            ok = run.client.spin_until(lambda: len(run.scenes) >= wanted, 120, run.node)
            if not ok:
                raise RuntimeError(f"no output for frame {i - 1}: {run.diag()}")
            if i - 1 >= warmup and len(run.scenes) >= 1:
                scene, arrival = run.scenes[-1], run.arrival[-1]
                described = scene.header.stamp.sec * 1_000_000_000 + scene.header.stamp.nanosec
                trigger = published[described + 100_000_000]
                e2e.append((arrival - trigger) * 1000.0)
                engine.append(scene.engine_ms)
                overhead.append(e2e[-1] - scene.engine_ms)
                internal.append(scene.latency_ms - scene.engine_ms)
        diag = run.diag()
        model = diag.get("model")
        # Throughput: frames offered at 2× the engine's rate (newest-frame policy drops the rest).
        period = max(np.median(engine) / 1000.0 / 2, 0.01)
        before = run.diag()
        first_scene = len(run.scenes)
        start = time.monotonic()
        while time.monotonic() - start < fps_seconds:
            run.publish(frames[int(time.monotonic() * 10) % len(frames)])
            run.client.spin_for(period)
        elapsed = time.monotonic() - start
        run.client.spin_for(1.2)
        after = run.diag()
        outputs = len(run.scenes) - first_scene
        processed = int(after["frames_processed"]) - int(before["frames_processed"])
        return {
            "latency": {
                "frames": len(overhead),
                "end_to_end_ms": _stats(e2e),
                "engine_ms": _stats(engine),
                "overhead_ms (end_to_end - engine)": _stats(overhead),
                "node_internal_overhead_ms (received -> scene published, minus engine)": _stats(internal),
            },
            "fps": {
                "seconds": round(elapsed, 1),
                "input_fps": round((int(after["frames_received"]) - int(before["frames_received"])) / elapsed, 2),
                "processed_fps": round(processed / elapsed, 2),
                "outputs_fps": round(outputs / elapsed, 2),
                "dropped_busy": int(after["dropped_busy"]) - int(before["dropped_busy"]),
            },
            "model": model,
            "backend_running": after.get("backend"),  # what the node's diagnostics say it ran on
        }
    finally:
        run.close()


def bench_message_building(size, repeats: int = 20) -> dict:
    """CPU cost (no DDS) of turning one frame's outputs into the node's messages and serialising ``scene``."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from omeganet_ros.msg import SceneUnderstanding
    from omeganet_ros.ros import conversions

    w, hgt = size
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 80, (hgt, w)).astype(np.float32)
    flow = rng.normal(0, 3, (hgt, w, 2)).astype(np.float32)
    semantic = rng.integers(0, 19, (hgt, w), dtype=np.uint8)
    prob = rng.uniform(0, 1, (hgt, w)).astype(np.float32)
    K = np.array([[0.58 * w, 0, (w - 1) / 2], [0, 1.92 * hgt, (hgt - 1) / 2], [0, 0, 1]])
    header = Header(frame_id="camera_optical_frame")
    build, serialise = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        scene = SceneUnderstanding(header=header)
        scene.depth = conversions.image_msg(depth, "32FC1", header)
        scene.flow = conversions.image_msg(flow, "32FC2", header)
        scene.semantic = conversions.image_msg(semantic, "mono8", header)
        scene.motion_probability = conversions.image_msg(prob, "32FC1", header)
        scene.motion_mask = conversions.image_msg(conversions.mask_to_mono8(prob > 0.5), "mono8", header)
        scene.camera_info = conversions.K_to_camera_info(K, w, hgt, header)
        scene.ego_motion = conversions.ego_motion_msg(header, np.eye(4), header.stamp, False, np.zeros((6, 6)))
        scene.class_names = conversions.class_names()
        t1 = time.perf_counter()
        serialize_message(scene)
        t2 = time.perf_counter()
        build.append((t1 - t0) * 1000)
        serialise.append((t2 - t1) * 1000)
    return {"size": list(size), "build_messages_ms": _stats(build), "serialise_scene_ms": _stats(serialise)}


def bench_publish_overhead(size, repeats: int = 30) -> dict:
    """CPU cost of the node's per-frame publishing (``OmeganetNode._publish``: scale, message building, colourised
    images, point cloud, odometry, serialisation of every message as rclpy's publish does) for one frame's outputs
    at ``size``: with every output subscribed, and with only ``scene``. In process, no DDS transport."""
    import rclpy
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from omeganet_ros.engine import SceneOutputs
    from omeganet_ros.pipeline import FrameMeta, SceneResult
    from omeganet_ros.ros import parameters
    from omeganet_ros.ros.node import OmeganetNode

    class Publisher:
        def __init__(self, subscribers: int):
            self.subscribers = subscribers

        def get_subscription_count(self):
            return self.subscribers

        def publish(self, msg):
            serialize_message(msg)

    w, h = size
    rng = np.random.default_rng(0)
    frame = _synth_frames(1, size)[0]
    out = SceneOutputs(
        stamp=1.1, depth=rng.uniform(2, 60, (h, w)).astype(np.float32), depth_is_metric=False, depth_scale=1.0,
        semantic=rng.integers(0, 19, (h, w), dtype=np.uint8), flow=rng.normal(0, 4, (h, w, 2)).astype(np.float32),
        motion_probability=rng.uniform(0, 1, (h, w)).astype(np.float32), motion_mask=rng.uniform(0, 1, (h, w)) > 0.8,
        ego_motion=np.eye(4), motion_from_previous=np.eye(4),
        intrinsics=np.array([[0.58 * w, 0, (w - 1) / 2], [0, 1.92 * h, (h - 1) / 2], [0, 0, 1]]), timings_ms={})
    context = rclpy.Context()
    rclpy.init(context=context)
    node = OmeganetNode("omeganet_publish_bench", context=context)
    try:
        node._config = parameters.read(node)
        metas = []
        for i, stamp in enumerate((1.0, 1.1, 1.2)):
            header = Header(frame_id="camera_optical_frame")
            header.stamp.sec, header.stamp.nanosec = 1, i * 100_000_000
            metas.append(FrameMeta(stamp, (w, h), False, header, frame))
        result = SceneResult(outputs=out, relative_depth=out.depth, frame=metas[1], neighbour=metas[2],
                             previous=metas[0], pose=np.eye(4), trajectory=0, metric=False, scale=1.0,
                             scale_status="relative depth")
        topics = ("depth/image", "depth/relative", "depth/colored", "depth/camera_info", "flow", "flow/colored",
                  "semantic", "semantic/colored", "motion/probability", "motion/mask", "ego_motion", "odometry",
                  "camera_info/estimated", "points", "scene")
        report = {"size": list(size), "outputs": len(topics)}
        for name, subscribed in (("every_output_ms", topics), ("scene_only_ms", ("scene",))):
            node._outputs = {t: Publisher(1 if t in subscribed else 0) for t in topics}
            wall, cpu = [], []
            for _ in range(repeats):
                c, t0 = time.process_time(), time.perf_counter()
                node._publish(result, triggered=time.monotonic(), engine_ms=0.0)
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            report[name] = _stats(wall)
            report[name.replace("_ms", "_cpu_ms")] = _stats(cpu)
        return report
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def bench_memory(frames, size, params, checkpoints: list[int]) -> dict:
    run = _NodeRun(size, dict(params))
    try:
        rss = {}
        start = time.monotonic()
        i = 0
        for target in sorted(checkpoints):
            while int(run.diag().get("frames_processed", 0)) < target:
                run.publish(frames[i % len(frames)])
                i += 1
                run.client.spin_for(0.02)
                if not run.node.alive():
                    raise RuntimeError(run.node.output())
            run.client.spin_for(0.6)
            rss[str(target)] = round(run.node.rss_kib() / 1024, 1)
        first, last = str(min(checkpoints)), str(max(checkpoints))
        return {"rss_mib_after_frames": rss, "growth_mib": round(rss[last] - rss[first], 1),
                "frames_published": i, "seconds": round(time.monotonic() - start, 1),
                "dropped_busy": int(run.diag().get("dropped_busy", 0))}
    finally:
        run.close()


def bench_scale_recovery(sequences: int, frames: int, size, noise: float, window: int) -> dict:
    """Scale recovery on the synthetic world: exact labels and K, depth known up to a factor (± noise)."""
    from omeganet_ros.scale_recovery import ScaleRecovery
    from omeganet_ros.synth.world import iterate_frames

    heights = [1.65, 1.2, 2.1, 1.5, 1.8]
    results = {}
    for label, sigma in (("exact_depth", 0.0), (f"depth_with_{int(noise * 100)}pct_pixel_noise", noise)):
        frame_errors, smoothed_errors, failures, total = [], [], 0, 0
        for s in range(sequences):
            height = heights[s % len(heights)]
            true_factor = 10.0 ** np.random.default_rng(s).uniform(-1, 1.3)  # metres per relative unit
            recovery = ScaleRecovery("camera_height", camera_height=height, window=window, seed=s)
            rng = np.random.default_rng(1000 + s)
            for f in iterate_frames(frames=frames, seed=100 + s, size=size, camera_height=height):
                relative = f["depth"].astype(np.float64) / true_factor
                if sigma:
                    relative = relative * np.exp(rng.normal(0, sigma, relative.shape))
                estimate = recovery.update(relative, f["K"], f["semantic"])
                total += 1
                if estimate.frame_scale is None:
                    failures += 1
                else:
                    frame_errors.append(abs(estimate.frame_scale / true_factor - 1) * 100)
                if estimate.metric:
                    smoothed_errors.append(abs(estimate.scale / true_factor - 1) * 100)
        results[label] = {"frames": total, "fit_failures": failures,
                          "per_frame_scale_error_pct": _stats(frame_errors),
                          f"median_of_{window}_scale_error_pct": _stats(smoothed_errors)}
    return {"sequences": sequences, "frames_per_sequence": frames, "size": list(size),
            "camera_heights_m": heights[:sequences], "method": "RANSAC + least-squares ground plane on road "
            "pixels (trainId 0), scale = camera height / fitted height", **results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="640x192", help="network size W×H for latency and fps (default 640x192)")
    parser.add_argument("--precision", default="bf16", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks (slow start)")
    parser.add_argument("--backend", default="torch", choices=["torch", "openvino", "onnxruntime", "auto"],
                        help="the node's backend (default torch); another one is exported before the node answers "
                             "(backend_export wait), so every timed frame runs on it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="", help="checkpoint (default: the bundled one, random weights if none)")
    parser.add_argument("--latency-frames", type=int, default=20)
    parser.add_argument("--fps-seconds", type=float, default=20.0)
    parser.add_argument("--rss-frames", default="100,1000", help="processed-frame counts at which to read RSS")
    parser.add_argument("--rss-size", default=None, help="network size for the memory run (default: --size)")
    parser.add_argument("--scale-sequences", type=int, default=3)
    parser.add_argument("--scale-frames", type=int, default=40)
    parser.add_argument("--scale-noise", type=float, default=0.05)
    parser.add_argument("--skip-node", action="store_true", help="only the scale-recovery benchmark")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-latency", action="store_true", help="no latency/fps run (e.g. memory only)")
    args = parser.parse_args(argv)
    from omeganet_ros.synth.world import parse_size

    size = parse_size(args.size)
    rss_size = parse_size(args.rss_size) if args.rss_size else size
    result = {"benchmark": "omeganet_node", "cpu_count": os.cpu_count(),
              "load_average_before": [round(v, 2) for v in os.getloadavg()],
              "note": "CPU shared with other engineers' jobs during this run; times are upper bounds"}
    if not args.skip_node:
        _ros_env()
        params = {"model": args.model, "precision": args.precision, "compile": args.compile,
                  "backend": args.backend, "backend_export": "wait",
                  "num_threads": args.threads, "device": "cpu"}
        frames = _synth_frames(20, size)
        result["message_building"] = bench_message_building(size)
        result["publish_overhead"] = bench_publish_overhead(size)
        if not args.skip_latency:
            result["node"] = {"network_size": list(size), "input_size": list(size), "precision": args.precision,
                              "backend": args.backend,
                              "compile": args.compile, "threads": args.threads,
                              **bench_latency_and_fps(frames, size, params, args.latency_frames, args.fps_seconds)}
        if not args.skip_memory:
            counts = [int(c) for c in args.rss_frames.split(",")]
            mem_frames = _synth_frames(20, rss_size) if rss_size != size else frames
            result["memory"] = {"network_size": list(rss_size), "input_size": list(rss_size),
                                **bench_memory(mem_frames, rss_size, params, counts)}
    result["scale_recovery"] = bench_scale_recovery(args.scale_sequences, args.scale_frames, (640, 192),
                                                    args.scale_noise, window=15)
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
