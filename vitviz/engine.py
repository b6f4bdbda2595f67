"""Inference engine: image in, plain :class:`AnalysisResult` out (used by the app and the command line alike)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .models.checkpoint import ModelInfo, load_checkpoint
from .models.domain import DomainVerdict
from .errors import CheckpointError, ImageLoadError, VitvizError
from .images import LoadedImage, load_image, to_rgb
from .models.vit import VisionTransformer
from .paths import DEFAULT_MODEL, weights_dir
from .attention import FULL_ATTENTION_BUDGET, AttentionMaps, AttentionRecorder, full_attention_bytes
from .importance import check_heads, compute_head_importance, head_mask
from .models.imagetext import DEFAULT_LABELS, DEFAULT_TEMPLATE
from .prompts import PromptEncoder, check_templates, parse_labels

if TYPE_CHECKING:
    from .explain import Evidence
    from .importance import HeadImportance

__all__ = [
    "DEFAULT_MODEL",
    "Prediction",
    "PatchGrid",
    "AnalysisResult",
    "Engine",
    "select_device",
    "weights_dir",
    "resolve_model",
    "prepare_image",
    "model_input_size",
    "PreparedImage",
    "ATTENTION_MODES",
]

# What an analysis keeps of the attention (Engine.analyze's ``attention``; see vitviz.attention):
#   "summary": the prefix rows, rollout rows and head statistics alone (memory linear in the tokens);
#   "auto": those, plus what answers a clicked patch at once: the full tensors where they fit FULL_ATTENTION_BUDGET
#           (small models), else every layer's queries and keys (rows recomputed on demand); the app's choice;
#   "full": the full tensors [layers, heads, T, T] as well (``vitviz analyze --outputs attention-full``).
ATTENTION_MODES = ("summary", "auto", "full")

MAX_ASPECT_TOKENS = 4  # the long side gets at most this many times the model's training resolution
DISPLAY_MAX_SIDE = 1024  # long side (pixels) of the sharper copy of the image kept for enlarged views


def select_device(preference: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit name is checked for availability."""
    pref = str(preference or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError as exc:
        raise VitvizError(f"unknown device {preference!r} (use auto, cpu, cuda or mps)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VitvizError("CUDA was requested but no CUDA GPU is available to this PyTorch build")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise VitvizError("MPS was requested but Apple's Metal backend is not available")
    return dev


def resolve_model(
    spec: str | os.PathLike[str] | None, progress: Callable[[int, int], None] | None = None
) -> tuple[VisionTransformer, ModelInfo]:
    """Load a model by shipped name, pretrained-zoo name or checkpoint path.

    ``progress(bytes_done, bytes_total)`` follows a download when a pretrained model is not cached yet.
    """
    from .models import zoo

    spec = spec or DEFAULT_MODEL
    path = Path(spec)
    if path.exists():
        # Hugging Face / timm layouts are converted; vitviz's own checkpoints load directly.
        return zoo.load(str(path)) if zoo.is_foreign_checkpoint(path) else load_checkpoint(path)
    shipped = weights_dir() / f"{spec}.json"
    if shipped.is_file():
        return load_checkpoint(shipped)
    if str(spec) and (weights_dir() / str(spec) / "config.json").is_file():  # a shipped Hub-layout folder
        return zoo.load(str(weights_dir() / str(spec)))
    if zoo.is_known(str(spec)):
        return zoo.load(str(spec), progress=progress)
    raise CheckpointError(f"{spec}: no such model (not a checkpoint path, shipped model or known pretrained model)")


@dataclass
class Prediction:
    label: str
    index: int
    probability: float


@dataclass
class PatchGrid:
    """Geometry of the patch grid over the model input image."""

    rows: int
    cols: int
    patch_size: int
    input_size: tuple[int, int]  # (height, width) of the resized image the model saw
    original_size: tuple[int, int]  # (width, height) of the file, upright

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    def patch_at(self, x: float, y: float) -> int | None:
        """Index of the patch containing input-image pixel (x, y), or None outside the image."""
        if not (0 <= x < self.input_size[1] and 0 <= y < self.input_size[0]):
            return None
        return int(y // self.patch_size) * self.cols + int(x // self.patch_size)

    def patch_box(self, index: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) pixel box of a patch in the input image (x1, y1 exclusive)."""
        r, c = divmod(index, self.cols)
        p = self.patch_size
        return c * p, r * p, (c + 1) * p, (r + 1) * p


@dataclass
class AnalysisResult:
    """Everything one analysis produced, as plain numpy arrays and Python values."""

    source: str
    image: np.ndarray  # uint8 [H, W, 3]: the resized image the model saw
    grid: PatchGrid
    model_name: str
    device: str
    labels: list[str] = field(default_factory=list)
    probabilities: np.ndarray | None = None  # [num_classes]
    predictions: list[Prediction] = field(default_factory=list)  # top-k, best first
    attention: AttentionMaps | None = None  # what the analysis kept of the attention (vitviz.attention)
    cls_attention: np.ndarray | None = None  # [layers, heads, rows, cols] CLS -> patch attention
    num_prefix_tokens: int = 1
    depth: np.ndarray | None = None  # [H, W] float32 at the input resolution
    depth_kind: str | None = None  # "metric" (metres) or "relative_inverse"
    depth_model_name: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    notices: list[str] = field(default_factory=list)
    # The same framing as ``image`` at an integer multiple of its size (up to DISPLAY_MAX_SIDE, never above the
    # original's resolution), for enlarged views: maps drawn over it keep the photo's detail.  None: use ``image``.
    display_image: np.ndarray | None = None
    # Every block's output tokens before the final norm, ``[layers, T, D]`` float32, from the same forward pass as
    # ``attentions``; only when ``Engine.analyze(..., features=True)`` (see vitviz.features).  None otherwise.
    hidden_states: np.ndarray | None = None
    # Whether the image looks like the model's training data; None for models without an out-of-domain detector.
    domain: DomainVerdict | None = None
    logits: np.ndarray | None = None  # [num_classes] float32, before the softmax of ``probabilities``
    # Heads knocked out in this analysis, (layer, head) 0-based and sorted (Engine.analyze's ``ablate``).
    ablated: list[tuple[int, int]] = field(default_factory=list)
    # Image-text models (CLIP, SigLIP): the image's normalised embedding [dim] (labels are re-scored from it without
    # another forward pass: Engine.rescore), the prompt templates, and the scoring rule ("softmax" or "sigmoid").
    image_embedding: np.ndarray | None = None
    templates: list[str] = field(default_factory=list)
    scoring: str = "softmax"
    # Models that pool with attention (SigLIP): the pooling probe's attention per head [heads, rows, cols], the map
    # of the token the scores are read from.
    pool_attention: np.ndarray | None = None

    def detail_image(self) -> tuple[np.ndarray, int]:
        """The sharpest copy of the model's view and its scale relative to ``image`` (a whole number >= 1)."""
        if self.display_image is None:
            return self.image, 1
        return self.display_image, self.display_image.shape[0] // self.image.shape[0]

    @property
    def num_layers(self) -> int:
        return 0 if self.cls_attention is None else self.cls_attention.shape[0]

    @property
    def num_heads(self) -> int:
        return 0 if self.cls_attention is None else self.cls_attention.shape[1]

    @property
    def attentions(self) -> np.ndarray | None:
        """The full attention tensors ``[layers, heads, T, T]`` when the analysis kept them (see ATTENTION_MODES)."""
        return None if self.attention is None else self.attention.full

    def query_attention(self, layer: int, patch_index: int) -> np.ndarray:
        """Attention of one patch's query to every patch, all heads: ``[heads, rows, cols]`` (computed on first
        use for the patch, from the kept queries and keys, then cached)."""
        if self.attention is None or not self.attention.answers_queries:
            raise ValueError("this result holds no attention beyond the CLS rows")
        return self.attention.query_rows(patch_index)[layer]

    def rollout(self, upto_layer: int | None = None, head_fusion: str = "mean", discard_ratio: float = 0.0,
                patch_index: int | None = None) -> np.ndarray:
        """Attention rollout to the patches after ``upto_layer`` (default: the last), ``[rows, cols]``: the row of
        CLS, or of ``patch_index``'s token (computed on first use for the patch, then cached)."""
        if self.attention is None:
            raise ValueError("this result holds no attention")
        a, p = self.attention, self.num_prefix_tokens
        if patch_index is None:
            row = a.rollout(upto_layer, head_fusion, discard_ratio)
        else:
            start = np.zeros(a.num_tokens)
            start[p + patch_index] = 1.0
            if head_fusion == "mean" and not discard_ratio:
                row = a.query_rollout(patch_index)[-1 if upto_layer is None else upto_layer]
            else:
                row = a.rollout(upto_layer, head_fusion, discard_ratio, start)
        return np.asarray(row[p:], np.float32).reshape(self.grid.rows, self.grid.cols)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary: predictions, geometry, timings, device."""
        return {
            "source": self.source,
            "model": self.model_name,
            "depth_model": self.depth_model_name,
            "device": self.device,
            "input_size": {"height": self.grid.input_size[0], "width": self.grid.input_size[1]},
            "original_size": {"width": self.grid.original_size[0], "height": self.grid.original_size[1]},
            "patch_grid": {"rows": self.grid.rows, "cols": self.grid.cols, "patch_size": self.grid.patch_size},
            "layers": self.num_layers,
            "heads": self.num_heads,
            "predictions": [{"label": p.label, "index": p.index, "probability": p.probability} for p in self.predictions],
            "depth": None
            if self.depth is None
            else {
                "kind": self.depth_kind,
                "min": float(np.min(self.depth)),
                "max": float(np.max(self.depth)),
                "mean": float(np.mean(self.depth)),
            },
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
            "notices": list(self.notices),
        } | ({} if self.image_embedding is None else {"templates": list(self.templates), "scoring": self.scoring,
                                                       "labels": list(self.labels)}) | (
            {} if self.domain is None else {"domain": self.domain.to_json()}) | (
            {"ablated": [{"layer": layer, "head": head} for layer, head in self.ablated]} if self.ablated else {})


def model_input_size(size: tuple[int, int], image_size: int, patch_size: int) -> tuple[int, int]:
    """``(width, height)`` of the model input for an image of ``size = (width, height)``: the aspect ratio kept,
    short side ~ ``image_size``, long side capped, both multiples of the patch."""
    w, h = size
    scale = image_size / min(w, h)
    max_long = image_size * MAX_ASPECT_TOKENS
    if max(w, h) * scale > max_long:
        scale = max_long / max(w, h)

    def snap(v: float) -> int:
        return max(patch_size, int(round(v * scale / patch_size)) * patch_size)

    return snap(w), snap(h)


def prepare_image(img: Image.Image, image_size: int, patch_size: int) -> np.ndarray:
    """Resize keeping the aspect ratio (see :func:`model_input_size`) with Pillow's bicubic filter."""
    size = model_input_size(img.size, image_size, patch_size)
    resized = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0) if size != img.size else img
    return np.array(resized, dtype=np.uint8)


def display_scale(size: tuple[int, int], input_hw: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE) -> int:
    """The whole number ``k`` by which the display copy of an image of ``size = (width, height)`` enlarges the model
    input of size ``input_hw``: the copy fits ``max_side`` and does not exceed the original's resolution."""
    h, w = input_hw
    return min(size[0] // w, size[1] // h, max_side // max(h, w))


def display_copy(img: Image.Image, input_hw: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray | None:
    """``img`` framed like the model input of size ``input_hw`` but ``k`` times larger (:func:`display_scale`);
    None when ``k`` would be 1."""
    k = display_scale(img.size, input_hw, max_side)
    if k < 2:
        return None
    size = (k * input_hw[1], k * input_hw[0])
    return np.array(img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0), dtype=np.uint8)


@dataclass
class PreparedImage:
    """An image read and resized for a model, ready for a forward pass (see :meth:`Engine.prepare`)."""

    loaded: LoadedImage
    rgb: np.ndarray  # uint8 [H, W, 3]: the model's input
    depth_rgb: np.ndarray | None  # the extra depth model's input, when there is one
    preprocess_ms: float = 0.0
    tensor: torch.Tensor | None = None  # the model's input, normalised, on the device (when resized there)
    display: np.ndarray | None = None  # the display copy made with it (see display_copy)

    @property
    def size_key(self) -> tuple:
        """Images with equal keys can share a forward pass."""
        return self.rgb.shape, None if self.depth_rgb is None else self.depth_rgb.shape


class Engine:
    """Holds a model on a device and analyses images with it.

    ``model`` is a shipped model name, pretrained-zoo name or checkpoint path; ``depth_model`` optionally adds a
    separate depth model (used when the main model has no depth head). Thread-safe: one analysis at a time.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str = "auto",
        half: bool = False,
        depth_model: str | os.PathLike[str] | None = None,
        loaded: tuple[VisionTransformer, ModelInfo] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        t0 = time.perf_counter()
        self.device = select_device(device)
        self.half = bool(half) and self.device.type == "cuda"
        self.model, self.info = loaded if loaded is not None else resolve_model(model, progress)
        self.depth_model: VisionTransformer | None = None
        self.depth_info: ModelInfo | None = None
        if depth_model:
            self.depth_model, self.depth_info = resolve_model(depth_model, progress)
            if self.depth_model.depth_head is None:
                raise CheckpointError(f"{depth_model}: this model has no depth head")
        self._lock = threading.Lock()
        self._traced: Any = None  # vitviz.models.traced.TracedForward, made on the first traced analysis
        # Image arrays (live frames) are resized on the device: None = on CUDA (see _prepare_on_device)
        self.resize_on_device: bool | None = None
        self._to_device(self.device)
        # Image-text models: the labels asked about and their prompt templates (set_labels)
        self.prompts: PromptEncoder | None = None
        self.templates: list[str] = [DEFAULT_TEMPLATE]
        if self.model.text is not None:
            if self.info.tokenizer is None:
                raise CheckpointError(f"{self.info.name}: an image-text model without its tokenizer files")
            self.prompts = PromptEncoder(self.model.text, self.info.tokenizer)
            self.set_labels(self.info.labels or list(DEFAULT_LABELS))
        self.load_ms = (time.perf_counter() - t0) * 1000.0

    def _to_device(self, device: torch.device) -> None:
        self._traced = None  # traces hold the weights of the device they were made on
        dtype = torch.float16 if (self.half and device.type == "cuda") else torch.float32
        self.model.to(device=device, dtype=dtype).eval()
        if self.depth_model is not None:
            self.depth_model.to(device=device, dtype=dtype).eval()
        self.device = device

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def has_text(self) -> bool:
        """Whether the model compares the image with labels typed by the user (CLIP, SigLIP)."""
        return self.prompts is not None

    @property
    def scoring(self) -> str:
        """``"softmax"`` (the labels share 100 %) or ``"sigmoid"`` (each label is judged alone: SigLIP)."""
        return self.model.text.config.scoring if self.model.text is not None else "softmax"

    def set_labels(self, labels: str | Sequence[str], templates: str | Sequence[str] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> list[str]:
        """Ask an image-text model about these labels from now on (comma- or line-separated text, or a list),
        through ``templates`` (default: the current ones; each with one ``{}``). Encodes only labels not seen
        before with these templates (``progress(done, total)`` per batch). Returns notices (empty or repeated labels,
        labels cut to the context). :class:`VitvizError` for a model without a text tower, or bad labels or
        templates, and then nothing changes."""
        if self.prompts is None:
            raise VitvizError(f"{self.info.name} has no text tower: it takes no labels (try an image-text model "
                              "such as clip-b32 or siglip-b16)")
        parsed = parse_labels(labels)
        chosen = check_templates(self.templates if templates is None else templates)
        with self._lock:
            emb, notices = self.prompts.embeddings(parsed.labels, chosen, progress, cancelled)
            self.model.text.set_labels(emb.to(self.device))
            self.info.labels = list(parsed.labels)
            self.templates = chosen
        return parsed.notices + notices + self._unseen_words(parsed.labels, chosen)

    def _unseen_words(self, labels: Sequence[str], templates: Sequence[str]) -> list[str]:
        """A notice naming the words of the labels and templates the tokenizer never saw in training (only
        tokenizers with an unknown-word token can tell: the shipped vitviz-mini-text's word-level one)."""
        unknown = getattr(self.info.tokenizer, "unknown_words", None)
        if unknown is None:
            return []
        words = dict.fromkeys(w for text in [*labels, *(t.replace("{}", " ") for t in templates)]
                              for w in unknown(text))
        return [f"the model has never seen: {', '.join(words)}"] if words else []

    def rescore(self, result: AnalysisResult, topk: int = 5) -> AnalysisResult:
        """``result`` scored against the current labels from its kept image embedding, without a forward pass
        (:class:`VitvizError` for a result without one)."""
        if result.image_embedding is None or self.model.text is None:
            raise VitvizError("this analysis holds no image embedding to compare with labels")
        with self._lock:
            emb = torch.from_numpy(result.image_embedding).to(self.device, self.model.text.label_embeddings.dtype)
            with torch.inference_mode():
                logits = self.model.text.logits(emb[None])[0].float()
                probs = self.model.probabilities(logits).cpu().numpy()
            labels = list(self.info.labels)
            templates = list(self.templates)
        order = np.argsort(-probs)[: max(1, topk)]
        return dataclasses.replace(
            result, labels=labels, logits=logits.cpu().numpy(), probabilities=probs, templates=templates,
            predictions=[Prediction(labels[i], int(i), float(probs[i])) for i in order],
            timings=dict(result.timings), notices=list(result.notices))

    def _tensor(self, rgb: np.ndarray, info: ModelInfo) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1).unsqueeze(0)
        return self._normalized(x, info)

    def _normalized(self, rgb: torch.Tensor, info: ModelInfo) -> torch.Tensor:
        """The model input from ``[N, 3, H, W]`` pixel values 0-255 on the device."""
        x = rgb.float().div_(255.0)
        mean = torch.tensor(info.mean, device=self.device).view(3, 1, 1)
        std = torch.tensor(info.std, device=self.device).view(3, 1, 1)
        x = (x - mean) / std
        # the model is float16 only on CUDA (see _to_device): after a fallback to the CPU it is float32 again
        return x.half() if (self.half and self.device.type == "cuda") else x

    def analyze(
        self,
        image: str | os.PathLike[str] | Image.Image | np.ndarray | LoadedImage,
        topk: int = 5,
        cancelled: Callable[[], bool] | None = None,
        keep_display_image: bool = False,
        features: bool = False,
        traced: bool = False,
        attention: str = "auto",
        ablate: Sequence[tuple[int, int]] = (),
    ) -> AnalysisResult | None:
        """Analyse one image; returns None if ``cancelled()`` turned true between stages.

        ``keep_display_image``: also keep a sharper copy of the image for enlarged views
        (``AnalysisResult.display_image``); the app asks for it, batch analysis does not need it.
        ``features``: also keep every block's output tokens (``AnalysisResult.hidden_states``) from the same forward
        pass, for the PCA, similarity and token-norm views (vitviz.features), and every head's mean attention
        distance (``result.attention.mean_distance``; None without ``features`` unless the full tensors were kept).
        ``traced``: run the forward pass through a TorchScript trace of the model for this input size (made on
        first use; :class:`vitviz.models.traced.TracedForward`), which does not hold Python's GIL, so that a UI
        thread painting meanwhile does not slow it down (the live mode). Not with ``features``; ``cancelled`` is
        then only checked between stages.
        ``attention``: what the result keeps of the attention, one of :data:`ATTENTION_MODES`.
        ``ablate``: heads to knock out, ``(layer, head)`` pairs, 0-based (:class:`VitvizError` when out of range):
        their attention outputs are zeroed before each block's output projection (their attention maps stay as they
        were); the result lists them (``result.ablated``). Not traced: a knockout runs the eager model.
        """
        cancelled = cancelled or (lambda: False)
        _check_mode(attention)
        ablate = self._check_ablate(ablate)
        traced = traced and not ablate and self.model.text is None  # a trace would keep the labels it was made with
        with self._lock:
            try:
                return self._analyze(image, topk, cancelled, keep_display_image, features, traced, attention, ablate)
            except torch.cuda.OutOfMemoryError:
                if self.device.type != "cuda":
                    raise
                torch.cuda.empty_cache()
                self._to_device(torch.device("cpu"))
                result = self._analyze(image, topk, cancelled, keep_display_image, features, traced, attention,
                                       ablate)
                if result is not None:
                    result.notices.append("the GPU ran out of memory; this and later images run on the CPU")
                return result

    def prepare(self, image: str | os.PathLike[str] | Image.Image | np.ndarray | LoadedImage,
                display: bool = False) -> PreparedImage:
        """Read ``image`` and resize it for the model (and the extra depth model): the work before a forward pass.

        Needs no lock: batch analysis runs it in a pool of threads while the device works on earlier images.
        An RGB array is resized on the device when :attr:`resize_on_device` says so (by default on CUDA), and with
        ``display`` the display copy is made there too (see :func:`display_copy`).
        """
        t = time.perf_counter()
        on_device = self.device.type == "cuda" if self.resize_on_device is None else self.resize_on_device
        if (on_device and self.depth_model is None and isinstance(image, np.ndarray) and image.dtype == np.uint8
                and image.ndim == 3 and image.shape[2] == 3 and image.size):
            prep = self._prepare_on_device(image, display)
            prep.preprocess_ms = (time.perf_counter() - t) * 1000.0
            return prep
        loaded = _as_loaded(image)
        cfg = self.info.config
        rgb = prepare_image(loaded.image, cfg.image_size, cfg.patch_size)
        depth_rgb = None
        if self.model.depth_head is None and self.depth_model is not None:
            dcfg = self.depth_model.config
            depth_rgb = prepare_image(loaded.image, dcfg.image_size, dcfg.patch_size)  # from the full image
        return PreparedImage(loaded, rgb, depth_rgb, (time.perf_counter() - t) * 1000.0)

    def _prepare_on_device(self, frame: np.ndarray, display: bool) -> PreparedImage:
        """Upload ``frame`` (through pinned memory on CUDA) and resize it there, bicubic with antialiasing like
        Pillow's filter: the model input stays on the device, and only the model-size image (and the display copy)
        come back for drawing. A live frame then costs the CPU one copy instead of a conversion and one or two
        resizes (about 4 ms for a 1080p frame before the resizes, on the 2-core VM)."""
        loaded = LoadedImage(None, "array", (frame.shape[1], frame.shape[0]), [])
        cfg = self.info.config
        w, h = model_input_size(loaded.original_size, cfg.image_size, cfg.patch_size)
        with warnings.catch_warnings():  # a decoder's read-only frame: the tensor is only read
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            host = torch.from_numpy(np.ascontiguousarray(frame))
        if self.device.type == "cuda":
            host = host.pin_memory()  # from PyTorch's caching host allocator: reused once the copy is done
        pixels = host.to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float()

        def resized(height: int, width: int) -> torch.Tensor:
            if (height, width) == tuple(pixels.shape[-2:]):
                return pixels.to(torch.uint8)
            out = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bicubic", antialias=True,
                                                  align_corners=False)
            return out.round_().clamp_(0, 255).to(torch.uint8)

        rgb = resized(h, w)  # the model sees exactly the pixels that are drawn
        k = display_scale(loaded.original_size, (h, w)) if display else 1
        shown = resized(k * h, k * w)[0].permute(1, 2, 0).cpu().numpy() if k >= 2 else None
        return PreparedImage(loaded, rgb[0].permute(1, 2, 0).cpu().numpy(), None,
                             tensor=self._normalized(rgb, self.info), display=shown)

    def analyze_batch(
        self, images: Sequence[str | os.PathLike[str] | Image.Image | np.ndarray | LoadedImage | PreparedImage],
        topk: int = 5,
        features: bool = False,
        concurrent: bool = False,
        attention: str = "summary",
        ablate: Sequence[tuple[int, int]] = (),
    ) -> list[AnalysisResult]:
        """Analyse several images; those with the same model-input size share one forward pass.

        Results come in the order of ``images`` and equal :meth:`analyze`'s to within float tolerance. A file that
        cannot be read raises (prepare images first with :meth:`prepare` to handle them one by one). In a batch,
        ``timings["forward"]`` is the batch's forward time divided by its size. ``concurrent``: do not take the
        engine's lock, so that several threads can run batches at once (batch analysis on a CPU runs two, each
        with part of the cores); the caller makes sure that nothing changes the engine meanwhile. ``attention``: one
        of :data:`ATTENTION_MODES` (by default the summary alone). ``ablate``: heads knocked out (see :meth:`analyze`).
        """
        _check_mode(attention)
        ablate = self._check_ablate(ablate)
        preps = [im if isinstance(im, PreparedImage) else self.prepare(im) for im in images]
        groups: dict[tuple, list[int]] = {}
        for i, prep in enumerate(preps):
            groups.setdefault(prep.size_key, []).append(i)
        results: list[AnalysisResult | None] = [None] * len(preps)
        with contextlib.nullcontext() if concurrent else self._lock:
            for indices in groups.values():
                group = [preps[i] for i in indices]
                t = time.perf_counter()
                out, depth_out, recorder = self._forward(group, None, features, False, attention, ablate)
                forward_ms = (time.perf_counter() - t) * 1000.0 / len(group)
                for j, i in enumerate(indices):
                    results[i] = self._build_result(preps[i], out, depth_out, j, topk, False, forward_ms, features,
                                                    recorder, attention, ablate)
        return results  # type: ignore[return-value]

    def _forward(self, preps: Sequence[PreparedImage], cancelled: Callable[[], bool] | None,
                 features: bool = False, traced: bool = False,
                 attention: str = "auto",
                 ablate: Sequence[tuple[int, int]] = ()) -> tuple[Any, Any, AttentionRecorder | None]:
        """One forward pass over same-size prepared images; raises :class:`_Cancelled` when ``cancelled()`` turns
        true mid-way (None: cannot be cancelled, and changes nothing on the model, so threads may run it at once).

        The full attention tensors come back (``out.attentions``) when traced, for ``attention="full"``, and for
        ``"auto"`` when they fit :data:`vitviz.attention.FULL_ATTENTION_BUDGET`; else an
        :class:`AttentionRecorder` holds what the result keeps."""
        # an input prepared on the device is used as it is, unless the engine has moved since (out of GPU memory)
        x = torch.cat([p.tensor if p.tensor is not None and p.tensor.device == self.device
                       else self._tensor(p.rgb, self.info) for p in preps])
        # Cancellation is also checked before every transformer block: a big model on the CPU stops within one block.
        traced = traced and not features
        cfg, p = self.info.config, self.model.num_prefix_tokens
        grid = (x.shape[-2] // cfg.patch_size, x.shape[-1] // cfg.patch_size)
        full = traced or attention == "full" or (attention == "auto" and full_attention_bytes(
            cfg.depth, cfg.num_heads, p + grid[0] * grid[1], len(preps)) <= FULL_ATTENTION_BUDGET)
        recorder = None if full else AttentionRecorder(grid, cfg.patch_size, p)
        hooks = [] if cancelled is None or traced else _cancel_hooks((self.model, self.depth_model), cancelled)
        try:
            with torch.inference_mode():
                if traced:
                    if self._traced is None:
                        from .models.traced import TracedForward

                        self._traced = TracedForward(self.model)
                    out = self._traced(x)
                else:
                    mask = head_mask(ablate, len(self.model.blocks), cfg.num_heads, x.device, x.dtype)
                    out = self.model(x, return_attention=full, return_hidden=features, attention_recorder=recorder,
                                     head_mask=mask)
                depth_out = None
                if out.depth is None and self.depth_model is not None:
                    dinfo = self.depth_info
                    assert dinfo is not None
                    dx = torch.cat([self._tensor(p.depth_rgb, dinfo) for p in preps])
                    depth_out = self.depth_model(dx).depth
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
        finally:
            for hook in hooks:
                hook.remove()
        return out, depth_out, recorder

    def _analyze(self, image: Any, topk: int, cancelled: Callable[[], bool], keep_display_image: bool,
                 features: bool = False, traced: bool = False, attention: str = "auto",
                 ablate: Sequence[tuple[int, int]] = ()) -> AnalysisResult | None:
        t_start = time.perf_counter()
        prep = image if isinstance(image, PreparedImage) else self.prepare(image, display=keep_display_image)
        preprocess_ms = (time.perf_counter() - t_start) * 1000.0
        if cancelled():
            return None
        t = time.perf_counter()
        try:
            out, depth_out, recorder = self._forward([prep], cancelled, features, traced, attention, ablate)
        except _Cancelled:
            return None
        forward_ms = (time.perf_counter() - t) * 1000.0
        if cancelled():
            return None
        result = self._build_result(prep, out, depth_out, 0, topk, keep_display_image, forward_ms, features,
                                    recorder, attention, ablate)
        if not isinstance(image, PreparedImage):
            result.timings["preprocess"] = preprocess_ms
        result.timings["total"] = (time.perf_counter() - t_start) * 1000.0
        return result

    def _build_result(self, prep: PreparedImage, out: Any, depth_out: Any, index: int, topk: int,
                      keep_display_image: bool, forward_ms: float, features: bool = False,
                      recorder: AttentionRecorder | None = None, attention: str = "auto",
                      ablate: Sequence[tuple[int, int]] = ()) -> AnalysisResult:
        """The :class:`AnalysisResult` of image ``index`` of a forward pass's outputs."""
        t = time.perf_counter()
        loaded, rgb, cfg = prep.loaded, prep.rgb, self.info.config
        grid_rows, grid_cols = out.grid
        if recorder is not None:
            maps = recorder.maps(index, keep_queries=attention != "summary", head_statistics=features)
        else:
            full = torch.stack([a[index] for a in out.attentions], dim=0).float().cpu().numpy()  # [L, heads, T, T]
            maps = AttentionMaps.from_full(full, out.grid, cfg.patch_size, out.num_prefix_tokens,
                                           keep_full=attention != "summary")
        result = AnalysisResult(
            source=loaded.source,
            image=rgb,
            grid=PatchGrid(grid_rows, grid_cols, cfg.patch_size, (rgb.shape[0], rgb.shape[1]), loaded.original_size),
            model_name=self.info.name,
            device=_device_name(self.device),
            labels=list(self.info.labels),
            attention=maps,
            cls_attention=maps.cls_maps(),
            num_prefix_tokens=out.num_prefix_tokens,
            notices=list(loaded.notices),
            ablated=list(ablate),
        )
        if out.logits is not None:
            logits = out.logits[index].float()
            probs = self.model.probabilities(logits).cpu().numpy()
            result.logits = logits.cpu().numpy()
            result.probabilities = probs
            order = np.argsort(-probs)[: max(1, topk)]
            result.predictions = [Prediction(self.info.labels[i], int(i), float(probs[i])) for i in order]
            if self.model.text is not None:
                with torch.inference_mode():
                    pooled = self.model.pooled(out.tokens[index : index + 1])
                    result.image_embedding = torch.nn.functional.normalize(pooled.float(), dim=-1)[0].cpu().numpy()
                result.templates, result.scoring = list(self.templates), self.scoring
            detector = self.info.domain_detector
            if detector is not None:  # scored from this same forward pass
                result.domain = detector.assess(self.model, out.tokens[index : index + 1],
                                                out.logits[index : index + 1])
        if self.model.pool is not None:
            with torch.inference_mode():
                pool = self.model.pool.attention_map(out.tokens[index : index + 1])[0, :, out.num_prefix_tokens:]
            result.pool_attention = pool.float().cpu().numpy().reshape(-1, grid_rows, grid_cols)
        depth = out.depth if out.depth is not None else depth_out
        if depth is not None:
            d = depth[index : index + 1].float()
            if tuple(d.shape[-2:]) != rgb.shape[:2]:
                d = torch.nn.functional.interpolate(d, size=rgb.shape[:2], mode="bilinear", align_corners=False)
            result.depth = d[0, 0].cpu().numpy().astype(np.float32)
            dinfo = self.info if out.depth is not None else self.depth_info
            result.depth_kind = dinfo.depth_kind if dinfo else None
            result.depth_model_name = dinfo.name if dinfo else None
        if features:
            result.hidden_states = torch.stack([h[index] for h in out.hidden_states]).float().cpu().numpy()  # [L,T,D]
        if keep_display_image:
            result.display_image = prep.display if prep.tensor is not None else display_copy(loaded.image, rgb.shape[:2])
        post_ms = (time.perf_counter() - t) * 1000.0
        result.timings = {"preprocess": prep.preprocess_ms, "forward": forward_ms, "postprocess": post_ms,
                          "total": prep.preprocess_ms + forward_ms + post_ms}
        return result

    def evidence(self, image: Any, targets: str | int | Sequence[int] = "top5",
                 discard_ratio: float | None = None) -> Evidence:
        """Class evidence (see :mod:`vitviz.explain`) for ``image``: an :class:`AnalysisResult` of this engine (its
        model input is reused) or anything :meth:`analyze` accepts.

        ``targets``: ``"top1"``, ``"top5"``, ``"topK"``, a label, an index or a list of indices. One forward pass
        with gradients plus one batched backward pass for all targets; draw maps with :meth:`Evidence.map`.
        Raises :class:`VitvizError` for a model without a classifier (use :meth:`Evidence.from_result` there), and
        with a one-line reason when the image's attention and gradients cannot fit the device's memory. Above
        :data:`vitviz.explain.EVIDENCE_BUDGET` the gradient maps are computed layer by layer, for grad-rollout with
        ``discard_ratio`` (None: its default), and other options need another call.
        """
        from .explain import compute_evidence

        with self._lock:
            t0 = time.perf_counter()
            result = image if isinstance(image, AnalysisResult) else None
            return compute_evidence(self, self._model_input(image), result, targets, discard_ratio, started=t0)

    def _model_input(self, image: Any) -> np.ndarray:
        """The model input (uint8 RGB) of ``image``: an :class:`AnalysisResult` of this engine's model (its input is
        reused) or anything :meth:`analyze` accepts (read and resized)."""
        if isinstance(image, AnalysisResult):
            if image.model_name != self.info.name:
                raise VitvizError(f"this analysis was made with {image.model_name}, not {self.info.name}: "
                                  "analyse the image again first")
            return image.image
        cfg = self.info.config
        return prepare_image(_as_loaded(image).image, cfg.image_size, cfg.patch_size)

    def _check_ablate(self, ablate: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """``ablate`` sorted and checked against the model (:class:`VitvizError` naming a head out of range)."""
        return check_heads(ablate, len(self.model.blocks), self.info.config.num_heads, "knocked-out head")

    def head_importance(self, image: Any, target: int | str | None = None,
                        progress: Callable[[int, int], None] | None = None, batch_size: int | None = None,
                        ablate: Sequence[tuple[int, int]] = ()) -> HeadImportance:
        """What knocking out each head alone does to ``image``'s prediction (:class:`vitviz.importance.HeadImportance`):
        the drop of the ``target`` class's logit and probability (default: the unablated top-1) and, for a model with
        its own depth head, the mean relative change of the depth map. ``image``: an :class:`AnalysisResult` of this
        engine (its model input is reused) or anything :meth:`analyze` accepts. Batched on the engine's device, one
        batch element per head (``batch_size``: heads per batch, None: by memory); ``progress(done, total)`` after
        each batch. ``ablate``: heads knocked out in every pass, the unablated one included.
        :class:`VitvizError` for a model with neither a classifier nor a depth head.
        """
        with self._lock:
            x = self._tensor(self._model_input(image), self.info)
            labels = list(self.info.labels) if self.model.has_classifier else []
            return compute_head_importance(self.model, x, labels, target, ablate, progress, batch_size, self.info.name)

    def lens(self, result: AnalysisResult, topk: int | None = None) -> Any:
        """The logit lens (:class:`vitviz.lens.LogitLens`) of ``result``, analysed by this engine with
        ``features=True``; :class:`VitvizError` for a model without classifier or a result without hidden states."""
        from .lens import LENS_TOPK, logit_lens

        if not self.model.has_classifier:
            raise VitvizError(f"the logit lens needs a model with a classifier; {self.info.name} has none")
        if result.hidden_states is None:
            raise VitvizError("the logit lens needs the hidden states: analyse the image with features=True")
        with self._lock:
            return logit_lens(self.model, result.hidden_states, (result.grid.rows, result.grid.cols),
                              list(self.info.labels), topk or LENS_TOPK)


def _check_mode(attention: str) -> None:
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_MODES)}, not {attention!r}")


class _Cancelled(Exception):
    """Raised inside a forward pass whose analysis was cancelled."""


def _cancel_hooks(models: Any, cancelled: Callable[[], bool]) -> list[Any]:
    """Forward pre-hooks on every transformer block that raise :class:`_Cancelled` once ``cancelled()``."""

    def check(_module: torch.nn.Module, _args: Any) -> None:
        if cancelled():
            raise _Cancelled

    return [block.register_forward_pre_hook(check)
            for model in models if model is not None for block in getattr(model, "blocks", ())]


def _as_loaded(image: Any) -> LoadedImage:
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        notices: list[str] = []
        return LoadedImage(to_rgb(image, notices), "image", image.size, notices)
    if isinstance(image, np.ndarray):
        notices = []
        pil = Image.fromarray(_rgb8(image, notices))
        return LoadedImage(pil, "array", pil.size, notices)
    raise ImageLoadError(f"cannot analyse an object of type {type(image).__name__}")


def _rgb8(image: np.ndarray, notices: list[str]) -> np.ndarray:
    """An image array ``[H, W]``, ``[H, W, 1-4]`` (grey, grey + alpha, RGB, RGBA; alpha is dropped) as uint8 RGB.

    uint8 is taken as it is, bool as black and white, floats within 0-1 as fractions (else as 0-255 levels), other
    integers above 255 as 16-bit levels; values outside the range are clipped, with a notice."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 2):
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"expected an image array [H, W] or [H, W, 3], got shape {image.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        rgb = arr
    elif arr.dtype == np.bool_:
        rgb = arr.astype(np.uint8) * 255
    elif arr.dtype.kind in "iuf":
        values = arr.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageLoadError("the image array holds NaN or infinite values")
        lo, hi = float(values.min()), float(values.max())
        if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
            values = values * 255.0
        elif arr.dtype.kind in "iu" and hi > 255:
            values = values / 257.0  # 16-bit levels
            notices.append("16-bit levels shown in 8 bits")
        if values.min() < 0 or values.max() > 255:
            notices.append("values outside the image range were clipped")
        rgb = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    else:
        raise ImageLoadError(f"cannot read an image array of type {arr.dtype}")
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
