"""Repoint the ROS 2 PyPI wheels' CMake exports at this interpreter (bare-machine set-up only).

The Kilted wheels' ``export_*__rosidl_generator_pyExport.cmake`` files name the
Python and NumPy include directories of the machine that built them
(``/opt/python/cp311-cp311/...``), so building our interfaces against them fails.
This rewrites those paths to the running interpreter's; it is idempotent.

Usage: python tools/fix_ros_wheels.py PREFIX   (PREFIX = the venv)
"""
from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PYTHON = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
BUILD_NUMPY = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(_core/)?include")


def fix(prefix: Path) -> int:
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in (prefix / "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        new = BUILD_NUMPY.sub(numpy_include, BUILD_PYTHON.sub(python_include, text))
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


if __name__ == "__main__":
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    print(f"fix_ros_wheels: rewrote {fix(prefix)} CMake export file(s) under {prefix}/share")
