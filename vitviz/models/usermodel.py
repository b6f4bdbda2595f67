"""Your own ViT, unchanged: any PyTorch module that maps images to logits (and optionally depth) with attention.

:class:`UserModel` wraps the user's ``nn.Module`` and gives the analysis code the same interface as vitviz's own
:class:`~vitviz.models.vit.VisionTransformer` (see :mod:`vitviz.models.interface`): a forward pass that reports the
attention it computes, the token layout, head knockout and the readout. Nothing of the module is rebuilt or
converted; its attention is seen through :class:`~vitviz.models.capture.AttentionCapture`.

At wrapping time one probing pass on a random image finds, without the user naming anything:

- the attention layers (``nn.MultiheadAttention``, ``F.scaled_dot_product_attention`` or a softmax over square
  scores), their token count T and heads;
- the patch size (the ``Conv2d`` with kernel = stride that reads the image, or the one that explains T) and so the
  prefix tokens (CLS, registers) before the grid;
- the image size, from a positional embedding ``[1, N, D]`` when not given;
- the outputs: logits ``[B, C]`` (alone, or in a tuple, dict or output object), depth ``[B, 1, H, W]`` or
  ``[B, H, W]``;
- the blocks (the outermost module around each attention layer that holds one alone), whose outputs are the hidden
  states of the feature views;
- the readout for the logit lens: the module that made the logits, fed from the last block's CLS output (directly,
  or through a final ``LayerNorm``), checked numerically; or the dict's ``"readout"``.

How such a model is named when it is opened (factories, models of this process, MiniViT files) is
:mod:`vitviz.models.userspec`'s.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import VitvizError
from .capture import AttentionCapture, AttentionEvent, CapturePass
from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelInfo
from .vit import ViTConfig, ViTOutput

__all__ = ["UserModel", "UserTextTower", "UserTokenizer", "wrap_model", "SPEC_KEYS", "TEXT_KEYS"]

# What a factory's dict may hold besides "model" (docs/your-own-model.md).
SPEC_KEYS = ("labels", "mean", "std", "image_size", "channels", "readout", "name", "patch_size")
# An image-text model's, in open_clip's convention (plus its logit scale, default the module's ``logit_scale``)
TEXT_KEYS = ("encode_image", "encode_text", "tokenize", "logit_scale")
_MAX_PREFIX_TOKENS = 16
_GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma: a colour image for a 1-channel model


@dataclass
class _Layout:
    """What the probing pass found out about a user's module."""

    tokens: int
    heads: int
    layers: int
    kinds: list[str]
    block_names: list[str] | None  # one module per layer, or None when no module holds a block alone
    logits_at: Any  # where the logits are in the output: None (the output itself), an index or a key
    depth_at: Any = None
    num_classes: int = 0
    embed_dim: int = 0
    seq_first: list[bool] = field(default_factory=list)  # per block: output laid out [T, B, D]


class _TextConfig:
    scoring = "softmax"  # the labels share 100 %, as CLIP's


