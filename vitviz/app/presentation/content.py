"""What presentation mode says and shows of a result: answer lines, captions, attention frames and nearness."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from ...render import normalize
from .theme import ACCENT

__all__ = ["answer_lines", "per_word_lines", "explanations", "attention_frames", "nearness", "lens_guess", "source_name", "plain_text",
           "short_reason"]


def _percent(p: float) -> str:
    v = 100.0 * float(p)
    if v < 1.0:
        return "less than 1 %"
    return f"{min(v, 99.0) if v < 100.0 else 100.0:.0f} %"


def _out_of_domain(result: Any) -> bool:
    """Far outside the model's domain (an image only just over the detector's threshold is "unusual" instead)."""
    domain = getattr(result, "domain", None)  # a vitviz.models.domain.DomainVerdict, for models with a detector
    return domain is not None and not domain.in_domain and not domain.unusual


def _unusual(result: Any) -> bool:
    domain = getattr(result, "domain", None)
    return domain is not None and domain.unusual


def answer_lines(result: Any) -> tuple[str, str]:
    """The answer line and the line below it (rich text) for a result: the top class with its probability and the
    runner-ups; a model without classifier, or an image outside the model's domain, gets a sentence instead."""
    if _out_of_domain(result):
        return (
            "I don't know this kind of picture",
            "It looks too different from the pictures I learned from, so I won't guess a name.",
        )
    predictions = list(getattr(result, "predictions", None) or [])
    if not predictions:
        return ("This model has no class labels; it learned to see by itself", "")
    top = predictions[0]
    label = html.escape(top.label.replace("_", " "))
    article = "an" if label[:1].lower() in "aeiou" else "a"
    answer = f"I think this is {article} <b style='color:{ACCENT}'>{label}</b> — {_percent(top.probability)}"
    if getattr(result, "image_embedding", None) is not None:  # words typed by the presenter (CLIP, SigLIP)
        if getattr(result, "scoring", "") == "sigmoid" and not _unusual(result):
            return per_word_lines(result)
        answer = f"Of your words, I pick <b style='color:{ACCENT}'>“{label}”</b> — {_percent(top.probability)}"
    others = [p for p in predictions[1:4] if p.probability >= 0.005]
    if others:
        runner = "Maybe also: " + " · ".join(
            f"{html.escape(p.label.replace('_', ' '))} {_percent(p.probability)}" for p in others
        )
    else:
        runner = "Nothing else came close."
    if _unusual(result):
        runner = "This picture is a bit unusual for me, so I may be wrong."
    return answer, runner


