"""Object shapes: each object is a few convex parts (boxes, spheres, vertical cylinders) in its own frame.

Object frame: origin on the ground under the object's centre, x right, y down,
z forward (the object's heading); metres. A part is axis-aligned in its
object's frame; the object carries the rotation (a yaw about y).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..classes import BICYCLE, BUS, CAR, PERSON, POLE, RIDER, TRAFFIC_LIGHT, TRAFFIC_SIGN, TRUCK, VEGETATION

BOX, SPHERE, CYLINDER = 0, 1, 2


@dataclass
class Part:
    kind: int  # BOX, SPHERE or CYLINDER
    centre: tuple[float, float, float]  # object frame, metres
    half: tuple[float, float, float]  # box: half extents; sphere: (r, r, r); cylinder: (r, half height, r)
    material: str
    train_id: int


@dataclass
class Shape:
    """The parts of one object and its class (the object's instance carries this trainId)."""

    train_id: int
    parts: list[Part] = field(default_factory=list)

    def box(self, centre, half, material, train_id=None) -> "Shape":
        self.parts.append(Part(BOX, tuple(centre), tuple(half), material, self.train_id if train_id is None else train_id))
        return self

    def sphere(self, centre, radius, material, train_id=None) -> "Shape":
        self.parts.append(Part(SPHERE, tuple(centre), (radius,) * 3, material, self.train_id if train_id is None else train_id))
        return self

    def cylinder(self, centre, radius, half_height, material, train_id=None) -> "Shape":
        self.parts.append(Part(CYLINDER, tuple(centre), (radius, half_height, radius), material,
                               self.train_id if train_id is None else train_id))
        return self

    @property
    def length(self) -> float:
        """Extent along z (metres)."""
        return max(p.centre[2] + p.half[2] for p in self.parts) - min(p.centre[2] - p.half[2] for p in self.parts)


def _wheels(shape: Shape, half_track: float, axle_z: tuple[float, ...], radius: float) -> None:
    for z in axle_z:
        for side in (-1, 1):
            shape.box((side * half_track, -radius, z), (0.13, radius, radius), "tyre")


def car(rng) -> Shape:
    paint = f"paint{rng.integers(8)}"
    length = rng.uniform(1.9, 2.4)
    width = rng.uniform(0.82, 0.95)
    shape = Shape(CAR)
    shape.box((0, -0.7, 0), (width, 0.38, length), paint)
    shape.box((0, -1.32, -0.15 * length), (width - 0.08, 0.26, 0.5 * length), "glass")
    shape.box((0, -1.6, -0.15 * length), (width - 0.1, 0.03, 0.48 * length), paint)  # roof
    _wheels(shape, width - 0.08, (0.62 * length, -0.62 * length), 0.32)
    return shape


def truck(rng) -> Shape:
    paint = f"paint{rng.integers(8)}"
    cargo = f"paint{rng.integers(8)}"
    shape = Shape(TRUCK)
    shape.box((0, -1.55, 3.2), (1.2, 1.05, 1.0), paint)
    shape.box((0, -2.1, 3.9), (1.1, 0.45, 0.32), "glass")
    shape.box((0, -2.2, -1.3), (1.25, 1.6, 3.4), cargo)
    _wheels(shape, 1.05, (3.2, -0.5, -3.2), 0.5)
    return shape


def bus(rng) -> Shape:
    paint = f"paint{rng.integers(8)}"
    shape = Shape(BUS)
    shape.box((0, -1.85, 0), (1.25, 1.45, 5.8), paint)
    shape.box((0, -2.3, 0.2), (1.27, 0.5, 5.3), "glass")
    shape.box((0, -2.0, 5.82), (1.05, 0.6, 0.02), "glass")
    _wheels(shape, 1.12, (4.0, -3.5), 0.5)
    return shape


def person(rng, raised: float = 0.0, train_id: int = PERSON) -> Shape:
    """A pedestrian about 1.75 m tall (``raised`` lifts the body, e.g. a rider on a saddle)."""
    scale = rng.uniform(0.9, 1.08)
    shirt, trousers = f"cloth{rng.integers(6)}", f"cloth{rng.integers(6)}"
    shape = Shape(train_id)
    shape.box((0, -0.45 * scale - raised, 0), (0.17, 0.45 * scale, 0.11), trousers)
    shape.box((0, -1.22 * scale - raised, 0), (0.22, 0.32 * scale, 0.13), shirt)
    shape.sphere((0, -1.67 * scale - raised, 0), 0.12 * scale, "skin")
    return shape


def bicycle() -> Shape:
    shape = Shape(BICYCLE)
    shape.box((0, -0.34, 0.52), (0.03, 0.34, 0.34), "tyre")
    shape.box((0, -0.34, -0.52), (0.03, 0.34, 0.34), "tyre")
    shape.box((0, -0.62, 0), (0.04, 0.06, 0.5), "dark_metal")
    return shape


def rider(rng) -> Shape:
    return person(rng, raised=0.35, train_id=RIDER)


def tree(rng) -> Shape:
    trunk_h = rng.uniform(2.0, 3.5)
    crown = rng.uniform(1.4, 2.8)
    shape = Shape(VEGETATION)
    shape.cylinder((0, -trunk_h / 2, 0), rng.uniform(0.12, 0.22), trunk_h / 2 + 0.3, "bark")
    shape.sphere((0, -trunk_h - crown * 0.8, 0), crown, "foliage")
    if rng.random() < 0.5:
        shape.sphere((rng.uniform(-0.8, 0.8), -trunk_h - crown * 1.3, rng.uniform(-0.8, 0.8)), crown * 0.7, "foliage")
    return shape


def lamp_post(rng) -> Shape:
    height = rng.uniform(5.5, 8.0)
    shape = Shape(POLE)
    shape.cylinder((0, -height / 2, 0), 0.09, height / 2 + 0.2, "metal")
    return shape


def sign_pole(height: float) -> Shape:
    return Shape(POLE).cylinder((0, -height / 2, 0), 0.05, height / 2 + 0.2, "metal")


def sign_panel(height: float) -> Shape:
    """A round sign 0.8 m across, its face towards −z (oncoming traffic on the right-hand side)."""
    return Shape(TRAFFIC_SIGN).box((0, -height, -0.08), (0.4, 0.4, 0.025), "sign")


def traffic_light_head(height: float) -> Shape:
    return Shape(TRAFFIC_LIGHT).box((0, -height, -0.2), (0.18, 0.5, 0.15), "light_housing")
