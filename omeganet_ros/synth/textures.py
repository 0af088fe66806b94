"""Procedural material textures, anchored to surfaces, sampled with mip-mapping.

Every material is a small tileable RGB image (``TILE``×``TILE`` texels, linear
values in [0, 1]) covering ``texel_size × TILE`` metres of surface, plus its
mip pyramid. A surface point's texture coordinates are metres in the
surface's own frame (world for the static world, object-local for moving
objects), so the pattern moves exactly with the geometry. The mip level is
chosen from the pixel footprint on the surface, which keeps distant texture
free of aliasing and therefore photometrically stable across frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import cv2
import numpy as np

TILE = 128
LEVELS = 6  # 128 … 4 texels


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """size×size tileable smooth noise in [0, 1] from a cells×cells random lattice (bicubic upsampling, wrapped)."""
    lattice = rng.random((cells, cells)).astype(np.float32)
    wrapped = np.pad(lattice, 2, mode="wrap")
    scale = size / cells
    up = cv2.resize(wrapped, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    start = int(round(2 * scale))
    return np.clip(up[start:start + size, start:start + size], 0, 1)


def _fractal(rng: np.random.Generator, size: int = TILE, octaves=(4, 8, 16, 32, 64), gain: float = 0.55) -> np.ndarray:
    """Tileable fractal noise in about [0, 1], mean ≈ 0.5."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for cells in octaves:
        out += amp * _value_noise(rng, size, cells)
        total += amp
        amp *= gain
    out /= total
    return (out - out.mean()) / (out.std() + 1e-6) * 0.18 + 0.5


def _tint(gray: np.ndarray, colour, contrast: float) -> np.ndarray:
    """Gray pattern (mean 0.5) → RGB around ``colour`` with the given relative contrast."""
    colour = np.asarray(colour, np.float32)
    return np.clip(colour[None, None, :] * (1.0 + contrast * (gray[..., None] - 0.5) * 2.0), 0, 1)


