"""Command line: ``vitviz`` opens the app; ``vitviz analyze`` writes predictions, attention maps and depth to files."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from .errors import VitvizError

__all__ = ["main"]

COMMANDS = ("gui", "analyze", "models", "live", "browse")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (and exit status 2), naming the help to read."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _checked(convert: Callable[[str], Any], what: str, ok: Callable[[Any], bool], must: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``convert`` the text (else "'x' is not {what}"), then ``ok(value)`` (else ``must``)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{must}, not {text}")
        return value

    return parse


_at_least_one = _checked(int, "a whole number", lambda v: v >= 1, "must be at least 1")
_fraction = _checked(float, "a number", lambda v: 0.0 <= v <= 1.0, "is an opacity between 0 and 1")
_seconds = _checked(float, "a number of seconds", lambda v: 0.0 < v < float("inf"),
                    "must be a positive number of seconds")


def _heads(text: str) -> list[tuple[int, int]]:
    """``--ablate``: ``L.H[,L.H...]``, 0-based layer and head numbers (their range is checked against the model)."""
    import re

    heads = []
    for token in text.split(","):
        if not re.fullmatch(r"\d+\.\d+", token.strip(), re.ASCII):
            raise argparse.ArgumentTypeError(f"{token.strip()!r} is not LAYER.HEAD (0-based numbers, e.g. 3.1)")
        layer, head = token.strip().split(".")
        heads.append((int(layer), int(head)))
    return heads


def _colormap(text: str) -> str:
    from .render import COLORMAPS

    if text not in COLORMAPS:
        raise argparse.ArgumentTypeError(f"unknown colormap {text!r}; choose from {', '.join(COLORMAPS)}")
    return text


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vitviz",
        description="Look inside Vision Transformers: predictions, per-head CLS attention and depth.",
        epilog="Run 'vitviz' alone to open the app on the shipped model.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"vitviz {__version__}")
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="open the desktop app (the default)")
    gui.add_argument("image", nargs="?", help="image to open first")
    _model_options(gui)
    gui.add_argument("--present", nargs="?", const="", default=None, metavar="IMAGE|FOLDER",
                     help="start in presentation mode: one image, or cycle through a folder (default: the samples)")
    gui.add_argument("--interval", type=_seconds, default=None, metavar="SECONDS",
                     help="presentation mode: seconds per image when cycling through a folder")

    an = sub.add_parser("analyze", help="analyse images and write maps, arrays and JSON to a folder")
    an.add_argument("images", nargs="*", metavar="IMAGE",
                    help="image files, folders (searched recursively), glob patterns ('data/**/*.jpg') or @LIST "
                         "(a text file of paths, one a line)")
    an.add_argument("--out", required=True, type=Path,
                    help="output folder: one subfolder per image, and results.csv with one row per image; a new or "
                         "empty folder, or one an earlier run wrote (rerunning resumes it)")
    an.add_argument("--force", action="store_true",
                    help="write into an --out folder that holds files vitviz did not write (they are never deleted "
                         "or overwritten)")
    _model_options(an)
    an.add_argument("--layer", type=int, default=-1, help="layer whose per-head CLS maps are drawn (default: last)")
    an.add_argument("--topk", type=_at_least_one, default=5, help="number of predictions to report (default: 5)")
    an.add_argument("--cmap", default="inferno", type=_colormap, help="colormap of attention maps (default: inferno)")
    an.add_argument("--depth-cmap", default="turbo", type=_colormap, help="colormap of the depth map (default: turbo)")
    an.add_argument("--alpha", type=_fraction, default=0.6, help="overlay opacity of attention maps (default: 0.6)")
    an.add_argument("--features", action="store_true",
                    help="also write features.npz (mean attention distance, CLS entropy, token norms, PCA colours), "
                         "pca_layerL.png and head_atlas.png")
    an.add_argument("--lens", action="store_true",
                    help="also write lens.npz: the logit lens, every layer's class probabilities from the CLS token "
                         "and, for the top 5 classes, from every patch token (needs a classifier)")
    an.add_argument("--ablate", type=_heads, default=[], metavar="L.H[,L.H...]",
                    help="knock out these attention heads (layer.head, 0-based, as the app labels them): their "
                         "outputs are zeroed before the output projection; result.json lists them")
    ranking = an.add_mutually_exclusive_group()
    ranking.add_argument("--head-importance", dest="head_importance", action="store_const", const="knockout",
                         default="", help="also write head_importance.csv: what knocking out each head alone does to "
                         "the top-1 class (logit and probability drop) and, for depth models, to the depth map (one "
                         "row per head)")
    ranking.add_argument("--head-importance-estimate", dest="head_importance", action="store_const", const="estimate",
                         help="write head_importance.csv with the first-order estimate of the class drops instead of "
                              "knockouts: one backward pass, about 10x faster on ViT-S/16 (columns *_estimate, no "
                              "depth figure)")
    an.add_argument("--compare", default=None, metavar="MODEL",
                    help="also analyse each image with this second model and write compare.json (both models' "
                         "predictions, top-1 agreement, depth AbsRel and delta1 after alignment, correlations of the "
                         "matched layers' mean CLS maps) and compare.png (both models' maps and depths)")
    an.add_argument("--labels", default=None, metavar="LABELS|@FILE",
                    help="image-text models (CLIP, SigLIP): the labels to compare the image with, comma-separated, "
                         "or @FILE with one label per line (default: a few everyday words)")
    an.add_argument("--template", action="append", default=None, metavar="TEMPLATE",
                    help="image-text models: the prompt each label is put into, with {} for the label (default: "
                         "\"a photo of a {}.\"; \"{}\" uses the label as typed); repeat it to average several")
    an.add_argument("--quiet", action="store_true", help="no progress bar")
    an.add_argument("--verbose", action="store_true",
                    help="a line per image outside the model's domain (default: one summary at the end)")
    an.add_argument("--explain", default=None, metavar="METHOD[,METHOD...]",
                    help="also write class-evidence maps: attention, rollout, grad-rollout, relevance")
    an.add_argument("--target", default="top1", metavar="top1|top5|CLASS",
                    help="classes explained by --explain: top1 (default), top5 or a class label or index")
    an.add_argument("--from-file", action="append", default=[], metavar="LIST",
                    help="text file of image paths, folders or patterns, one a line (repeatable; like @LIST)")
    an.add_argument("--outputs", default="all", metavar="NAMES",
                    help="what to write per image, comma-separated: json, input, heads, rollout, depth, "
                         "attention-npy (CLS rows), depth-npy, or png, npy, all (default), none (only results.csv); "
                         "attention-full writes every layer's full attention tensors (not part of all: they grow with "
                         "the square of the tokens, their size is printed first)")
    an.add_argument("--batch-size", type=_at_least_one, default=None, metavar="N",
                    help="images per forward pass (default: 8 on the CPU, 64 on CUDA, 16 on MPS)")
    an.add_argument("--workers", type=_at_least_one, default=None, metavar="N",
                    help="decoding threads and writing processes (default: the number of CPUs, at most 8)")
    an.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                    help="run the forward passes on a Ray cluster (ADDRESS, e.g. ray://head:10001 or auto), or on "
                         "a local Ray without ADDRESS; needs the 'scale' extra")

    sub.add_parser("models", help="list the shipped and pretrained models")

    browse = sub.add_parser("browse", help="open the gallery of a vitviz analyze run: every image with one head's "
                            "map, sorted and filtered")
    browse.add_argument("folder", type=Path, metavar="DIR", help="the --out folder of a vitviz analyze run")
    _model_options(browse)

    live = sub.add_parser("live", help="open the app in live mode: the built-in scene, a video file or a camera")
    live.add_argument("source", nargs="?", default="scene",
                      help="scene (default), scene:SEED, a video/GIF/WebP file, camera, camera:N or /dev/videoN")
    _model_options(live)
    return parser


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="shipped model name, pretrained model name, checkpoint path, or your own model: PATH.py:NAME "
                        "or package.module:NAME (a callable returning an nn.Module or a dict; runs that file's code) "
                        "or a MiniViT state dict (docs/your-own-model.md)")
    own = p.add_argument_group("your own model's facts that its weights cannot hold (with --model)")
    own.add_argument("--heads", type=_at_least_one, default=None, metavar="N", help="attention heads per layer")
    own.add_argument("--classes", default=None, metavar="A,B,...|@FILE",
                     help="class names, comma-separated or one a line in FILE")
    own.add_argument("--mean", type=_floats, default=None, metavar="R,G,B", help="input normalisation mean")
    own.add_argument("--std", type=_floats, default=None, metavar="R,G,B", help="input normalisation std")
    own.add_argument("--norm-first", choices=("yes", "no"), default=None,
                     help="pre-norm (yes) or post-norm (no, PyTorch's default) nn.TransformerEncoderLayer")
    own.add_argument("--allow-pickle", action="store_true",
                     help="open a whole model saved with torch.save(model): unpickling RUNS CODE from the file, so "
                          "only for files you trust")
    p.add_argument("--depth-model", default=None, help="extra depth model for classifiers without a depth head")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--half", action="store_true", help="half precision on CUDA")


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, not {text!r}") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected 1 or 3 numbers, not {len(values)}")
    return values


def _own_model_options(args: argparse.Namespace) -> None:
    """Hand --heads, --classes, --mean, --std, --norm-first and --allow-pickle to the opening of --model."""
    if not getattr(args, "model", None):
        if any(getattr(args, k, None) for k in ("heads", "classes", "mean", "std", "norm_first", "allow_pickle")):
            raise VitvizError("--heads, --classes, --mean, --std, --norm-first and --allow-pickle describe --model: "
                              "name the model too")
        return
    from .models.userspec import set_options

    classes = args.classes
    if classes and classes.startswith("@"):
        try:
            classes = [line.strip() for line in Path(classes[1:]).read_text("utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise VitvizError(f"--classes: cannot read {classes[1:]}: {exc.strerror or exc}") from exc
    elif classes:
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    norm_first = None if args.norm_first is None else args.norm_first == "yes"
    set_options(args.model, heads=args.heads, classes=classes, mean=args.mean, std=args.std, norm_first=norm_first,
                allow_pickle=args.allow_pickle or None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vitviz`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list = ["gui", *args_list]
    try:
        args = _build_parser().parse_args(args_list)
    except SystemExit as exc:  # --help (0) or a usage error, already printed on one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        _own_model_options(args)
        if args.command == "analyze":
            return analyze(args)
        if args.command == "models":
            return list_models()
        if args.command == "browse":
            return browse(args)
        return launch_gui(args)
    except VitvizError as exc:
        print(f"vitviz: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vitviz: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - e.g. torch failing while a model loads: one line, no traceback
        print(f"vitviz: error: {_unexpected(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _unexpected(exc: BaseException) -> str:
    """One line for an error that is not a :class:`VitvizError`; the traceback too when ``VITVIZ_DEBUG=1``."""
    if os.environ.get("VITVIZ_DEBUG", "").strip() not in ("", "0"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    text = str(exc).strip()
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "out of memory (try a smaller image, --device cpu or a smaller model)"
    first = text.splitlines()[0] if text else ""
    return f"unexpected error: {type(exc).__name__}" + (f": {first}" if first else "")


def launch_gui(args: argparse.Namespace) -> int:
    try:
        from .app import run_app
    except ImportError as exc:
        print(f"vitviz: error: the desktop app cannot start ({exc})", file=sys.stderr)
        return 2
    live = None
    if args.command == "live":
        from .live.sources import check_source

        live = check_source(args.source)  # a missing file fails here, before the window opens
    return run_app(image=getattr(args, "image", None), model=args.model, device=args.device,
                   depth_model=args.depth_model, present=getattr(args, "present", None),
                   interval=getattr(args, "interval", None), live=live)


def browse(args: argparse.Namespace) -> int:
    """``vitviz browse DIR``: the run is read before the window opens, so a folder that is not a run (or a finished
    run of 0 images) fails with one line and exit status 2."""
    from .gallery import RunError, open_run
    from .thumbnails import start_thumbnail_process

    run = open_run(args.folder)
    if not run.entries and not run.being_written:
        raise RunError(f"{args.folder} holds a run of 0 images: nothing to browse")
    process = start_thumbnail_process(args.folder)  # it starts up while Qt is imported
    try:
        from .app.browse.window import run_browser
        from .app.main_window import MainWindow
    except ImportError as exc:
        if process is not None:
            process.close()
        print(f"vitviz: error: the desktop app cannot start ({exc})", file=sys.stderr)
        return 2
    return run_browser(run, model=args.model, device=args.device, process=process, window_class=MainWindow)


def list_models() -> int:
    from .engine import weights_dir

    print("Shipped (offline):")
    for cfg in sorted(weights_dir().glob("*.json")):
        try:
            info = json.loads(cfg.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if info.get("format") == "vitviz-checkpoint":
            print(f"  {cfg.stem:28s} {info.get('description', '')}")
    for cfg in sorted(weights_dir().glob("*/config.json")):  # vitviz's own models in the Hub's layout
        try:
            extra = json.loads(cfg.read_text("utf-8")).get("vitviz")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(extra, dict):
            print(f"  {cfg.parent.name:28s} {extra.get('description', '')}")
    try:
        from .models import zoo
    except ImportError:
        return 0
    print("Pretrained (downloaded on first use, needs the 'hub' extra):")
    for name, entry in zoo.REGISTRY.items():
        print(f"  {name:28s} {entry.summary}")
    return 0


def analyze(args: argparse.Namespace) -> int:
    from .export import parse_outputs
    from .inputs import expand_inputs
    from .pipeline import SCALE_HINT, RunOptions, run_local, run_ray
    from .run_writing import stop_on_interrupt_if_asked

    stop_on_interrupt_if_asked()
    outputs = parse_outputs(args.outputs)
    if args.ray is not None:
        try:
            import ray  # noqa: F401
            import ray.data  # noqa: F401
        except ImportError:
            raise VitvizError(SCALE_HINT) from None
    if args.ray is not None and (args.features or args.explain or args.lens):
        raise VitvizError("--features, --explain and --lens run on this machine only: leave out --ray for them")
    if args.ray is not None and args.compare:
        raise VitvizError("--compare runs on this machine only: leave out --ray for it")
    if args.ray is not None and (args.labels or args.template):
        raise VitvizError("--labels and --template run on this machine only: leave out --ray for them")
    if args.ray is not None and (args.ablate or args.head_importance):
        raise VitvizError("--ablate and --head-importance run on this machine only: leave out --ray for them")
    opts = RunOptions(
        out=args.out, outputs=outputs, layer=args.layer, cmap=args.cmap, depth_cmap=args.depth_cmap,
        alpha=args.alpha, topk=args.topk, batch_size=args.batch_size, workers=args.workers, progress=not args.quiet,
        features=args.features, target=args.target, verbose=args.verbose, lens=args.lens, force=args.force,
    )
    from .runfolder import check_run_folder

    check_run_folder(args.out, args.force)  # someone else's folder, or a live run's: refused before any work

    failures = _Failures()

    def skipped(n: int) -> None:
        print(f"vitviz: skipping {n} image(s) whose outputs in {args.out} are complete", file=sys.stderr)

    if args.ray is None:
        from .engine import Engine

        engine = Engine(args.model, device=args.device, half=args.half, depth_model=args.depth_model)
        _check_layer(args.layer, engine.model.num_layers)
        _set_labels(args, engine, opts)
        if args.lens and engine.model.lens_problem:
            raise VitvizError(f"--lens: {engine.info.name}: {engine.model.lens_problem}")
        opts.ablate, opts.head_importance = tuple(_check_heads(args, engine)), args.head_importance
        opts.explain = tuple(_explain_methods(args, engine))
        opts.domain_known = getattr(engine.info.domain_detector, "known", "")
        items = _inputs(args, expand_inputs)
        if "attention-full" in outputs:
            from .export import print_full_attention_estimate

            print_full_attention_estimate([it.path for it in items if it.error is None], engine.info.config,
                                          engine.model.num_prefix_tokens)
        engine_b = Engine(args.compare, device=args.device, half=args.half) if args.compare else None
        if engine_b is not None and engine_b.has_text and engine.has_text:  # both compare the image with A's labels
            engine_b.set_labels(list(engine.info.labels), list(engine.templates))
        report = run_local(items, engine, opts, failures.describe, skipped)
        if engine_b is not None:
            report.failed += _write_comparisons(items, engine, engine_b, opts, failures)
    else:
        items = _inputs(args, expand_inputs)
        report = run_ray(items, args.ray, args.model, args.depth_model, args.device, args.half, opts,
                         failures.describe, skipped)
    if report.out_of_domain and not args.verbose:
        from .models.domain import out_of_domain_summary

        print("vitviz: " + out_of_domain_summary(report.out_of_domain - report.unusual, report.unusual, report.total,
                                                 opts.domain_known))
    if report.failed:
        print(f"vitviz: {report.failed} of {report.total} image(s) failed{failures.summary(args.out)}", file=sys.stderr)
        return 1
    return 0


def _write_comparisons(items: list, engine: Any, engine_b: Any, opts: Any, failures: _Failures) -> int:
    """``--compare``: compare.json and compare.png beside each written image's outputs (A analysed again, without
    the run's knockout); returns how many images failed."""
    from .compare import compare, write_compare

    failed = 0
    for item in items:
        folder = opts.out / item.name
        if item.error is not None or not folder.is_dir():
            continue  # failed in the run (already reported)
        try:
            a = engine.analyze(item.path, topk=opts.topk, attention="summary")
            b = engine_b.analyze(item.path, topk=opts.topk, attention="summary")
            write_compare(compare(a, b), folder, layer=opts.layer, cmap=opts.cmap, depth_cmap=opts.depth_cmap,
                          alpha=opts.alpha, png_compress_level=opts.png_compress_level)
        except Exception as exc:  # noqa: BLE001 - this image alone fails
            print(f"vitviz: error: {failures.describe(item, exc, ' (--compare)')}", file=sys.stderr)
            failed += 1
    return failed