def _with_article(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _listed(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def per_word_lines(result: Any, shown: int = 4) -> tuple[str, str]:
    """Each typed word judged on its own (a model scored per word, as SigLIP is): "I see a capsule (98 %) and a red
    ball (91 %)" and "No cube, no donut." (at most ``shown`` words on either line; a word counts as seen from 50 %)."""
    labels = [str(x).replace("_", " ") for x in getattr(result, "labels", None) or []]
    probs = np.asarray(getattr(result, "probabilities", None) if labels else [], float)
    if not labels or probs.shape != (len(labels),):
        top = result.predictions[0]
        return f"It matches <b style='color:{ACCENT}'>“{html.escape(top.label)}”</b> — {_percent(top.probability)}", ""
    order = np.argsort(-probs, kind="stable")
    seen = [i for i in order if probs[i] >= 0.5]
    unseen = [i for i in order[::-1] if probs[i] < 0.5]
    if seen:
        parts = [f"<b style='color:{ACCENT}'>{html.escape(_with_article(labels[i]))}</b> ({_percent(probs[i])})"
                 for i in seen[:shown]]
        more = len(seen) - shown
        answer = "I see " + _listed(parts + ([f"{more} more"] if more > 0 else []))
    else:
        best = order[0]
        answer = (f"I see none of your words — closest: <b style='color:{ACCENT}'>{html.escape(labels[best])}</b> "
                  f"({_percent(probs[best])})")
        unseen = [i for i in unseen if i != best]
    if not unseen:
        return answer, "Every word you typed is there."
    words = [f"no {html.escape(labels[i])}" for i in unseen[:shown]]
    return answer, words[0][:1].upper() + ", ".join(words)[1:] + (", …" if len(unseen) > shown else ".")


def explanations(result: Any) -> dict[str, str]:
    """Captions for a 12-year-old, one per part: ``patch``, ``attention``, ``depth`` and ``wrong``."""
    grid = result.grid
    layers = int(getattr(result, "num_layers", 0) or 0)
    classes = len(getattr(result, "labels", None) or [])
    texts = {
        "patch": (
            f"The computer cuts the picture into {grid.num_patches} little squares, like puzzle pieces, "
            "and looks at all of them at the same time. The thin lines show the squares."
        ),
        "attention": (
            f"It looks at the picture {layers} times, each time more carefully. Bright squares are the ones "
            "it pays most attention to in that round, like where your eyes go first."
            if layers
            else "This model does not tell us where it looks."
        ),
        "depth": (
            "From this one flat picture, it also guesses how far away every spot is, like you can with one eye "
            "closed. Bright means near, dark means far."
            if getattr(result, "depth", None) is not None
            else "This model does not guess distances."
        ),
    }
    if _out_of_domain(result):
        texts["wrong"] = (
            "It learned from examples, not rules. This picture is too different from its examples, so "
            "instead of making up a wrong name it tells you it does not know."
        )
    elif classes:
        texts["wrong"] = (
            f"Why it can be wrong: it only knows the {classes} kinds of things it practised on, and it learned from "
            "examples, not rules, so an unusual picture can fool it. The % shows how sure it is, not whether it is right."
        )
    else:
        texts["wrong"] = (
            "It was never told the names of things, so it cannot say what it sees. It learned by comparing "
            "many pictures, and a very unusual picture can still confuse it."
        )
    return texts


def attention_frames(result: Any, kind: str = "mean") -> np.ndarray:
    """Where the CLS token looks after each layer, ``[layers, rows, cols]`` each scaled to [0, 1]: the mean over heads
    of that layer (``kind="mean"``) or the attention rollout up to it (``kind="rollout"``)."""
    rows, cols = result.grid.rows, result.grid.cols
    if kind == "rollout" and getattr(result, "attention", None) is not None:
        maps = result.attention.rollout_rows[:, result.num_prefix_tokens :].reshape(-1, rows, cols)
    elif getattr(result, "cls_attention", None) is not None:
        maps = np.asarray(result.cls_attention, dtype=np.float32).mean(axis=1)
    else:
        return np.zeros((0, rows, cols), np.float32)
    return normalize(maps, axis=(1, 2))


def lens_guess(lens: Any, layer: int, labels: list[str]) -> str:
    """What the logit lens says the model would answer after ``layer`` (0-based), for an audience: "it thinks
    sphere (63 %)"; "" without a lens. ``labels``: the result's class names."""
    if lens is None or not 0 <= layer < lens.num_layers:
        return ""
    probs = lens.cls_probabilities[layer]
    best = int(np.argmax(probs))
    name = labels[best].replace("_", " ") if best < len(labels) else f"class {best}"
    return f"it thinks {html.escape(name)} ({_percent(float(probs[best]))})"


def nearness(result: Any) -> np.ndarray | None:
    """The depth map as nearness in [0, 1] (1 = nearest), whatever the model's depth kind; None without depth."""
    depth = getattr(result, "depth", None)
    if depth is None:
        return None
    values = normalize(depth)
    # metric depth grows with distance; relative inverse depth (Depth Anything) grows with nearness
    return values if getattr(result, "depth_kind", None) == "relative_inverse" else 1.0 - values


def source_name(source: Any) -> str:
    """The name a source is shown by: the file name, or the name given with an image array."""
    if isinstance(source, tuple) and len(source) > 1:
        return str(source[1])
    return Path(str(source)).name if source else ""


def plain_text(rich: str) -> str:
    """Rich text without its tags and entities."""
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", rich))


def short_reason(message: str, path: str) -> str:
    """The error message without the file's path (the caption names the file already)."""
    for prefix in (f"{path}: ", f"{Path(path).name}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message.replace(path, Path(path).name)
