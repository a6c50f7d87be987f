"""The toy world: coloured shapes on a dark background, their captions, and the diversity knob.

A scene is a 32x32 RGB image holding one or two shapes; its caption names them in natural words
("a circle", "a circle and a square"). Every shape is drawn with fresh colour, size and position
each time, except the world's *limited* concept: it only ever looks like one of ``instances`` (K)
fixed instances drawn once from ``instance_seed``. K=1 means the concept always looks the same;
``instances=None`` means unlimited diversity, like the other shapes.

The limited concept also appears, with its fixed looks, in two-object scenes with some partners
(``World.paired_partners``) and never with the others (``World.unpaired``). This is the condition
under which a low-diversity concept comes to dominate (our toy-world prototype found the opposite
when the limited concept was only ever shown alone); the book states it as a design choice.

Shapes are rasterised analytically (point-in-polygon on a 4x4 sub-pixel grid, then averaged), in
torch, for a whole batch at once, so rendering never dominates a training step. All randomness
comes from generators the caller seeds: the same seed gives the same scenes.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

RESOLUTION = 32
SUPERSAMPLE = 4  # sub-pixels per pixel side, for anti-aliased edges
BACKGROUND = (0.07, 0.07, 0.09)  # dark, slightly blue grey, the same in every scene
SIZE_RANGE = (9.0, 15.0)  # shape diameter in pixels
MIN_GAP = 1.0  # pixels between the bounding circles of two shapes in one scene
ATTRIBUTES = ("colour", "size", "position")


def _regular_star(points: int, outer: float, inner: float) -> list[tuple[float, float]]:
    vertices = []
    for i in range(2 * points):
        radius = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + math.pi * i / points  # first point straight up
        vertices.append((radius * math.cos(angle), radius * math.sin(angle)))
    return vertices


def _plus(arm_half_width: float, reach: float) -> list[tuple[float, float]]:
    w, r = arm_half_width, reach
    return [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
            (-r, w), (-r, -w), (-w, -w)]


# Outlines in unit coordinates (the shape's bounding circle has radius 1; y points down).
# The circle is drawn as a disc; every other shape is a polygon. None of them can hide
# inside another (no ring, no nested outline), so two shapes in a scene stay separable.
CIRCLE_RADIUS = 0.9
POLYGONS = {
    "square": [(-0.78, -0.78), (0.78, -0.78), (0.78, 0.78), (-0.78, 0.78)],
    "triangle": [(0.0, -0.95), (0.95, 0.75), (-0.95, 0.75)],
    "cross": _plus(arm_half_width=0.32, reach=0.95),
    "star": _regular_star(points=5, outer=1.0, inner=0.45),
}
SHAPES = ("circle", *POLYGONS)


def check_shape(name: str) -> str:
    """``name`` if it is one of :data:`SHAPES`, else a ValueError naming the accepted shapes."""
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; accepted: {', '.join(SHAPES)}")
    return name


@dataclass(frozen=True)
class ShapeInstance:
    """One drawn shape: what, in which colour (RGB in [0, 1]), how big and where (pixels)."""

    shape: str
    colour: tuple[float, float, float]
    size: float  # diameter of the bounding circle
    x: float  # centre, pixels from the left edge
    y: float  # centre, pixels from the top edge

    def __post_init__(self):
        check_shape(self.shape)


def caption(shapes: Sequence[str]) -> str:
    """The caption of a scene holding ``shapes`` in this order: "a circle and a square"."""
    if not 1 <= len(shapes) <= 2:
        raise ValueError(f"a caption names 1 or 2 shapes, got {len(shapes)}: {list(shapes)}")
    return " and ".join(f"a {check_shape(s)}" for s in shapes)


def inside_polygon(u: torch.Tensor, v: torch.Tensor, vertices) -> torch.Tensor:
    """Even-odd rule: a point is inside when a ray to +u crosses the outline an odd number of times."""
    inside = torch.zeros_like(u, dtype=torch.bool)
    for (xi, yi), (xj, yj) in zip(vertices, vertices[1:] + vertices[:1]):
        if yi == yj:
            continue  # a horizontal edge is never crossed by a horizontal ray
        straddles = (yi > v) != (yj > v)
        crossing_u = xi + (xj - xi) * (v - yi) / (yj - yi)
        inside ^= straddles & (u < crossing_u)
    return inside


def coverage(objects: Sequence[ShapeInstance], resolution: int = RESOLUTION,
             supersample: int = SUPERSAMPLE) -> torch.Tensor:
    """The fraction of each pixel that each object covers: ``[object, h, w]`` in [0, 1]."""
    n_sub = resolution * supersample
    centres = (torch.arange(n_sub, dtype=torch.float32) + 0.5) / supersample  # [n_sub]
    out = torch.zeros(len(objects), resolution, resolution)  # [object, h, w]
    for shape in {o.shape for o in objects}:
        index = [i for i, o in enumerate(objects) if o.shape == shape]
        xs = torch.tensor([objects[i].x for i in index]).view(-1, 1, 1)  # [k, 1, 1]
        ys = torch.tensor([objects[i].y for i in index]).view(-1, 1, 1)
        radius = torch.tensor([objects[i].size / 2 for i in index]).view(-1, 1, 1)
        u = (centres.view(1, 1, -1) - xs) / radius  # [k, 1, n_sub]
        v = (centres.view(1, -1, 1) - ys) / radius  # [k, n_sub, 1]
        u, v = torch.broadcast_tensors(u, v)  # [k, n_sub, n_sub]
        if shape == "circle":
            inside = u * u + v * v <= CIRCLE_RADIUS**2
        else:
            inside = inside_polygon(u, v, POLYGONS[shape])
        pooled = torch.nn.functional.avg_pool2d(inside.float().unsqueeze(1), supersample)
        out[index] = pooled.squeeze(1)  # [k, h, w]
    return out


def render(scenes: Sequence[Sequence[ShapeInstance]], resolution: int = RESOLUTION) -> torch.Tensor:
    """Draw scenes (each a list of 0-2 shapes) as images ``[scene, 3, h, w]`` in [0, 1]."""
    images = torch.tensor(BACKGROUND).view(1, 3, 1, 1).repeat(len(scenes), 1, resolution, resolution)
    flat = [(i, o) for i, scene in enumerate(scenes) for o in scene]
    if not flat:
        return images
    cover = coverage([o for _, o in flat], resolution)  # [object, h, w]
    for (i, obj), alpha in zip(flat, cover):
        colour = torch.tensor(obj.colour).view(3, 1, 1)
        images[i] = images[i] * (1 - alpha) + colour * alpha
    return images


def random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A bright, saturated colour: it always stands out from the dark background."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.55, 1.0), rng.uniform(0.75, 1.0)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def random_size(rng: np.random.Generator) -> float:
    return float(rng.uniform(*SIZE_RANGE))


def random_position(rng: np.random.Generator, size: float,
                    resolution: int = RESOLUTION) -> tuple[float, float]:
    """A centre that keeps the whole shape (and one pixel of margin) inside the frame."""
    low, high = size / 2 + 1, resolution - size / 2 - 1
    return float(rng.uniform(low, high)), float(rng.uniform(low, high))


def separated(a: ShapeInstance, b: ShapeInstance) -> bool:
    """True when the bounding circles of ``a`` and ``b`` are at least ``MIN_GAP`` apart."""
    return math.hypot(a.x - b.x, a.y - b.y) >= (a.size + b.size) / 2 + MIN_GAP


def _seeded(seed: int | Sequence[int]) -> np.random.Generator:
    return np.random.default_rng(seed)


@dataclass(frozen=True)
class Scenes:
    """A batch of rendered scenes with their captions and presence labels."""

    images: torch.Tensor  # [scene, 3, h, w] in [0, 1]
    captions: list[str]
    labels: torch.Tensor  # [scene, shape] bool: shape present, in World.shapes order
    objects: list[list[ShapeInstance]]


def world_to_dict(world) -> dict:
    """A world dataclass as JSON-ready fields (tuples as lists, private fields left out)."""
    out = asdict(world)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()
            if not k.startswith("_")}


def world_from_dict(cls, data: dict):
    """The world of class ``cls`` that :func:`world_to_dict` described."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class World:
    """Which shapes exist, which one has limited diversity, and how scenes are composed.

    ``instances`` is the diversity knob K of the ``limited`` concept: each appearance picks one of
    K instances drawn once from ``instance_seed``; ``None`` draws a fresh instance every time.
    ``fixed_attributes`` says what an instance fixes: by default colour, size and position (the
    K=1 concept looks identical every time); dropping "position" gives a fixed look at varying
    places, which separates low diversity from a fixed location.
    ``unpaired`` are partners never shown with the limited concept in training; it appears in
    two-object scenes with every other shape.
    """

    shapes: tuple[str, ...] = SHAPES
    limited: str = "circle"
    instances: int | None = None
    instance_seed: int = 0
    fixed_attributes: tuple[str, ...] = ATTRIBUTES
    unpaired: tuple[str, ...] = ("cross", "star")
    two_object_fraction: float = 0.6
    resolution: int = RESOLUTION
    _instances: tuple[ShapeInstance, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "unpaired", tuple(self.unpaired))
        object.__setattr__(self, "fixed_attributes", tuple(self.fixed_attributes))
        for name in self.shapes:
            check_shape(name)
        if len(set(self.shapes)) != len(self.shapes) or len(self.shapes) < 2:
            raise ValueError(f"shapes must be 2 or more distinct names, got {list(self.shapes)}")
        if self.limited not in self.shapes:
            raise ValueError(f"limited concept {self.limited!r} is not one of the world's shapes "
                             f"{', '.join(self.shapes)}")
        for name in self.unpaired:
            if name not in self.shapes or name == self.limited:
                raise ValueError(f"unpaired partner {name!r} must be one of the world's shapes "
                                 f"other than {self.limited!r}: "
                                 f"{', '.join(s for s in self.shapes if s != self.limited)}")
        if not self.paired_partners:
            raise ValueError(f"every partner of {self.limited!r} is unpaired; at least one must be "
                             "shown with it")
        if self.instances is not None and (isinstance(self.instances, bool)
                                           or not isinstance(self.instances, (int, np.integer))
                                           or self.instances < 1):
            raise ValueError(f"instances (K) must be an integer >= 1 or None for unlimited, "
                             f"got {self.instances!r}")
        for name in self.fixed_attributes:
            if name not in ATTRIBUTES:
                raise ValueError(f"unknown instance attribute {name!r}; accepted: "
                                 f"{', '.join(ATTRIBUTES)}")
        if not 0 <= self.two_object_fraction <= 1:
            raise ValueError(f"two_object_fraction must be in [0, 1], got "
                             f"{self.two_object_fraction!r}")
        if self.resolution != RESOLUTION:
            raise ValueError(f"resolution must be {RESOLUTION} (the toy model's size), "
                             f"got {self.resolution!r}")
        object.__setattr__(self, "_instances", self._draw_instances())

    # --- description -----------------------------------------------------------------------
    @property
    def paired_partners(self) -> tuple[str, ...]:
        """Shapes that appear with the limited concept in training scenes."""
        return tuple(s for s in self.shapes if s != self.limited and s not in self.unpaired)

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Every unordered pair of shapes shown together in training (order as in ``shapes``)."""
        out = []
        for i, a in enumerate(self.shapes):
            for b in self.shapes[i + 1:]:
                if self.limited in (a, b) and ({a, b} - {self.limited}) <= set(self.unpaired):
                    continue
                out.append((a, b))
        return tuple(out)

    @property
    def words(self) -> tuple[str, ...]:
        """Every word a caption of this world can contain."""
        return ("a", "and", *self.shapes)

    @property
    def instance_list(self) -> tuple[ShapeInstance, ...]:
        """The K fixed instances of the limited concept (empty when diversity is unlimited)."""
        return self._instances

    def to_dict(self) -> dict:
        return world_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "World":
        return world_from_dict(cls, data)

    # --- drawing ---------------------------------------------------------------------------
    def _draw_instances(self) -> tuple[ShapeInstance, ...]:
        if self.instances is None:
            return ()
        rng = _seeded((self.instance_seed, 7))
        out = []
        for _ in range(self.instances):
            size = random_size(rng)
            colour = random_colour(rng)
            x, y = random_position(rng, size, self.resolution)
            out.append(ShapeInstance(self.limited, colour, size, x, y))
        return tuple(out)

    def draw_shape(self, shape: str, rng: np.random.Generator) -> ShapeInstance:
        """One appearance of ``shape``: a fresh draw, or one of the limited concept's K instances."""
        if shape == self.limited and self._instances:
            fixed = self._instances[int(rng.integers(len(self._instances)))]
            size = fixed.size if "size" in self.fixed_attributes else random_size(rng)
            colour = fixed.colour if "colour" in self.fixed_attributes else random_colour(rng)
            if "position" in self.fixed_attributes:
                x, y = fixed.x, fixed.y
            else:
                x, y = random_position(rng, size, self.resolution)
            return ShapeInstance(shape, colour, size, x, y)
        size = random_size(rng)
        x, y = random_position(rng, size, self.resolution)
        return ShapeInstance(shape, random_colour(rng), size, x, y)

    def place_pair(self, first: str, second: str, rng: np.random.Generator,
                   max_tries: int = 1000) -> list[ShapeInstance]:
        """Two non-touching shapes: redraw the movable ones until they are apart.

        A limited-concept instance with a fixed position keeps its place; the other shape is
        redrawn whole (size and place), so a large fixed instance still finds a partner.
        """
        def fixed_place(shape):
            return (shape == self.limited and bool(self._instances)
                    and "position" in self.fixed_attributes)

        a, b = self.draw_shape(first, rng), self.draw_shape(second, rng)
        for _ in range(max_tries):
            if separated(a, b):
                return [a, b]
            if not fixed_place(first):
                a = self.draw_shape(first, rng)
            if not fixed_place(second):
                b = self.draw_shape(second, rng)
        # Rare: a large fixed instance near the centre leaves room only in the corners. Give the
        # movable shape the smallest size and a place drawn among those that fit.
        if fixed_place(second):
            return self._fit_beside(b, a, rng)[::-1]
        return self._fit_beside(a, b, rng)

    def _fit_beside(self, fixed: ShapeInstance, movable: ShapeInstance,
                    rng: np.random.Generator) -> list[ShapeInstance]:
        size = SIZE_RANGE[0]
        low, high = size / 2 + 1, self.resolution - size / 2 - 1
        grid = np.arange(low, high + 1e-9, 0.25)
        places = [(float(x), float(y)) for x in grid for y in grid
                  if separated(fixed, ShapeInstance(movable.shape, movable.colour, size, x, y))]
        if not places:
            raise RuntimeError(f"no room for a {movable.shape} beside {fixed}")
        x, y = places[int(rng.integers(len(places)))]
        return [fixed, ShapeInstance(movable.shape, movable.colour, size, x, y)]

    def sample_objects(self, rng: np.random.Generator) -> list[ShapeInstance]:
        """One training scene: one shape, or (with ``two_object_fraction``) a training pair."""
        if rng.uniform() < self.two_object_fraction:
            pair = self.pairs[int(rng.integers(len(self.pairs)))]
            first, second = pair if rng.uniform() < 0.5 else pair[::-1]  # both word orders
            return self.place_pair(first, second, rng)
        return [self.draw_shape(self.shapes[int(rng.integers(len(self.shapes)))], rng)]

    def scenes(self, objects: Sequence[Sequence[ShapeInstance]]) -> Scenes:
        """Render given object lists, with their captions and labels."""
        labels = torch.zeros(len(objects), len(self.shapes), dtype=torch.bool)
        for i, scene in enumerate(objects):
            for o in scene:
                labels[i, self.shapes.index(o.shape)] = True
        captions = [caption([o.shape for o in scene]) if scene else "" for scene in objects]
        return Scenes(render(objects, self.resolution), captions, labels,
                      [list(s) for s in objects])

    def sample(self, n: int, seed: int | Sequence[int]) -> Scenes:
        """``n`` training scenes drawn from a generator seeded with ``seed`` (int or int tuple)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        rng = _seeded(seed)
        return self.scenes([self.sample_objects(rng) for _ in range(n)])

    def sample_detector_scenes(self, n: int, seed: int | Sequence[int]) -> Scenes:
        """Scenes for the detector: 0, 1 or 2 shapes, any pair, every shape at full diversity."""
        rng = _seeded(seed)
        diverse = World(shapes=self.shapes, limited=self.limited, instances=None,
                        unpaired=(), resolution=self.resolution)
        objects = []
        for _ in range(n):
            count = int(rng.choice(3, p=[0.15, 0.4, 0.45]))
            names = list(rng.choice(len(self.shapes), size=count, replace=False))
            if count == 2:
                objects.append(diverse.place_pair(self.shapes[names[0]], self.shapes[names[1]],
                                                  rng))
            else:
                objects.append([diverse.draw_shape(self.shapes[i], rng) for i in names])
        return diverse.scenes(objects)


def prompt_table(world: World | None = None, partners: Sequence[str] | None = None,
                 controls: bool = True) -> pd.DataFrame:
    """Two-shape prompts in the table shape of :mod:`dvdlib.bench`, plus one-shape controls.

    ``content`` is the world's limited (low-diversity) concept, ``nm_word`` the partner, and
    ``content_type`` is "shape". Each partner gives two pair prompts, one per word order ("a
    circle and a square", "a square and a circle"). A control keeps its pair's ``content`` and
    ``nm_word`` and names only one of them ("a circle" or "a square"), so a scorer treats it like
    any row: prompting the content alone should score high, the partner alone near zero. The
    extra column ``arrangement`` says which row is which: "content first", "nm_word first",
    "content alone", "nm_word alone". ``partners`` defaults to every other shape of the world.
    """
    world = world or World()
    partners = tuple(partners) if partners is not None else tuple(
        s for s in world.shapes if s != world.limited)
    for name in partners:
        if name not in world.shapes or name == world.limited:
            raise ValueError(f"partner {name!r} must be one of the world's shapes other than "
                             f"{world.limited!r}: "
                             f"{', '.join(s for s in world.shapes if s != world.limited)}")
    rows = []
    content = world.limited
    for partner in partners:
        rows.append((content, partner, caption([content, partner]), "content first"))
        rows.append((content, partner, caption([partner, content]), "nm_word first"))
        if controls:
            rows.append((content, partner, caption([content]), "content alone"))
            rows.append((content, partner, caption([partner]), "nm_word alone"))
    return pd.DataFrame(
        [(i + 1, "shape", c, n, p, a) for i, (c, n, p, a) in enumerate(rows)],
        columns=["case_num", "content_type", "content", "nm_word", "prompt", "arrangement"],
    )