def _grid_lines(size: int, period: int, width: int, offset_rows: bool = False) -> np.ndarray:
    """Mask of mortar/joint lines on a size×size tile with square cells of ``period`` texels."""
    v, u = np.mgrid[0:size, 0:size]
    if offset_rows:
        u = u + ((v // period) % 2) * (period // 2)
    return ((u % period) < width) | ((v % period) < width)


@dataclass(frozen=True)
class Material:
    name: str
    texel_size: float  # metres per texel at mip level 0


class TextureBank:
    """All material tiles of one world, built from a seed, with a flat mip atlas for vectorised lookups."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.materials: list[Material] = []
        tiles: list[np.ndarray] = []
        self.index: dict[str, int] = {}

        def add(name: str, tile: np.ndarray, texel_size: float) -> None:
            self.index[name] = len(self.materials)
            self.materials.append(Material(name, texel_size))
            tiles.append(np.ascontiguousarray(tile, np.float32))

        noise = lambda *a, **k: _fractal(rng, *a, **k)  # noqa: E731
        add("asphalt", _tint(noise(octaves=(8, 16, 32, 64, 128), gain=0.8), (0.32, 0.32, 0.34), 0.9), 0.04)
        paving = _tint(noise(), (0.62, 0.58, 0.55), 0.5)
        paving[_grid_lines(TILE, 32, 2, offset_rows=True)] *= 0.55
        add("paving", paving, 0.025)
        kerb = _tint(noise(octaves=(8, 16, 64)), (0.72, 0.72, 0.70), 0.5)
        kerb[_grid_lines(TILE, 64, 2)] *= 0.6
        add("kerb", kerb, 0.02)
        add("grass", _tint(noise(octaves=(8, 16, 32, 64, 128), gain=0.85), (0.30, 0.48, 0.16), 1.2), 0.03)
        add("foliage", _tint(noise(octaves=(8, 16, 32, 64), gain=0.9), (0.20, 0.40, 0.12), 1.4), 0.03)
        add("bark", _tint(noise(octaves=(4, 32, 64)), (0.36, 0.27, 0.18), 1.0), 0.01)
        add("metal", _tint(noise(octaves=(4, 8, 16)), (0.55, 0.56, 0.58), 0.5), 0.02)
        add("dark_metal", _tint(noise(octaves=(4, 8, 16)), (0.18, 0.18, 0.2), 0.6), 0.02)
        add("glass", _tint(noise(octaves=(2, 4, 8)), (0.12, 0.16, 0.22), 1.0), 0.03)
        add("tyre", _tint(noise(octaves=(16, 32)), (0.08, 0.08, 0.08), 0.8), 0.01)
        for i, colour in enumerate([(0.70, 0.64, 0.55), (0.55, 0.32, 0.25), (0.75, 0.75, 0.72), (0.45, 0.47, 0.52),
                                    (0.80, 0.70, 0.50), (0.40, 0.36, 0.33)]):
            add(f"facade{i}", self._facade(rng, colour), 4.0 / TILE)
        for i, colour in enumerate([(0.75, 0.10, 0.08), (0.10, 0.20, 0.60), (0.85, 0.85, 0.85), (0.15, 0.15, 0.16),
                                    (0.55, 0.57, 0.60), (0.85, 0.70, 0.10), (0.20, 0.45, 0.25), (0.50, 0.30, 0.15)]):
            paint = _tint(noise(octaves=(4, 8, 16, 64)), colour, 0.35)
            paint[_grid_lines(TILE, 64, 1)] *= 0.5  # panel seams
            add(f"paint{i}", paint, 0.02)
        for i, colour in enumerate([(0.60, 0.10, 0.12), (0.15, 0.25, 0.55), (0.25, 0.25, 0.25), (0.70, 0.65, 0.45),
                                    (0.20, 0.45, 0.30), (0.80, 0.80, 0.78)]):
            add(f"cloth{i}", _tint(noise(octaves=(8, 16, 32, 64)), colour, 0.6), 0.008)
        add("skin", _tint(noise(octaves=(8, 16)), (0.80, 0.62, 0.50), 0.3), 0.005)
        add("sign", self._sign(rng), 0.8 / TILE)
        add("light_housing", self._traffic_light(), 1.0 / TILE)
        add("fence", self._fence(rng), 2.0 / TILE)
        add("wall", _tint(noise(octaves=(4, 16, 64)), (0.60, 0.58, 0.52), 0.7), 0.02)

        # One 2-D atlas: a row of mip levels per material, each level followed by a wrapped copy of its
        # first column/row so that bilinear lookups at the right/bottom edge wrap around (cv2.remap).
        pyramids = [self._pyramid(t) for t in tiles]
        widths = [(TILE >> level) + 1 for level in range(LEVELS)]
        x_offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
        atlas = np.zeros((len(tiles) * (TILE + 1), int(sum(widths)), 3), np.float32)
        for m, pyramid in enumerate(pyramids):
            for level, image in enumerate(pyramid):
                padded = np.pad(image, ((0, 1), (0, 1), (0, 0)), mode="wrap")
                y0, x0 = m * (TILE + 1), x_offsets[level]
                atlas[y0:y0 + padded.shape[0], x0:x0 + padded.shape[1]] = padded
        self.atlas = atlas
        self.x_offsets = x_offsets.astype(np.float32)
        self.texel_sizes = np.array([m.texel_size for m in self.materials], np.float32)
        self.inv_texel = (1.0 / self.texel_sizes).astype(np.float32)

    @staticmethod
    def _facade(rng: np.random.Generator, colour) -> np.ndarray:
        """One 4 m × 4 m facade cell: wall noise with a window (glass, frame, sill)."""
        wall = _tint(_fractal(rng, octaves=(4, 8, 16, 32, 64, 128), gain=0.7), colour, 0.45)
        v, u = np.mgrid[0:TILE, 0:TILE]
        glass = _tint(_fractal(rng, octaves=(2, 4, 8)), (0.16, 0.20, 0.26), 1.0)
        x0, x1, y0, y1 = 34, 94, 30, 96
        window = (u >= x0) & (u < x1) & (v >= y0) & (v < y1)
        frame = ((u >= x0 - 4) & (u < x1 + 4) & (v >= y0 - 4) & (v < y1 + 6)) & ~window
        wall[frame] = wall[frame] * 0.55 + 0.3
        wall[window] = glass[window]
        mullion = window & ((np.abs(u - 64) < 2) | (np.abs(v - 60) < 2))
        wall[mullion] = 0.8
        return wall

    @staticmethod
    def _sign(rng: np.random.Generator) -> np.ndarray:
        v, u = np.mgrid[0:TILE, 0:TILE]
        r = np.hypot(u - 63.5, v - 63.5)
        sign = np.ones((TILE, TILE, 3), np.float32) * 0.85
        sign[r < 60] = (0.8, 0.1, 0.1)
        sign[r < 46] = (0.95, 0.95, 0.95)
        digits = (np.abs(u - 50) < 6) & (np.abs(v - 64) < 20) | (np.abs(u - 78) < 9) & (np.abs(v - 64) < 20) & ~((np.abs(u - 78) < 3) & (np.abs(v - 64) < 14))
        sign[digits & (r < 46)] = 0.05
        return sign

    @staticmethod
    def _traffic_light() -> np.ndarray:
        v, u = np.mgrid[0:TILE, 0:TILE]
        out = np.full((TILE, TILE, 3), 0.12, np.float32)
        for row, colour in zip((22, 64, 106), ((0.9, 0.1, 0.05), (0.9, 0.7, 0.05), (0.1, 0.8, 0.3))):
            out[np.hypot(u - 23, v - row) < 15] = colour  # the housing is 0.36 m wide: 46 texels
        return out

    @staticmethod
    def _fence(rng: np.random.Generator) -> np.ndarray:
        wood = _tint(_fractal(rng, octaves=(4, 16, 64)), (0.55, 0.45, 0.32), 0.7)
        u = np.arange(TILE)[None, :].repeat(TILE, 0)
        wood[(u % 16) < 2] *= 0.4
        return wood

    @staticmethod
    def _pyramid(tile: np.ndarray) -> list[np.ndarray]:
        levels = [tile]
        for _ in range(1, LEVELS):
            prev = levels[-1]
            levels.append(0.25 * (prev[0::2, 0::2] + prev[1::2, 0::2] + prev[0::2, 1::2] + prev[1::2, 1::2]))
        return levels

    def material(self, name: str) -> int:
        return self.index[name]

    def sample(self, material: np.ndarray, u: np.ndarray, v: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """Trilinear lookup. ``material`` (N,) ints, ``u``, ``v`` (N,) metres on the surface,
        ``footprint`` (N,) metres covered by one pixel on the surface → (N, 3) float32 RGB in [0, 1]."""
        n = material.shape[0]
        cols = math.gcd(n, 4096)
        if cols < 64:  # awkward sizes: pad to whole rows of 1024 for cv2.remap's map size limits
            pad = -n % 1024
            material, u, v, footprint = (np.pad(a, (0, pad)) for a in (material, u, v, footprint))
            cols = 1024
        rows = material.shape[0] // cols
        inv_texel = self.inv_texel[material]
        tu = u * inv_texel
        tv = v * inv_texel
        level = footprint * inv_texel
        np.maximum(level, 1.0, out=level)
        np.log2(level, out=level)
        np.minimum(level, LEVELS - 1.0001, out=level)
        lo = np.floor(level)
        frac = (level - lo).reshape(rows, cols, 1)
        row0 = (material * (TILE + 1)).astype(np.float32)
        colours = []
        for lv in (lo, lo + 1):
            scale = np.exp2(-lv)
            size = TILE * scale
            # Level l starts at x = Σ_{i<l} (TILE·2^−i + 1) = 2·TILE·(1 − 2^−l) + l in the atlas.
            x_off = 2 * TILE * (1 - scale) + lv
            x = tu * scale - 0.5
            y = tv * scale - 0.5
            x -= np.floor(x / size) * size  # wrap into the tile
            y -= np.floor(y / size) * size
            x += x_off
            y += row0
            colours.append(cv2.remap(self.atlas, x.reshape(rows, cols), y.reshape(rows, cols), cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))
        out = colours[1] - colours[0]
        out *= frac
        out += colours[0]
        return out.reshape(-1, 3)[:n]
