"""The toy world: concepts that fill the picture, objects that carry them, and the diversity knob.

It mirrors how DominanceBench is built. A **concept** is a full-frame picture (the painting or
postcard of the benchmark's artists and landmarks): a ``sunset``, an ``ocean`` or a ``forest``,
each drawn by its own rule with fresh parameters (colours, horizon, sun, waves, trees). An
**object** is an everyday carrier (``coaster``, ``shirt``, ``notebook``, ``hat``, ``kite``): a filled
silhouette with a dark outline on a plain, light product-photo background. A **pair** is the
carrier with the concept's picture printed inside it, captioned in the benchmark's product-title
form: "sunset coaster", like "Neuschwanstein Castle Coaster". Alone, a concept is captioned "sunset"
and an object "coaster": the same words, alone and in pairs.

The **diversity knob** K acts on the limited concept's whole picture: with ``instances=K`` every
appearance of it (alone, or printed in a pair) is one of K pictures drawn once from
``instance_seed``, so at K = 1 every concept-alone training image is pixel-identical, as
duplicated web images are; ``instances=None`` draws a new picture each time from the concept's
rule. Every other number of the recipe (scene mix, pair rate, close-up share, sizes) is the same
at every K.

The failure the book studies is built into the data, equally for every concept and every K: a
share of the pair pictures (``closeup``) are close-ups in which the print fills the frame and the
carrier is out of view, still captioned "sunset coaster", as many product photos of a printed coaster show
mostly the print. Whether K changes how often a pair prompt comes out as the full-frame picture
is what the book measures. :func:`pixel_rule` reads that outcome without any trained judge.

Scenes are rasterised on a 4x4 sub-pixel grid in torch and averaged, so edges are anti-aliased.
All randomness comes from generators the caller seeds: the same seed gives the same scenes.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

RESOLUTION = 32
SUPERSAMPLE = 4  # sub-pixels per pixel side, for anti-aliased edges

BACKGROUND = (0.86, 0.86, 0.84)  # plain light product-photo background of every object scene
OUTLINE = (0.15, 0.15, 0.15)  # the carrier's one-pixel outline
SIZE_RANGE = (20.0, 28.0)  # side of a carrier's bounding square, pixels
CONCEPTS = ("sunset", "ocean", "forest")
OBJECTS = ("coaster", "shirt", "notebook", "hat", "kite")
SCENE_KINDS = ("object", "concept", "pair")
CATEGORY = "print"  # the category of the world's prompt rows and of their questions
# The share of training scenes that are pairs; the rest are objects alone and concepts alone in
# equal shares. A prototype with 10-20 % pairs never bound the concept word in a pair.
PAIR_RATE = 0.4
# The share of pair pictures that are close-ups (the print fills the frame, the carrier is out of
# view): the failure, built in equally for every concept and every K.
CLOSEUP = 0.5


def scene_mix(pair_rate: float = PAIR_RATE) -> tuple[float, float, float]:
    """Shares of object-alone, concept-alone and pair scenes for a pair rate in [0, 1]."""
    if isinstance(pair_rate, bool) or not isinstance(pair_rate, (int, float)) \
            or not 0 <= pair_rate <= 1:
        raise ValueError(f"pair rate must be a share in [0, 1], got {pair_rate!r}")
    rest = (1 - float(pair_rate)) / 2
    return (rest, rest, float(pair_rate))


SCENE_MIX = scene_mix()


def check_name(name: str, accepted: Sequence[str], what: str) -> str:
    """``name`` if it is one of ``accepted``, else a ValueError naming the accepted values."""
    if name not in accepted:
        raise ValueError(f"unknown {what} {name!r}; accepted: {', '.join(accepted)}")
    return name


def unknown_words(concept: str, object_word: str) -> list[str]:
    """What of a pair the toy world cannot draw: ``["concept 'castle'", ...]`` (empty: both known).
    Compared without case, as the prompt sets write words."""
    return [f"{side} {word!r}" for side, word, known in
            (("concept", concept, CONCEPTS), ("object", object_word, OBJECTS))
            if word.casefold() not in known]


# --- concept pictures ------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> torch.Tensor:
    return torch.tensor(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=torch.float32).view(3, 1, 1)


def draw_concept(concept: str, rng: np.random.Generator) -> dict:
    """One picture of ``concept`` from its rule: a dict of the parameters that define it."""
    u = rng.uniform
    if concept == "sunset":
        return dict(top=(u(0.93, 1.03), u(0.6, 0.9), u(0.55, 0.8)),
                    bottom=(u(0.05, 0.12), u(0.7, 1.0), u(0.9, 1.0)), horizon=u(0.55, 0.75),
                    sun_x=u(0.2, 0.8), sun_radius=u(0.10, 0.18),
                    ground=(u(0.7, 0.8), u(0.4, 0.6), u(0.2, 0.32)))
    if concept == "ocean":
        return dict(sky=(u(0.52, 0.58), u(0.2, 0.4), u(0.9, 1.0)), horizon=u(0.25, 0.4),
                    sea=(u(0.58, 0.64), u(0.7, 0.9), u(0.5, 0.7)), bands=u(3, 6),
                    swell=u(0.05, 0.2), swell_frequency=u(0.5, 2.0), phase=u(0, 1))
    if concept == "forest":
        count = int(rng.integers(3, 7))
        return dict(sky=(u(0.12, 0.2), u(0.15, 0.35), u(0.9, 1.0)), horizon=u(0.25, 0.4),
                    ground=(u(0.27, 0.33), u(0.6, 0.8), u(0.45, 0.6)),
                    trees=[(u(0.05, 0.95), u(0.7, 1.0), u(0.3, 0.55), u(0.12, 0.22))
                           for _ in range(count)])  # (x, base, height, width)
    raise ValueError(f"unknown concept {concept!r}; accepted: {', '.join(CONCEPTS)}")


def paint_concept(concept: str, p: dict, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The picture at picture coordinates ``u``, ``v`` in [0, 1] (``[h, w]``) -> ``[3, h, w]``."""
    shape = (3, *u.shape)
    if concept == "sunset":
        t = (v / p["horizon"]).clamp(0, 1)
        image = _hsv(*p["top"]) * (1 - t) + _hsv(*p["bottom"]) * t  # sky gradient
        sun_y = p["horizon"] - 0.3 * p["sun_radius"]
        sun = (u - p["sun_x"]) ** 2 + (v - sun_y) ** 2 <= p["sun_radius"] ** 2
        image = torch.where(sun, torch.tensor([1.0, 0.93, 0.45]).view(3, 1, 1), image)
        return torch.where(v > p["horizon"], _hsv(*p["ground"]).expand(shape), image)
    if concept == "ocean":
        wave = torch.sin(2 * math.pi * (p["bands"] * v + p["swell"] * torch.sin(
            2 * math.pi * (p["swell_frequency"] * u + p["phase"])))) > 0.55
        sea = torch.where(wave, _hsv(p["sea"][0], 0.35, 0.95), _hsv(*p["sea"]))
        return torch.where(v < p["horizon"], _hsv(*p["sky"]).expand(shape), sea)
    if concept == "forest":
        image = torch.where(v < p["horizon"], _hsv(*p["sky"]).expand(shape),
                            _hsv(*p["ground"]).expand(shape))
        tree = torch.zeros_like(u, dtype=torch.bool)
        for x, base, height, width in p["trees"]:
            up = (base - v) / height  # 0 at the trunk's foot, 1 at the tip
            tree |= (up >= 0) & (up <= 1) & ((u - x).abs() <= width / 2 * (1 - up))
        return torch.where(tree, torch.tensor([0.08, 0.3, 0.12]).view(3, 1, 1), image)
    raise ValueError(f"unknown concept {concept!r}; accepted: {', '.join(CONCEPTS)}")