class UserTextTower(nn.Module):
    """A user's text encoder (``encode_text``) behind the text tower's interface (vitviz.models.text.TextTower):
    label embeddings set by the engine, and CLIP's score, ``scale * cos(image, label)``."""

    def __init__(self, encode_text: Callable[[torch.Tensor], torch.Tensor], logit_scale: float) -> None:
        super().__init__()
        self.encode_text = encode_text
        self.config = _TextConfig()
        self.scale = float(logit_scale)
        self.register_buffer("label_embeddings", torch.zeros(0, 1), persistent=False)
        self._anchor = nn.Parameter(torch.zeros(0), requires_grad=False)  # the device the prompts are encoded on

    @property
    def num_labels(self) -> int:
        return int(self.label_embeddings.shape[0])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.encode_text(ids).float(), dim=-1)

    def set_labels(self, embeddings: torch.Tensor) -> None:
        self.label_embeddings = embeddings.to(self._anchor.device, torch.float32)

    def logits(self, image_embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        image = torch.nn.functional.normalize(image_embedding.float(), dim=-1)
        labels = self.label_embeddings if labels is None else labels
        return image @ labels.t().to(image.dtype) * self.scale


class UserTokenizer:
    """A user's ``tokenize(list of str) -> ids [N, L]`` behind the tokenizer interface the prompts use."""

    def __init__(self, tokenize: Callable[[list[str]], torch.Tensor]) -> None:
        self.tokenize = tokenize
        self.context_length = 0

    def __call__(self, texts: Sequence[str]) -> Any:
        from .text import Tokenized

        ids = torch.as_tensor(self.tokenize(list(texts)))
        self.context_length = int(ids.shape[-1])
        return Tokenized(ids=ids.long(), truncated=[])


class UserModel(nn.Module):
    """A user's ViT behind vitviz's model interface (see the module docstring). Build it with :func:`wrap_model`."""

    def __init__(self, module: nn.Module, config: ViTConfig, layout: _Layout, channels: int,
                 readout: Callable[[torch.Tensor], torch.Tensor] | None, readout_reason: str,
                 encode_image: Callable[[torch.Tensor], Any] | None = None,
                 text: UserTextTower | None = None) -> None:
        super().__init__()
        self.module = module
        self.config = config
        self.layout = layout
        self.channels = channels
        self.readout = readout
        self.readout_reason = readout_reason  # why there is no lens, when readout is None
        self.image_side = encode_image  # an image-text model's encode_image; None: the module itself
        self.text = text
        self.pool = None
        self.depth_head = None
        self.norm = nn.Identity()  # the lens reads hidden states through ``classify``/``patch_logits``

    # -- the interface the analysis code reads (vitviz.models.interface)

    @property
    def num_prefix_tokens(self) -> int:
        return self.layout.tokens - self.config.grid_size**2

    @property
    def num_layers(self) -> int:
        return self.layout.layers

    @property
    def num_heads(self) -> int:
        return self.layout.heads

    @property
    def has_classifier(self) -> bool:
        return self.layout.logits_at is not False or self.text is not None

    @property
    def has_depth(self) -> bool:
        return self.layout.depth_at is not None

    @property
    def has_hidden_states(self) -> bool:
        return self.layout.block_names is not None

    @property
    def depth_needs_hidden(self) -> bool:
        return False

    @property
    def lens_problem(self) -> str:
        """Why the logit lens cannot read this model ("" when it can)."""
        if not self.has_hidden_states:
            return ("the logit lens and the feature views need each block's output, and no module of this model "
                    "holds one block alone")
        return self.readout_reason if self.readout is None else ""

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)

    def classify(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """Logits of hidden tokens ``[B, T, D]`` read as the last block's output (the lens), through the readout
        (and, for an image-text model, against the labels asked about)."""
        if self.readout is None:
            return None
        out = self.readout(tokens[:, 0])
        return self.text.logits(out) if self.text is not None else out

    def patch_logits(self, tokens: torch.Tensor, pair: bool = False,
                     label_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        if self.readout is None:
            raise VitvizError(self.readout_reason)
        out = self.readout(tokens)
        return self.text.logits(out, label_embeddings) if self.text is not None else out

    def forward_scores(self, x: torch.Tensor, return_attention: bool = False) -> ViTOutput:
        """Logits and, with ``return_attention``, every layer's probabilities (in the graph when gradients are on)."""
        return self.forward(x, return_attention=return_attention)

    def forward(self, x: torch.Tensor, return_attention: bool = False, return_hidden: bool = False,
                attention_recorder: Callable[..., torch.Tensor] | None = None,
                head_mask: Sequence[torch.Tensor | None] | torch.Tensor | None = None) -> ViTOutput:
        """The user's forward pass on a normalised 3-channel batch, with the attention captured (see
        :class:`vitviz.models.capture.CapturePass`) and the outputs found by the probe."""
        x = self._channels(x)
        patch = self.config.patch_size
        tokens = self.num_prefix_tokens + (x.shape[-2] // patch) * (x.shape[-1] // patch)
        state = CapturePass(batch=x.shape[0], tokens=tokens, return_attention=return_attention,
                            recorder=attention_recorder, head_mask=head_mask)
        hidden: list[torch.Tensor] | None = [] if return_hidden and self.has_hidden_states else None
        hooks = self._hidden_hooks(hidden) if hidden is not None else []
        try:
            with AttentionCapture(state):
                raw = self.module(x) if self.image_side is None else self.image_side(x)
        finally:
            for hook in hooks:
                hook.remove()
        if state.layer != self.layout.layers:
            raise VitvizError(f"the model computed {state.layer} attention layers on this input, not the "
                              f"{self.layout.layers} found when it was opened")
        logits = None if self.layout.logits_at is False else _pick(raw, self.layout.logits_at).float()
        pooled = None
        if self.text is not None:  # the image embedding, scored against the labels asked about
            pooled = logits
            logits = self.text.logits(pooled) if self.text.num_labels else None
        depth = None if self.layout.depth_at is None else _as_depth(_pick(raw, self.layout.depth_at))
        rows = x.shape[-2] // self.config.patch_size
        cols = x.shape[-1] // self.config.patch_size
        last = hidden[-1] if hidden else None
        return ViTOutput(tokens=last if last is not None else x.new_zeros(x.shape[0], self.layout.tokens, 1),
                         logits=logits, depth=depth, attentions=state.attentions if return_attention else None,
                         hidden_states=hidden, grid=(rows, cols), num_prefix_tokens=self.num_prefix_tokens,
                         pooled=pooled)

    # -- helpers

    def _channels(self, x: torch.Tensor) -> torch.Tensor:
        """A colour batch for a 1-channel model becomes grey (the normalisation is the same on every channel)."""
        if self.channels == 1 and x.shape[1] == 3:
            w = torch.tensor(_GREY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            return (x * w).sum(dim=1, keepdim=True)
        return x

    def _hidden_hooks(self, hidden: list[torch.Tensor]) -> list[Any]:
        modules = dict(self.module.named_modules())
        hooks = []
        for i, name in enumerate(self.layout.block_names or ()):
            seq_first = self.layout.seq_first[i]

            def keep(_m: nn.Module, _args: Any, output: Any, seq_first: bool = seq_first) -> None:
                t = _first_tensor(output)
                hidden.append(t.transpose(0, 1) if seq_first else t)
            hooks.append(modules[name].register_forward_hook(keep))
        return hooks


# ------------------------------------------------------------------------------------------------ outputs


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise VitvizError(f"a block returned {type(output).__name__}, not a tensor of tokens")


def _items(raw: Any) -> list[tuple[Any, Any]]:
    """``(where, value)`` of each part of a module's output: the output itself, a tuple's items, a dict's or an
    output object's fields (transformers' ``ModelOutput``)."""
    if isinstance(raw, torch.Tensor):
        return [(None, raw)]
    if isinstance(raw, Mapping):
        return list(raw.items())
    if isinstance(raw, (tuple, list)):
        return list(enumerate(raw))
    fields = getattr(raw, "__dict__", None)
    if fields:
        return [(f"attr:{k}", v) for k, v in fields.items() if not k.startswith("_")]
    return []


def _pick(raw: Any, where: Any) -> torch.Tensor:
    if where is None:
        return raw
    if isinstance(where, str) and where.startswith("attr:"):
        return getattr(raw, where[5:])
    return raw[where]


def _as_depth(depth: torch.Tensor) -> torch.Tensor:
    return (depth[:, None] if depth.ndim == 3 else depth).float()


def _find_outputs(raw: Any, batch: int) -> tuple[Any, Any, int]:
    """Where the logits ``[B, C]`` and the depth ``[B, 1, H, W]`` / ``[B, H, W]`` are in the output of a probe
    batch of ``batch`` images (a part named like "logits" or "depth" first); ``False`` / None where absent."""
    logits, depth = [], []
    for k, v in _items(raw):
        if not isinstance(v, torch.Tensor) or v.shape[:1] != (batch,) or not v.is_floating_point():
            continue
        named = str(k).lower() if k is not None else ""
        if v.ndim == 2:
            logits.append(("logit" not in named, k, v.shape[1]))
        elif (v.ndim == 4 and v.shape[1] == 1 or v.ndim == 3) and min(v.shape[-2:]) > 1:
            depth.append(("depth" not in named, k))
    logits_at, classes = (min(logits, key=lambda c: c[0])[1:] if logits else (False, 0))
    return logits_at, (min(depth, key=lambda c: c[0])[1] if depth else None), classes


# ------------------------------------------------------------------------------------------------ probing


def _patch_conv(module: nn.Module, channels: int | None) -> nn.Conv2d | None:
    """The first ``Conv2d`` with kernel = stride (a patch embedding), if any."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == m.stride and m.kernel_size[0] == m.kernel_size[1] \
                and m.kernel_size[0] > 1 and (channels is None or m.in_channels == channels):
            return m
    return None


def _positional_tokens(module: nn.Module) -> list[int]:
    """Token counts N of parameters shaped like a learnt positional embedding ``[1, N, D]`` (largest first)."""
    counts = [p.shape[1] for name, p in module.named_parameters()
              if p.ndim == 3 and p.shape[0] == 1 and p.shape[1] > 4 and "pos" in name.lower()]
    return sorted(counts, reverse=True)


def _square_grid(tokens: int) -> tuple[int, int] | None:
    """``(prefix, side)`` with ``tokens = prefix + side**2`` and the fewest prefix tokens."""
    for prefix in range(0, _MAX_PREFIX_TOKENS + 1):
        side = math.isqrt(tokens - prefix) if tokens > prefix else 0
        if side > 1 and side * side == tokens - prefix:
            return prefix, side
    return None


def _guess_image_size(module: nn.Module, patch: int | None) -> int | None:
    for n in _positional_tokens(module):
        found = _square_grid(n)
        if found and patch:
            return found[1] * patch
    return None


def _blocks(events: list[AttentionEvent], seen: dict[str, tuple[Any, Any]]) -> list[str] | None:
    """The outermost module around each attention layer that holds it alone, when these modules are the blocks of
    a residual stream: each one's output is the next one's input. None otherwise (vit-pytorch's loops add the
    residual outside any module; then no module's output is a block's)."""
    counts = Counter(name for e in events for name in set(e.stack))
    blocks = []
    for e in events:
        alone = [name for name in e.stack if counts[name] == 1]
        if not alone:
            return None
        blocks.append(alone[0])
    if len(set(blocks)) != len(blocks):
        return None
    for before, after in zip(blocks, blocks[1:]):
        out, inp = seen.get(before, (None, None))[1], seen.get(after, (None, None))[0]
        if out is None or (inp is not None and (inp.shape != out.shape or not torch.equal(inp, out))):
            return None
    return blocks


def _probe(module: nn.Module, x: torch.Tensor, call: Callable[[torch.Tensor], Any] | None = None
           ) -> tuple[Any, CapturePass, dict[str, tuple[Any, Any]]]:
    """One pass of ``module`` on ``x`` with every module's place in the call stack and every module's input and
    output (first tensors) kept."""
    state = CapturePass(batch=x.shape[0], tokens=None, events=[])
    seen: dict[str, tuple[Any, Any]] = {}
    hooks = []
    for name, m in module.named_modules():
        if not name:
            continue

        def enter(_m: nn.Module, _args: Any, name: str = name) -> None:
            state.stack.append(name)

        def leave(_m: nn.Module, args: Any, output: Any, name: str = name) -> None:
            if state.stack and state.stack[-1] == name:
                state.stack.pop()
            inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
            out = output if isinstance(output, torch.Tensor) else (
                output[0] if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor)
                else None)
            seen[name] = (inp, out)
        hooks += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    try:
        with torch.no_grad(), AttentionCapture(state):
            raw = (call or module)(x)
    finally:
        for h in hooks:
            h.remove()
    return raw, state, seen


def _find_readout(module: nn.Module, seen: dict[str, tuple[Any, Any]], logits: torch.Tensor,
                  last: torch.Tensor | None) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """The logit lens's readout: the outermost module whose output is the logits, fed the last block's CLS output
    directly or through a ``LayerNorm`` applied to the last block's output; checked against the probe's logits."""
    no = "the logit lens needs the model's readout (its final norm and head): give it as \"readout\" in the dict"
    if last is None:
        return None, no
    modules = dict(module.named_modules())
    heads = [name for name, (_, out) in seen.items()
             if out is not None and out.shape == logits.shape and torch.equal(out, logits)]
    norms = [modules[name] for name, (inp, _) in seen.items()
             if isinstance(modules[name], nn.LayerNorm) and inp is not None and inp.shape == last.shape
             and torch.equal(inp, last)]
    for name in sorted(heads, key=lambda n: n.count(".")):
        head = modules[name]
        for norm in [None, *norms]:
            def readout(t: torch.Tensor, head: nn.Module = head, norm: nn.Module | None = norm) -> torch.Tensor:
                return head(t if norm is None else norm(t))
            with torch.no_grad():
                try:
                    got = readout(last[:, 0])
                except Exception:  # noqa: BLE001 - not this module: its input is something else
                    continue
            if got.shape == logits.shape and torch.allclose(got, logits, rtol=1e-4, atol=1e-5):
                return readout, ""
    return None, no


def wrap_model(spec: nn.Module | Mapping[str, Any], name: str | None = None, **overrides: Any
               ) -> tuple[UserModel, ModelInfo]:
    """A user's module (or a factory's dict: ``{"model": module, "labels": ..., "mean": ..., "std": ...,
    "image_size": ..., "channels": ..., "readout": ...}``) as a :class:`UserModel` and its :class:`ModelInfo`.
    ``overrides`` (the same keys) win over the dict's. Raises :class:`VitvizError` with a one-line reason when the
    module cannot be read as a ViT (no attention, no logits, a failing forward pass)."""
    options: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        if "model" not in spec:
            raise VitvizError("the factory's dict has no \"model\" key")
        text_keys = {"encode_image", "encode_text", "tokenize"} & set(spec)
        if text_keys and len(text_keys) != 3:
            raise VitvizError("an image-text model needs all three of encode_image, encode_text and tokenize "
                              f"(open_clip's convention); the dict gives {', '.join(sorted(text_keys))}")
        unknown = set(spec) - {"model", *SPEC_KEYS, *TEXT_KEYS}
        if unknown:
            raise VitvizError(f"the factory's dict has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        options.update({k: v for k, v in spec.items() if k != "model"})
        module = spec["model"]
    else:
        module = spec
    options.update({k: v for k, v in overrides.items() if v is not None})
    if not isinstance(module, nn.Module):
        raise VitvizError(f"expected a torch.nn.Module, got {type(module).__name__}")
    module.eval()
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    conv = _patch_conv(module, options.get("channels"))
    channels = int(options.get("channels") or (conv.in_channels if conv is not None else 3))
    if channels not in (1, 3):
        raise VitvizError(f"vitviz shows images to models of 1 or 3 channels, not {channels}")
    patch = int(options["patch_size"]) if options.get("patch_size") else (conv.kernel_size[0] if conv else None)
    size = int(options.get("image_size") or _guess_image_size(module, patch) or 224)

    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    try:
        raw, state, seen = _probe(module, x, options.get("encode_image"))
    except VitvizError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code: its failure becomes one line
        raise VitvizError(f"the model failed on a {size}x{size} image of {channels} channel(s): "
                          f"{type(exc).__name__}: {exc} (give image_size= / channels= if these are wrong)") from exc
    events = state.events or []
    if not events:
        raise VitvizError("no attention found in this model: vitviz looks for nn.MultiheadAttention, "
                          "F.scaled_dot_product_attention and a softmax over square [.., T, T] scores")
    token_counts = Counter(e.tokens for e in events)
    tokens = token_counts.most_common(1)[0][0]
    events = [e for e in events if e.tokens == tokens]
    heads = events[0].heads
    if any(e.heads != heads for e in events):
        raise VitvizError("the attention layers of this model have different numbers of heads; vitviz shows "
                          "models whose layers all have the same")
    if patch is None:  # no patch Conv2d: the patch size that explains the tokens with the fewest prefix tokens
        candidates = [(tokens - (size // p) ** 2, p) for p in range(2, size + 1)
                      if size % p == 0 and 0 <= tokens - (size // p) ** 2 <= _MAX_PREFIX_TOKENS]
        if not candidates:
            raise VitvizError(f"cannot tell the patch size: {tokens} tokens for a {size}x{size} image "
                              "(give patch_size=)")
        patch = min(candidates)[1]
    grid = size // patch
    prefix = tokens - grid * grid
    if not 0 <= prefix <= _MAX_PREFIX_TOKENS:
        raise VitvizError(f"{tokens} attention tokens do not fit a {grid}x{grid} patch grid of {size} px images "
                          f"with patch {patch}")
    logits_at, depth_at, classes = _find_outputs(raw, 2)
    if logits_at is False and depth_at is None:
        raise VitvizError(f"the model's output ({type(raw).__name__}) holds no logits [B, classes] and no depth "
                          "[B, 1, H, W]: vitviz needs one of them")
    blocks = _blocks(events, seen)
    seq_first: list[bool] = []
    embed_dim = 0
    last = None
    if blocks is not None:
        outs = [seen.get(b, (None, None))[1] for b in blocks]
        if any(o is None or o.ndim != 3 for o in outs):
            blocks = None
        else:
            seq_first = [o.shape[0] == tokens and o.shape[1] == 2 for o in outs]
            last = outs[-1].transpose(0, 1) if seq_first[-1] else outs[-1]
            embed_dim = int(last.shape[-1])
    text = _text_tower(module, options) if options.get("encode_text") is not None else None
    if text is not None:
        if logits_at is False:
            raise VitvizError("encode_image gives no image embedding [B, E]")
        from .imagetext import DEFAULT_LABELS

        labels = [str(v) for v in options.get("labels") or DEFAULT_LABELS]
        classes = 0
    else:
        labels = [str(v) for v in options.get("labels") or []] or [f"class {i}" for i in range(classes)]
    if text is None and logits_at is not False and len(labels) != classes:
        raise VitvizError(f"{len(labels)} labels for a model with {classes} classes")
    readout = options.get("readout")
    reason = ""
    if readout is None and logits_at is not False:
        readout, reason = _find_readout(module, seen, _pick(raw, logits_at), last)
    elif logits_at is False:
        reason = "the logit lens needs a classifier; this model has none"
    config = ViTConfig(image_size=size, patch_size=patch, in_chans=channels, embed_dim=embed_dim or 1,
                       depth=len(events), num_heads=heads, num_classes=classes, fixed_size=True,
                       depth_head="user" if depth_at is not None else "none")
    layout = _Layout(tokens=tokens, heads=heads, layers=len(events), kinds=sorted({e.kind for e in events}),
                     block_names=blocks, logits_at=logits_at, depth_at=depth_at, num_classes=classes,
                     embed_dim=embed_dim, seq_first=seq_first)
    model = UserModel(module, config, layout, channels, readout, reason, options.get("encode_image"), text)
    mean = _triple(options.get("mean"), IMAGENET_MEAN, "mean")
    std = _triple(options.get("std"), IMAGENET_STD, "std")
    shown = options.get("name") or name or type(module).__name__
    info = ModelInfo(name=str(shown), config=config, labels=labels, mean=mean, std=std,
                     tokenizer=UserTokenizer(options["tokenize"]) if text is not None else None,
                     depth_kind="relative" if depth_at is not None else None,
                     description=f"your own model ({type(module).__name__}): {len(events)} attention layers "
                                 f"({', '.join(layout.kinds)}), {heads} heads, {tokens} tokens",
                     source="user")
    return model, info


def _text_tower(module: nn.Module, options: Mapping[str, Any]) -> UserTextTower:
    """The text side of an image-text model: its ``encode_text`` and logit scale (the dict's ``logit_scale``, else
    the exponential of the module's own ``logit_scale`` parameter, as open_clip and CLIP keep it, else 100)."""
    scale = options.get("logit_scale")
    if scale is None:
        own = getattr(module, "logit_scale", None)
        scale = float(own.detach().exp()) if isinstance(own, torch.Tensor) else 100.0
    return UserTextTower(options["encode_text"], float(scale))


def _triple(value: Any, default: tuple[float, float, float], what: str) -> tuple[float, float, float]:
    if value is None:
        return default
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise VitvizError(f"{what} takes 1 or 3 values, not {len(values)}")
    if what == "std" and any(v <= 0 for v in values):
        raise VitvizError("std must be positive")
    return (values[0], values[1], values[2])
