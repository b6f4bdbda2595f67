"""What the image-text model is trained to do: the losses, the label box's prompt bank and the per-patch targets.

* :func:`sigmoid_loss` (SigLIP, Zhai et al. 2023): every scene-caption pair a yes-or-no question, moot pairs left out;
* :func:`contrastive_loss` (CLIP): a softmax contrast with every true caption of a scene a positive;
* :func:`dense_loss` with :func:`patch_targets`: each patch an object covers names that object's shape and colour.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .captions import CaptionFacts, Mention, ObjectFacts

__all__ = ["contrastive_loss", "sigmoid_loss", "prompt_bank", "patch_targets", "dense_loss"]


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, positive: torch.Tensor):
    """CLIP's symmetric cross-entropy with several positives: each scene's target is spread evenly over the captions
    true of it, and each caption's over the scenes it is true of (``positive`` ``[B, C]`` bool, every scene with a
    true caption; hard negatives may be true of no scene, and then only count as negatives)."""
    logits = scale * image @ text.t()
    p = positive.float()
    to_text = -(F.log_softmax(logits, dim=1) * p / p.sum(1, keepdim=True)).sum(1).mean()
    read = p.sum(0) > 0  # captions true of some scene of the batch
    pr = p[:, read]
    to_image = -(F.log_softmax(logits[:, read], dim=0) * pr / pr.sum(0, keepdim=True)).sum(0).mean()
    return (to_text + to_image) / 2


def sigmoid_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                 judged: np.ndarray, weight: torch.Tensor | None = None) -> torch.Tensor:
    """SigLIP's loss (Zhai et al. 2023): every scene-caption pair a yes-or-no question, ``log σ(±(scale · cos +
    bias))``, summed over the captions (each times its ``weight`` ``[C]``, default 1) and averaged over the scenes;
    ``judged`` is :func:`captions.truth`'s ``[B, C]`` (2 true, 0 false, 1 moot: left out)."""
    logits = scale * image @ text.t() + bias
    sign = torch.from_numpy(judged.astype(np.float32) - 1.0)
    terms = F.softplus(-sign * logits) * (sign != 0)
    if weight is not None:
        terms = terms * weight
    return terms.sum() / len(image)


def prompt_bank() -> tuple[list[str], list[CaptionFacts]]:
    """The label box's one-word questions, as the app asks them: the 10 shapes, their everyday names and the 9
    colours ("a photo of a ball.", "a photo of a red object."), with what each claims."""
    from .captions import COLOURS, SHAPE_WORDS, SYNONYMS

    shapes = [(s, s) for s in SHAPE_WORDS] + [(w, s) for s, words in SYNONYMS.items() for w in words]
    texts = [f"a photo of a {w}." for w, _ in shapes] + [f"a photo of a {c} object." for c in COLOURS]
    claims = [CaptionFacts((Mention(s),)) for _, s in shapes] + [CaptionFacts((Mention(None, (c,)),)) for c in COLOURS]
    return texts, claims


def patch_targets(ids: np.ndarray, facts: list[list[ObjectFacts]], grid: tuple[int, int],
                  min_cover: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patch of every scene, the object that covers most of it (at least ``min_cover``; only objects the
    captions may name): its shape index among :data:`SHAPE_WORDS` and first colour's among :data:`COLOURS` (-1: no
    object), and a weight that gives every object of a scene the same total (a small distractor counts as much as
    the main object). Returns ``shape [N, P]`` int64, ``colour [N, P]`` int64, ``weight [N, P]`` float32."""
    from .captions import COLOURS, SHAPE_WORDS
    from .scenes import mask_coverage

    n = len(ids)
    most = max(len(f) and max(o.index for o in f) for f in facts) + 1
    cover = np.stack([mask_coverage(ids == k, grid).reshape(n, -1) for k in range(most)], axis=1)  # [N, K, P]
    best, share = cover.argmax(axis=1), cover.max(axis=1)
    shape = np.full(best.shape, -1, np.int64)
    colour = np.full(best.shape, -1, np.int64)
    for i, f in enumerate(facts):
        for o in f:
            hit = (best[i] == o.index) & (share[i] >= min_cover)
            shape[i, hit] = SHAPE_WORDS.index(o.shape)
            colour[i, hit] = COLOURS.index(o.colours[0])
    weight = np.zeros(best.shape, np.float32)
    for i in range(n):
        labelled = shape[i] >= 0
        for k in np.unique(best[i][labelled]):
            members = labelled & (best[i] == k)
            weight[i, members] = 1.0 / members.sum()
    return shape, colour, weight


def dense_loss(patches: torch.Tensor, shapes: torch.Tensor, colours: torch.Tensor, scale: torch.Tensor,
               shape_target: torch.Tensor, colour_target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every labelled patch embedding ``[B, N, E]`` against the shape prompts ``[10, E]`` and the
    colour prompts ``[9, E]``, weighted so that each object of a scene counts once."""
    labelled = shape_target >= 0
    w = weight[labelled]
    p = patches[labelled]
    loss_shape = F.cross_entropy(scale * p @ shapes.t(), shape_target[labelled], reduction="none")
    loss_colour = F.cross_entropy(scale * p @ colours.t(), colour_target[labelled], reduction="none")
    return ((loss_shape + loss_colour) * w).sum() / w.sum().clamp_min(1.0)
