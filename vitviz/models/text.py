"""The text tower of image-text models (CLIP, SigLIP) and the tokenizers that feed it.

A :class:`TextTower` encodes label prompts into the joint image-text space, keeps the normalised embeddings of the
current labels, and scores an image embedding against them (:meth:`TextTower.logits`):

* CLIP (Radford et al. 2021): causal self-attention, the output read at the end-of-text token, a linear projection
  without bias; ``logit_scale · cos``, and a softmax over the labels ("of these labels").
* SigLIP (Zhai et al. 2023): bidirectional self-attention over a prompt padded to the full context, the output read
  at the last position, a linear head with bias; ``logit_scale · cos + logit_bias``, and each label's own sigmoid
  ("matches").

Tokenizers come from well-kept libraries: ``tokenizers`` (a core dependency) reads a ``tokenizer.json`` (CLIP's
byte-level BPE, the shipped vitviz-mini-text's word-level one, or any repository that has one); SigLIP's
``spiece.model`` is read with ``sentencepiece``, from the ``text`` extra (:func:`load_tokenizer` names it when
missing).
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, VitvizError
from .layers import Block

__all__ = ["TextConfig", "TextTower", "TextTokenizer", "Tokenized", "load_tokenizer", "TEXT_EXTRA"]

TEXT_EXTRA = 'pip install "vitviz[text]"'


@dataclass
class TextConfig:
    """Architecture of a :class:`TextTower` (stored in ``ViTConfig.text``)."""

    family: str = "clip"  # "clip" or "siglip"
    vocab_size: int = 49408
    context_length: int = 77
    width: int = 512
    depth: int = 12
    num_heads: int = 8
    mlp_ratio: float = 4.0
    act: str = "quick_gelu"
    norm_eps: float = 1e-5
    projection_dim: int = 512
    eos_token_id: int = 49407  # CLIP: pooled at the first end-of-text token (at the largest id when it is 2)
    pad_token_id: int = 1
    sigmoid: bool = False  # a CLIP-family tower scored as SigLIP is, each label alone (the shipped vitviz-mini-text)

    @property
    def scoring(self) -> str:
        """``"softmax"`` over the labels (CLIP) or one ``"sigmoid"`` per label (SigLIP, or ``sigmoid``)."""
        return "sigmoid" if self.family == "siglip" or self.sigmoid else "softmax"

    @property
    def causal(self) -> bool:
        return self.family == "clip"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TextConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown text-tower option(s): {', '.join(unknown)}")
        config = cls(**data)
        if config.family not in ("clip", "siglip"):
            raise ValueError(f"unknown text-tower family {config.family!r} (clip or siglip)")
        return config


class TextTower(nn.Module):
    """Token and position embeddings, pre-norm transformer blocks, a final norm, pooling and a projection; plus the
    logit scale (and bias) of the image-text score and the embeddings of the labels currently asked about."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.width)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.context_length, c.width))
        self.blocks = nn.ModuleList(
            Block(c.width, c.num_heads, c.mlp_ratio, True, None, c.norm_eps, c.act) for _ in range(c.depth)
        )
        for block in self.blocks:
            block.attn.causal = c.causal
        self.norm = nn.LayerNorm(c.width, eps=c.norm_eps)
        self.proj = nn.Linear(c.width, c.projection_dim, bias=c.family == "siglip")
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))  # log(1 / 0.07), CLIP's initial temperature
        if c.scoring == "sigmoid":
            self.logit_bias = nn.Parameter(torch.tensor(-10.0))
        else:
            self.register_buffer("logit_bias", torch.zeros(()), persistent=False)
        # normalised embeddings of the labels asked about, [labels, projection_dim] (set_labels)
        self.register_buffer("label_embeddings", torch.zeros(0, c.projection_dim), persistent=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.01)

    @property
    def num_labels(self) -> int:
        return int(self.label_embeddings.shape[0])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, L]`` (L ≤ the context; SigLIP: padded to it) -> normalised embeddings ``[B, proj]``."""
        c = self.config
        if ids.shape[1] > c.context_length:
            raise ValueError(f"{ids.shape[1]} tokens for a context of {c.context_length}")
        x = self.token_embedding(ids) + self.pos_embed[:, : ids.shape[1]]
        for block in self.blocks:
            x = block(x)[0]
        x = self.norm(x)
        if c.family == "siglip":
            pooled = x[:, -1]
        elif c.eos_token_id == 2:  # configs from before the end-of-text id was fixed: it is the largest id
            pooled = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
        else:
            pooled = x[torch.arange(x.shape[0], device=x.device), (ids == c.eos_token_id).int().argmax(dim=-1)]
        return F.normalize(self.proj(pooled), dim=-1)

    def set_labels(self, embeddings: torch.Tensor) -> None:
        """Ask about these labels from now on: their normalised embeddings ``[labels, proj]``."""
        self.label_embeddings = embeddings.to(self.label_embeddings.device, self.label_embeddings.dtype)

    def logits(self, image_embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, proj]`` image embeddings (not yet normalised) -> ``[B, labels]`` logits of the labels asked about
        (``labels``: these normalised embeddings instead, e.g. those of an earlier analysis)."""
        image = F.normalize(image_embedding, dim=-1)
        labels = self.label_embeddings if labels is None else labels
        return image @ labels.t().to(image.dtype) * self.logit_scale.exp() + self.logit_bias


# ---------------------------------------------------------------------------------------------------------- tokenizers


@dataclass
class Tokenized:
    ids: torch.Tensor  # [B, L] int64
    truncated: list[int]  # indices of the texts cut to the context


