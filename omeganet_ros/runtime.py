"""Process settings of the entry points that run inference (the node, ``omeganet-infer``), applied before torch loads.

OpenMP's default wait policy lets idle worker threads spin for a while: on a robot
computer whose cores other processes also use, the spinning threads compete with
the work and inflate wall time many times over (measured: a 2-thread depth network
at load 13 took 11.7 s per frame spinning vs 1.9 s passive). The policy is read
once, when the OpenMP runtime loads with torch, so it must be in the environment
before ``import torch``.

:func:`machine_record` is the other side of a measurement: where a benchmark's figure was taken.
"""
from __future__ import annotations

import os
import platform
import sys


def prefer_passive_openmp() -> bool:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy; True when it is in effect.

    False (and nothing changed) when torch is already imported: its OpenMP runtime kept the policy it started with.
    """
    if "torch" in sys.modules:
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def machine_record() -> dict:
    """Where a benchmark figure was measured, for its JSON: the 1/5/15-minute load averages (a figure taken
    while other jobs ran is not an idle-machine figure), the torch version and the CPU architecture."""
    import torch

    return {"load_average": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__,
            "machine": platform.machine()}
