"""Starting the node for a replay: ``python -m omeganet_ros.ros.node`` as a child process with sim time."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path


class NodeDiedError(RuntimeError):
    """The launched node exited; the message holds the end of its log."""


class LaunchedNode:
    """The node as a subprocess; its stdout/stderr go to ``log_path``. Use as a context manager.

    ``image_topic`` / ``camera_info_topic``: where the replay publishes (the node's inputs are remapped
    there when they differ); ``compressed``: the frames are CompressedImage (node input ``image/compressed``).
    """

    def __init__(self, log_path: Path, node_name: str = "omeganet_node", namespace: str = "/",
                 node_args: str | list[str] = "", image_topic: str = "image", camera_info_topic: str = "camera_info",
                 compressed: bool = False):
        extra = shlex.split(node_args) if isinstance(node_args, str) else list(node_args)
        ros_args = ["-r", f"__node:={node_name}", "-p", "use_sim_time:=true"]
        if namespace.strip("/"):
            ros_args += ["-r", f"__ns:=/{namespace.strip('/')}"]
        node_input = "image/compressed" if compressed else "image"
        if image_topic != node_input:
            ros_args += ["-r", f"{node_input}:={image_topic}"]
        if camera_info_topic != "camera_info":
            ros_args += ["-r", f"camera_info:={camera_info_topic}"]
        if "--ros-args" in extra:  # the user's own --ros-args go last so that they win
            cut = extra.index("--ros-args")
            ros_args += extra[cut + 1:]
            extra = extra[:cut]
        self.command = [sys.executable, "-m", "omeganet_ros.ros.node", *extra, "--ros-args", *ros_args]
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ), start_new_session=True)

    def log_tail(self, lines: int = 25) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> bool:
        """True while running; raises :class:`NodeDiedError` with the log's end once it has exited."""
        code = self.process.poll()
        if code is not None:
            raise NodeDiedError(f"the node exited with code {code} (command: {shlex.join(self.command)}); "
                                f"end of {self.log_path}:\n{self.log_tail()}")
        return True

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (a clean shutdown), then SIGTERM, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    self.process.send_signal(sig)
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> "LaunchedNode":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
