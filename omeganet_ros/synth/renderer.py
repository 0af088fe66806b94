"""Vectorised ray casting of the street: per pixel the nearest surface, its depth, class, instance and colour.

One ray per pixel centre. Rays are ``K⁻¹ (u, v, 1)`` (z = 1 in the camera), so
the ray parameter of a hit is its z-depth in metres. Objects are culled to the
view frustum and each part is tested only on the pixels of its projected
bounding rectangle (clipped at the near plane); all (pixel, part) pairs of a
primitive kind are tested in one vectorised pass. Arrays are kept as separate
x/y/z components: NumPy's N×3 @ 3×3 products are an order of magnitude slower.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import ROAD, SIDEWALK, SKY, TERRAIN
from .objects import BOX, CYLINDER, SPHERE
from .road import (FIRST_PART_SURFACE, HALF_WIDTH, LANE_WIDTH, SIDEWALK_OUTER, SURFACE_KERB_LEFT, SURFACE_KERB_RIGHT,
                   SURFACE_RAISED, SURFACE_ROAD, SURFACE_SKY, RoadProfile)
from .scene import Scene
from .textures import TextureBank

NEAR = 0.05  # metres
_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if np.abs(_CORNERS[a] - _CORNERS[b]).sum() == 2])


@dataclass
class Render:
    """One frame as seen by the camera; arrays are flat over H·W pixels (row-major)."""

    k: int
    pose: np.ndarray  # 4×4 camera-to-map
    depth: np.ndarray  # float32 z-depth, metres; inf for sky
    surface: np.ndarray  # int32 surface id (road.SURFACE_*, or FIRST_PART_SURFACE + part index)
    part: np.ndarray  # int64 part index, −1 for ground and sky
    normal: np.ndarray  # 3×N float32 map-frame unit normals (zeros for sky)
    rgb: np.ndarray  # N×3 float32 colour in [0, 1]
    train_id: np.ndarray  # uint8 Cityscapes trainIds
    instance: np.ndarray  # uint16, 0 for ground and sky
    object_position: np.ndarray  # O×3 map positions of all objects at this frame
    object_yaw: np.ndarray  # (O,) yaws at this frame


def _to_local(c, s, x, y, z):
    """R_y(yaw)ᵀ applied to components (map axes → object axes)."""
    return c * x - s * z, y, s * x + c * z


def _to_map(c, s, x, y, z):
    """R_y(yaw) applied to components (object axes → map axes)."""
    return c * x + s * z, y, -s * x + c * z


class Renderer:
    def __init__(self, width: int, height: int, K: np.ndarray, road: RoadProfile, scene: Scene, textures: TextureBank,
                 sun_direction: np.ndarray, draw_distance: float = 160.0, ambient: float = 0.45, sky_seed: int = 0):
        self.width, self.height = int(width), int(height)
        self.K = np.asarray(K, np.float64)
        self.road, self.scene, self.textures = road, scene, textures
        self.draw_distance = float(draw_distance)
        self.ambient = float(ambient)
        sun = np.asarray(sun_direction, np.float64)
        self.sun = (sun / np.linalg.norm(sun)).astype(np.float32)
        v, u = np.mgrid[0:self.height, 0:self.width]
        k_inv = np.linalg.inv(self.K)
        pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=0).astype(np.float64)
        rays = k_inv @ pixels
        self.ray_x = rays[0].astype(np.float32)
        self.ray_y = rays[1].astype(np.float32)
        self.ray_norm = np.sqrt(rays[0] ** 2 + rays[1] ** 2 + 1).astype(np.float32)  # |R·ray| for any rotation R
        self.focal = float(np.sqrt(self.K[0, 0] * self.K[1, 1]))
        sky_rng = np.random.default_rng(sky_seed)
        self.sky_zenith = (np.array([0.25, 0.45, 0.80]) * sky_rng.uniform(0.9, 1.1)).astype(np.float32)
        self.sky_horizon = np.array([0.75, 0.82, 0.90], np.float32)
        self.cloud_material = textures.material("asphalt")  # its noise doubles as cloud cover
        half = scene.part_half.astype(np.float32)
        self._half_x, self._half_y, self._half_z = (np.ascontiguousarray(half[:, i]) for i in range(3))
        m = textures.material
        self.materials = {name: m(name) for name in ("asphalt", "paving", "grass", "kerb")}

    @property
    def rays(self) -> np.ndarray:
        """N×3 camera rays (z = 1)."""
        return np.stack([self.ray_x, self.ray_y, np.ones_like(self.ray_x)], axis=1)

    # ------------------------------------------------------------------ geometry

    def _part_world(self, position: np.ndarray, yaw: np.ndarray, parts: np.ndarray | None = None):
        """World centres P×3 and yaw cos/sin of parts (all, or ``parts``)."""
        s = self.scene
        obj = s.part_object if parts is None else s.part_object[parts]
        lc = s.part_centre if parts is None else s.part_centre[parts]
        c, sn = np.cos(yaw)[obj], np.sin(yaw)[obj]
        x, y, z = _to_map(c, sn, lc[:, 0], lc[:, 1], lc[:, 2])
        return position[obj] + np.stack([x, y, z], axis=1), c, sn

    def _visible_parts(self, pose, position, yaw):
        """Parts in the frustum: indices, pixel rectangles (u0, u1, v0, v1; end exclusive), nearest z-depths."""
        s = self.scene
        rot_t = pose[:3, :3].T
        cam = pose[:3, 3]
        obj_cam = (position - cam) @ rot_t.T
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        r = s.radius
        z = obj_cam[:, 2]
        tan_x = max(cx + 0.5, self.width - 0.5 - cx) / fx
        tan_y = max(cy + 0.5, self.height - 0.5 - cy) / fy
        keep = (z > -r) & (z - r < self.draw_distance)
        keep &= np.abs(obj_cam[:, 0]) - r * np.sqrt(1 + tan_x ** 2) < z * tan_x
        keep &= np.abs(obj_cam[:, 1]) - r * np.sqrt(1 + tan_y ** 2) < z * tan_y
        parts = np.nonzero(keep[s.part_object])[0]
        if parts.size == 0:
            return parts, np.zeros((0, 4), np.int64), np.zeros(0)
        centre, c, sn = self._part_world(position, yaw, parts)
        local = _CORNERS[None] * s.part_half[parts][:, None, :]  # P×8×3
        x, y, zz = _to_map(c[:, None], sn[:, None], local[..., 0], local[..., 1], local[..., 2])
        corners = centre[:, None, :] + np.stack([x, y, zz], axis=-1)
        cc = (corners - cam) @ rot_t.T  # P×8×3 camera frame
        # Clip the box at the near plane: keep corners in front plus edge crossings of the plane.
        a, b = cc[:, _EDGES[:, 0]], cc[:, _EDGES[:, 1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            f = (NEAR - a[..., 2]) / (b[..., 2] - a[..., 2])
        crossing = (f > 0) & (f < 1)
        cross_pts = a + np.where(crossing, f, 0)[..., None] * (b - a)
        pts = np.concatenate([cc, cross_pts], axis=1)
        usable = np.concatenate([cc[..., 2] > NEAR - 1e-9, crossing], axis=1)
        zp = np.where(usable, np.maximum(pts[..., 2], NEAR), 1.0)
        u = fx * pts[..., 0] / zp + cx
        v = fy * pts[..., 1] / zp + cy
        big = 1e9
        u0 = np.floor(np.where(usable, u, big).min(axis=1))
        u1 = np.ceil(np.where(usable, u, -big).max(axis=1)) + 1
        v0 = np.floor(np.where(usable, v, big).min(axis=1))
        v1 = np.ceil(np.where(usable, v, -big).max(axis=1)) + 1
        rect = np.stack([np.clip(u0, 0, self.width), np.clip(u1, 0, self.width),
                         np.clip(v0, 0, self.height), np.clip(v1, 0, self.height)], axis=1).astype(np.int64)
        ok = usable.any(axis=1) & (rect[:, 1] > rect[:, 0]) & (rect[:, 3] > rect[:, 2])
        ok &= cc[..., 2].min(axis=1) < self.draw_distance
        zmin = np.maximum(cc[..., 2].min(axis=1), NEAR)  # no hit on the part can be nearer (t = z-depth)
        return parts[ok], rect[ok], zmin[ok]
    def _pairs(self, rect: np.ndarray):
        """(pixel index, rectangle index) pairs covering the rectangles (int32: faster integer division)."""
        rect = rect.astype(np.int32)
        widths = rect[:, 1] - rect[:, 0]
        counts = widths * (rect[:, 3] - rect[:, 2])
        total = int(counts.sum())
        owner = np.repeat(np.arange(rect.shape[0], dtype=np.int32), counts)
        local = np.arange(total, dtype=np.int32) - np.repeat((np.cumsum(counts) - counts).astype(np.int32), counts)
        w = np.repeat(widths, counts)
        rows = np.repeat(rect[:, 2], counts) + local // w
        cols = np.repeat(rect[:, 0], counts) + local % w
        return rows * np.int32(self.width) + cols, owner

    CHUNK = 32768  # pairs per vectorised step: keeps the temporaries in cache and lets occlusion prune

    def _cast_objects(self, cam, dx, dy, dz, position, yaw, pose, t_ground):
        """Nearest hit per pixel among the ground (``t_ground``) and the objects: t and part index (−1: ground/sky).

        Parts are processed front to back in chunks of (pixel, part) pairs; a pair is skipped when
        the pixel already has a hit nearer than the part's nearest point (conservative: never wrong).
        """
        t_best = t_ground.astype(np.float32, copy=True)
        n = dx.shape[0]
        part_best = np.full(n, -1, np.int64)
        parts, rect, zmin = self._visible_parts(pose, position, yaw)
        if parts.size == 0:
            return t_best, part_best
        s = self.scene
        centre, c, sn = self._part_world(position, yaw, parts)
        oc = (cam[None, :] - centre).astype(np.float32)  # P×3 camera centre relative to the part, map axes
        half = s.part_half[parts].astype(np.float32)
        kinds = s.part_kind[parts]
        c32, s32 = c.astype(np.float32), sn.astype(np.float32)
        # Per-part constants of the ray tests.
        o_local = np.stack(_to_local(c32, s32, oc[:, 0], oc[:, 1], oc[:, 2]), axis=1)
        # 1-D columns: gathering from them is much cheaper than 2-D fancy indexing.
        slab_lo = [np.ascontiguousarray(-half[:, i] - o_local[:, i]) for i in range(3)]
        slab_hi = [np.ascontiguousarray(half[:, i] - o_local[:, i]) for i in range(3)]
        oc_x, oc_y, oc_z = (np.ascontiguousarray(oc[:, i]) for i in range(3))
        radius, half_h = np.ascontiguousarray(half[:, 0]), np.ascontiguousarray(half[:, 1])
        sphere_c = (oc * oc).sum(1) - radius ** 2
        cyl_c = oc_x ** 2 + oc_z ** 2 - radius ** 2
        zmin32 = zmin.astype(np.float32)
        hits_pix, hits_t, hits_part = [], [], []
        for kind in (BOX, CYLINDER, SPHERE):
            sel = np.nonzero(kinds == kind)[0]
            if sel.size == 0:
                continue
            sel = sel[np.argsort(zmin[sel], kind="stable")]
            pix_all, owner_all = self._pairs(rect[sel])
            for start in range(0, pix_all.size, self.CHUNK):
                pix = pix_all[start:start + self.CHUNK]
                q = sel[owner_all[start:start + self.CHUNK]]  # index into `parts`
                keep = np.nonzero(zmin32[q] < t_best[pix])[0]
                if keep.size == 0:
                    continue
                pix, q = pix[keep], q[keep]
                px, py, pz = dx[pix], dy[pix], dz[pix]
                with np.errstate(divide="ignore", invalid="ignore"):
                    if kind == BOX:
                        cq, sq = c32[q], s32[q]
                        lx, lz = cq * px - sq * pz, sq * px + cq * pz
                        near = far = None
                        for axis, d_ in ((0, lx), (1, py), (2, lz)):
                            inv = 1.0 / d_
                            ta = slab_lo[axis][q] * inv
                            tb = slab_hi[axis][q] * inv
                            lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
                            near = lo if near is None else np.maximum(near, lo)
                            far = hi if far is None else np.minimum(far, hi)
                        ok = (near <= far) & (near > NEAR)
                        t = near
                    elif kind == SPHERE:
                        a = px * px + py * py + pz * pz
                        b = px * oc_x[q] + py * oc_y[q] + pz * oc_z[q]
                        disc = b * b - a * sphere_c[q]
                        t = (-b - np.sqrt(disc)) / a
                        ok = (disc >= 0) & (t > NEAR)
                    else:
                        ox, oy, oz = oc_x[q], oc_y[q], oc_z[q]
                        hq, rq = half_h[q], radius[q]
                        a = px * px + pz * pz
                        b = px * ox + pz * oz
                        disc = b * b - a * cyl_c[q]
                        side = (-b - np.sqrt(disc)) / a
                        side_ok = (disc >= 0) & (side > NEAR) & (np.abs(oy + side * py) <= hq)
                        cap = (-hq - oy) / py  # top cap at y = −hh (y points down)
                        cap_ok = (cap > NEAR) & ((ox + cap * px) ** 2 + (oz + cap * pz) ** 2 <= rq * rq)
                        t = np.minimum(np.where(side_ok, side, np.inf), np.where(cap_ok, cap, np.inf))
                        ok = side_ok | cap_ok
                ok &= t < t_best[pix]
                hit = np.nonzero(ok)[0]
                if hit.size == 0:
                    continue
                hp, ht = pix[hit], t[hit].astype(np.float32)
                np.minimum.at(t_best, hp, ht)
                hits_pix.append(hp)
                hits_t.append(ht)
                hits_part.append(parts[q[hit]])
        if hits_pix:
            pix, t, part = np.concatenate(hits_pix), np.concatenate(hits_t), np.concatenate(hits_part)
            win = t == t_best[pix]
            part_best[pix[win]] = part[win]
        return t_best, part_best

    # ------------------------------------------------------------------ frame

    def render(self, k: int, pose: np.ndarray, position: np.ndarray, yaw: np.ndarray) -> Render:
        """Render frame ``k`` from camera-to-map ``pose`` with objects at ``position``/``yaw``."""
        R = pose[:3, :3].astype(np.float32)
        cam = pose[:3, 3]
        rx, ry = self.ray_x, self.ray_y
        dx = R[0, 0] * rx + R[0, 1] * ry + R[0, 2]
        dy = R[1, 0] * rx + R[1, 1] * ry + R[1, 2]
        dz = R[2, 0] * rx + R[2, 1] * ry + R[2, 2]
        t_ground, surf_ground = self.road.intersect(cam, dx, dy, dz)
        depth, part = self._cast_objects(cam, dx, dy, dz, position, yaw, pose, t_ground)
        use_obj = part >= 0
        surface = np.where(use_obj, FIRST_PART_SURFACE + part, surf_ground).astype(np.int32)
        sky = ~np.isfinite(depth)
        surface[sky] = SURFACE_SKY
        n = dx.shape[0]
        normal = np.zeros((3, n), np.float32)
        material = np.zeros(n, np.int64)
        tex_u = np.zeros(n, np.float32)
        tex_v = np.zeros(n, np.float32)
        train_id = np.full(n, SKY, np.uint8)
        instance = np.zeros(n, np.uint16)
        ground = np.nonzero((part < 0) & ~sky)[0]
        objs = np.nonzero(part >= 0)[0]
        paint = self._ground_surface(ground, cam, dx, dy, dz, depth, surface, normal, material, tex_u, tex_v, train_id)
        self._object_surface(objs, cam, dx, dy, dz, depth, part, position, yaw, normal, material, tex_u, tex_v)
        train_id[objs] = self.scene.part_train_id[part[objs]]
        instance[objs] = self.scene.instance[self.scene.part_object[part[objs]]]
        # Metres per pixel on the surface (geometric mean of the two directions) picks the mip level.
        cos = np.abs(dx * normal[0] + dy * normal[1] + dz * normal[2]) / self.ray_norm
        np.clip(cos, 0.05, 1, out=cos)
        footprint = depth * self.ray_norm / np.sqrt(cos)
        footprint *= 1.0 / self.focal
        sky_idx = np.nonzero(sky)[0]
        elevation = self._sky_coordinates(sky_idx, dx, dy, dz, material, tex_u, tex_v, footprint)
        rgb = self.textures.sample(material, tex_u, tex_v, footprint)
        if paint is not None:
            painted = np.nonzero(paint > 0)[0]
            cover = paint[painted, None]
            rgb[ground[painted]] = rgb[ground[painted]] * (1 - cover) + 0.85 * cover
        lambert = np.clip(normal[0] * self.sun[0] + normal[1] * self.sun[1] + normal[2] * self.sun[2], 0, None)
        rgb *= (self.ambient + (1 - self.ambient) * 1.15 * lambert)[:, None]
        if sky_idx.size:
            blend = np.clip(elevation * 2.5, 0, 1)[:, None]
            base = self.sky_horizon * (1 - blend) + self.sky_zenith * blend
            cloud = np.clip((rgb[sky_idx, 1] - 0.13) * 6.0, 0, 1)[:, None] * np.clip(elevation * 6, 0, 1)[:, None]
            rgb[sky_idx] = base * (1 - 0.7 * cloud) + 0.95 * 0.7 * cloud
        return Render(k, pose, depth, surface, part, normal, rgb, train_id, instance, position, yaw)

    def _sky_coordinates(self, idx, dx, dy, dz, material, tex_u, tex_v, footprint):
        """Texture coordinates of the sky from the ray direction only (at infinity); returns elevation."""
        if idx.size == 0:
            return np.zeros(0, np.float32)
        x, y, z = dx[idx], dy[idx], dz[idx]
        elevation = np.clip(-y / np.sqrt(x * x + y * y + z * z), -1, 1)
        material[idx] = self.cloud_material
        tex_u[idx] = np.arctan2(x, z) * 12.0
        tex_v[idx] = elevation * 12.0
        footprint[idx] = 12.0 / self.focal
        return elevation

    def _ground_surface(self, idx, cam, dx, dy, dz, depth, surface, normal, material, tex_u, tex_v, train_id):
        """Materials, texture coordinates, normals and trainIds of ground pixels; returns lane-paint coverage."""
        if idx.size == 0:
            return None
        t = depth[idx].astype(np.float64)
        x = cam[0] + t * dx[idx]
        y = cam[1] + t * dy[idx]
        z = cam[2] + t * dz[idx]
        off = x - self.road.centre(z)
        surf = surface[idx]
        normal[1, idx] = -1.0
        kerb = (surf == SURFACE_KERB_LEFT) | (surf == SURFACE_KERB_RIGHT)
        if kerb.any():
            slope = self.road.slope(z[kerb])
            toward_road = np.where(surf[kerb] == SURFACE_KERB_RIGHT, -1.0, 1.0)
            norm = np.sqrt(1 + slope * slope)
            kidx = idx[kerb]
            normal[0, kidx] = toward_road / norm
            normal[1, kidx] = 0.0
            normal[2, kidx] = -toward_road * slope / norm
        raised = surf == SURFACE_RAISED
        walk = raised & (np.abs(off) < SIDEWALK_OUTER)
        verge = raised & ~walk
        mat = np.full(idx.size, self.materials["asphalt"])
        mat[walk] = self.materials["paving"]
        mat[verge] = self.materials["grass"]
        mat[kerb] = self.materials["kerb"]
        material[idx] = mat
        tex_u[idx] = np.where(kerb, z, x)
        tex_v[idx] = np.where(kerb, y, z)
        ids = np.full(idx.size, ROAD, np.uint8)
        ids[kerb | walk] = SIDEWALK
        ids[verge] = TERRAIN
        train_id[idx] = ids
        road = surf == SURFACE_ROAD
        # Pixel footprint across the markings, for their anti-aliased edges.
        pixel = (t * np.sqrt(dx[idx] ** 2 + dy[idx] ** 2 + dz[idx] ** 2) / self.focal).astype(np.float32)
        paint = np.zeros(idx.size, np.float32)
        paint[road] = self._lane_paint(off[road], z[road], pixel[road])
        return paint

    @staticmethod
    def _lane_paint(off, z, footprint):
        """Coverage in [0, 1] of lane markings: solid double centre line and edge lines, dashed lane dividers."""
        footprint = np.maximum(footprint, 1e-3)

        def line(centre, half_width):
            return np.clip((half_width - np.abs(off - centre)) / footprint + 0.5, 0, 1)

        cover = np.maximum(line(-0.12, 0.06), line(0.12, 0.06))
        dash = ((z % 9.0) < 3.0).astype(np.float32)
        for side in (-1, 1):
            cover = np.maximum(cover, line(side * LANE_WIDTH, 0.075) * dash)
            cover = np.maximum(cover, line(side * 2 * LANE_WIDTH, 0.1))
        return (cover * (np.abs(off) < HALF_WIDTH)).astype(np.float32)

    def _object_surface(self, idx, cam, dx, dy, dz, depth, part, position, yaw, normal, material, tex_u, tex_v):
        """Materials, texture coordinates (part-local metres) and normals of object pixels."""
        if idx.size == 0:
            return
        s = self.scene
        p = part[idx]
        centre, c_all, s_all = self._part_world(position, yaw)
        c, sn = c_all.astype(np.float32)[p], s_all.astype(np.float32)[p]
        rel = (cam[None, :] - centre).astype(np.float32)  # camera relative to each part centre
        t = depth[idx]
        q = _to_local(c, sn, rel[:, 0].copy()[p] + t * dx[idx], rel[:, 1].copy()[p] + t * dy[idx],
                      rel[:, 2].copy()[p] + t * dz[idx])
        qx, qy, qz = q
        hx, hy, hz = self._half_x[p], self._half_y[p], self._half_z[p]
        kind = s.part_kind[p]
        box, sph, cyl = kind == BOX, kind == SPHERE, kind == CYLINDER
        ax, ay, az = np.abs(qx) / hx, np.abs(qy) / hy, np.abs(qz) / hz
        is_x = (ax >= ay) & (ax >= az)
        is_y = ~is_x & (ay >= az)
        is_z = ~is_x & ~is_y
        one = np.float32(1)
        # Box normals along the face's axis; sphere normals radial; cylinder radial or up on its top cap.
        nx = np.where(box, np.copysign(one, qx) * is_x, qx / hx)
        ny = np.where(box, np.copysign(one, qy) * is_y, qy / hx)
        nz = np.where(box, np.copysign(one, qz) * is_z, qz / hx)
        major_x, major_y = is_x, is_y
        if cyl.any():
            ci = np.nonzero(cyl)[0]
            top = np.abs(qy[ci] + hy[ci]) < 1e-4 * np.maximum(one, t[ci])
            nx[ci[top]] = 0
            nz[ci[top]] = 0
            ny[ci] = np.where(top, -one, np.float32(0))
        if sph.any():
            si = np.nonzero(sph)[0]
            ax_s, ay_s, az_s = np.abs(nx[si]), np.abs(ny[si]), np.abs(nz[si])
            mx_s = (ax_s >= ay_s) & (ax_s >= az_s)
            major_x = major_x.copy()
            major_y = major_y.copy()
            major_x[si] = mx_s
            major_y[si] = ~mx_s & (ay_s >= az_s)
        # Texture on the plane of the dominant normal axis, measured from the part's min corner.
        u = np.where(major_x, qz + hz, qx + hx)
        v = np.where(major_y, qz + hz, qy + hy)
        if cyl.any():
            side = ci[~top]
            u[side] = np.arctan2(qx[side], qz[side]) * hx[side]
            v[side] = qy[side] + hy[side]
        mx, my, mz = _to_map(c, sn, nx, ny, nz)
        normal[0, idx], normal[1, idx], normal[2, idx] = mx, my, mz
        material[idx] = s.part_material[p]
        tex_u[idx] = u
        tex_v[idx] = v
