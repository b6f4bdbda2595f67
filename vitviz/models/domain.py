"""Out-of-domain detection: does an image look like the data a classifier was trained on?

A :class:`DomainDetector` scores one forward pass of a classifier:

- ``mahalanobis`` (Lee et al. 2018): the smallest squared Mahalanobis distance of a feature of the final normalised
  tokens to the class means, with one covariance shared by all classes, all fitted on training images. The feature
  is ``cls`` (what enters the classification head) or ``patch_mean`` (the mean of the patch tokens). A detector may
  have several *parts* (:meth:`DomainDetector.of_parts`: e.g. one per kind of training scene), each with its own
  classes, covariance and threshold; an image is in domain when one part takes it, and its score is the smallest of
  the parts' distances, each divided by its part's threshold (so the detector's threshold is 1);
- ``energy`` (Liu et al. 2020): ``-logsumexp(logits)``.

Higher scores are further from the training domain; an image whose score exceeds the detector's threshold is out of
domain. A detector travels beside a checkpoint's weights as ``<name>.ood.safetensors`` (tensors and string metadata
only, never unpickled); checkpoints without that file have no detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

__all__ = [
    "METHODS",
    "SIDECAR_SUFFIX",
    "DomainVerdict",
    "DomainDetector",
    "FEATURES",
    "token_features",
    "fit_mahalanobis",
    "calibrate_threshold",
    "sidecar_path",
    "load_sidecar",
    "out_of_domain_message",
    "out_of_domain_summary",
]

METHODS = ("mahalanobis", "energy")
FEATURES = ("cls", "patch_mean")
SIDECAR_SUFFIX = ".ood.safetensors"
FORMAT = "vitviz-ood"
METHOD_TITLES = {"mahalanobis": "Mahalanobis", "energy": "energy"}
NEAR_THRESHOLD = 1.25  # scores up to this many times the threshold are "unusual", not "like none of them"


@dataclass
class DomainVerdict:
    """One image's out-of-domain score against its model's detector."""

    method: str
    score: float
    threshold: float
    in_domain: bool

    @property
    def unusual(self) -> bool:
        """Out of domain, but only just: the score exceeds the threshold by at most a quarter of it (up to 1.25x
        the threshold), where the wording is softer ("unusual for this model") than for an image far outside."""
        return not self.in_domain and self.score - self.threshold <= (NEAR_THRESHOLD - 1.0) * abs(self.threshold)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "score": self.score, "threshold": self.threshold, "in_domain": self.in_domain}


@dataclass
class DomainDetector:
    """A fitted out-of-domain score and its threshold (scores above it are out of domain).

    ``feature`` (see :func:`token_features`) is what a Mahalanobis detector measures; ``known`` says in a few words
    what the model knows (e.g. "10 synthetic shapes"), for messages to users.
    """

    method: str
    threshold: float
    means: torch.Tensor | None = None  # [classes, features] ("mahalanobis")
    precision: torch.Tensor | None = None  # [features, features] inverse of the shared covariance ("mahalanobis");
    # with parts, [parts, features, features]: each part's own
    known: str = ""
    feature: str = "cls"
    part_of: torch.Tensor | None = None  # [classes] int64, the part of each class mean (with parts only)
    part_thresholds: torch.Tensor | None = None  # [parts] float64, each part's own threshold (with parts only)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown out-of-domain method {self.method!r} (known: {', '.join(METHODS)})")
        if self.method == "mahalanobis" and (self.means is None or self.precision is None):
            raise ValueError("a Mahalanobis detector needs class means and a precision matrix")
        if self.feature not in FEATURES:
            raise ValueError(f"unknown detector feature {self.feature!r} (known: {', '.join(FEATURES)})")
        if self.precision is not None and self.precision.ndim == 3:
            parts, c = self.precision.shape[0], 0 if self.means is None else self.means.shape[0]
            if (self.part_of is None or self.part_thresholds is None or tuple(self.part_of.shape) != (c,)
                    or tuple(self.part_thresholds.shape) != (parts,) or self.part_of.dtype != torch.long
                    or not bool(((self.part_of >= 0) & (self.part_of < parts)).all())
                    or not bool((torch.isfinite(self.part_thresholds) & (self.part_thresholds > 0)).all())):
                raise ValueError("a detector of several parts needs each class's part and each part's positive "
                                 "threshold")

    @classmethod
    def of_parts(cls, parts: list[DomainDetector]) -> DomainDetector:
        """One detector from fitted and calibrated Mahalanobis ``parts`` with the same feature: an image is in domain
        when any part takes it (score: the smallest ``distance / part threshold``; threshold 1)."""
        if not parts or any(p.method != "mahalanobis" or p.precision is None or p.precision.ndim != 2
                            or p.feature != parts[0].feature for p in parts):
            raise ValueError("parts must be single Mahalanobis detectors of one feature")
        means = torch.cat([p.means.double() for p in parts])  # type: ignore[union-attr]
        part_of = torch.cat([torch.full((len(p.means),), i, dtype=torch.long)  # type: ignore[arg-type]
                             for i, p in enumerate(parts)])
        precisions = torch.stack([p.precision.double() for p in parts])  # type: ignore[union-attr]
        return cls("mahalanobis", 1.0, means, precisions,
                   parts[0].known, parts[0].feature, part_of,
                   torch.tensor([float(p.threshold) for p in parts], dtype=torch.float64))

    @torch.no_grad()
    def scores(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` (float64) of a batch of head features ``[B, D]`` and logits ``[B, C]``."""
        if self.method == "energy":
            return -torch.logsumexp(logits.detach().double().cpu(), dim=-1)
        assert self.means is not None and self.precision is not None
        f = features.detach().double().cpu()
        diff = f[:, None, :] - self.means.double()[None]  # [B, C, D]
        if self.precision.ndim == 2:
            dist = torch.einsum("bcd,de,bce->bc", diff, self.precision.double(), diff)
        else:  # each part's classes measured with its own covariance, relative to its own threshold
            assert self.part_of is not None and self.part_thresholds is not None
            dist = diff.new_empty(diff.shape[:2])
            for part, (precision, threshold) in enumerate(zip(self.precision.double(), self.part_thresholds)):
                own = self.part_of == part
                dist[:, own] = torch.einsum("bcd,de,bce->bc", diff[:, own], precision, diff[:, own]) / float(threshold)
        return dist.min(dim=1).values

    def assess(self, model: Any, tokens: torch.Tensor, logits: torch.Tensor) -> DomainVerdict:
        """The verdict on one image from ``model``'s final normalised tokens ``[1, T, D]`` and logits ``[1, C]``."""
        score = float(self.scores(token_features(model, tokens, self.feature), logits)[0])
        return DomainVerdict(self.method, score, float(self.threshold), bool(score <= self.threshold))

    def save(self, path: str | Path) -> Path:
        """Write the detector as a safetensors file (tensors plus string metadata)."""
        from safetensors.torch import save_file

        tensors = {"threshold": torch.tensor([float(self.threshold)], dtype=torch.float64)}
        if self.method == "mahalanobis":
            assert self.means is not None and self.precision is not None
            tensors["means"] = self.means.detach().double().cpu().contiguous()
            tensors["precision"] = self.precision.detach().double().cpu().contiguous()
            if self.part_of is not None and self.part_thresholds is not None:
                tensors["part_of"] = self.part_of.detach().long().cpu().contiguous()
                tensors["part_thresholds"] = self.part_thresholds.detach().double().cpu().contiguous()
        p = Path(path)
        save_file(tensors, str(p), metadata={"format": FORMAT, "method": self.method, "feature": self.feature,
                                             "known": self.known})
        return p

    @classmethod
    def load(cls, path: str | Path) -> "DomainDetector":
        """Read a detector written by :meth:`save`; :class:`CheckpointError` on anything else."""
        from safetensors import SafetensorError, safe_open

        p = Path(path)
        try:
            with safe_open(str(p), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{p}: not a valid out-of-domain detector file ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{p}: not a vitviz out-of-domain detector (missing format metadata {FORMAT!r})")
        threshold = tensors.get("threshold")
        if threshold is None or threshold.numel() != 1 or not torch.isfinite(threshold).all():
            raise CheckpointError(f"{p}: the detector's threshold is missing or not a finite number")
        try:
            return cls(meta.get("method", ""), float(threshold.reshape(())), tensors.get("means"),
                       tensors.get("precision"), meta.get("known", ""), meta.get("feature", "cls"),
                       tensors.get("part_of"), tensors.get("part_thresholds"))
        except ValueError as exc:
            raise CheckpointError(f"{p}: {exc}") from exc


def token_features(model: Any, tokens: torch.Tensor, feature: str = "cls") -> torch.Tensor:
    """A detector's feature ``[B, D]`` from ``model``'s final normalised tokens ``[B, T, D]``.

    ``cls``: what enters the classification head (the CLS token, with the mean patch token for "cls+mean" heads);
    ``patch_mean``: the mean of the patch tokens.
    """
    patches = tokens[:, model.num_prefix_tokens :]
    if feature == "patch_mean":
        return patches.mean(dim=1)
    cls = tokens[:, 0]
    if model.config.head_pool == "cls+mean":
        cls = torch.cat([cls, patches.mean(dim=1)], dim=-1)
    return cls


@torch.no_grad()
def fit_mahalanobis(features: torch.Tensor, labels: torch.Tensor, num_classes: int, known: str = "",
                    ridge: float = 1e-6, feature: str = "cls") -> DomainDetector:
    """Class means and the inverse of the shared (tied) covariance of training features ``[N, D]`` (of ``feature``).

    ``ridge`` times the mean variance is added to the covariance's diagonal so the inverse is always defined. The
    threshold is left at infinity: set it with :func:`calibrate_threshold`.
    """
    f = features.double()
    means = torch.stack([f[labels == c].mean(dim=0) for c in range(num_classes)])
    centred = f - means[labels]
    cov = centred.T @ centred / max(1, len(f) - num_classes)
    cov += torch.eye(cov.shape[0], dtype=cov.dtype) * ridge * cov.diagonal().mean()
    precision = torch.linalg.inv(cov)
    precision = (precision + precision.T) / 2
    return DomainDetector("mahalanobis", float("inf"), means, precision, known, feature)


def calibrate_threshold(in_domain_scores: torch.Tensor, keep: float = 0.95) -> float:
    """The score below which a fraction ``keep`` of in-domain images lie (their ``keep`` quantile)."""
    return float(torch.quantile(in_domain_scores.double(), keep))


def sidecar_path(weights: str | Path) -> Path:
    """Where the detector of the checkpoint whose weights are ``weights`` lives: ``<name>.ood.safetensors``."""
    p = Path(weights)
    return p.with_name(p.with_suffix("").name + SIDECAR_SUFFIX)


def load_sidecar(weights: str | Path, model: Any) -> DomainDetector | None:
    """The detector beside ``weights`` checked against ``model``'s head, or None when there is none."""
    path = sidecar_path(weights)
    if not path.is_file():
        return None
    detector = DomainDetector.load(path)
    if detector.method == "mahalanobis":
        assert detector.means is not None and detector.precision is not None
        head = getattr(model, "head", None)
        if head is None and (getattr(model, "text", None) is None or detector.feature != "patch_mean"):
            raise CheckpointError(f"{path}: a Mahalanobis detector for a model without a classification head")
        # an image-text model has no fixed classes: its detector's classes are those it was fitted on
        c = head.out_features if head is not None else int(detector.means.shape[0])
        d = head.in_features if detector.feature == "cls" else model.config.embed_dim
        if tuple(detector.means.shape) != (c, d) or tuple(detector.precision.shape[-2:]) != (d, d):
            raise CheckpointError(f"{path}: detector shapes {tuple(detector.means.shape)} and "
                                  f"{tuple(detector.precision.shape)} do not match the model ({c} classes, "
                                  f"{detector.feature} features of {d} values)")
    elif getattr(model, "head", None) is None:
        raise CheckpointError(f"{path}: an energy detector for a model without a classification head")
    return detector


def out_of_domain_message(verdict: DomainVerdict, known: str = "", photo_model: str = "deit-small") -> str:
    """One line for a user whose image the model does not recognise (no file name; callers add it)."""
    title = METHOD_TITLES.get(verdict.method, verdict.method)
    score = f"{title} score {verdict.score:.4g} > threshold {verdict.threshold:.4g}"
    if verdict.unusual:
        what = f"it knows {known}" if known else "it was trained on other kinds of images"
        return f"this image is unusual for this model ({score}, within {NEAR_THRESHOLD:g}x); {what}, so its guess " \
               "may be off"
    what = f"this model only knows {known}" if known else "this model was trained on other kinds of images"
    return f"{what}; this image looks like none of them ({score}). For photos, use --model {photo_model}"



def out_of_domain_summary(far: int, unusual: int, total: int, known: str = "",
                          photo_model: str = "deit-small") -> str:
    """One line for the end of a run: of ``total`` images, ``far`` looked like nothing the model knows and
    ``unusual`` were only just over its detector's threshold."""
    them = f"the {known} this model knows" if known else "the images this model was trained on"
    are = "is" if unusual == 1 else "are"
    if far and unusual:
        head = f"{far} of {total} image(s) look like none of {them}, {unusual} more {are} unusual for it"
    elif far:
        head = f"{far} of {total} image(s) look like none of {them}"
    else:
        head = f"{unusual} of {total} image(s) {are} unusual for this model"
    text = f"{head}; see the domain_* columns of results.csv (--verbose: a line per image)"
    return text + (f". For photos, use --model {photo_model}" if far else "")
