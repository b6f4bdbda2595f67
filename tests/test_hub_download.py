"""Pretrained downloads against a real HTTP server on 127.0.0.1 (tests/hub_server.py), with nothing mocked.

``huggingface_hub`` runs for real: HEAD /resolve, the redirect of large files to a CDN, ETag / X-Linked-* / commit
headers, retries with Range requests, its cache layout. ``HF_ENDPOINT`` and ``HF_HUB_CACHE`` point at the server and a
temporary folder; ``huggingface_hub`` itself reads HF_ENDPOINT only when imported, so vitviz reads it at each call and
passes it on as ``endpoint=`` (see vitviz.models.hub), which is what lets these tests set it per test.

The repositories are tiny random-weight models in the real layouts: transformers' ``save_pretrained`` output (ViT,
DeiT, Depth Anything), and a DINOv2 with four registers in timm's layout (its tensors are vitviz's own, whose names
are timm's; timm needs torchvision, so it is not used to write them). Each comes with ``model.safetensors`` or
``pytorch_model.bin``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vitviz.errors import CheckpointError, LoadCancelled, ModelDownloadError
from vitviz.models import zoo

from .hub_server import TOKEN, HubServer

pytest.importorskip("huggingface_hub")
tf = pytest.importorskip("transformers", minversion="4.47")

LAYOUTS = ("vit", "deit", "dinov2-reg", "depth-anything")
FORMATS = {"safetensors": "model.safetensors", "bin": "pytorch_model.bin"}
DEIT = "facebook/deit-small-patch16-224"
DEPTH = "depth-anything/Depth-Anything-V2-Small-hf"


# ------------------------------------------------------------------------------------------------------- repositories


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    from vitviz.models.reference import randomize

    return randomize(model, seed=seed)


def _save_hf(model: torch.nn.Module, folder: Path) -> dict[str, dict[str, bytes]]:
    """Both variants of a transformers checkpoint: config.json with model.safetensors, or with pytorch_model.bin."""
    from safetensors.torch import load_file

    model.save_pretrained(folder)
    config = (folder / "config.json").read_bytes()
    state = load_file(str(folder / "model.safetensors"))
    torch.save(state, folder / "pytorch_model.bin")
    return {fmt: {"config.json": config, name: (folder / name).read_bytes()} for fmt, name in FORMATS.items()}


def _save_timm_dinov2_reg(folder: Path) -> dict[str, dict[str, bytes]]:
    """A DINOv2-S/14 with 4 registers as timm publishes it (timm/vit_small_patch14_reg4_dinov2.lvd142m), tiny."""
    from safetensors.torch import save_file

    from vitviz.models.vit import ViTConfig, build_model

    torch.manual_seed(3)
    model = build_model(ViTConfig(image_size=56, patch_size=14, embed_dim=24, depth=2, num_heads=3, num_classes=0,
                                  num_register_tokens=4, layer_scale_init=1e-5))
    state = {k: v.detach().clone().normal_(0, 0.2) for k, v in model.state_dict().items()}
    state["pos_embed"] = state["pos_embed"][:, 1:].contiguous()  # no_embed_class: positions of the patches only
    config = {
        "architecture": "vit_small_patch14_reg4_dinov2", "num_classes": 0, "num_features": 24, "global_pool": "token",
        "model_args": {"num_heads": 3},
        "pretrained_cfg": {"tag": "lvd142m", "input_size": [3, 56, 56], "fixed_input_size": True,
                           "interpolation": "bicubic", "crop_pct": 1.0, "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225], "num_classes": 0, "first_conv": "patch_embed.proj",
                           "classifier": "head", "license": "apache-2.0"},
    }
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    torch.save(state, folder / "pytorch_model.bin")
    raw = json.dumps(config, indent=2).encode()
    return {fmt: {"config.json": raw, name: (folder / name).read_bytes()} for fmt, name in FORMATS.items()}


def _tiny_depth_anything(seed: int = 4) -> torch.nn.Module:
    backbone = tf.Dinov2Config(hidden_size=24, num_hidden_layers=4, num_attention_heads=3, image_size=70, patch_size=14,
                               out_indices=[1, 2, 3, 4], reshape_hidden_states=False, layerscale_value=0.5)
    cfg = tf.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=24, neck_hidden_sizes=[8, 16, 24, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)
    return _randomize(tf.DepthAnythingForDepthEstimation(cfg), seed)


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, dict[str, dict[str, bytes]]]:
    """layout -> format -> {file name: bytes}."""
    root = tmp_path_factory.mktemp("repos")
    vit = tf.ViTConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48, image_size=32,
                       patch_size=8, num_labels=5)
    deit = tf.ViTConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48,
                        image_size=32, patch_size=16, num_labels=1000)
    return {
        "vit": _save_hf(_randomize(tf.ViTForImageClassification(vit), 1), root / "vit"),
        "deit": _save_hf(_randomize(tf.ViTForImageClassification(deit), 2), root / "deit"),
        "dinov2-reg": _save_timm_dinov2_reg(root / "dinov2-reg"),
        "depth-anything": _save_hf(_tiny_depth_anything(), root / "depth-anything"),
    }


@pytest.fixture
def hub(repos, tmp_path, monkeypatch):
    """The server, publishing every repository as tiny/<layout>-<format>, plus the registry's DeiT-S and Depth
    Anything V2 Small under their real names (both weight files, as on the Hub); HF_* variables point at it."""
    server = HubServer()
    for layout, variants in repos.items():
        for fmt, files in variants.items():
            server.add_repo(f"tiny/{layout}-{fmt}", files)
    server.add_repo(DEIT, {**repos["deit"]["bin"], **repos["deit"]["safetensors"]})
    server.add_repo(DEPTH, {**repos["depth-anything"]["bin"], **repos["depth-anything"]["safetensors"]})
    server.start()
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HTTPS_PROXY",
                "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield server
    server.stop()


@pytest.fixture
def tiny_registry(monkeypatch):
    """deit-small and depth-anything-v2-small expect the tiny architectures the server publishes under their names."""
    deit, da = zoo.REGISTRY["deit-small"], zoo.REGISTRY["depth-anything-v2-small"]
    monkeypatch.setitem(zoo.REGISTRY, "deit-small", replace(
        deit, image_size=32, architecture={**deit.architecture, "embed_dim": 24, "depth": 2, "num_heads": 3}))
    monkeypatch.setitem(zoo.REGISTRY, "depth-anything-v2-small", replace(
        da, image_size=56, architecture={**da.architecture, "embed_dim": 24, "depth": 4, "num_heads": 3}))


def _finish_abandoned_transfers(hub: HubServer) -> None:
    """Let a cancelled transfer's helper thread receive the rest at full speed and see that it was cancelled."""
    import threading

    hub.faults.bytes_per_s = None
    for thread in threading.enumerate():
        if thread.name == "vitviz-download":
            thread.join(10)
            assert not thread.is_alive()


