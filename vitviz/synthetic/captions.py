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
from dataclasses import dataclass

import numpy as np

from .scenes import CLASSES, Camera, make_shape

__all__ = ["COLOURS", "HUE_NAMES", "GREY_SATURATION", "SHAPE_WORDS", "SYNONYMS", "RELATIONS", "MIN_PIXELS",
           "ObjectFacts", "CaptionFacts", "colour_name", "object_colours", "scene_facts", "caption", "hard_negative",
           "truth",
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
        rel: list[str] = []
        if i:
            dx, dz = centre_x(i) - main_x, distance(i) - main_z
            if abs(dx) > _SIDE_MARGIN * w:
                rel.append(RELATIONS[0] if dx < 0 else RELATIONS[1])
            if abs(dz) > _DEPTH_MARGIN:
                rel.append(RELATIONS[2] if dz < 0 else RELATIONS[3])
        facts.append(ObjectFacts(i, obj["shape"].replace("_", " "), object_colours(obj), int(counts[i]), tuple(rel)))
    return facts


def shape_word(shape: str, rng: np.random.Generator | None = None) -> str:
    """The shape's name, or now and then one of its everyday :data:`SYNONYMS`."""
    words = SYNONYMS.get(shape)
    if rng is None or not words or rng.random() >= _SYNONYM_P:
        return shape
    return str(words[rng.integers(len(words))])


@dataclass(frozen=True)
class CaptionFacts:
    """What a caption claims: the main object's shape (None: not said) and colours (None: not said), and the
    distractors it names as (shape, colours or None, relation or None)."""

    shape: str | None
    colours: tuple[str, ...] | None
    mentions: tuple[tuple[str, tuple[str, ...] | None, str | None], ...] = ()


def _colour_words(colours: tuple[str, ...]) -> str:
    return " and ".join(colours)


def caption(facts: list[ObjectFacts], rng: np.random.Generator,
            mention_p: float = _MENTION_P) -> tuple[str, CaptionFacts]:
    """One random caption of a scene and what it claims (each visible distractor named with ``mention_p``)."""
    main = facts[0]
    shape = None if rng.random() < _OBJECT_P else main.shape
    colours = main.colours if (shape is None or rng.random() < _COLOUR_P) else None
    noun = "object" if shape is None else shape_word(shape, rng)
    parts = [f"a {_colour_words(colours)} {noun}" if colours else f"a {noun}"]
    mentions = []
    others = [f for f in facts[1:] if rng.random() < mention_p]
    for k in rng.permutation(len(others)):
        d = others[int(k)]
        d_colours = d.colours if rng.random() < _COLOUR_P else None
        rel = str(d.relations[rng.integers(len(d.relations))]) if d.relations and rng.random() < _RELATION_P else None
        words = f"a small {_colour_words(d_colours)} {shape_word(d.shape, rng)}" if d_colours else \
            f"a small {shape_word(d.shape, rng)}"
        parts.append(f"{words} {rel} it" if rel else words)
        mentions.append((d.shape, d_colours, rel))
    text = ", ".join(parts) + "."
    if rng.random() < _PHOTO_P:
        text = "a photo of " + text
    return text, CaptionFacts(shape, colours, tuple(mentions))


def hard_negative(facts: list[ObjectFacts], rng: np.random.Generator) -> tuple[str, CaptionFacts]:
    """A caption of the scene with one thing changed (NegCLIP's hard negatives, Yuksekgonul et al. 2023): a
    distractor's shape or colour (every distractor named), or, in a scene without one, the main object's shape or
    colour. Usually false of the scene (:func:`truth` decides); it teaches the image side to see what differs."""
    changed = list(facts)
    k = int(rng.integers(1, len(facts))) if len(facts) > 1 else 0
    obj = changed[k]
    if rng.random() < 0.5:
        shape = str(rng.choice([s for s in SHAPE_WORDS if s != obj.shape]))
        changed[k] = ObjectFacts(obj.index, shape, obj.colours, obj.pixels, obj.relations)
    else:
        colour = str(rng.choice([c for c in COLOURS if c not in obj.colours]))
        changed[k] = ObjectFacts(obj.index, obj.shape, (colour,), obj.pixels, obj.relations)
    return caption(changed, rng, mention_p=1.0)


def truth(scenes: list[list[ObjectFacts]], claims: list[CaptionFacts]) -> np.ndarray:
    """``[scenes, captions]`` bool: whether each caption is true of each scene (its main object as said, and every
    distractor it names visible there with the colours and relation said)."""
    out = np.zeros((len(scenes), len(claims)), bool)
    for i, facts in enumerate(scenes):
        main, others = facts[0], facts[1:]
        for j, c in enumerate(claims):
            if (c.shape is not None and c.shape != main.shape) or (c.colours is not None and c.colours != main.colours):
                continue
            out[i, j] = all(
                any(d.shape == s and (cs is None or d.colours == cs) and (r is None or r in d.relations)
                    for d in others)
                for s, cs, r in c.mentions)
    return out


def vocabulary() -> list[str]:
    """Every word the captions use, sorted (the tokenizer's vocabulary, besides its special tokens)."""
    words = {"a", "photo", "of", "small", "and", "it", "object", ".", ","}
    for phrase in (*SHAPE_WORDS, *COLOURS, *RELATIONS, *(w for ws in SYNONYMS.values() for w in ws)):
        words.update(phrase.split())
    return sorted(words)