def _set_labels(args: argparse.Namespace, engine: Any, opts: Any) -> None:
    """``--labels`` / ``--template`` on an image-text model, before any image (VitvizError: exit 2); notices such
    as merged repeats or labels cut to the context are printed."""
    if not engine.has_text:
        if args.labels is not None or args.template:
            raise VitvizError(f"--labels and --template need an image-text model (CLIP, SigLIP); {engine.info.name} "
                              "has a fixed set of classes")
        return
    from .prompts import read_labels_argument

    parsed = read_labels_argument(args.labels) if args.labels is not None else None
    labels = parsed.labels if parsed is not None else list(engine.info.labels)
    notices = (parsed.notices if parsed is not None else []) + engine.set_labels(labels, args.template)
    for notice in notices:
        print(f"vitviz: {notice}", file=sys.stderr)
    opts.labels, opts.templates = tuple(engine.info.labels), tuple(engine.templates)


def _check_layer(layer: int, layers: int) -> None:
    """``--layer`` against the model, before any image (VitvizError: exit 2)."""
    if not -layers <= layer < layers:
        raise VitvizError(f"--layer {layer} is out of range: the model has {layers} layers (0..{layers - 1}, "
                          "or -1 for the last)")


def _check_heads(args: argparse.Namespace, engine: Any) -> list[tuple[int, int]]:
    """``--ablate``'s heads against the model, and that ``--head-importance`` has something to measure, before any
    image (VitvizError: exit 2)."""
    from .importance import check_heads, needs_classifier_or_depth

    if args.head_importance and not engine.model.has_classifier and not engine.model.has_depth:
        raise VitvizError(f"--head-importance: {needs_classifier_or_depth(engine.info.name)}")
    if args.head_importance == "estimate" and not engine.model.has_classifier:
        raise VitvizError(f"--head-importance-estimate follows the class probability, and {engine.info.name} has no "
                          "classifier: use --head-importance (knockouts) for its depth map")
    return check_heads(args.ablate, engine.model.num_layers, engine.model.num_heads, "--ablate")


