"""SceneEngine(background_export=True) and the node's backend_export parameter: the first use of a backend
answers at once on torch while its graphs export in a background thread, then switches, losing no output."""
import logging
import threading
import time

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the background export is tested with the onnxruntime backend")
pytest.importorskip("onnx", reason="onnx is needed by torch.onnx.export")

from omeganet_ros import backends  # noqa: E402
from omeganet_ros.engine import SceneEngine  # noqa: E402

SIZE = (128, 64)


def _frames(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (SIZE[1], SIZE[0] + 4 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 4 * i:4 * i + SIZE[0]]) for i in range(n)]


def _engine(cache, **kw) -> SceneEngine:
    return SceneEngine(checkpoint="random", device="cpu", size=SIZE, precision="fp32", backend="onnxruntime",
                       graph_cache=cache, output_resolution="network", num_threads=1, **kw)


def _gate(monkeypatch, function: str):
    """``backends.<function>`` held until the test opens the gate (the export 'takes' as long as the test wants)."""
    gate, calls = threading.Event(), []
    real = getattr(backends, function)

    def gated(*args, **kwargs):
        calls.append(threading.current_thread().name)
        assert gate.wait(120), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(backends, function, gated)
    return gate, calls


def test_engine_answers_on_torch_during_the_export_then_switches(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    gate, calls = _gate(monkeypatch, "export_in_subprocess")  # the real export (a child process) after the gate
    events = []
    started = time.perf_counter()
    engine = _engine(tmp_path, background_export=True, backend_log=lambda level, msg: events.append((level, msg)))
    assert time.perf_counter() - started < 30  # did not wait for the (gated) export
    assert engine.backend == "torch" and engine.backend_pending == "onnxruntime" and engine.backend_graphs is None
    assert engine.describe()["backend_pending"] == "onnxruntime"
    assert any("exporting its graphs in the background" in m and "no cache yet" in m for _, m in events), events
    frames = _frames()
    outs = [engine.push(f, 0.1 * i) for i, f in enumerate(frames[:3])]
    assert outs[2] is not None and outs[2].metadata["backend"] == "torch"  # answered while the export is held
    assert calls and calls[0].startswith("omeganet_export_")  # the export runs in its own thread
    assert not engine.wait_for_backend(timeout=0.1)
    gate.set()
    assert engine.wait_for_backend(timeout=300)
    assert engine.backend == "torch"  # switched at a frame boundary, in the pushing thread
    out = engine.push(frames[3], 0.3)
    assert engine.backend == "onnxruntime" and engine.backend_pending is None
    assert out.metadata["backend"] == "onnxruntime" and "backend_pending" not in out.metadata
    messages = [m for _, m in events]
    assert any("graphs exported in" in m for m in messages) and any("running now, after 3 frames on torch" in m
                                                                    for m in messages), messages
    # the frames buffered before the switch were re-encoded: the same output as an engine on the backend from the
    # start (its cache is valid now, so it is loaded synchronously even with background_export)
    direct = _engine(tmp_path, background_export=True)
    assert direct.backend == "onnxruntime" and direct.backend_pending is None
    expected = [direct.push(f, 0.1 * i) for i, f in enumerate(frames[:4])][-1]
    np.testing.assert_allclose(out.depth, expected.depth, rtol=1e-5)
    np.testing.assert_allclose(out.flow, expected.flow, atol=1e-4)
    np.testing.assert_array_equal(out.semantic, expected.semantic)
    np.testing.assert_allclose(out.ego_motion, expected.ego_motion, atol=1e-5)


def test_without_background_export_the_engine_waits_for_the_export(tmp_path, monkeypatch):
    gate, calls = _gate(monkeypatch, "open_graphs")
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("engine", _engine(tmp_path)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    thread.join(1.0)
    assert calls and thread.is_alive()  # the constructor is blocked in the export
    gate.set()
    thread.join(300)
    assert result["engine"].backend == "onnxruntime" and result["engine"].describe()["graph_exported_now"]


def test_a_failed_background_export_leaves_the_engine_on_torch(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise backends.BackendError("the export broke")

    monkeypatch.setattr(backends, "export_in_subprocess", broken)
    events = []
    engine = _engine(tmp_path, background_export=True, backend_log=lambda level, msg: events.append((level, msg)))
    assert engine.wait_for_backend(timeout=60)
    outs = [engine.push(f, 0.1 * i) for i, f in enumerate(_frames(3))]
    assert outs[-1] is not None and engine.backend == "torch" and engine.backend_pending is None
    assert "the export broke" in engine.describe()["backend_error"]
    # asked for by name: an error (auto would make it a warning)
    assert any(level == logging.ERROR and "staying on torch" in m for level, m in events), events


def test_the_export_process_reports_its_error_and_can_be_stopped(tmp_path):
    from omeganet_ros.nets import build_networks

    networks = build_networks()
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(backends.BackendError, match="export failed: .*file"):  # the child's error, named
        backends.export_in_subprocess("onnxruntime", networks, SIZE, "fp32", 1, cache_dir=not_a_folder)
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.perf_counter()
    with pytest.raises(backends.BackendError, match="stopped"):
        backends.export_in_subprocess("onnxruntime", networks, SIZE, "fp32", 1, cache_dir=tmp_path / "c", stop=stop)
    assert time.perf_counter() - started < 20
    assert not list(tmp_path.glob("c/graphs/*/manifest.json"))  # nothing half-written in the cache


def test_close_stops_a_running_background_export(tmp_path):
    engine = _engine(tmp_path, background_export=True)
    assert engine.backend_pending == "onnxruntime"
    started = time.perf_counter()
    engine.close()
    assert time.perf_counter() - started < 20 and engine.wait_for_backend(0)
    assert engine.backend == "torch" and engine.backend_error is None  # stopped on purpose: not an error
    assert engine.push(_frames(1)[0], 0.0) is None  # still usable, on torch


def test_node_answers_on_torch_while_its_backend_exports_then_switches(tmp_path, rclpy_available):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    import node_helpers as h
    from omeganet_ros.msg import SceneUnderstanding

    params = {"backend": "onnxruntime", "precision": "fp32", "graph_cache": str(tmp_path), "diagnostics_period": 0.3}
    frames = h.synthetic_frames(4)
    with h.NodeProcess(params) as node, h.RosClient() as client:
        pub = client.publisher(Image, "image")
        scenes = client.collect(SceneUnderstanding, "scene")
        client.collect(DiagnosticArray, "/diagnostics")
        client.wait_for_subscriber(pub, timeout=120, node=node)
        # configure did not wait for the export: it ended on torch, the export still to come
        assert "backend torch (until onnxruntime is exported)" in node.output(), node.output()[-3000:]
        assert "exporting its graphs in the background" in node.output()
        stamp, seen = 1_700_000_000_000_000_000, set()

        def publish_and_check() -> bool:
            nonlocal stamp
            stamp += 100_000_000
            pub.publish(h.image_msg(frames[(stamp // 100_000_000) % len(frames)], stamp))
            client.spin_for(0.3)
            diag = client.latest_diagnostics(node.name) or {}
            seen.add((diag.get("backend"), diag.get("backend_exporting")))
            return "running now" in node.output() and diag.get("backend") == "onnxruntime"

        assert client.spin_until(publish_and_check, 300, node), f"no switch: {seen}\n{node.output()[-3000:]}"
        before = len(scenes)
        assert before > 0  # answered throughout
        assert client.spin_until(lambda: publish_and_check() and len(scenes) > before, 60, node)
        assert list(tmp_path.glob("graphs/onnxruntime-fp32-192x64-*/manifest.json"))  # exported into graph_cache


def test_a_child_that_cannot_start_is_reported_not_waited_for(tmp_path):
    """From a ``__main__`` the spawned child cannot import (here: stdin), it dies while starting: the parent must
    report that, not block writing the networks into the child's start-up pipe (it did, forever)."""
    import subprocess
    import sys

    script = (
        "from omeganet_ros import backends\n"
        "from omeganet_ros.nets import build_networks\n"
        "try:\n"
        f"    backends.export_in_subprocess('onnxruntime', build_networks(), (128, 64), 'fp32', 1, {str(tmp_path)!r})\n"
        "except backends.BackendError as exc:\n"
        "    print('REPORTED', exc)\n"
    )
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=180)
    assert "REPORTED" in done.stdout and "without a word" in done.stdout, done.stdout + done.stderr[-2000:]