class TextTokenizer:
    """Texts -> token ids for a :class:`TextTower`: ``encode(text)`` gives a text's ids with its special tokens;
    they are cut to ``context_length`` (keeping the end-of-text token) and padded to the longest (CLIP) or to the
    full context (SigLIP, ``pad_to_context``)."""

    def __init__(self, encode: Callable[[str], list[int]], context_length: int, eos_id: int, pad_id: int,
                 pad_to_context: bool, source: str = "",
                 unknown: Callable[[str], list[str]] | None = None) -> None:
        self._encode = encode
        self.context_length = context_length
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.pad_to_context = pad_to_context
        self.source = source
        self._unknown = unknown
        self._vocabulary: list[str] = []

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` outside the tokenizer's vocabulary (read as its unknown token), in order, each once:
        only a tokenizer with such a token has any (a word-level one; byte-level BPE spells every word)."""
        return list(dict.fromkeys(self._unknown(text))) if self._unknown is not None else []

    @property
    def vocabulary(self) -> list[str]:
        """Every word the tokenizer knows, sorted, for a tokenizer that can tell unknown words (else empty)."""
        return list(self._vocabulary)

    def __call__(self, texts: Sequence[str]) -> Tokenized:
        rows, truncated = [], []
        for i, text in enumerate(texts):
            ids = list(self._encode(text))
            if len(ids) > self.context_length:
                ids = ids[: self.context_length - 1] + [self.eos_id]
                truncated.append(i)
            rows.append(ids)
        length = self.context_length if self.pad_to_context else max((len(r) for r in rows), default=1)
        out = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return Tokenized(out, truncated)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}


def _token_text(value: Any, default: str) -> str:
    if isinstance(value, dict):
        return str(value.get("content", default))
    return str(value) if value else default


def siglip_canonical(text: str, lower: bool = True) -> str:
    """SigLIP's text canonicalisation (big_vision's prompt engineering): lower case, ASCII punctuation removed,
    runs of white space made one space."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def load_tokenizer(folder: str | Path, config: TextConfig) -> TextTokenizer:
    """The tokenizer of an image-text model folder: ``tokenizer.json`` (``tokenizers``) where there is one, else
    SigLIP's ``spiece.model`` (``sentencepiece``). :class:`VitvizError` naming what to install when the library is
    missing; :class:`CheckpointError` when the folder has no tokenizer."""
    folder = Path(folder)
    settings = _read_json(folder / "tokenizer_config.json")
    special = _read_json(folder / "special_tokens_map.json")
    context = min(int(settings.get("model_max_length") or config.context_length), config.context_length)
    siglip = config.family == "siglip"
    if (folder / "tokenizer.json").is_file():
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise VitvizError("image-text models need the tokenizers library, a dependency of vitviz: reinstall "
                              "vitviz or pip install tokenizers") from exc
        try:
            tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - the library raises its own exception types
            raise CheckpointError(f"{folder / 'tokenizer.json'}: unreadable tokenizer ({exc})") from exc
        tok.no_truncation()
        tok.no_padding()
        eos_text = _token_text(special.get("eos_token") or settings.get("eos_token"),
                               "</s>" if siglip else "<|endoftext|>")
        pad_text = _token_text(special.get("pad_token") or settings.get("pad_token"), eos_text)
        eos_id = tok.token_to_id(eos_text)
        pad_id = tok.token_to_id(pad_text)
        if eos_id is None:
            raise CheckpointError(f"{folder / 'tokenizer.json'}: no end-of-text token {eos_text!r}")

        def encode_fast(text: str) -> list[int]:
            ids = tok.encode(siglip_canonical(text) if siglip else text).ids
            return ids if ids and ids[-1] == eos_id else ids + [eos_id]

        unk_text = special.get("unk_token") or settings.get("unk_token")
        unk_id = tok.token_to_id(_token_text(unk_text, "")) if unk_text else None
        unknown = None
        if unk_id is not None and unk_id not in (eos_id, pad_id):  # CLIP names its end-of-text token "unknown" too

            def unknown(text: str) -> list[str]:
                enc = tok.encode(siglip_canonical(text) if siglip else text)
                return [enc.tokens[i] if siglip else text[a:b]
                        for i, (token, (a, b)) in enumerate(zip(enc.ids, enc.offsets)) if token == unk_id]

        tokenizer = TextTokenizer(encode_fast, context, eos_id, eos_id if pad_id is None else pad_id, siglip,
                                  str(folder / "tokenizer.json"), unknown)
        if unknown is not None:
            specials = {t.content for t in tok.get_added_tokens_decoder().values()} | {
                eos_text, pad_text, _token_text(unk_text, ""), _token_text(special.get("bos_token"), "")}
            tokenizer._vocabulary = sorted(w for w in tok.get_vocab() if w not in specials)
        return tokenizer
    if (folder / "spiece.model").is_file():
        try:
            import sentencepiece
        except ImportError as exc:
            raise VitvizError(f"SigLIP's tokenizer needs the sentencepiece library: {TEXT_EXTRA}") from exc
        sp = sentencepiece.SentencePieceProcessor()
        try:
            sp.Load(str(folder / "spiece.model"))
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f"{folder / 'spiece.model'}: unreadable SentencePiece model ({exc})") from exc
        eos_id = sp.piece_to_id(_token_text(special.get("eos_token") or settings.get("eos_token"), "</s>"))
        pad_id = sp.piece_to_id(_token_text(special.get("pad_token") or settings.get("pad_token"), "</s>"))
        lower = bool(settings.get("do_lower_case", True))

        def encode_sp(text: str) -> list[int]:
            return list(sp.encode(siglip_canonical(text, lower))) + [eos_id]

        return TextTokenizer(encode_sp, context, eos_id, pad_id, True, str(folder / "spiece.model"))
    raise CheckpointError(f"{folder}: no tokenizer (expected tokenizer.json or spiece.model)")