def _explain_methods(args: argparse.Namespace, engine: object) -> list[str]:
    """The methods of ``--explain``, checked against the model before any image runs (VitvizError: exit 2)."""
    if not args.explain:
        if args.target != "top1":
            raise VitvizError(f"--target {args.target!r} chooses the classes of --explain: add --explain METHOD")
        return []
    from .explain import GRADIENT_METHODS, METHODS, needs_classifier_message, resolve_targets

    methods = list(dict.fromkeys(m.strip() for m in args.explain.split(",") if m.strip()))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise VitvizError(f"--explain {args.explain!r}: unknown method {', '.join(unknown) or '(none)'}; "
                          f"choose from {', '.join(METHODS)}")
    labels = list(engine.info.labels) if engine.model.has_classifier else []
    if not labels:
        if any(m in GRADIENT_METHODS for m in methods):
            raise VitvizError(needs_classifier_message(engine.info.name))
    else:
        resolve_targets(args.target, labels, [0.0] * len(labels))  # a bad --target fails here, before any image
    return methods


def _inputs(args: argparse.Namespace, expand: Any) -> list:
    items = expand(args.images, args.from_file, exclude=args.out)
    if not items:
        raise VitvizError("no images to analyse: give image files, folders, patterns or --from-file LIST")
    return items


