"""The one model interface that vitviz's analysis code reads (engine, attention, features, explain, importance,
lens, compare).

Three implementations:

- :class:`vitviz.models.vit.VisionTransformer`: vitviz's own ViT (the shipped models);
- the same class filled from the pretrained zoo's converted checkpoints (:mod:`vitviz.models.zoo`);
- :class:`vitviz.models.usermodel.UserModel`: any user's ``nn.Module``, unchanged, its attention seen by
  :class:`vitviz.models.capture.AttentionCapture`.

Code that needs more than this interface (running vitviz's own blocks one by one for faster knockouts, tracing,
image-text towers) checks ``isinstance(model, VisionTransformer)`` and keeps a path for the others.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch

from .vit import ViTConfig, ViTOutput

__all__ = ["InspectableModel"]


@runtime_checkable
class InspectableModel(Protocol):
    """What the analysis reads of a model: a forward pass that reports the attention it computes, the token
    layout, head knockout and the readout."""

    config: ViTConfig  # patch size, image size, layers, heads, width, classes
    text: Any  # the text tower of an image-text model, or None
    pool: Any  # an attention-pooling head (SigLIP), or None

    @property
    def num_layers(self) -> int: ...

    @property
    def num_heads(self) -> int: ...

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patch grid (CLS, registers)."""

    @property
    def has_classifier(self) -> bool: ...

    @property
    def has_depth(self) -> bool: ...

    @property
    def has_hidden_states(self) -> bool:
        """Whether ``forward(return_hidden=True)`` gives every block's output tokens (the feature views)."""

    @property
    def lens_problem(self) -> str:
        """Why the logit lens cannot read the model, in one line ("" when it can)."""

    def forward(self, x: torch.Tensor, return_attention: bool = False, return_hidden: bool = False,
                attention_recorder: Callable[..., torch.Tensor] | None = None,
                head_mask: Sequence[torch.Tensor | None] | torch.Tensor | None = None) -> ViTOutput:
        """The model on a normalised batch ``[B, 3, H, W]``: logits, depth, and on request every layer's attention
        probabilities ``[B, heads, T, T]`` (or what ``attention_recorder`` keeps of them, memory linear in T) and
        hidden states; ``head_mask`` ``[layers, heads]`` or ``[layers, B, heads]`` scales each head's output."""

    def forward_scores(self, x: torch.Tensor, return_attention: bool = False) -> ViTOutput:
        """Logits (and attention probabilities, in the autograd graph when gradients are on) without a depth head."""

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor: ...

    def classify(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """The readout: logits of hidden tokens ``[B, T, D]`` as if they were the last block's (the logit lens)."""

    def patch_logits(self, tokens: torch.Tensor, pair: bool = False,
                     label_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """The readout of single tokens ``[N, D]`` (the lens's patch maps)."""