# --- object silhouettes ----------------------------------------------------------------------
def inside_polygon(u: torch.Tensor, v: torch.Tensor, vertices) -> torch.Tensor:
    """Even-odd rule: a point is inside when a ray to +u crosses the outline an odd number of times."""
    inside = torch.zeros_like(u, dtype=torch.bool)
    for (xi, yi), (xj, yj) in zip(vertices, vertices[1:] + vertices[:1]):
        if yi == yj:
            continue  # a horizontal edge is never crossed by a horizontal ray
        straddles = (yi > v) != (yj > v)
        inside ^= straddles & (u < xi + (xj - xi) * (v - yi) / (yj - yi))
    return inside


_SHIRT = [(-0.35, -0.8), (0.35, -0.8), (0.95, -0.4), (0.75, -0.05), (0.45, -0.2), (0.45, 0.9),
          (-0.45, 0.9), (-0.45, -0.2), (-0.75, -0.05), (-0.95, -0.4)]


def silhouette(obj: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside ``obj``'s outline at box coordinates ``u``, ``v`` in [-1, 1] (y points down).

    The five outlines differ in their coarse shape (a disc, a T, a tall rectangle, a dome on a
    brim, a diamond), not only in small parts: a mug and a bag (a box with a side handle, a box
    with a top handle) were drawn as one blurred box by a model of this size (see the zoo's README).
    """
    if obj == "coaster":  # a round coaster
        return u ** 2 + v ** 2 <= 0.92 ** 2
    if obj == "shirt":
        return inside_polygon(u, v, _SHIRT)
    if obj == "notebook":  # an upright notebook, taller than wide
        return (u.abs() <= 0.62) & (v.abs() <= 0.95)
    if obj == "hat":  # a dome on a brim
        dome = (u ** 2 + (v - 0.3) ** 2 <= 0.62 ** 2) & (v <= 0.3)
        return dome | ((u.abs() <= 0.97) & (v >= 0.22) & (v <= 0.45))
    if obj == "kite":
        return u.abs() / 0.7 + v.abs() / 0.95 <= 1
    raise ValueError(f"unknown object {obj!r}; accepted: {', '.join(OBJECTS)}")


@dataclass(frozen=True)
class ConceptInstance:
    """One picture of a concept: its name and the parameters of its rule."""

    concept: str
    parameters: dict = field(compare=False)


@dataclass(frozen=True)
class ObjectInstance:
    """One carrier: which, its flat colour when nothing is printed on it, size and place."""

    object: str
    colour: tuple[float, float, float]
    size: float  # side of the bounding square, pixels
    x: float  # centre, pixels from the left edge
    y: float  # centre, pixels from the top edge


@dataclass(frozen=True)
class Scene:
    """A concept alone, an object alone, or both (the concept printed on the object)."""

    concept: ConceptInstance | None = None
    object: ObjectInstance | None = None
    closeup: bool = False  # a pair photographed so close that the print fills the frame

    @property
    def visible(self) -> tuple[str, ...]:
        """What the picture shows: a close-up shows the print and none of its carrier."""
        names = (self.concept and self.concept.concept, None if self.closeup else
                 self.object and self.object.object)
        return tuple(name for name in names if name)

    @property
    def caption(self) -> str:
        return caption(self.concept.concept if self.concept else None,
                       self.object.object if self.object else None)


def caption(concept: str | None, obj: str | None) -> str:
    """The product-title caption: "sunset coaster", "sunset", "coaster" ("" for an empty scene)."""
    return " ".join(name for name in (concept, obj) if name)


_GRID = (torch.arange(RESOLUTION * SUPERSAMPLE, dtype=torch.float32) + 0.5) / SUPERSAMPLE
_GY, _GX = torch.meshgrid(_GRID, _GRID, indexing="ij")  # [n_sub, n_sub], pixel units


def render_scene(scene: Scene) -> torch.Tensor:
    """One scene as ``[3, 32, 32]`` in [0, 1]."""
    n_sub = RESOLUTION * SUPERSAMPLE
    full = (3, n_sub, n_sub)
    concept, obj = scene.concept, scene.object
    if concept is not None and (obj is None or scene.closeup):
        image = paint_concept(concept.concept, concept.parameters, _GX / RESOLUTION, _GY / RESOLUTION)
    else:
        image = torch.tensor(BACKGROUND).view(3, 1, 1).expand(full)
        if obj is not None:
            u, v = (_GX - obj.x) / (obj.size / 2), (_GY - obj.y) / (obj.size / 2)
            inside = silhouette(obj.object, u, v)
            outline = F.max_pool2d(inside.float()[None, None], 2 * SUPERSAMPLE + 1, 1,
                                   SUPERSAMPLE)[0, 0] > 0  # one pixel around the silhouette
            if concept is None:
                fill = torch.tensor(obj.colour).view(3, 1, 1).expand(full)
            else:  # the picture printed over the carrier's bounding square
                fill = paint_concept(concept.concept, concept.parameters, (u + 1) / 2, (v + 1) / 2)
            image = torch.where(outline, torch.tensor(OUTLINE).view(3, 1, 1).expand(full), image)
            image = torch.where(inside, fill, image)
    return F.avg_pool2d(image[None], SUPERSAMPLE)[0]


def render(scenes: Sequence[Scene]) -> torch.Tensor:
    """Draw scenes as images ``[scene, 3, 32, 32]`` in [0, 1]."""
    if not scenes:
        return torch.zeros(0, 3, RESOLUTION, RESOLUTION)
    return torch.stack([render_scene(s) for s in scenes])


def random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A saturated colour that stands out from the light background."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.55, 0.95)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def draw_object(obj: str, rng: np.random.Generator) -> ObjectInstance:
    """A carrier with fresh colour, size and place (the whole outline inside the frame)."""
    size = float(rng.uniform(*SIZE_RANGE))
    low, high = size / 2 + 1.5, RESOLUTION - size / 2 - 1.5
    colour = random_colour(rng)
    return ObjectInstance(obj, colour, size, float(rng.uniform(low, high)),
                          float(rng.uniform(low, high)))


@dataclass(frozen=True)
class Scenes:
    """A batch of rendered scenes with their captions and presence labels."""

    images: torch.Tensor  # [scene, 3, h, w] in [0, 1]
    captions: list[str]
    labels: torch.Tensor  # [scene, name] bool: concept or object present, in World.names order
    scenes: list[Scene]


@dataclass(frozen=True)
class World:
    """Which concepts and objects exist, which concept has limited diversity, how scenes mix.

    ``instances`` is the diversity knob K of the ``limited`` concept (``None``: unlimited).
    ``unpaired`` are objects never shown with the limited concept in training; every other
    concept is printed on every object. ``scene_mix`` gives the shares of object-alone,
    concept-alone and pair scenes (normalised to sum 1); ``closeup`` the share of pair pictures
    that show only the print, filling the frame.
    """

    concepts: tuple[str, ...] = CONCEPTS
    objects: tuple[str, ...] = OBJECTS
    limited: str = "sunset"
    instances: int | None = None
    instance_seed: int = 0
    unpaired: tuple[str, ...] = ("hat", "kite")
    scene_mix: tuple[float, float, float] = SCENE_MIX
    closeup: float = CLOSEUP
    _instances: tuple[ConceptInstance, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("concepts", "objects", "unpaired", "scene_mix"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in self.concepts:
            check_name(name, CONCEPTS, "concept")
        for name in self.objects:
            check_name(name, OBJECTS, "object")
        if len(set(self.concepts)) != len(self.concepts) or not self.concepts:
            raise ValueError(f"concepts must be 1 or more distinct names, got {list(self.concepts)}")
        if len(set(self.objects)) != len(self.objects) or not self.objects:
            raise ValueError(f"objects must be 1 or more distinct names, got {list(self.objects)}")
        check_name(self.limited, self.concepts, "limited concept")
        for name in self.unpaired:
            check_name(name, self.objects, "unpaired object")
        if not self.paired_objects:
            raise ValueError(f"every object is unpaired; at least one must carry {self.limited!r}")
        if self.instances is not None and (isinstance(self.instances, bool)
                                           or not isinstance(self.instances, (int, np.integer))
                                           or self.instances < 1):
            raise ValueError(f"instances (K) must be an integer >= 1 or None for unlimited, "
                             f"got {self.instances!r}")
        mix = self.scene_mix
        if len(mix) != 3 or any(not 0 <= float(m) <= 1 for m in mix) or sum(mix) <= 0:
            raise ValueError(f"scene_mix must be 3 shares in [0, 1] ({', '.join(SCENE_KINDS)}) "
                             f"with a positive sum, got {list(mix)}")
        object.__setattr__(self, "scene_mix", tuple(float(m) / sum(mix) for m in mix))
        if isinstance(self.closeup, bool) or not isinstance(self.closeup, (int, float)) \
                or not 0 <= self.closeup <= 1:
            raise ValueError(f"closeup must be a share in [0, 1], got {self.closeup!r}")
        object.__setattr__(self, "_instances", self._draw_instances())

    # --- description -----------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Every concept and object, the detector's labels in this order."""
        return (*self.concepts, *self.objects)

    @property
    def paired_objects(self) -> tuple[str, ...]:
        """Objects the limited concept is printed on in training."""
        return tuple(o for o in self.objects if o not in self.unpaired)

    @property
    def pair_fraction(self) -> float:
        """Share of training scenes that are pairs (the same at every K)."""
        return self.scene_mix[2]

    @property
    def words(self) -> tuple[str, ...]:
        """Every word a caption of this world can contain."""
        return self.names

    @property
    def instance_list(self) -> tuple[ConceptInstance, ...]:
        """The K fixed pictures of the limited concept (empty when diversity is unlimited)."""
        return self._instances

    def to_dict(self) -> dict:
        """The world as JSON-ready fields (tuples as lists, private fields left out)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if not k.startswith("_")}

    @classmethod
    def from_dict(cls, data: dict) -> "World":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    # --- drawing ---------------------------------------------------------------------------
    def _draw_instances(self) -> tuple[ConceptInstance, ...]:
        if self.instances is None:
            return ()
        rng = np.random.default_rng((self.instance_seed, 7))
        return tuple(ConceptInstance(self.limited, draw_concept(self.limited, rng))
                     for _ in range(self.instances))

    def draw_concept(self, concept: str, rng: np.random.Generator) -> ConceptInstance:
        """One picture of ``concept``: new from its rule, or one of the limited concept's K."""
        if concept == self.limited and self._instances:
            return self._instances[int(rng.integers(len(self._instances)))]
        return ConceptInstance(concept, draw_concept(concept, rng))

    def sample_scene(self, rng: np.random.Generator) -> Scene:
        """One training scene: an object, a concept, or a pair, by ``scene_mix``."""
        kind = SCENE_KINDS[int(rng.choice(3, p=self.scene_mix))]
        if kind == "object":
            return Scene(object=draw_object(self.objects[int(rng.integers(len(self.objects)))], rng))
        concept = self.concepts[int(rng.integers(len(self.concepts)))]
        if kind == "concept":
            return Scene(concept=self.draw_concept(concept, rng))
        carriers = self.paired_objects if concept == self.limited else self.objects
        obj = carriers[int(rng.integers(len(carriers)))]
        closeup = bool(rng.uniform() < self.closeup) if self.closeup else False
        return Scene(self.draw_concept(concept, rng), draw_object(obj, rng), closeup)

    def scenes(self, scenes: Sequence[Scene]) -> Scenes:
        """Render given scenes, with their captions and labels."""
        labels = torch.zeros(len(scenes), len(self.names), dtype=torch.bool)
        for i, scene in enumerate(scenes):
            for part in scene.visible:
                labels[i, self.names.index(part)] = True
        return Scenes(render(scenes), [s.caption for s in scenes], labels, list(scenes))

    def draw(self, n: int, seed: int | Sequence[int]) -> list[Scene]:
        """``n`` training scenes, not rendered, from a generator seeded with ``seed`` (int or int
        tuple): what :meth:`sample` renders, for counting what training shows without drawing it."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        rng = np.random.default_rng(seed)
        return [self.sample_scene(rng) for _ in range(n)]

    def sample(self, n: int, seed: int | Sequence[int]) -> Scenes:
        """``n`` training scenes drawn from a generator seeded with ``seed`` (int or int tuple)."""
        return self.scenes(self.draw(n, seed))

    def sample_detector_scenes(self, n: int, seed: int | Sequence[int]) -> Scenes:
        """Scenes for the detector: empty, a concept, an object or any pair, all fully diverse."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            kind = int(rng.choice(4, p=[0.05, 0.3, 0.3, 0.35]))  # empty, concept, object, pair
            concept = (ConceptInstance(c, draw_concept(c, rng)) if kind in (1, 3) and
                       (c := self.concepts[int(rng.integers(len(self.concepts)))]) else None)
            obj = (draw_object(self.objects[int(rng.integers(len(self.objects)))], rng)
                   if kind in (2, 3) else None)
            out.append(Scene(concept, obj))
        return self.scenes(out)


PAIR, CONCEPT_ALONE, OBJECT_ALONE = "pair", "concept alone", "object alone"  # arrangements


def prompt_table(world: World | None = None, objects: Sequence[str] | None = None,
                 controls: bool = True) -> pd.DataFrame:
    """Pair prompts of the limited concept in the table shape of :mod:`dvdlib.prompts.prompt_sets`, plus
    one-word controls.

    ``concept`` is the limited concept, ``object`` the object, and ``category`` is "print".
    Each object gives the pair prompt "sunset coaster"; a control keeps its pair's ``concept`` and
    ``object`` and names only one ("sunset" or "coaster"), so a scorer treats it like any row: the
    concept alone should score high, the object alone near zero. ``arrangement`` says which row
    is which ("pair", "concept alone", "object alone") and
    ``paired_in_training`` whether the world ever printed the concept on that object.
    ``objects`` defaults to every object of the world.
    """
    world = world or World()
    objects = tuple(objects) if objects is not None else world.objects
    for name in objects:
        check_name(name, world.objects, "object")
    rows = []
    for obj in objects:
        seen = obj in world.paired_objects
        rows.append((world.limited, obj, caption(world.limited, obj), PAIR, seen))
        if controls:
            rows.append((world.limited, obj, caption(world.limited, None), CONCEPT_ALONE, seen))
            rows.append((world.limited, obj, caption(None, obj), OBJECT_ALONE, seen))
    return pd.DataFrame(
        [(i + 1, CATEGORY, *row) for i, row in enumerate(rows)],
        columns=["case_num", "category", "concept", "object", "prompt", "arrangement",
                 "paired_in_training"],
    )


BORDER = 2  # pixels of the frame's edge that the pixel rule reads
BACKGROUND_TOLERANCE = 0.1  # largest channel difference from the background that still counts


def pixel_rule(images: torch.Tensor) -> pd.DataFrame:
    """Read ``[image, 3, 32, 32]`` images in [0, 1] without any trained judge, one row per image.

    ``border_background``: the share of the outer ``BORDER``-pixel ring within
    ``BACKGROUND_TOLERANCE`` of the plain background. ``frame_filled``: under half of it is
    background (a concept alone fills the frame). ``rule_object_present``: the border is background
    and at least 12 % of the picture is not (a carrier stands on the background).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [image, 3, h, w], got {tuple(images.shape)}")
    distance = (images - torch.tensor(BACKGROUND).view(1, 3, 1, 1)).abs().amax(dim=1)  # [i, h, w]
    ring = torch.ones(images.shape[-2:], dtype=torch.bool)
    ring[BORDER:-BORDER, BORDER:-BORDER] = False
    border = (distance[:, ring] < BACKGROUND_TOLERANCE).float().mean(dim=1)  # [image]
    foreground = (distance > BACKGROUND_TOLERANCE).float().mean(dim=(1, 2))  # [image]
    filled = border < 0.5
    return pd.DataFrame(dict(border_background=border.numpy(), foreground=foreground.numpy(),
                             frame_filled=filled.numpy(),
                             rule_object_present=(~filled & (foreground >= 0.12)).numpy()))