def _cache_files(tmp_path: Path) -> list[str]:
    """Every file (blobs, temporary files) in the test's Hugging Face cache, by name."""
    cache = tmp_path / "hf-cache"
    return sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------------------- downloads


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_download_reports_progress_then_loads_from_the_cache_with_the_server_stopped(hub, repos, tmp_path, layout, fmt):
    weights = FORMATS[fmt]
    size = len(repos[layout][fmt][weights])
    seen: list[tuple[int, int]] = []
    model, info = zoo.load(f"hf:tiny/{layout}-{fmt}", progress=lambda done, total: seen.append((done, total)))
    assert (size, size) in seen  # the weights' progress, to the end
    assert hub.count("GET", weights) == 1 and hub.count("HEAD", weights) == 1
    folder = tmp_path / "published"
    folder.mkdir()
    for name, data in repos[layout][fmt].items():
        (folder / name).write_bytes(data)
    assert _same_weights(model, zoo.load(folder)[0])
    expected = {"vit": ("num_classes", 5), "deit": ("num_classes", 1000), "dinov2-reg": ("num_register_tokens", 4),
                "depth-anything": ("depth_head", "dpt")}[layout]
    assert getattr(info.config, expected[0]) == expected[1]

    hub.stop()
    before = len(hub.requests)
    again, _ = zoo.load(f"hf:tiny/{layout}-{fmt}")  # the next start: from the cache, nothing asked of the server
    assert _same_weights(again, model) and len(hub.requests) == before


