"""A seeded synthetic driving sequence: configuration, world construction and the per-frame iterator.

Conventions of the output (see also the README section "Synthetic world"):

* ``pose``: camera-to-world 4×4 in the REP 103 optical frame (x right, y
  down, z forward). The world frame is the camera frame of frame 0 (KITTI
  odometry convention), so ``pose`` of frame 0 is the identity.
* ``depth``: z-depth in metres, float32; sky is ``+inf`` (REP 118 "too far").
* ``flow_fw`` / ``flow_bw``: pixels to frame t+1 / t−1, float32 H×W×2, NaN
  where undefined (out of view, occluded, or facing away in the other frame).
* ``semantic``: Cityscapes trainIds (uint8); ``instance``: uint16, one id per
  object (buildings, trees, poles, signs, vehicles, people), 0 for road,
  sidewalk, terrain and sky; ``motion``: uint8 1 on objects moving in the world.
* Default intrinsics are KITTI-like, as monodepth2 normalises them:
  fx = 0.58·W, fy = 1.92·H, principal point at the image centre ((W−1)/2, (H−1)/2).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterator

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from .ground_truth import FlowSolver, moving_pixels
from .renderer import Render, Renderer
from .road import RoadProfile
from .scene import layout_street
from .textures import TextureBank
from .trajectory import make_track

GENERATOR_VERSION = "1.0.0"


@dataclass
class SynthConfig:
    """Everything that defines a sequence; two equal configs give identical sequences."""

    frames: int = 100
    seed: int = 0
    width: int = 640
    height: int = 192
    fps: float = 10.0
    start_time_ns: int = 1_700_000_000_000_000_000
    intrinsics: tuple[float, float, float, float] | None = None  # fx, fy, cx, cy in pixels; None: KITTI-like
    camera_height: float = 1.65  # metres above the road
    speed_range: tuple[float, float] = (0.5, 1.5)  # metres per frame
    curviness: float = 1.0  # scales the road's turns (0: straight)
    sway: float = 1.0  # scales the camera's lateral sway, pitch, roll and bounce
    draw_distance: float = 160.0  # metres; objects beyond are not drawn (the ground and sky are)
    traffic_density: float = 1.0
    pedestrian_density: float = 1.0
    follower: bool = True  # a car ahead at the camera's speed
    exposure_jitter: float = 0.0  # std of the per-frame log-gain (0: constant exposure)
    noise_std: float = 0.0  # std of Gaussian pixel noise in 8-bit units
    pipeline: bool = True  # render the next frame in a worker thread (same output, faster on 2+ cores)

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"image size must be at least 8×8, got {self.width}×{self.height}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.camera_height <= 0.2:
            raise ValueError(f"camera height must be above 0.2 m, got {self.camera_height}")

    def K(self) -> np.ndarray:
        """3×3 intrinsics in pixels."""
        if self.intrinsics is None:
            fx, fy = 0.58 * self.width, 1.92 * self.height
            cx, cy = (self.width - 1) / 2, (self.height - 1) / 2
        else:
            fx, fy, cx, cy = (float(v) for v in self.intrinsics)
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)

    def stamp_ns(self, index: int) -> int:
        return int(self.start_time_ns + round(index * 1e9 / self.fps))


def parse_size(text: str) -> tuple[int, int]:
    """'640x192' → (640, 192)."""
    try:
        w, h = text.lower().replace("×", "x").split("x")
        return int(w), int(h)
    except ValueError:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 640x192), got {text!r}") from None


class SyntheticSequence:
    """A street, a camera track and the objects, built from ``config.seed``; iterate to get frames."""

    def __init__(self, config: SynthConfig):
        self.config = config
        rng = np.random.default_rng(config.seed)
        seeds = rng.integers(0, 2**31, size=6)
        self.K = config.K()
        self.road = RoadProfile.random(np.random.default_rng(seeds[0]), road_y=config.camera_height,
                                       curviness=config.curviness,
                                       length=(config.frames + 2) * config.speed_range[1] * 1.1 + config.draw_distance + 400)
        self.track = make_track(np.random.default_rng(seeds[1]), self.road, config.frames, config.speed_range,
                                sway=config.sway)
        self.textures = TextureBank(int(seeds[2]))
        self.scene = layout_street(np.random.default_rng(seeds[3]), self.road, self.textures, self.track, config.frames,
                                   config.draw_distance, config.traffic_density, config.pedestrian_density,
                                   config.follower)
        sun_rng = np.random.default_rng(seeds[4])
        azimuth = sun_rng.uniform(0, 2 * np.pi)
        elevation = sun_rng.uniform(np.deg2rad(25), np.deg2rad(60))
        sun = np.array([np.cos(elevation) * np.sin(azimuth), -np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
        self.renderer = Renderer(config.width, config.height, self.K, self.road, self.scene, self.textures, sun,
                                 config.draw_distance, sky_seed=int(seeds[5]))
        self._noise_seed = int(seeds[5])
        self.flow_solver = FlowSolver(self.scene, self.K, config.width, config.height)
        self.world_from_map = np.linalg.inv(self.track.at(0))

    def __len__(self) -> int:
        return self.config.frames

    def render(self, k: int) -> Render:
        """Render frame k (−1 … frames) in the map frame."""
        position, yaw = self.scene.object_state(self.road, self.track, k)
        return self.renderer.render(k, self.track.at(k), position, yaw)

    def pose(self, k: int) -> np.ndarray:
        """Camera-to-world 4×4 of frame k (world = camera frame of frame 0)."""
        if k == 0:
            return np.eye(4)
        return self.world_from_map @ self.track.at(k)

    def _image(self, render: Render) -> np.ndarray:
        rgb = render.rgb
        cfg = self.config
        if cfg.exposure_jitter > 0 or cfg.noise_std > 0:
            rng = np.random.default_rng([self._noise_seed, render.k + 1])
            if cfg.exposure_jitter > 0:
                rgb = rgb * np.float32(np.exp(rng.normal(0, cfg.exposure_jitter)))
            if cfg.noise_std > 0:
                rgb = rgb + rng.normal(0, cfg.noise_std / 255.0, size=rgb.shape).astype(np.float32)
        image = cv2.convertScaleAbs(rgb.reshape(cfg.height, cfg.width, 3), alpha=255.0)  # rounds and saturates
        return image

    def frame(self, index: int, previous: Render, current: Render, following: Render) -> dict:
        """The output dict of frame ``index`` from the renders of index−1, index, index+1."""
        cfg = self.config
        h, w = cfg.height, cfg.width
        flow_fw, flow_bw = self.flow_solver.flows(current, [following, previous])
        return {
            "index": index,
            "stamp_ns": cfg.stamp_ns(index),
            "image": self._image(current),
            "depth": current.depth.reshape(h, w),
            "flow_fw": flow_fw.reshape(h, w, 2),
            "flow_bw": flow_bw.reshape(h, w, 2),
            "semantic": current.train_id.reshape(h, w),
            "instance": current.instance.reshape(h, w),
            "motion": moving_pixels(self.scene, current).astype(np.uint8).reshape(h, w),
            "pose": self.pose(index),
            "K": self.K.copy(),
        }

    def __iter__(self) -> Iterator[dict]:
        """Frames 0 … frames−1 as dicts (see :meth:`frame`); each frame is rendered once.

        With ``config.pipeline`` the next frame is rendered in a worker thread while this one's
        flow and labels are computed (NumPy and OpenCV release the GIL, so two cores overlap);
        the output is identical either way.
        """
        frames = self.config.frames
        if not self.config.pipeline:
            previous, current = self.render(-1), self.render(0)
            for index in range(frames):
                following = self.render(index + 1)
                yield self.frame(index, previous, current, following)
                previous, current = current, following
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-render") as pool:
            pending = pool.submit(self.render, 0)
            previous = self.render(-1)
            current = pending.result()
            pending = pool.submit(self.render, 1)
            for index in range(frames):
                following = pending.result()
                if index + 2 <= frames:
                    pending = pool.submit(self.render, index + 2)
                yield self.frame(index, previous, current, following)
                previous, current = current, following

    def meta(self) -> dict:
        cfg = self.config
        return {
            "generator": "omeganet_ros.synth",
            "generator_version": GENERATOR_VERSION,
            "seed": cfg.seed,
            "size": [cfg.width, cfg.height],
            "rate": cfg.fps,
            "frames": cfg.frames,
            "stamps_ns": [cfg.stamp_ns(i) for i in range(cfg.frames)],
            "classes": list(CLASS_NAMES),
            "depth_metric": True,
            "depth_units": "metres (z-depth); sky = +inf",
            "flow": "pixels; flow_fw t->t+1, flow_bw t->t-1; NaN where undefined (out of view, occluded)",
            "pose_convention": "camera-to-world, REP 103 optical frame; world = camera frame of frame 0",
            "camera_frame_id": "camera_optical_frame",
            "world_frame_id": "world",
            "intrinsics": self.K.tolist(),
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        }


def iterate_frames(frames: int = 10, seed: int = 0, size: tuple[int, int] = (640, 192), **options) -> Iterator[dict]:
    """In-memory frames of a new sequence (no disk): see :class:`SynthConfig` for ``options``."""
    config = SynthConfig(frames=frames, seed=seed, width=size[0], height=size[1], **options)
    return iter(SyntheticSequence(config))
