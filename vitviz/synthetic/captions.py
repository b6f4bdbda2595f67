"""Captions of the generated scenes, written from each scene's own spec, for the shipped image-text model.

A scene's *facts* (:func:`scene_facts`) are its visible objects, the main one first: shape, colour name(s), pixel
count, and for the distractors where they are relative to the main object (left or right of it in the picture,
in front of or behind it). :func:`caption` writes one random sentence from them ("a photo of a red cube, a small blue
ball to the left of it."); :class:`CaptionFacts` is what a sentence claims, so :func:`truth` can tell which of a
batch's captions are true of which of its scenes (a caption is partial: it may leave out colours and distractors).

How a colour gets its name (:func:`colour_name`): the hue and saturation of the object's first albedo colour
(``color1``, sRGB, before lighting): saturation below :data:`GREY_SATURATION` is "grey", otherwise the named hue
range it falls in (:data:`HUE_NAMES`). A textured object whose second colour (``color2``) has another name is
two-coloured ("red and blue"); plain objects, and shades of one hue, have one name.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np

from .scenes import CLASSES, Camera, make_shape

__all__ = ["COLOURS", "HUE_NAMES", "GREY_SATURATION", "SHAPE_WORDS", "SYNONYMS", "RELATIONS", "MIN_PIXELS", "mirrored",
           "ObjectFacts", "CaptionFacts", "colour_name", "object_colours", "scene_facts", "caption", "hard_negative",
           "truth", "shape_presence", "second_object", "Mention", "query", "write", "size_class", "SALIENT_SHARE", "SMALL_SHARE", "TWO_OBJECT_SHARE",
           "vocabulary", "shape_word", "BOS", "EOS", "UNK"]

BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "[UNK]"  # the special words of the captions' tokenizer

# Upper ends (degrees, exclusive) of the named hue ranges, from 0; red wraps around.
HUE_NAMES: tuple[tuple[float, str], ...] = (
    (15, "red"), (45, "orange"), (70, "yellow"), (165, "green"), (195, "cyan"), (255, "blue"), (290, "purple"),
    (345, "pink"), (360, "red"),
)
GREY_SATURATION = 0.3
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "grey")
SHAPE_WORDS: tuple[str, ...] = tuple(c.replace("_", " ") for c in CLASSES)  # "star prism"
# Everyday words for some shapes, used in a quarter of the captions that name these shapes.
SYNONYMS: dict[str, tuple[str, ...]] = {"sphere": ("ball",), "cube": ("box",), "torus": ("donut",),
                                         "star prism": ("star",)}
RELATIONS: tuple[str, ...] = ("to the left of", "to the right of", "in front of", "behind")
MIN_PIXELS = 0.002  # a distractor is visible (named in captions) from this fraction of the image's pixels on
_SIDE_MARGIN = 0.08  # of the image width between the two objects' centroids before one is left of the other
_DEPTH_MARGIN = 0.3  # metres along the camera axis before one is in front of the other
_SYNONYM_P = 0.25
_COLOUR_P = 0.75  # the main object's colour is named
_OBJECT_P = 0.1  # the main object's shape left out ("a red object")
_MENTION_P = 0.5  # each visible distractor is named
_RELATION_P = 0.6  # a named distractor's relation is given (where it has one)
_PHOTO_P = 0.5  # "a photo of ..." (the default prompt template) rather than the bare phrase


def colour_name(rgb) -> str:
    """The name of an sRGB colour in [0, 1] (see the module docstring)."""
    h, s, _v = colorsys.rgb_to_hsv(*(float(c) for c in rgb))
    if s < GREY_SATURATION:
        return "grey"
    degrees = h * 360.0
    return next(name for end, name in HUE_NAMES if degrees < end)


def object_colours(obj: dict) -> tuple[str, ...]:
    """One colour name, or two ("red", "blue") for a textured object whose second colour has another name."""
    first = colour_name(obj["color1"])
    if obj["texture"]["kind"] == "plain":
        return (first,)
    second = colour_name(obj["color2"])
    return (first,) if second == first else (first, second)


@dataclass(frozen=True)
class ObjectFacts:
    index: int  # in spec["objects"]; 0 is the main object
    shape: str  # one of SHAPE_WORDS
    colours: tuple[str, ...]
    pixels: int
    relations: tuple[str, ...] = ()  # of a distractor to the main object, from RELATIONS
    x: float = 0.5  # the centroid's column, as a fraction of the image width
    z: float = 0.0  # the bounding sphere's centre along the camera's axis, metres


def scene_facts(spec: dict, ids: np.ndarray) -> list[ObjectFacts]:
    """The visible objects of a scene (the main one first, always), from its spec and :func:`object_ids` map."""
    h, w = ids.shape
    counts = np.bincount(ids[ids >= 0].ravel().astype(np.int64), minlength=len(spec["objects"]))
    cam = Camera.from_dict(spec["camera"])
    forward = cam.forward
    cols = np.arange(w)[None, :]

    def centre_x(i: int) -> float:
        m = ids == i
        return float((m * cols).sum() / max(1, m.sum()))

    def distance(i: int) -> float:
        return float((make_shape(spec["objects"][i]).bound_center - cam.position) @ forward)

    facts = []
    main_x, main_z = centre_x(0), distance(0)
    for i, obj in enumerate(spec["objects"]):
        if i and counts[i] < MIN_PIXELS * h * w:
            continue
        x, z = centre_x(i), distance(i)
        rel: list[str] = []
        if i:
            dx, dz = x - main_x, z - main_z
            if abs(dx) > _SIDE_MARGIN * w:
                rel.append(RELATIONS[0] if dx < 0 else RELATIONS[1])
            if abs(dz) > _DEPTH_MARGIN:
                rel.append(RELATIONS[2] if dz < 0 else RELATIONS[3])
        facts.append(ObjectFacts(i, obj["shape"].replace("_", " "), object_colours(obj), int(counts[i]), tuple(rel),
                                 x / w, z))
    return facts


def mirrored(facts: list[ObjectFacts], width: int) -> list[ObjectFacts]:
    """The facts of a scene's left-right mirror image (``width`` pixels wide): centroids mirrored, "to the left of"
    and "to the right of" swapped; shapes, colours, sizes and depths as they were."""
    swap = {RELATIONS[0]: RELATIONS[1], RELATIONS[1]: RELATIONS[0]}
    edge = (width - 1) / width  # column c becomes width - 1 - c
    return [replace(o, x=edge - o.x, relations=tuple(swap.get(r, r) for r in o.relations)) for o in facts]


def shape_word(shape: str, rng: np.random.Generator | None = None) -> str:
    """The shape's name, or now and then one of its everyday :data:`SYNONYMS`."""
    words = SYNONYMS.get(shape)
    if rng is None or not words or rng.random() >= _SYNONYM_P:
        return shape
    return str(words[rng.integers(len(words))])


