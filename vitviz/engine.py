"""Inference engine: image in, plain :class:`AnalysisResult` out (used by the app and the command line alike)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .models.checkpoint import ModelInfo
from .models.resolve import resolve_model
from .errors import CheckpointError, VitvizError
from .images import (DISPLAY_MAX_SIDE, MAX_ASPECT_TOKENS, LoadedImage, as_loaded, display_copy,  # noqa: F401
                     display_scale, model_input_size, prepare_image)
from .result import AnalysisResult, PatchGrid, Prediction
from .models.vit import VisionTransformer
from .paths import DEFAULT_MODEL, weights_dir
from .attention import (FULL_ATTENTION_BUDGET, SUMMARY_FROM_FULL_BUDGET, AttentionMaps, AttentionRecorder,
                        full_attention_bytes)
from .importance import check_heads, head_mask, rank_heads
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
            if not self.depth_model.has_depth:
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
        # A DPT depth head (the photo models') runs in oneDNN's channels-last layout on a CPU: for a 518x770 photo
        # 0.36-0.47 s -> 0.27-0.29 s, same depth within float rounding. Not the shipped model's small fusion head,
        # which it makes ~6 % slower (0.7 ms of 11 ms)
        layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        for model in (self.model, self.depth_model):
            if model is not None and model.depth_head is not None and model.config.depth_head == "dpt":
                model.depth_head.to(memory_format=layout)
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
        return dataclasses.replace(
            result, labels=labels, logits=logits.cpu().numpy(), probabilities=probs, templates=templates,
            predictions=_top_predictions(probs, labels, topk),
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
        distance (``result.attention.mean_distance``; without ``features``, computed from the full tensors when
        first read if they were kept, else None).
        ``traced``: run the forward pass through a TorchScript trace of the model for this input size (made on
        first use; :class:`vitviz.models.traced.TracedForward`), which does not hold Python's GIL, so that a UI
        thread painting meanwhile does not slow it down (the live mode). Not with ``features``; ``cancelled`` is
        then only checked between stages.
        ``attention``: what the result keeps of the attention, one of :data:`ATTENTION_MODES`.
        ``ablate``: heads to knock out, ``(layer, head)`` pairs, 0-based (:class:`VitvizError` when out of range):
        their attention outputs are zeroed before each block's output projection (their attention maps stay as they
        were); the result lists them (``result.ablated``). Not traced: a knockout runs the eager model.
        """
        _check_mode(attention)
        ablate = self._check_ablate(ablate)
        # a trace would keep the labels it was made with; a user's model runs as it is (vitviz.models.usermodel)
        traced = traced and not ablate and self.model.text is None and isinstance(self.model, VisionTransformer)
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
        loaded = as_loaded(image)
        cfg = self.info.config
        rgb = prepare_image(loaded.image, cfg.image_size, cfg.patch_size, cfg.fixed_size)
        depth_rgb = None
        if not self.model.has_depth and self.depth_model is not None:
            dcfg = self.depth_model.config
            # from the full image
            depth_rgb = prepare_image(loaded.image, dcfg.image_size, dcfg.patch_size, dcfg.fixed_size)
        return PreparedImage(loaded, rgb, depth_rgb, (time.perf_counter() - t) * 1000.0)

    def _prepare_on_device(self, frame: np.ndarray, display: bool) -> PreparedImage:
        """Upload ``frame`` (through pinned memory on CUDA) and resize it there, bicubic with antialiasing like
        Pillow's filter: the model input stays on the device, and only the model-size image (and the display copy)
        come back for drawing. A live frame then costs the CPU one copy instead of a conversion and one or two
        resizes (about 4 ms for a 1080p frame before the resizes, on the 2-core VM)."""
        loaded = LoadedImage(None, "array", (frame.shape[1], frame.shape[0]), [])
        cfg = self.info.config
        w, h = model_input_size(loaded.original_size, cfg.image_size, cfg.patch_size, cfg.fixed_size)
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
        true before a block (None: cannot be cancelled, and changes nothing on the model, so threads may run it).

        The full attention tensors come back (``out.attentions``) when traced, for ``attention="full"``, for
        ``"auto"`` when they fit :data:`vitviz.attention.FULL_ATTENTION_BUDGET` and for ``"summary"`` when they fit
        :data:`vitviz.attention.SUMMARY_FROM_FULL_BUDGET` (summarised afterwards: faster for few tokens); else an
        :class:`AttentionRecorder` holds what the result keeps."""
        # an input prepared on the device is used as it is, unless the engine has moved since (out of GPU memory)
        x = torch.cat([p.tensor if p.tensor is not None and p.tensor.device == self.device
                       else self._tensor(p.rgb, self.info) for p in preps])
        traced = traced and not features
        cfg, p = self.info.config, self.model.num_prefix_tokens
        grid = (x.shape[-2] // cfg.patch_size, x.shape[-1] // cfg.patch_size)
        budget = {"full": float("inf"), "auto": FULL_ATTENTION_BUDGET, "summary": SUMMARY_FROM_FULL_BUDGET}[attention]
        full = traced or full_attention_bytes(cfg.depth, cfg.num_heads, p + grid[0] * grid[1], len(preps)) <= budget
        recorder = None if full else AttentionRecorder(grid, cfg.patch_size, p, attention != "summary", features,
                                                       num_layers=cfg.depth)  # queries kept, head statistics
        hooks = [] if cancelled is None or traced else _cancel_hooks((self.model, self.depth_model), cancelled)
        try:
            with torch.inference_mode():
                if traced:
                    if self._traced is None:
                        from .models.traced import TracedForward

                        self._traced = TracedForward(self.model)
                    out = self._traced(x)
                else:
                    mask = head_mask(ablate, self.model.num_layers, self.model.num_heads, x.device, x.dtype)
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

    def _analyze(self, image: Any, topk: int, cancelled: Callable[[], bool] | None, keep_display_image: bool,
                 features: bool = False, traced: bool = False, attention: str = "auto",
                 ablate: Sequence[tuple[int, int]] = ()) -> AnalysisResult | None:
        t_start = time.perf_counter()
        prep = image if isinstance(image, PreparedImage) else self.prepare(image, display=keep_display_image)
        preprocess_ms = (time.perf_counter() - t_start) * 1000.0
        # without a ``cancelled`` the forward pass runs without the blocks' cancel hooks (a call from code)
        forward_cancelled = cancelled
        cancelled = cancelled or _never
        if cancelled():
            return None
        t = time.perf_counter()
        try:
            out, depth_out, recorder = self._forward([prep], forward_cancelled, features, traced, attention, ablate)
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
            maps = recorder.maps(index)
        else:
            # the tensors themselves kept, the head statistics then come on first read, and for a call from code
            # (no display image: not the app's worker) the rollout rows too
            keep = attention != "summary"
            maps = AttentionMaps.from_full([a[index] for a in out.attentions], out.grid, cfg.patch_size,
                                           out.num_prefix_tokens, keep_full=keep, head_statistics=features,
                                           on_demand=not keep_display_image)
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
            result.predictions = _top_predictions(probs, self.info.labels, topk)
            if self.model.text is not None:
                with torch.inference_mode():
                    pooled = (out.pooled[index : index + 1] if out.pooled is not None
                              else self.model.pooled(out.tokens[index : index + 1]))
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
        if features and out.hidden_states is not None:
            hidden = out.hidden_states
            if isinstance(hidden, torch.Tensor) and hidden.dtype == torch.float32 and hidden.device.type == "cpu":
                # [L, T, D]: the blocks wrote into one tensor; one image's part of it, copied for a batch's image alone
                one = hidden[:, index].numpy()
                result.hidden_states = one if hidden.shape[1] == 1 else one.copy()
            else:  # stacked by numpy: one copy on this thread (torch's threads cost more than they save here)
                result.hidden_states = np.stack([h[index].float().cpu().numpy() for h in hidden])
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
        return prepare_image(as_loaded(image).image, cfg.image_size, cfg.patch_size, cfg.fixed_size)

    def _check_ablate(self, ablate: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """``ablate`` sorted and checked against the model (:class:`VitvizError` naming a head out of range)."""
        return check_heads(ablate, self.model.num_layers, self.model.num_heads, "knocked-out head")

    def head_importance(self, image: Any, target: int | str | None = None,
                        progress: Callable[[int, int], None] | None = None, batch_size: int | None = None,
                        ablate: Sequence[tuple[int, int]] = (), method: str = "knockout") -> HeadImportance:
        """What knocking out each head alone does to ``image``'s prediction (:class:`vitviz.importance.HeadImportance`):
        the drop of the ``target`` class's logit and probability (default: the unablated top-1) and, for a model with
        its own depth head, the mean relative change of the depth map. ``image``: an :class:`AnalysisResult` of this
        engine (its model input is reused) or anything :meth:`analyze` accepts. Batched, one batch element per head
        (``batch_size``: heads per batch, None: by memory); ``progress(done, total)`` after each batch. ``ablate``:
        heads knocked out in every pass. ``method="estimate"``: the first-order estimate instead (one forward and
        backward pass; no depth figure; :func:`vitviz.importance.estimate_head_importance`). Raises VitvizError.
        """
        with self._lock:
            x = self._tensor(self._model_input(image), self.info)
            labels = list(self.info.labels) if self.model.has_classifier else []
            return rank_heads(self.model, x, labels, target, ablate, progress, batch_size, self.info.name, method)

    def lens(self, result: AnalysisResult, topk: int | None = None) -> Any:
        """The logit lens (:class:`vitviz.lens.LogitLens`) of ``result``, analysed by this engine with
        ``features=True``; :class:`VitvizError` for a model without classifier or a result without hidden states."""
        from .lens import LENS_TOPK, logit_lens

        if self.model.lens_problem:
            raise VitvizError(f"{self.info.name}: {self.model.lens_problem}")
        if result.hidden_states is None:
            raise VitvizError("the logit lens needs the hidden states: analyse the image with features=True")
        with self._lock:
            return logit_lens(self.model, result.hidden_states, (result.grid.rows, result.grid.cols),
                              list(self.info.labels), topk or LENS_TOPK)


def _top_predictions(probs: np.ndarray, labels: Sequence[str], topk: int) -> list[Prediction]:
    """The ``topk`` (at least 1) most probable classes, best first."""
    return [Prediction(labels[i], int(i), float(probs[i])) for i in np.argsort(-probs)[: max(1, topk)]]


def _check_mode(attention: str) -> None:
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_MODES)}, not {attention!r}")


class _Cancelled(Exception):
    """Raised inside a forward pass whose analysis was cancelled."""


def _never() -> bool:
    return False


def _cancel_hooks(models: Any, cancelled: Callable[[], bool]) -> list[Any]:
    """Forward pre-hooks on every transformer block that raise :class:`_Cancelled` once ``cancelled()``."""

    def check(_module: torch.nn.Module, _args: Any) -> None:
        if cancelled():
            raise _Cancelled

    return [block.register_forward_pre_hook(check)
            for model in models if model is not None for block in getattr(model, "blocks", ())]


def _device_name(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type