def test_registry_models_download_through_the_engine(hub, tiny_registry, photo):
    from vitviz.engine import Engine

    seen: list[tuple[int, int]] = []
    engine = Engine("deit-small", device="cpu", depth_model="depth-anything-v2-small",
                    progress=lambda done, total: seen.append((done, total)))
    assert engine.info.name == "deit-small" and DEIT in engine.info.source
    assert engine.depth_info is not None and engine.depth_info.depth_kind == "relative_inverse"
    # the safetensors file is preferred; the .bin beside it is never fetched
    assert hub.count("GET", "model.safetensors") == 2 and hub.count(None, "pytorch_model.bin") == 0
    result = engine.analyze(photo)
    assert result.predictions and result.predictions[0].label in zoo.imagenet_labels() and result.depth is not None


def test_a_dropped_connection_resumes_with_a_range_request(hub, tmp_path):
    """huggingface_hub writes whole chunks (10 MB): a cut after 11 MB resumes at 10 MB and the file is whole."""
    from huggingface_hub import constants

    from vitviz.models.hub import download

    big = torch.randn(3 * 1024 * 1024, generator=torch.Generator().manual_seed(0)).numpy().tobytes()  # 12 MiB
    hub.add_repo("tiny/big", {"config.json": b"{}", "model.safetensors": big})
    cut = 11 * 2**20
    hub.faults.cut_after["model.safetensors"] = cut
    folder = download("tiny/big", ["config.json", "model.safetensors"], progress=lambda done, total: None)
    assert (folder / "model.safetensors").read_bytes() == big
    ranges = [r.range for r in hub.requests if r.method == "GET" and r.file == "model.safetensors"]
    resume_at = cut // constants.DOWNLOAD_CHUNK_SIZE * constants.DOWNLOAD_CHUNK_SIZE
    assert resume_at > 0 and ranges == [None, f"bytes={resume_at}-"]


def test_a_server_that_dies_mid_file_leaves_nothing_partial_and_the_next_attempt_restarts(hub, repos, tmp_path):
    spec, weights = "hf:tiny/depth-anything-safetensors", "model.safetensors"
    hub.faults.die_after[weights] = len(repos["depth-anything"]["safetensors"][weights]) // 2
    with pytest.raises(ModelDownloadError) as err:
        zoo.load(spec, progress=lambda done, total: None)
    message = str(err.value)
    assert "\n" not in message and "tiny/depth-anything-safetensors/model.safetensors" in message
    assert "connection failed" in message and "no partial file was kept" in message
    assert not hub.running
    assert weights not in _cache_files(tmp_path) and not any(n.endswith(".incomplete") for n in _cache_files(tmp_path))

    hub.start()
    model, info = zoo.load(spec, progress=lambda done, total: None)
    assert info.config.depth_head == "dpt"
    assert [r.range for r in hub.requests if r.method == "GET" and r.file == weights][-1] is None  # from byte 0


def test_missing_and_private_repositories_give_one_line_reasons(hub, repos, monkeypatch):
    hub.add_repo("tiny/private", repos["vit"]["safetensors"], private=True)
    cases = [("hf:tiny/no-such-model", None, "needs a token"),  # anonymous: the Hub answers 401 for both
             ("hf:tiny/private", None, "needs a token"),
             ("hf:tiny/no-such-model", TOKEN, "repository not found"),  # with a token: 404
             ("hf:tiny/private", "hf_wrong", "the Hub refused the token")]
    for spec, token, words in cases:
        if token:
            monkeypatch.setenv("HF_TOKEN", token)
        else:
            monkeypatch.delenv("HF_TOKEN", raising=False)
        with pytest.raises(ModelDownloadError) as err:
            zoo.load(spec)
        message = str(err.value)
        assert "\n" not in message and words in message, (spec, token, message)
        assert message.startswith(f"cannot download {spec[3:]}/config.json from the Hugging Face Hub")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model, _ = zoo.load("hf:tiny/private")
    assert model.config.num_classes == 5


def test_a_server_that_is_not_a_hub_is_named(hub):
    hub.faults.not_a_hub = True
    with pytest.raises(ModelDownloadError, match=r"tiny/vit-bin/config\.json from .*: the server does not answer like "
                                                 r"the Hugging Face Hub \(.*X-Repo-Commit.*\); check HF_ENDPOINT"):
        zoo.load("hf:tiny/vit-bin")