def _describe_failure(item: Any, exc: BaseException) -> str:
    """The one line that says why an image failed, naming its file."""
    if isinstance(exc, VitvizError):
        message = _one_line(exc)
        if item.path not in message and str(Path(item.path)) not in message:
            message = f"{item.path}: {message}"  # every line names its file
        return message
    return f"{item.path}: {_unexpected(exc)}"


class _Failures:
    """The failed images of a run, for the end-of-run line: its reasons, not only their count."""

    def __init__(self) -> None:
        self.reasons: list[tuple[str, str]] = []  # (the line naming the file, the reason without the file)

    def describe(self, item: Any, exc: BaseException, suffix: str = "") -> str:
        """:func:`_describe_failure`, remembered."""
        message = _describe_failure(item, exc) + suffix
        reason = message
        for name in (str(item.path), str(Path(item.path))):
            if reason.startswith(name + ": "):
                reason = reason[len(name) + 2 :]
                break
        self.reasons.append((message, reason.split(" (", 1)[0]))  # the library's detail in brackets varies by file
        return message

    def summary(self, out: Path) -> str:
        """What follows "N of M image(s) failed": the one failure's line, else the most common reason and where
        every image's reason is."""
        if len(self.reasons) == 1:
            return f": {self.reasons[0][0]}"
        if not self.reasons:
            return ""
        from .store import TABLE

        reason, count = Counter(r for _, r in self.reasons).most_common(1)[0]
        where = f"the error column of {Path(out) / TABLE}"
        if any(m.endswith(" (--compare)") for m, _ in self.reasons):
            where += " and the lines above (--compare)"
        if count == len(self.reasons):
            return f", all: {reason} (each file's reason: {where})"
        return f"; the most common reason ({count} of them): {reason}; the others: {where}"
