"""Fast defaults of the inference entry points: passive OpenMP threads, precision 'auto'."""
import os
import subprocess
import sys

import pytest

from omeganet_ros import engine as engine_mod
from omeganet_ros.engine import SceneEngine


def _policy_after_import(module: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = (f"import {module}, os; "
            "import torch; print(os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_infer_entry_point_sets_passive_openmp_before_torch_and_respects_the_user():
    assert _policy_after_import("omeganet_ros.cli.infer") == "PASSIVE"
    assert _policy_after_import("omeganet_ros.cli.infer", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_prefer_passive_openmp_is_a_no_op_once_torch_is_loaded(monkeypatch):
    from omeganet_ros.runtime import prefer_passive_openmp

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "torch" in sys.modules  # this test process imported it above
    assert prefer_passive_openmp() is False and "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(engine_mod, "cpu_has_fast_bf16", lambda: native_bf16)
    engine = SceneEngine("random", device="cpu", precision="auto", size=(128, 64))
    assert engine.precision == expected and engine.describe()["precision"] == expected