def test_damaged_bytes_are_refused_by_name_and_removed(hub, repos, tmp_path):
    weights = "model.safetensors"
    hub.faults.corrupt.add(weights)
    with pytest.raises(ModelDownloadError) as err:
        zoo.load("hf:tiny/vit-safetensors")
    message = str(err.value)
    assert "tiny/vit-safetensors/model.safetensors" in message and "damaged" in message and "sha256" in message
    sha = __import__("hashlib").sha256(repos["vit"]["safetensors"][weights]).hexdigest()
    assert sha not in _cache_files(tmp_path) and weights not in _cache_files(tmp_path)
    hub.faults.corrupt = {"config.json"}  # a small file, checked against its git id
    with pytest.raises(ModelDownloadError, match=r"tiny/vit-bin/config\.json .*damaged \(its git checksum differs"):
        zoo.load("hf:tiny/vit-bin")
    hub.faults.corrupt.clear()
    model, _ = zoo.load("hf:tiny/vit-safetensors")  # the next attempt downloads it again, whole
    assert model.config.num_classes == 5


def test_a_truncated_safetensors_in_the_repository_is_refused_by_name(hub, repos):
    files = dict(repos["vit"]["safetensors"])
    files["model.safetensors"] = files["model.safetensors"][: len(files["model.safetensors"]) * 2 // 3]
    hub.add_repo("tiny/truncated", files)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a valid safetensors file, or it is truncated"):
        zoo.load("hf:tiny/truncated")


def test_cancelling_a_slow_download_stops_at_once_and_keeps_nothing(hub, tmp_path):
    from vitviz.models.hub import POLL_S, download

    size = 2 * 2**20
    hub.add_repo("tiny/slow", {"config.json": b"{}", "model.safetensors": bytes(range(256)) * (size // 256)})
    hub.faults.bytes_per_s = 256 * 1024  # 8 s for the whole file
    t0 = time.monotonic()
    stopped: list[float] = []

    def cancel_after_half_a_second(done: int, total: int) -> None:
        if time.monotonic() - t0 > 0.5:
            stopped.append(time.monotonic())
            raise LoadCancelled("cancelled by the user")
        raise ValueError("a broken hook")  # ignored: a bug in a hook does not stop a download

    with pytest.raises(LoadCancelled):
        download("tiny/slow", ["config.json", "model.safetensors"], progress=cancel_after_half_a_second)
    returned = time.monotonic()
    assert returned - stopped[0] < 0.05 + POLL_S  # raised straight through, not after the transfer
    assert hub.sent.get("model.safetensors", 0) < size / 2  # the transfer was far from done
    _finish_abandoned_transfers(hub)
    assert hub.sent["model.safetensors"] == size  # the whole file arrived, and still:
    assert "model.safetensors" not in _cache_files(tmp_path)
    assert not [n for n in _cache_files(tmp_path) if n.endswith(".incomplete") or len(n) == 64]


# ------------------------------------------------------------------------------------------------ before downloading


def test_download_info_gives_size_and_licence_before_downloading(hub, repos, tiny_registry, monkeypatch):
    files = repos["deit"]["safetensors"]
    info = zoo.download_info("deit-small")
    assert info.licence == "Apache-2.0" and info.exact and not info.cached
    assert info.size_bytes == len(files["config.json"]) + len(files["model.safetensors"])
    assert info.describe().startswith("download ") and "Apache-2.0" in info.describe()

    hf = zoo.download_info("hf:tiny/dinov2-reg-bin")
    assert hf.size_bytes == sum(len(b) for b in repos["dinov2-reg"]["bin"].values()) and hf.licence is None

    zoo.load("deit-small")
    cached = zoo.download_info("deit-small")
    assert cached.cached and cached.size_bytes == 0
    # the cache is read from its layout, without the Hub client (whose import stalls a UI thread ~0.5 s)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "huggingface_hub", None)
        assert zoo.download_info("deit-small", network=False).cached
        assert not zoo.download_info("depth-anything-v2-small", network=False).cached

    hub.stop()  # unreachable: the registry's approximate size, at once
    far = zoo.download_info("depth-anything-v2-small")
    assert far.size_bytes == zoo.REGISTRY["depth-anything-v2-small"].size_mb * 10**6 and not far.exact
    assert zoo.download_info("hf:tiny/vit-bin").size_bytes is None


# ------------------------------------------------------------------------------------------------------- the app


def _slow_repo(hub: HubServer) -> str:
    """A repository whose 2 MB weights take 8 s to arrive."""
    hub.add_repo("tiny/slow", {"config.json": b"{}", "model.safetensors": bytes(range(256)) * (2 * 2**20 // 256)})
    hub.faults.bytes_per_s = 256 * 1024
    return "hf:tiny/slow"


def test_a_cancelled_or_failed_load_keeps_the_previous_model(qapp, hub, tiny_checkpoint, photo):
    import threading

    from vitviz.app.worker import AnalysisWorker, RequestTracker

    tracker = RequestTracker()
    worker = AnalysisWorker(tracker)
    events: list[tuple] = []
    worker.model_ready.connect(lambda req, summary: events.append(("ready", req)))
    worker.failed.connect(lambda req, kind, message: events.append(("failed", req, message)))
    worker.load_cancelled.connect(lambda req: events.append(("cancelled", req)))
    worker.download_progress.connect(lambda req, done, total: events.append(("progress", req)))
    worker.load_model(1, str(tiny_checkpoint), "cpu", None)
    engine = worker.engine
    assert events == [("ready", 1)] and engine is not None

    worker.load_model(2, "hf:tiny/no-such-model", "cpu", None)
    assert events[-1][:2] == ("failed", 2) and "needs a token" in events[-1][2]
    assert worker.engine is engine and worker.spec == str(tiny_checkpoint)

    spec = _slow_repo(hub)
    threading.Timer(0.5, tracker.cancel_load, args=(3,)).start()
    t0 = time.monotonic()
    worker.load_model(3, spec, "cpu", None)
    assert time.monotonic() - t0 < 2.0  # the transfer alone would take 8 s
    assert ("progress", 3) in events and events[-1] == ("cancelled", 3)
    assert worker.engine is engine and worker.spec == str(tiny_checkpoint)
    _finish_abandoned_transfers(hub)
    tracker.latest_analysis = 4
    shown: list = []
    worker.analysis_ready.connect(lambda req, result: shown.append(result))
    worker.analyze(4, str(photo))
    assert shown and shown[0].result.model_name == engine.info.name


def test_closing_the_window_during_a_download_exits_within_two_seconds(qtbot, qtlog, hub, tmp_path):
    from PySide6.QtCore import QSettings

    from vitviz.app.main_window import MainWindow

    samples = tmp_path / "samples"
    samples.mkdir()
    window = MainWindow(settings=QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat), samples=samples)
    qtbot.addWidget(window)
    window.show()
    spec = _slow_repo(hub)
    window.load_model(spec, "cpu")
    qtbot.waitUntil(lambda: hub.sent.get("model.safetensors", 0) > 0, timeout=30_000)  # mid-file
    assert window.session.thread.isRunning()
    t0 = time.monotonic()
    window.close()
    assert time.monotonic() - t0 < 2.0
    assert not window.session.thread.isRunning()
    assert not [r.message for r in qtlog.records if "QThread" in r.message]
    _finish_abandoned_transfers(hub)


def test_the_app_asks_before_downloading_shows_progress_and_cancels_to_the_previous_model(
        qtbot, hub, tiny_checkpoint, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from vitviz.app import dialogs
    from vitviz.app.main_window import MainWindow

    samples = tmp_path / "samples"
    samples.mkdir()
    window = MainWindow(settings=QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat), samples=samples)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model_ready, timeout=30_000):
        window.load_model(str(tiny_checkpoint), "cpu")
    before = window.current_model
    spec = _slow_repo(hub)
    asked: list[tuple[str, str]] = []
    answer = [False]
    monkeypatch.setattr(dialogs, "confirm_download", lambda parent, name, about: asked.append((name, about)) or answer[0])

    window.picker.choose_model(spec)  # what picking it in the Model menu or the toolbar does
    assert asked and asked[0][0] == spec and asked[0][1].startswith("download")
    assert not window.is_busy  # declined: nothing was loaded

    answer[0] = True
    window.picker.choose_model(spec)
    qtbot.waitUntil(lambda: window.status_bar.cancel_button.isVisible(), timeout=30_000)  # downloading, with Cancel
    assert "Downloading model" in window.busy_label.text()
    with qtbot.waitSignal(window.session.load_cancelled, timeout=5_000):
        window.status_bar.cancel_button.click()
    qtbot.waitUntil(lambda: not window.is_busy, timeout=5_000)
    assert window.current_model is before and window.model_combo.currentData() == before.spec
    assert "cancelled" in window.banner.message() and not window.status_bar.cancel_button.isVisible()
    window.close()
    _finish_abandoned_transfers(hub)
