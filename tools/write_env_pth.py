"""Make the bare-machine venv find the colcon-built interfaces without sourcing anything.

Writes ``omeganet_ros_env.pth`` into the venv's site-packages. At interpreter
start it appends the colcon install prefix of omeganet_ros to
``AMENT_PREFIX_PATH`` (typesupport lookup, ``omeganet_ros.msg``, ``ros2 launch``)
and its ``lib/`` to ``LD_LIBRARY_PATH`` — unless another prefix already on
``AMENT_PREFIX_PATH`` provides omeganet_ros (a sourced colcon workspace overlay):
then the overlay is used as it is and nothing is added, so the venv never
shadows it. The ROS 2 wheels' own ``ros_wheels_bootstrapper.pth`` (processed
after this file, alphabetically) re-executes the interpreter with the updated
environment, so the loader sees the new library path.

Usage: python tools/write_env_pth.py INSTALL_PREFIX   (e.g. install/omeganet_ros)
"""
from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

# A fresh globals dict: site.addpackage exec()s the line in its own function scope, where the
# comprehensions below would not see names assigned by the code.
TEMPLATE = (
    "import os; exec({code!r}, {{'os': os}})\n"
)
# The ament resource index marker of a prefix that provides the package.
CODE = """\
_ament = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
_marker = os.path.join("share", "ament_index", "resource_index", "packages", "omeganet_ros")
if not any(p != {prefix!r} and os.path.exists(os.path.join(p, _marker)) for p in _ament):
    for _var, _path in (("AMENT_PREFIX_PATH", {prefix!r}), ("LD_LIBRARY_PATH", {lib!r})):
        _parts = [p for p in os.environ.get(_var, "").split(os.pathsep) if p]
        if _path not in _parts:
            os.environ[_var] = os.pathsep.join(_parts + [_path])
"""


def pth_text(prefix: Path) -> str:
    """The one line of the .pth file for the install prefix ``prefix``."""
    return TEMPLATE.format(code=CODE.format(prefix=str(prefix), lib=str(prefix / "lib")))


def main() -> None:
    prefix = Path(sys.argv[1]).resolve()
    target = Path(sysconfig.get_paths()["purelib"]) / "omeganet_ros_env.pth"
    target.write_text(pth_text(prefix))
    print(f"write_env_pth: {target} -> {prefix}")


if __name__ == "__main__":
    main()
