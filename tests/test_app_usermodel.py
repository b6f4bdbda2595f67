"""Your own ViT in the window: a factory file opens like a checkpoint, every panel fills, and the views that cannot
apply say why (vitviz.models.usermodel)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402

from vitviz.app.dialogs import factory_names  # noqa: E402
from vitviz.app.main_window import MainWindow  # noqa: E402

TIMEOUT = 60_000

FACTORIES = textwrap.dedent("""
    import torch
    from user_models import BlockViT, EinsumViT

    def build():
        torch.manual_seed(0)
        return {"model": BlockViT("mha", with_depth=True), "labels": ["a", "b", "c", "d", "e"]}

    def loops():
        torch.manual_seed(0)
        return {"model": EinsumViT(), "image_size": 32, "channels": 1}

    def _private():
        pass
    """)


@pytest.fixture
def factory_file(tmp_path) -> Path:
    (tmp_path / "user_models.py").write_text(Path(__file__).with_name("user_models.py").read_text("utf-8"), "utf-8")
    path = tmp_path / "mine.py"
    path.write_text(FACTORIES, "utf-8")
    return path


@pytest.fixture
def window(qtbot, tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    w = MainWindow(settings=QSettings(str(tmp_path / "v.ini"), QSettings.Format.IniFormat), samples=samples)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.close()


def _open(qtbot, window, spec: str):
    with qtbot.waitSignal(window.model_ready, timeout=TIMEOUT):
        window.load_model(spec, "cpu")
    rgb = (np.random.default_rng(0).random((80, 64, 3)) * 255).astype(np.uint8)
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.open_image(rgb)
    return blocker.args[0]


def test_factory_file_opens_with_every_view(qtbot, window, factory_file):
    result = _open(qtbot, window, f"{factory_file}:build")
    assert result.model_name == "mine" and window.predictions_panel.chart.labels()
    assert result.image.shape == (64, 64, 3)  # a fixed positional embedding: the square it was made for
    assert result.cls_attention.shape == (3, 4, 4, 4) and result.depth is not None
    assert result.hidden_states is not None and window.state.shown.lens is not None
    assert window.state.shown.features is not None


def test_views_that_cannot_apply_say_why(qtbot, window, factory_file):
    _open(qtbot, window, f"{factory_file}:loops")
    window.side_views.setCurrentWidget(window.lens_panel)
    window.center_views.setCurrentWidget(window.features_panel)
    qtbot.waitUntil(lambda: "block" in window.lens_panel.canvas.placeholder, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: "block" in window.features_panel.canvas.placeholder, timeout=TIMEOUT)


def test_a_factory_that_raises_leaves_the_window_answering(qtbot, window, factory_file, tmp_path):
    result = _open(qtbot, window, f"{factory_file}:build")
    bad = tmp_path / "bad.py"
    bad.write_text("def build():\n    raise RuntimeError('no weights')\n", "utf-8")
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.load_model(f"{bad}:build", "cpu")
    assert "build() raised RuntimeError: no weights" in blocker.args[0]
    assert window.current_result is result  # the model before stays, with its analysis
    rgb = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT):
        window.open_image(rgb)


def test_factory_names_are_read_without_running_the_file(factory_file, tmp_path):
    assert factory_names(factory_file) == ["build", "loops"]
    (tmp_path / "boom.py").write_text("raise SystemExit('ran')\ndef make(): pass\n", "utf-8")
    assert factory_names(tmp_path / "boom.py") == ["make"]


def test_vitviz_show_returns_the_window_without_blocking_and_analyze_returns_the_result(qtbot, tmp_path,
                                                                                         monkeypatch):
    import torch

    import vitviz
    from vitviz.app import main_window

    from .user_models import BlockViT

    class TmpSettings(QSettings):
        def __init__(self, *args):
            super().__init__(str(tmp_path / "app.ini"), QSettings.Format.IniFormat)

    monkeypatch.setattr(main_window, "QSettings", TmpSettings)
    torch.manual_seed(0)
    model = BlockViT("einsum").eval()
    rgb = (np.random.default_rng(2).random((64, 64, 3)) * 255).astype(np.uint8)
    result = vitviz.analyze(model, rgb, labels=list("abcde"))
    assert result.predictions[0].label in "abcde" and result.cls_attention.shape == (3, 4, 4, 4)
    window = vitviz.show(model, rgb, labels=list("abcde"), block=False)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.current_result is not None, timeout=TIMEOUT)
    shown = window.current_result
    assert window.isVisible() and shown.model_name == "BlockViT"
    assert np.allclose(shown.probabilities, result.probabilities, atol=1e-5)
    window.close()
