"""MP4 writing: H.264 through PyAV when it is available, else OpenCV's MPEG-4 Part 2 (mp4v)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class Mp4Writer:
    """Writes H×W×3 uint8 RGB frames to an MP4 file; use as a context manager.

    The first frame fixes the size (odd sizes are padded to even, as H.264
    with yuv420p needs). ``codec`` says what was used ("h264" or "mp4v").
    """

    def __init__(self, path: str | Path, fps: float = 10.0):
        self.path = Path(path)
        if fps <= 0:
            raise ValueError(f"video frame rate must be positive, got {fps}")
        self.fps = float(fps)
        self.codec: str | None = None
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._container = self._stream = self._cv_writer = None

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._size = (width, height)
        try:
            import av
            from fractions import Fraction

            container = av.open(str(self.path), mode="w")
            stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "23", "preset": "veryfast"}
            self._container, self._stream, self.codec = container, stream, "h264"
            return
        except Exception:  # PyAV missing or built without libx264: fall back to OpenCV
            if self._container is not None:
                self._container.close()
            self._container = self._stream = None
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"cannot open video file {self.path} for writing (neither PyAV/libx264 nor OpenCV mp4v work)")
        self._cv_writer, self.codec = writer, "mp4v"

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame, np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"video frames must be H×W×3 uint8 RGB, got shape {frame.shape}")
        height, width = frame.shape[:2]
        even = (width + width % 2, height + height % 2)
        if self._size is None:
            self._open(*even)
        if (width + width % 2, height + height % 2) != self._size:
            raise ValueError(f"video frame {self.frames} is {width}×{height}; the video is {self._size[0]}×{self._size[1]}")
        if (width, height) != self._size:
            frame = cv2.copyMakeBorder(frame, 0, self._size[1] - height, 0, self._size[0] - width, cv2.BORDER_CONSTANT)
        if self._stream is not None:
            import av

            for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                self._container.mux(packet)
        else:
            self._cv_writer.write(np.ascontiguousarray(frame[..., ::-1]))
        self.frames += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._stream = self._container = None
        if self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
