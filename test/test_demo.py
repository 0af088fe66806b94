"""``make demo``'s program on a tiny drive: synthetic bag → node → report, with an honest summary."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from omeganet_ros.checkpoint import default_checkpoint_path

pytestmark = pytest.mark.usefixtures("rclpy_available")


def test_demo_runs_end_to_end_and_says_where_everything_is(tmp_path):
    out = tmp_path / "demo_out"
    result = subprocess.run([sys.executable, "-m", "omeganet_ros.cli.demo", "--out", str(out), "--frames", "8",
                             "--size", "192x64", "--network-size", "192x64", "--search-frames", "0", "--quiet",
                             "--node-args", "--ros-args -p num_threads:=1 -p backend:=torch"],
                            env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["timing"]["frames_offered"] == 8 and report["timing"]["frames_processed"] == 6
    assert "skipped" not in report["accuracy"]["depth"] and "skipped" not in report["accuracy"]["semantic"]
    for name in ("report.md", "mosaic.png", "run.mp4", "trajectory.png", "latency.png"):
        assert (out / name).is_file()
        assert str(out / name) in result.stdout, name
    assert "depth: abs_rel" in result.stdout and "latency" in result.stdout
    if default_checkpoint_path() is None:   # no trained model bundled: the demo must say so, twice
        assert "RANDOMLY INITIALISED" in result.stdout and "RANDOM weights" in result.stdout
        assert report["model"]["random_weights"] is True


def test_demo_picks_a_private_ros_domain_unless_one_is_set(monkeypatch, capsys):
    from omeganet_ros.cli import demo

    # A bad --size makes main() return before any ROS work, after the domain is chosen.
    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)
    assert demo.main(["--size", "nonsense", "--out", "unused"]) == 2
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100  # not the default domain 0 a robot's nodes use
    monkeypatch.setenv("ROS_DOMAIN_ID", "42")
    assert demo.main(["--size", "nonsense", "--out", "unused"]) == 2
    assert os.environ["ROS_DOMAIN_ID"] == "42"  # the user's choice is kept
    assert "error" in capsys.readouterr().err
