"""The venv's .pth (tools/write_env_pth.py): finds the Makefile's install/ and never shadows a sourced overlay."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pth_text(prefix: Path) -> str:
    spec = importlib.util.spec_from_file_location("write_env_pth", REPO / "tools" / "write_env_pth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pth_text(prefix)


def _run_like_site(line: str) -> None:
    """site.addpackage runs a .pth line starting with 'import' with exec() inside a function."""
    exec(line)


def _with_env(monkeypatch, ament: str, ld: str) -> None:
    monkeypatch.setenv("AMENT_PREFIX_PATH", ament)
    monkeypatch.setenv("LD_LIBRARY_PATH", ld)


def test_pth_appends_the_makefile_install_prefix(tmp_path, monkeypatch):
    ours = tmp_path / "install" / "omeganet_ros"
    _with_env(monkeypatch, "/opt/ros/kilted", "/opt/ros/kilted/lib")
    _run_like_site(_pth_text(ours))
    assert os.environ["AMENT_PREFIX_PATH"] == f"/opt/ros/kilted:{ours}"
    assert os.environ["LD_LIBRARY_PATH"] == f"/opt/ros/kilted/lib:{ours / 'lib'}"
    _run_like_site(_pth_text(ours))  # idempotent (the ROS wheels re-execute the interpreter)
    assert os.environ["AMENT_PREFIX_PATH"] == f"/opt/ros/kilted:{ours}"


def test_pth_leaves_a_sourced_overlay_alone(tmp_path, monkeypatch):
    ours = tmp_path / "install" / "omeganet_ros"
    overlay = tmp_path / "ws" / "install" / "omeganet_ros"
    (overlay / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (overlay / "share" / "ament_index" / "resource_index" / "packages" / "omeganet_ros").touch()
    _with_env(monkeypatch, f"{overlay}:/opt/ros/kilted", f"{overlay / 'lib'}")
    _run_like_site(_pth_text(ours))
    assert os.environ["AMENT_PREFIX_PATH"] == f"{overlay}:/opt/ros/kilted"
    assert os.environ["LD_LIBRARY_PATH"] == f"{overlay / 'lib'}"


def test_makefile_install_has_the_executables_for_ros2_run_and_launch():
    """`make setup`'s install/ holds lib/omeganet_ros/<executable>, run by this venv's Python (issue 15)."""
    import pytest

    lib = REPO / "install" / "omeganet_ros" / "lib" / "omeganet_ros"
    if not (REPO / "install" / "omeganet_ros").is_dir():
        pytest.skip("no install/omeganet_ros: run `make setup` (the Makefile builds it)")
    scripts = sorted(p.name for p in (REPO / "scripts").glob("omeganet_*") if p.suffix == "")  # ros2 run targets
    assert "omeganet_node" in scripts
    for name in scripts:
        path = lib / name
        assert path.is_file() and os.access(path, os.X_OK), path
        assert path.read_text().splitlines()[0] == f"#!{REPO / '.venv' / 'bin' / 'python'}", path
