"""The street: a gently curving road with lanes, kerbs, raised sidewalks and grass verges.

Map frame (internal to the generator): x right, y down, z along the road at
its start; metres. The ground is horizontal: the road surface is the plane
``y = road_y`` and sidewalks/verges the plane ``y = road_y − kerb_height``.

The road's centre line is ``x = centre(z)``, a sum of a few sinusoids (turns
of up to ≈ 20°). Everything across the street is placed by its *offset*
``x − centre(z)`` (metres, positive to the right of the driving direction):

========================  ==============================================
``|offset| < half_width``   road (lanes and parking strips), markings in texture
``half_width`` (vertical)   kerb face, 0.15 m high (class sidewalk)
``half_width … verge``      sidewalk
``verge … ∞``               grass verge (class terrain); buildings stand on it
========================  ==============================================
"""
from __future__ import annotations

import numpy as np

LANE_WIDTH = 3.2
# Lane centres (offsets, metres). Traffic drives on the right: positive offsets go +z.
LANES_FORWARD = (1.6, 4.8)
LANES_ONCOMING = (-1.6, -4.8)
PARKING_OFFSET = 7.4
HALF_WIDTH = 8.5
SIDEWALK_OUTER = 12.0
KERB_HEIGHT = 0.15

# Ground surface ids (the renderer gives every object part its own id above these).
SURFACE_SKY = 0
SURFACE_ROAD = 1
SURFACE_RAISED = 2  # sidewalk and verge plane
SURFACE_KERB_LEFT = 3
SURFACE_KERB_RIGHT = 4
FIRST_PART_SURFACE = 8


class RoadProfile:
    """Centre line ``x = Σ a·sin(2π z / L + φ) − (value at z=0)``; ``road_y`` is the road plane (y down).

    The centre line is tabulated every ``TABLE_STEP`` metres over ``[z_min, z_max]`` and linearly
    interpolated (clamped outside): that interpolant *is* the road used everywhere, which keeps
    per-pixel evaluation cheap.
    """

    TABLE_STEP = 0.05

    def __init__(self, amplitudes, wavelengths, phases, road_y: float, z_min: float = -500.0, z_max: float = 3000.0):
        self.amplitudes = np.asarray(amplitudes, np.float64)
        self.wavelengths = np.asarray(wavelengths, np.float64)
        self.phases = np.asarray(phases, np.float64)
        self.road_y = float(road_y)
        self.z_min = float(z_min)
        count = int(np.ceil((z_max - z_min) / self.TABLE_STEP)) + 2
        z = self.z_min + self.TABLE_STEP * np.arange(count)
        k = 2 * np.pi / self.wavelengths
        self._centre = (self.amplitudes * (np.sin(z[:, None] * k + self.phases) - np.sin(self.phases))).sum(-1)
        self._slope = (self.amplitudes * k * np.cos(z[:, None] * k + self.phases)).sum(-1)

    @classmethod
    def random(cls, rng: np.random.Generator, road_y: float, curviness: float = 1.0, length: float = 3000.0) -> "RoadProfile":
        amplitudes = rng.uniform(6.0, 22.0, size=3) * curviness * np.array([1.0, 0.6, 0.3])
        wavelengths = rng.uniform(250.0, 600.0, size=3) * np.array([1.0, 0.7, 0.45])
        phases = rng.uniform(0, 2 * np.pi, size=3)
        return cls(amplitudes, wavelengths, phases, road_y, z_max=length)

    def _lookup(self, table: np.ndarray, z):
        pos = (np.asarray(z, dtype=np.float64) - self.z_min) / self.TABLE_STEP
        pos = np.clip(pos, 0, len(table) - 1.000001)
        i = pos.astype(np.int64)
        frac = pos - i
        return table[i] * (1 - frac) + table[i + 1] * frac

    def centre(self, z):
        return self._lookup(self._centre, z)

    def slope(self, z):
        """d centre / dz."""
        return self._lookup(self._slope, z)

    def heading(self, z):
        """Yaw (radians, about +y) of the road direction at z; 0 = +z."""
        return np.arctan(self.slope(z))

    def offset(self, x, z):
        return x - self.centre(z)

    @property
    def raised_y(self) -> float:
        return self.road_y - KERB_HEIGHT

    def intersect(self, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray):
        """Ray cast the ground. ``origin`` (3,) map frame; ray directions as components (N,) whose
        parameter is the depth. Returns ``t`` (N,) float32 (inf where the ray misses the ground) and
        ``surface`` (N,) int32 ids (SURFACE_*)."""
        n = dx.shape[0]
        t = np.full(n, np.inf, np.float32)
        surface = np.zeros(n, np.int32)
        idx = np.nonzero(dy > 1e-9)[0]
        ddx, ddy, ddz = dx[idx].astype(np.float64), dy[idx].astype(np.float64), dz[idx].astype(np.float64)
        tr = (self.raised_y - origin[1]) / ddy
        ts = (self.road_y - origin[1]) / ddy
        off_s = origin[0] + tr * ddx - self.centre(origin[2] + tr * ddz)
        off_r = origin[0] + ts * ddx - self.centre(origin[2] + ts * ddz)
        on_raised = np.abs(off_s) >= HALF_WIDTH
        on_road = ~on_raised & (np.abs(off_r) < HALF_WIDTH)
        kerb = ~on_raised & ~on_road
        t_hit = np.where(on_raised, tr, ts)
        surf = np.where(on_raised, SURFACE_RAISED, SURFACE_ROAD)
        if kerb.any():
            # The ray passes the kerb between the two planes: solve offset(t) = ±half_width (regula falsi).
            k = np.nonzero(kerb)[0]
            side = np.sign(off_r[k])
            a, b = tr[k], ts[k]
            fa = off_s[k] * side - HALF_WIDTH
            fb = off_r[k] * side - HALF_WIDTH
            kx, kz = ddx[k], ddz[k]
            tm = a
            for _ in range(3):
                tm = a - fa * (b - a) / np.where(np.abs(fb - fa) > 1e-12, fb - fa, 1e-12)
                tm = np.clip(tm, np.minimum(a, b), np.maximum(a, b))
                fm = (origin[0] + tm * kx - self.centre(origin[2] + tm * kz)) * side - HALF_WIDTH
                inside = fm < 0  # still over the road band: the root lies towards b
                a = np.where(inside, tm, a)
                fa = np.where(inside, fm, fa)
                b = np.where(inside, b, tm)
                fb = np.where(inside, fb, fm)
            t_hit[k] = tm
            surf[k] = np.where(side < 0, SURFACE_KERB_LEFT, SURFACE_KERB_RIGHT)
        t[idx] = t_hit
        surface[idx] = surf
        return t, surface
