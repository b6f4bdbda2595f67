"""Labels typed by the user for image-text models (CLIP, SigLIP): parsing, prompt templates and cached text embeddings.

A label becomes the text the model encodes through a template (``"a photo of a {}."``; ``"{}"`` keeps the label
as typed). Several templates are averaged, as in the CLIP paper's prompt ensembling: the mean of the normalised
embeddings, normalised again. :class:`PromptEncoder` keeps every (template, label) embedding it has computed, so
editing a list re-encodes only the new labels.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import VitvizError

__all__ = ["LabelList", "parse_labels", "read_labels_argument", "check_templates", "PromptEncoder",
           "TEXT_BATCH", "MAX_LABELS", "SCORING_WORDS"]

TEXT_BATCH = 64  # prompts encoded at once (thousands of labels run in batches, with progress)
MAX_LABELS = 20_000
MAX_LABEL_FILE_BYTES = 4 * 2**20
# How the app and the CLI word a score: a softmax shares 100 % among the labels, a sigmoid judges each label alone.
SCORING_WORDS = {"softmax": "of these labels", "sigmoid": "match"}


@dataclass
class LabelList:
    """Labels as the user gave them, cleaned: what is asked, and what was changed on the way."""

    labels: list[str]
    notices: list[str] = field(default_factory=list)


def parse_labels(text: str | Sequence[str]) -> LabelList:
    """Labels from comma-separated or line-separated text (or a list): blanks stripped, empty entries dropped,
    repeats (same text, ignoring case) merged, each with a notice. :class:`VitvizError` when none is left."""
    if isinstance(text, str):
        raw = text.strip().splitlines() if "\n" in text.strip() else text.split(",")
    else:
        raw = [str(t) for t in text]
    notices: list[str] = []
    cleaned = [" ".join(r.split()) for r in raw]
    empty = sum(1 for c in cleaned if not c)
    seen: dict[str, str] = {}
    labels: list[str] = []
    for c in cleaned:
        if not c:
            continue
        key = c.casefold()
        if key in seen:
            continue
        seen[key] = c
        labels.append(c)
    repeats = len(cleaned) - empty - len(labels)
    if not labels:
        raise VitvizError("no labels: type at least one (separate them with commas or new lines)")
    if len(labels) > MAX_LABELS:
        raise VitvizError(f"{len(labels)} labels: at most {MAX_LABELS} can be asked at once")
    if empty and raw and len(raw) > 1:
        notices.append(f"{empty} empty label{'s' if empty > 1 else ''} ignored")
    if repeats:
        notices.append(f"{repeats} repeated label{'s' if repeats > 1 else ''} merged")
    return LabelList(labels, notices)


def read_labels_argument(value: str) -> LabelList:
    """``--labels``: comma-separated labels, or ``@FILE`` with one label per line (:class:`VitvizError` when the
    file cannot be read)."""
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            if path.stat().st_size > MAX_LABEL_FILE_BYTES:
                raise VitvizError(f"{path}: a label file of over {MAX_LABEL_FILE_BYTES // 2**20} MB")
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VitvizError(f"cannot read the labels file {path}: {exc}") from exc
        return parse_labels(text.splitlines())
    return parse_labels(value)


def check_templates(templates: str | Sequence[str]) -> list[str]:
    """Prompt templates, each with one ``{}`` where the label goes (:class:`VitvizError` otherwise)."""
    items = [templates] if isinstance(templates, str) else list(templates)
    if not items:
        raise VitvizError("no prompt template: use \"{}\" for the label as typed")
    for t in items:
        if t.count("{}") != 1:
            raise VitvizError(f"the template {t!r} needs exactly one {{}} where the label goes, e.g. \"a photo of a {{}}.\"")
    return items


class PromptEncoder:
    """Text embeddings of labels through templates, for one model's text tower (cached per template and label)."""

    def __init__(self, tower: Any, tokenizer: Any) -> None:
        self.tower = tower
        self.tokenizer = tokenizer
        self._cache: dict[tuple[str, str], torch.Tensor] = {}
        self._lock = threading.Lock()

    def embeddings(self, labels: Sequence[str], templates: Sequence[str],
                   progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> tuple[torch.Tensor, list[str]]:
        """``[labels, dim]`` normalised embeddings (the templates averaged) and notices (labels cut to the text
        tower's context). New prompts are encoded in batches of :data:`TEXT_BATCH` on the tower's device;
        ``progress(done, total)`` after each batch; :class:`VitvizError` once ``cancelled()`` is true."""
        with self._lock:
            missing = [(t, label) for t in templates for label in labels if (t, label) not in self._cache]
            cut: list[str] = []
            param = next(self.tower.parameters())
            for start in range(0, len(missing), TEXT_BATCH):
                if cancelled is not None and cancelled():
                    raise VitvizError("encoding the labels was cancelled")
                chunk = missing[start : start + TEXT_BATCH]
                tokens = self.tokenizer([t.replace("{}", label, 1) for t, label in chunk])
                cut.extend(chunk[i][1] for i in tokens.truncated)
                with torch.inference_mode():
                    emb = self.tower(tokens.ids.to(param.device)).float().cpu()
                for key, row in zip(chunk, emb):
                    self._cache[key] = row
                if progress is not None:
                    progress(min(start + TEXT_BATCH, len(missing)), len(missing))
            stacked = torch.stack([torch.stack([self._cache[(t, label)] for t in templates]).mean(dim=0)
                                   for label in labels])
        notices = []
        if cut:
            shown = ", ".join(repr(c[:24] + ("…" if len(c) > 24 else "")) for c in dict.fromkeys(cut))
            notices.append(f"cut to the text model's {self.tokenizer.context_length} tokens: {shown}")
        return torch.nn.functional.normalize(stacked, dim=-1), notices