def _colour_words(colours: tuple[str, ...]) -> str:
    return " and ".join(colours)


SALIENT_SHARE = 0.02  # an object of at least this share of the picture is plainly there: "a cube" is true of it
SMALL_SHARE = 0.01  # below this share (and visible) it is small: "a small cube"; in between, either reading is moot
TWO_OBJECT_SHARE = 0.03  # the evaluations' "second object": of another shape than the main one, at least this share
_BIG, _MID, _SMALL = 2, 1, 0  # an object's size class (Mention's truth table reads them)


def size_class(obj: ObjectFacts, area: int) -> int:
    """2: salient (``SALIENT_SHARE`` of the ``area`` pixels or more), 0: small (under ``SMALL_SHARE``), 1: between."""
    share = obj.pixels / area
    return _BIG if share >= SALIENT_SHARE else _SMALL if share < SMALL_SHARE else _MID


@dataclass(frozen=True)
class Mention:
    """One object a caption names: its shape (None: "object"), colours (None: not said), whether it is called
    small, and where it is relative to the caption's first object (one of :data:`RELATIONS`, or None)."""

    shape: str | None
    colours: tuple[str, ...] | None = None
    small: bool = False
    relation: str | None = None


@dataclass(frozen=True)
class CaptionFacts:
    """What a caption claims: the objects it names, the first one the anchor of the others' relations."""

    mentions: tuple[Mention, ...]


def _noun(m: Mention, rng: np.random.Generator | None) -> str:
    noun = "object" if m.shape is None else shape_word(m.shape, rng)
    words = ["small"] if m.small else []
    return " ".join(["a", *words, *([_colour_words(m.colours)] if m.colours else []), noun])


def _relation(a: ObjectFacts, b: ObjectFacts, rng: np.random.Generator) -> str | None:
    """A random relation of ``a`` to ``b`` that holds beyond the margins, or None."""
    rel = []
    if abs(a.x - b.x) > _SIDE_MARGIN:
        rel.append(RELATIONS[0] if a.x < b.x else RELATIONS[1])
    if abs(a.z - b.z) > _DEPTH_MARGIN:
        rel.append(RELATIONS[2] if a.z < b.z else RELATIONS[3])
    return str(rel[rng.integers(len(rel))]) if rel else None


