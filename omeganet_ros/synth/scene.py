"""Scene layout: which objects stand or move where along the street, as flat arrays for vectorised rendering.

Every object moves along the road's curve (or stands still): at frame k its
along-road position is ``z = z0 + vz·k + follow·z_cam(k)`` and its offset
``offset0 + v_offset·k``; its map position is ``(centre(z) + offset, y_base, z)``
and its yaw the road heading at z plus ``yaw_offset``. ``follow = 1`` makes an
object keep a fixed distance to the camera (a car driving at the camera's speed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import objects as shapes
from .road import (FIRST_PART_SURFACE, HALF_WIDTH, LANES_FORWARD, LANES_ONCOMING, PARKING_OFFSET, SIDEWALK_OUTER,
                   RoadProfile)
from .textures import TextureBank
from .trajectory import CameraTrack


@dataclass
class Scene:
    """Objects (O) and their parts (P) as arrays; instance ids are 1 … O."""

    # objects
    z0: np.ndarray
    offset0: np.ndarray
    vz: np.ndarray
    v_offset: np.ndarray
    yaw_offset: np.ndarray
    y_base: np.ndarray
    follow: np.ndarray
    train_id: np.ndarray  # uint8
    instance: np.ndarray  # uint16
    moving: np.ndarray  # bool
    radius: np.ndarray  # bounding sphere around the object origin, metres
    # parts
    part_object: np.ndarray
    part_kind: np.ndarray
    part_centre: np.ndarray  # P×3 object frame
    part_half: np.ndarray  # P×3
    part_material: np.ndarray
    part_train_id: np.ndarray

    @property
    def num_objects(self) -> int:
        return len(self.z0)

    @property
    def part_surface(self) -> np.ndarray:
        return FIRST_PART_SURFACE + np.arange(len(self.part_object))

    def object_state(self, road: RoadProfile, track: CameraTrack, k: float):
        """Map positions O×3 and yaws (O,) of all objects at frame ``k``."""
        z = self.z0 + self.vz * k + self.follow * track.z_at(int(k))
        offset = self.offset0 + self.v_offset * k
        position = np.stack([road.centre(z) + offset, self.y_base, z], axis=1)
        yaw = road.heading(z) + self.yaw_offset
        return position, yaw


class SceneBuilder:
    """Collects objects; :meth:`build` packs them into a :class:`Scene`."""

    def __init__(self, road: RoadProfile, textures: TextureBank):
        self.road = road
        self.textures = textures
        self.rows: list[tuple] = []

    def add(self, shape: shapes.Shape, z0: float, offset0: float, y_base: float, yaw_offset: float = 0.0,
            vz: float = 0.0, v_offset: float = 0.0, follow: float = 0.0) -> None:
        self.rows.append((shape, z0, offset0, y_base, yaw_offset, vz, v_offset, follow))

    def build(self) -> Scene:
        if len(self.rows) >= 65535:
            raise ValueError(f"too many objects for uint16 instance ids: {len(self.rows)}")
        cols = list(zip(*self.rows)) if self.rows else [[]] * 8
        shape_list = cols[0]
        f64 = lambda i: np.asarray(cols[i], np.float64)  # noqa: E731
        part_rows = [(o, p) for o, shape in enumerate(shape_list) for p in shape.parts]
        part_centre = np.array([p.centre for _, p in part_rows], np.float64).reshape(-1, 3)
        part_half = np.array([p.half for _, p in part_rows], np.float64).reshape(-1, 3)
        part_object = np.array([o for o, _ in part_rows], np.int64)
        extent = np.linalg.norm(np.abs(part_centre) + part_half, axis=1)
        radius = np.zeros(len(shape_list))
        np.maximum.at(radius, part_object, extent)
        vz, v_offset, follow = f64(5), f64(6), f64(7)
        return Scene(
            z0=f64(1), offset0=f64(2), y_base=f64(3), yaw_offset=f64(4), vz=vz, v_offset=v_offset, follow=follow,
            train_id=np.array([s.train_id for s in shape_list], np.uint8),
            instance=np.arange(1, len(shape_list) + 1, dtype=np.uint16),
            moving=(vz != 0) | (v_offset != 0) | (follow != 0),
            radius=radius,
            part_object=part_object,
            part_kind=np.array([p.kind for _, p in part_rows], np.int64),
            part_centre=part_centre,
            part_half=part_half,
            part_material=np.array([self.textures.material(p.material) for _, p in part_rows], np.int64),
            part_train_id=np.array([p.train_id for _, p in part_rows], np.uint8),
        )


def _moving_cover(z_lo: float, z_hi: float, speed: float, frames: int) -> tuple[float, float]:
    """Range of initial positions z0 such that objects at speed ``speed`` cover [z_lo, z_hi] for k in [−1, frames]."""
    ks = np.array([-1.0, frames])
    return z_lo - (speed * ks).max(), z_hi - (speed * ks).min()


def layout_street(
    rng: np.random.Generator,
    road: RoadProfile,
    textures: TextureBank,
    track: CameraTrack,
    frames: int,
    view_distance: float,
    traffic_density: float = 1.0,
    pedestrian_density: float = 1.0,
    follower: bool = True,
) -> Scene:
    """Place buildings, vegetation, poles, signs, parked and moving vehicles and pedestrians along the street."""
    builder = SceneBuilder(road, textures)
    z_lo = float(track.z.min()) - 40.0
    z_hi = float(track.z.max()) + view_distance + 20.0
    road_y, raised_y = road.road_y, road.raised_y

    for side in (-1, 1):
        # Buildings: a row of blocks with gaps, set back from the verge; walls/fences fill some gaps.
        z = z_lo - rng.uniform(0, 10)
        while z < z_hi:
            length = rng.uniform(10, 32)
            depth = rng.uniform(8, 18)
            height = rng.uniform(6, 24)
            setback = SIDEWALK_OUTER + rng.uniform(2.5, 7.0)
            facade = f"facade{rng.integers(6)}"
            building = shapes.Shape(2)
            building.box((0, -(height - 0.6) / 2, 0), (depth / 2, (height + 0.6) / 2, length / 2), facade)
            if rng.random() < 0.35:  # a recessed upper storey
                top = rng.uniform(3, 8)
                building.box((0, -height - top / 2, 0), (depth / 2 - 1.5, top / 2, length / 2 - 1.5), f"facade{rng.integers(6)}")
            builder.add(building, z + length / 2, side * (setback + depth / 2), raised_y)
            gap = rng.uniform(0, 8) if rng.random() < 0.6 else 0.2
            if gap > 3 and rng.random() < 0.6:
                wall_h = rng.uniform(0.8, 2.0)
                kind = (3, "wall") if rng.random() < 0.5 else (4, "fence")
                wall = shapes.Shape(kind[0]).box((0, -(wall_h - 0.3) / 2, 0), (0.1, (wall_h + 0.3) / 2, gap / 2), kind[1])
                builder.add(wall, z + length + gap / 2, side * (setback + 0.5), raised_y)
            z += length + gap
        # Trees and hedges on the verge.
        z = z_lo + rng.uniform(0, 8)
        while z < z_hi:
            if rng.random() < 0.8:
                builder.add(shapes.tree(rng), z, side * rng.uniform(12.6, 13.2), raised_y)
            else:
                hedge_len = rng.uniform(3, 8)
                hedge_h = rng.uniform(0.8, 1.6)
                hedge = shapes.Shape(8).box((0, -(hedge_h - 0.3) / 2, 0), (0.5, (hedge_h + 0.3) / 2, hedge_len / 2), "foliage")
                builder.add(hedge, z, side * 12.8, raised_y)
            z += rng.uniform(7, 18)
        # Lamp posts, signs and traffic lights on the sidewalk by the kerb.
        z = z_lo + rng.uniform(0, 20)
        while z < z_hi:
            builder.add(shapes.lamp_post(rng), z, side * (HALF_WIDTH + 0.5), raised_y)
            z_sign = z + rng.uniform(6, 12)
            r = rng.random()
            yaw = 0.0 if side > 0 else np.pi  # signs face the traffic of their side
            if r < 0.45:
                height = rng.uniform(2.2, 2.8)
                builder.add(shapes.sign_pole(height), z_sign, side * (HALF_WIDTH + 0.45), raised_y)
                builder.add(shapes.sign_panel(height), z_sign, side * (HALF_WIDTH + 0.45), raised_y, yaw)
            elif r < 0.65:
                height = rng.uniform(3.0, 3.8)
                builder.add(shapes.sign_pole(height + 0.5), z_sign, side * (HALF_WIDTH + 0.45), raised_y)
                builder.add(shapes.traffic_light_head(height), z_sign, side * (HALF_WIDTH + 0.45), raised_y, yaw)
            z += rng.uniform(22, 40)
        # Parked cars in the parking strip.
        z = z_lo + rng.uniform(0, 10)
        while z < z_hi:
            if rng.random() < 0.55 * traffic_density:
                builder.add(shapes.car(rng), z, side * PARKING_OFFSET, road_y, 0.0 if rng.random() < 0.7 else np.pi)
            z += rng.uniform(5.5, 9.0)
        # Pedestrians on the sidewalk: two walking "lanes" with one speed each (no collisions), some standing.
        for walk_offset, direction in ((10.2, 1.0), (11.0, -1.0)):
            speed = direction * rng.uniform(0.08, 0.16)
            a, b = _moving_cover(z_lo, z_hi, speed, frames)
            z = a + rng.uniform(0, 10)
            while z < b:
                if rng.random() < 0.5 * pedestrian_density:
                    builder.add(shapes.person(rng), z, side * walk_offset, raised_y, 0.0 if speed > 0 else np.pi, vz=speed)
                z += rng.uniform(6, 30)
        z = z_lo + rng.uniform(0, 10)
        while z < z_hi:
            if rng.random() < 0.4 * pedestrian_density:
                builder.add(shapes.person(rng), z, side * rng.choice([9.55, 11.65]), raised_y, rng.uniform(-np.pi, np.pi))
            z += rng.uniform(10, 40)

    # Moving traffic: one speed per lane so that vehicles of a lane never collide.
    lanes = [(LANES_FORWARD[1], rng.uniform(0.4, 1.9), 0.0), (LANES_ONCOMING[0], -rng.uniform(0.6, 1.6), np.pi),
             (LANES_ONCOMING[1], -rng.uniform(0.4, 1.2), np.pi)]
    for offset, speed, yaw in lanes:
        a, b = _moving_cover(z_lo, z_hi, speed, frames)
        z = a + rng.uniform(0, 20)
        while z < b:
            r = rng.random()
            vehicle = shapes.car(rng) if r < 0.7 else shapes.truck(rng) if r < 0.85 else shapes.bus(rng)
            builder.add(vehicle, z, offset, road_y, yaw, vz=speed)
            z += vehicle.length + rng.uniform(6, 45) / max(traffic_density, 1e-3)
    # Cyclists between the right lane and the parked cars: a rider and a bicycle moving together.
    speed = rng.uniform(0.25, 0.5)
    a, b = _moving_cover(z_lo, z_hi, speed, frames)
    z = a + rng.uniform(0, 30)
    while z < b:
        if rng.random() < 0.5 * traffic_density:
            builder.add(shapes.bicycle(), z, 6.1, road_y, vz=speed)
            builder.add(shapes.rider(rng), z, 6.1, road_y, vz=speed)
        z += rng.uniform(25, 80)
    # A car ahead in the ego lane at the camera's speed: moving in the world, nearly still in the image.
    if follower:
        builder.add(shapes.car(rng), rng.uniform(12, 22), track.offset.mean(), road_y, follow=1.0)
    # Pedestrians crossing the road left to right, gone from the ego lane long before the camera arrives.
    z = float(track.z[1]) + rng.uniform(15, 40)
    while z < float(track.z.max()) + view_distance:
        if rng.random() < 0.5 * pedestrian_density:
            speed = rng.uniform(0.1, 0.15)
            arrive = int(np.searchsorted(track.z, z - 10.0)) + track.first_frame
            done = arrive - int(rng.integers(12, 40))  # frame at which it reaches the far sidewalk (offset +9)
            builder.add(shapes.person(rng), z, 9.0 - speed * done, road_y, np.pi / 2, v_offset=speed)
        z += rng.uniform(40, 120)
    return builder.build()
