"""omeganet-bench: one entry per backend × option × size × threads, the yardstick beside it, the load recorded."""
import json

import pytest

from omeganet_ros import engine as engine_module
from omeganet_ros.cli import bench
from omeganet_ros.pose_proxy import ROTATION_FROM_FLOW_DEFAULT


def test_bench_reports_each_thread_count_with_yardstick_and_load(capsys):
    code = bench.main(["--json", "--sizes", "128x64", "--options", "channels_last", "--threads", "1,2",
                       "--iters", "1", "--warmup", "1", "--no-flops", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    entries = report["results"]
    assert [(e["backend"], e["option"], e["threads"], e["width"], e["height"]) for e in entries] == [
        ("torch", "channels_last", 1, 128, 64), ("torch", "channels_last", 2, 128, 64)]
    for e in entries:
        assert e["ms_per_frame"] > 0 and e["yardstick_ms_per_frame"] > 0 and e["cpu_ms_per_frame"] > 0
        assert e["other_load_cores"] is None or e["other_load_cores"] >= 0
        assert ("warning" in e) == (e["other_load_cores"] is not None and e["other_load_cores"] > bench.LOADED_CORES)
    assert ("warnings" in report) == any("warning" in e for e in entries)
    assert report["machine"]["cpu_model"]
    assert all(e["rotation_from_flow"] is ROTATION_FROM_FLOW_DEFAULT for e in entries)  # times what the node runs


def test_bench_times_the_ego_motion_the_node_runs_or_camnet_alone(capsys, monkeypatch):
    """--rotation-from-flow (the node's default) reaches the engine that is timed and its fp32 reference."""
    seen = []

    class Spy(engine_module.SceneEngine):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("rotation_from_flow"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(engine_module, "SceneEngine", Spy)
    for flag, want in (("--rotation-from-flow", True), ("--no-rotation-from-flow", False)):
        seen.clear()
        assert bench.main(["--single", "128x64:torch:fp32", "--device", "cpu", "--iters", "1", "--warmup", "1",
                           "--threads", "1", flag]) == 0
        entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert entry["rotation_from_flow"] is want
        assert seen == [want, want]


def test_bench_rejects_bad_thread_counts(capsys):
    assert bench.main(["--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_busy_cpu_seconds_counts_this_process_work():
    before = bench.busy_cpu_seconds()
    if before is None:
        pytest.skip("no /proc/stat on this system (not Linux): other processes' CPU use is not measured")
    x = 0
    for i in range(3_000_000):
        x += i
    assert bench.busy_cpu_seconds() - before > 0.05


def test_bench_reports_every_backend_with_its_own_yardstick_and_accuracy(capsys, monkeypatch, tmp_path):
    from omeganet_ros.backends import available_backends

    if "onnxruntime" not in available_backends():
        pytest.skip("onnxruntime is not installed (pip install 'omeganet_ros[onnxruntime]')")
    monkeypatch.setenv("OMEGANET_CACHE_DIR", str(tmp_path))
    code = bench.main(["--json", "--sizes", "128x64", "--backends", "torch,onnxruntime", "--options", "fp32,bf16,int8",
                       "--threads", "1", "--iters", "2", "--warmup", "1", "--no-flops", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    entries = report["results"]
    # onnxruntime has no bf16 and neither has int8 (openvino only): skipped, not an error
    assert [(e["backend"], e["option"]) for e in entries] == [("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32")]
    assert "errors" not in report and "onnxruntime" in report["backends_installed"]
    for e in entries:
        assert e["yardstick_ms_per_frame"] > 0 and e["engine_ms_per_frame"] > 0
        assert e["ms_per_frame"] >= e["engine_ms_per_frame"] * 0.9  # the pipeline includes the engine
        diff = e["max_diff_vs_torch_fp32"]
        assert set(diff) >= {"depth_rel_max", "flow_px_max", "semantic_agree", "ego_rotation_deg"}
    ort = entries[2]
    assert ort["backend_precision"] == "fp32" and ort["max_diff_vs_torch_fp32"]["depth_rel_max"] < 1e-4
    assert "export_s" in ort  # exported in this run (an empty cache)


def test_bench_rejects_unknown_backends(capsys):
    assert bench.main(["--backends", "tensorrt", "--no-flops"]) == 2
    assert "tensorrt" in capsys.readouterr().err
