"""Make the bare-machine venv find the colcon-built interfaces without sourcing anything.

Writes ``omeganet_ros_env.pth`` into the venv's site-packages. At interpreter
start it prepends the colcon install prefix of omeganet_ros to
``AMENT_PREFIX_PATH`` (typesupport lookup, ``omeganet_ros.msg``) and its ``lib/``
to ``LD_LIBRARY_PATH``. The ROS 2 wheels' own ``ros_wheels_bootstrapper.pth``
(processed after this file, alphabetically) re-executes the interpreter with
the updated environment, so the loader sees the new library path.

Usage: python tools/write_env_pth.py INSTALL_PREFIX   (e.g. install/omeganet_ros)
"""
from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

TEMPLATE = (
    "import os; exec({code!r})\n"
)
CODE = """\
for _var, _path in (("AMENT_PREFIX_PATH", {prefix!r}), ("LD_LIBRARY_PATH", {lib!r})):
    _parts = [p for p in os.environ.get(_var, "").split(os.pathsep) if p]
    if _path not in _parts:
        os.environ[_var] = os.pathsep.join([_path] + _parts)
"""


def main() -> None:
    prefix = Path(sys.argv[1]).resolve()
    code = CODE.format(prefix=str(prefix), lib=str(prefix / "lib"))
    target = Path(sysconfig.get_paths()["purelib"]) / "omeganet_ros_env.pth"
    target.write_text(TEMPLATE.format(code=code))
    print(f"write_env_pth: {target} -> {prefix}")


if __name__ == "__main__":
    main()