def write(claim: CaptionFacts, rng: np.random.Generator | None = None, photo: bool | None = None) -> str:
    """The sentence of a claim: "a photo of a red cube, a small ball to the left of it." (``photo``: with the
    default template's "a photo of"; None: at random)."""
    parts = [_noun(m, rng) + (f" {m.relation} it" if m.relation else "") for m in claim.mentions]
    text = ", ".join(parts) + "."
    if photo or (photo is None and rng is not None and rng.random() < _PHOTO_P):
        text = "a photo of " + text
    return text


def _mention(obj: ObjectFacts, small: bool, rng: np.random.Generator, anchor: ObjectFacts | None) -> Mention:
    colours = obj.colours if rng.random() < _COLOUR_P else None
    shape = obj.shape
    if anchor is None and rng.random() < _OBJECT_P:  # "a red object"
        shape, colours = None, obj.colours
    rel = _relation(obj, anchor, rng) if anchor is not None and rng.random() < _RELATION_P else None
    return Mention(shape, colours, small, rel)


def caption(facts: list[ObjectFacts], rng: np.random.Generator, area: int = 128 * 128,
            mention_p: float = _MENTION_P) -> tuple[str, CaptionFacts]:
    """One random caption of a scene of ``area`` pixels and what it claims: every salient object named (in random
    order, the first the anchor of the others' relations), each small one with ``mention_p`` ("a small ball"); the
    objects in between are left out."""
    sizes = [size_class(f, area) for f in facts]
    salient = [f for f, c in zip(facts, sizes) if c == _BIG] or [max(facts, key=lambda f: f.pixels)]
    small = [f for f, c in zip(facts, sizes) if c == _SMALL and rng.random() < mention_p]
    order = [salient[int(k)] for k in rng.permutation(len(salient))]
    anchor = order[0]
    mentions = [_mention(anchor, False, rng, None)]
    rest = [(o, False) for o in order[1:]] + [(o, True) for o in small]
    for k in rng.permutation(len(rest)):
        obj, is_small = rest[int(k)]
        mentions.append(_mention(obj, is_small, rng, anchor))
    claim = CaptionFacts(tuple(mentions))
    return write(claim, rng), claim


def query(facts: list[ObjectFacts], rng: np.random.Generator, area: int = 128 * 128) -> tuple[str, CaptionFacts]:
    """A one-object question about a salient object of the scene, as a user types it into the label box: "a photo of
    a capsule.", "... a red object.", "... a red ball." (true of the scene)."""
    salient = [f for f in facts if size_class(f, area) == _BIG] or [max(facts, key=lambda f: f.pixels)]
    obj = salient[int(rng.integers(len(salient)))]
    kind = rng.random()
    colour = (obj.colours[int(rng.integers(len(obj.colours)))],)
    claim = CaptionFacts((Mention(obj.shape, None) if kind < 0.4 else Mention(None, colour) if kind < 0.6
                          else Mention(obj.shape, colour),))
    return write(claim, rng, photo=True), claim


def hard_negative(facts: list[ObjectFacts], rng: np.random.Generator,
                  area: int = 128 * 128) -> tuple[str, CaptionFacts]:
    """A caption of the scene with one thing changed (NegCLIP's hard negatives, Yuksekgonul et al. 2023): one named
    object's shape or colour. Usually false of the scene (:func:`truth` decides); it teaches the image side to see
    what differs."""
    _text, claim = caption(facts, rng, area, mention_p=1.0)
    mentions = list(claim.mentions)
    k = int(rng.integers(len(mentions)))
    m = mentions[k]
    if m.shape is not None and (m.colours is None or rng.random() < 0.5):
        mentions[k] = Mention(str(rng.choice([s for s in SHAPE_WORDS if s != m.shape])), m.colours, m.small, m.relation)
    else:
        said = m.colours or ()
        mentions[k] = Mention(m.shape, (str(rng.choice([c for c in COLOURS if c not in said])),), m.small, m.relation)
    changed = CaptionFacts(tuple(mentions))
    return write(changed, rng), changed


def shape_presence(facts: list[ObjectFacts], area: int = 128 * 128,
                   share: float = TWO_OBJECT_SHARE) -> tuple[set[str], set[str]]:
    """The shapes a per-word score should find (those of the objects of at least ``share`` of the picture) and those
    it is not scored on (the other visible objects' shapes); every other shape is absent."""
    present = {f.shape for f in facts if f.pixels >= share * area}
    return present, {f.shape for f in facts} - present


