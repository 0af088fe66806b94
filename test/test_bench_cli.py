"""omeganet-bench: one entry per backend × option × size × threads, the yardstick beside it, the load recorded."""
import json

import pytest

from omeganet_ros.cli import bench


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
