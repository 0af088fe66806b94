"""Shared pytest fixtures: paths, the real-data folder, an isolated ROS 2 environment."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Every test session gets its own DDS domain and log folder, loopback only, so that
# concurrent runs on one machine never see each other and nothing leaves the host.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_local.xml"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _ros_log_dir(tmp_path_factory):
    os.environ["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (only present beside the repository on dev/CI machines)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def rclpy_available():
    """Skips ROS tests where rclpy is missing (a pip-only install of the core)."""
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"rclpy is not importable ({exc}); run `make test` for the ROS 2 tests")
    return True