def second_object(facts: list[ObjectFacts], area: int = 128 * 128,
                  share: float = TWO_OBJECT_SHARE) -> ObjectFacts | None:
    """The largest object of another shape than the main one's that covers at least ``share`` of the picture, or
    None: the scenes the per-word and grounding figures are measured on."""
    others = [f for f in facts[1:] if f.shape != facts[0].shape and f.pixels >= share * area]
    return max(others, key=lambda o: o.pixels) if others else None


# truth[asked small?][object's size class]: 2 true, 1 moot (neither taught nor scored), 0 false
_SIZE_TRUTH = np.array([[1, 1, 2], [2, 1, 0]], np.int8)


def truth(scenes: list[list[ObjectFacts]], claims: list[CaptionFacts], area: int = 128 * 128) -> np.ndarray:
    """``[scenes, captions]`` int8: 2 where a caption is true of a scene, 0 where false, 1 where moot (it names an
    object only as big or as small as the scene's is in between, a relation within its margin, or a salient object
    by a small one's name: "a cube" of a scene whose only cube is tiny). A caption is true when some object of the
    scene is its first mention and, for each other mention, some other object is as said (shape, every colour
    said among the object's, size, and relation to the first)."""
    b, c = len(scenes), len(claims)
    k = max(len(f) for f in scenes)
    m = max(len(cl.mentions) for cl in claims)
    shape = np.full((b, k), -2, np.int16)
    cmask = np.zeros((b, k), np.int16)
    size = np.zeros((b, k), np.int8)
    xs = np.zeros((b, k), np.float32)
    zs = np.zeros((b, k), np.float32)
    for i, facts in enumerate(scenes):
        for j, o in enumerate(facts):
            shape[i, j] = SHAPE_WORDS.index(o.shape)
            cmask[i, j] = sum(1 << COLOURS.index(col) for col in o.colours)
            size[i, j] = size_class(o, area)
            xs[i, j], zs[i, j] = o.x, o.z
    valid = shape >= 0
    mshape = np.full((c, m), -1, np.int16)
    mcol = np.zeros((c, m), np.int16)
    msmall = np.zeros((c, m), np.int8)
    mrel = np.full((c, m), -1, np.int8)
    said = np.zeros((c, m), bool)
    for j, cl in enumerate(claims):
        for t, men in enumerate(cl.mentions):
            said[j, t] = True
            if men.shape is not None:
                mshape[j, t] = SHAPE_WORDS.index(men.shape)
            if men.colours:
                mcol[j, t] = sum(1 << COLOURS.index(col) for col in men.colours)
            msmall[j, t] = men.small
            if men.relation is not None and t:
                mrel[j, t] = RELATIONS.index(men.relation)
    attr = ((mshape[None, :, :, None] == -1) | (mshape[None, :, :, None] == shape[:, None, None, :])) \
        & ((mcol[None, :, :, None] & ~cmask[:, None, None, :]) == 0) & valid[:, None, None, :]
    base = np.where(attr, _SIZE_TRUTH[msmall[None, :, :, None], size[:, None, None, :]], 0).astype(np.int8)
    # relations [B, K_o, K_a, 5]: of object o to anchor a; the last column is "no relation said" (always true)
    dx = xs[:, :, None] - xs[:, None, :]
    dz = zs[:, :, None] - zs[:, None, :]

    def side(d: np.ndarray, margin: float) -> np.ndarray:
        return np.where(d < -margin, 2, np.where(d <= margin, 1, 0)).astype(np.int8)

    rel = np.stack([side(dx, _SIDE_MARGIN), side(-dx, _SIDE_MARGIN), side(dz, _DEPTH_MARGIN),
                    side(-dz, _DEPTH_MARGIN), np.full(dx.shape, 2, np.int8)], axis=-1)
    rel[:, np.arange(k), np.arange(k)] = 0  # another object than the anchor
    value = base[:, :, 0, :]  # [B, C, K_a]: each object as the first mention, the anchor
    for t in range(1, m):
        r = rel[..., mrel[:, t]]  # [B, K_o, K_a, C]
        per = np.minimum(base[:, :, t, :, None], r.transpose(0, 3, 1, 2))  # [B, C, K_o, K_a]
        best = per.max(axis=2)  # [B, C, K_a]
        value = np.minimum(value, np.where(said[None, :, t, None], best, 2))
    return value.max(axis=2).astype(np.int8)


def vocabulary() -> list[str]:
    """Every word the captions use, sorted (the tokenizer's vocabulary, besides its special tokens)."""
    words = {"a", "photo", "of", "small", "and", "it", "object", ".", ","}
    for phrase in (*SHAPE_WORDS, *COLOURS, *RELATIONS, *(w for ws in SYNONYMS.values() for w in ws)):
        words.update(phrase.split())
    return sorted(words)
