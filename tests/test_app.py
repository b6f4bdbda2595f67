"""The desktop window, driven for real (offscreen) with a tiny checkpoint: every wait is on a window signal."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage, QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from vitviz.app.main_window import MainWindow  # noqa: E402
from vitviz.render import cumulative_rollout  # noqa: E402

from .conftest import TINY_LABELS, box_downsample  # noqa: E402

TIMEOUT = 30_000  # ms; generous for two busy CPU cores


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Five different images: distinct sizes, so each result is recognisable by its grid."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(64, 64), (80, 48), (48, 80), (96, 32), (72, 40)]):
        rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        p = folder / f"img{i}.png"
        Image.fromarray(rgb).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def bare_window(qtbot, settings, tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    window = MainWindow(settings=settings, samples=samples)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    yield window
    window.close()


@pytest.fixture
def window(qtbot, bare_window, tiny_checkpoint):
    with qtbot.waitSignal(bare_window.model_ready, timeout=TIMEOUT):
        bare_window.load_model(str(tiny_checkpoint), "cpu")
    return bare_window


def open_and_wait(qtbot, window, source):
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.open_image(source)
    return blocker.args[0]


def test_open_image_shows_predictions_heads_and_depth(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    assert window.current_result is result
    assert result.source == str(photo)
    # predictions: the bar chart holds the predicted labels, best first
    assert window.predictions_panel.chart.labels() == [p.label for p in result.predictions]
    assert set(window.predictions_panel.chart.labels()) <= set(TINY_LABELS) and len(window.predictions_panel.chart.labels()) == 5
    assert window.predictions_panel.chart.probabilities() == pytest.approx([p.probability for p in result.predictions])
    # one map per head, plus the mean and the rollout
    assert result.num_heads == 3
    assert window.attention_panel.tile_count() == result.num_heads + 2
    captions = [window.attention_panel.tiles.tiles[i].caption for i in range(window.attention_panel.tile_count())]
    assert captions[:3] == ["head 0", "head 1", "head 2"]
    assert captions[3] == "mean of heads" and captions[4].startswith("rollout")
    for i in range(window.attention_panel.tile_count()):
        assert window.attention_panel.tiles.tiles[i].rgb.shape == result.image.shape
    # the input with its patch grid, the depth map with its colour bar, starting on the last layer
    np.testing.assert_array_equal(window.input_panel.canvas.rgb, result.image)
    assert window.input_panel.canvas.patch_size == result.grid.patch_size and window.input_panel.canvas.grid_visible
    assert window.depth_panel.canvas.rgb is not None and window.depth_panel.canvas.rgb.shape == result.image.shape
    assert window.depth_panel.bar.lo == pytest.approx(float(result.depth.min()))
    assert "metres" in window.depth_panel.title.text()
    assert window.state.layer == result.num_layers - 1
    assert window.state.query is None
    assert "cpu" in window.timing_label.text() and "ms" in window.timing_label.text()
    assert "photo.jpg" in window.windowTitle()
    assert not window.is_busy and not window.busy_bar.isVisible()


def test_layer_slider_and_arrow_keys_change_maps_without_rerunning(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    last = window.attention_panel.tiles.tiles[0].rgb.copy()
    window.state.set_layer(0)
    assert window.state.layer == 0 and window.attention_panel.layer_slider.value() == 0
    first = window.attention_panel.tiles.tiles[0].rgb.copy()
    assert not np.array_equal(first, last)
    assert window.current_result is result  # the model did not run again
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.state.layer == 1
    assert not np.array_equal(window.attention_panel.tiles.tiles[0].rgb, first)
    window.attention_panel.layer_slider.setValue(2)
    assert window.state.layer == 2
    assert window.attention_panel.tiles.tiles[4].caption == "rollout 0–2"
    qtbot.keyClick(window, Qt.Key.Key_Down)  # up/down (and page up/down) step through the layers too
    assert window.state.layer == 1
    qtbot.keyClick(window, Qt.Key.Key_Up)
    assert window.state.layer == 2
    # per-layer normalisation changes what the heads look like, not what the layer is
    before = window.attention_panel.tiles.tiles[1].rgb.copy()
    window.state.set_normalisation("layer")
    assert not np.array_equal(window.attention_panel.tiles.tiles[1].rgb, before)
    assert window.attention_panel.legend.lo is not None
    window.state.set_opacity(0.0)
    np.testing.assert_array_equal(window.attention_panel.tiles.tiles[0].rgb, result.image)


def test_corrupt_file_shows_error_and_keeps_previous_results(qtbot, window, photo, tmp_path):
    result = open_and_wait(qtbot, window, photo)
    labels = window.predictions_panel.chart.labels()
    tile = window.attention_panel.tiles.tiles[0].rgb.copy()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.open_image(bad)
    assert "broken.png" in blocker.args[0]
    assert window.banner.isVisible() and "broken.png" in window.banner.message()
    assert window.current_result is result
    np.testing.assert_array_equal(window.input_panel.canvas.rgb, result.image)
    np.testing.assert_array_equal(window.attention_panel.tiles.tiles[0].rgb, tile)
    assert window.predictions_panel.chart.labels() == labels
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    # the next good image clears the error
    open_and_wait(qtbot, window, photo)
    assert not window.banner.isVisible()


def test_rapid_successive_opens_show_only_the_last_image(qtbot, window, images):
    shown = []
    window.result_ready.connect(shown.append)
    ids = [window.open_image(p) for p in images]
    assert ids == sorted(ids) and window.is_busy
    assert window.busy_bar.isVisible() and "img4.png" in window.busy_label.text()
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    qtbot.wait(50)  # let any stray queued answer arrive
    assert len(shown) == 1
    assert shown[0].source == str(images[-1])
    assert window.current_result.source == str(images[-1])
    assert window.input_panel.canvas.rgb.shape[:2] == shown[0].image.shape[:2]


def test_clicking_a_patch_shows_its_query_attention_and_escape_returns_to_cls(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    cls_tile = window.attention_panel.tiles.tiles[0].rgb.copy()
    patch = 7
    center = window.input_panel.canvas.patch_rect(patch).center()
    qtbot.mouseClick(window.input_panel.canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(center.x()), int(center.y())))
    assert window.state.query == patch
    assert f"#{patch}" in window.attention_panel.mode_chip.text() and f"#{patch}" in window.attention_panel.title.text()
    assert window.attention_panel.cls_button.isVisible()
    assert not np.array_equal(window.attention_panel.tiles.tiles[0].rgb, cls_tile)
    expected = result.query_attention(window.state.layer, patch)
    np.testing.assert_allclose(window.attention_panel.values[0], expected[0])
    assert window.input_panel.canvas.marked_patch == patch
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.state.query is None
    assert window.attention_panel.mode_chip.text() == "CLS" and not window.attention_panel.cls_button.isVisible()
    np.testing.assert_array_equal(window.attention_panel.tiles.tiles[0].rgb, cls_tile)


def test_hover_reports_the_patch_in_the_status_bar(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    patch = result.grid.cols + 2  # row 1, col 2
    center = window.input_panel.canvas.patch_rect(patch).center()
    move = QMouseEvent(QEvent.Type.MouseMove, center, window.input_panel.canvas.mapToGlobal(center),
                       Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window.input_panel.canvas, move)
    x0, y0, x1, y1 = result.grid.patch_box(patch)
    text = window.hover_label.text()
    assert "row 1, col 2" in text and f"x {x0}–{x1}, y {y0}–{y1}" in text
    assert window.input_panel.canvas.hover_patch == patch and window.attention_panel.tiles.tiles[0].hover_patch == patch


def test_clicking_a_head_enlarges_it_and_follows_the_layer(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    center = window.attention_panel.tiles.tiles[1].rect().center()
    qtbot.mouseClick(window.attention_panel.tiles.tiles[1], Qt.MouseButton.LeftButton, pos=center)
    assert window.attention_panel.detail.isVisible()
    assert "head 1" in window.attention_panel.detail.title.text()
    # the enlarged map is drawn over a sharper copy of the photo (96x64 here: twice the model input), patch for patch
    image, scale = result.detail_image()
    assert scale == 2 and image.shape[:2] == (2 * result.image.shape[0], 2 * result.image.shape[1])
    shown = window.attention_panel.detail.canvas.rgb
    assert shown.shape == image.shape and window.attention_panel.detail.canvas.patch_size == 2 * result.grid.patch_size
    np.testing.assert_allclose(window.attention_panel.detail.values, window.attention_panel.values[1])
    assert np.abs(box_downsample(shown, 2) - window.attention_panel.tiles.tiles[1].rgb).mean() < 6  # the same map as the tile
    window.state.set_layer(0)
    assert "Layer 0" in window.attention_panel.detail.title.text()
    np.testing.assert_allclose(window.attention_panel.detail.values, window.attention_panel.values[1])
    assert np.abs(box_downsample(window.attention_panel.detail.canvas.rgb, 2) - window.attention_panel.tiles.tiles[1].rgb).mean() < 6
    assert not np.array_equal(window.attention_panel.detail.canvas.rgb, shown)


def test_clicking_the_depth_map_enlarges_it_with_per_pixel_values_and_follows_new_images(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    qtbot.mouseClick(window.depth_panel.canvas, Qt.MouseButton.LeftButton, pos=window.depth_panel.canvas.rect().center())
    dialog = window.depth_panel.detail
    assert dialog.isVisible() and "Depth" in dialog.title.text()
    np.testing.assert_array_equal(dialog.canvas.rgb, window.depth_panel.canvas.rgb)  # coloured as in the panel
    assert dialog.colorbar.lo == pytest.approx(float(result.depth.min()))
    assert dialog.colorbar.hi == pytest.approx(float(result.depth.max()))
    canvas = dialog.canvas
    qtbot.waitUntil(lambda: not canvas.fit_rect().isEmpty(), timeout=TIMEOUT)
    fit = canvas.fit_rect()
    at = QPointF(fit.left() + 0.7 * fit.width(), fit.top() + 0.2 * fit.height())
    _move(canvas, at)
    x, y = (int(v) for v in canvas.to_image(at))
    assert dialog.readout.text() == f"pixel ({x}, {y}): {float(result.depth[y, x]):.3g} m"

    # a new image replaces the enlarged map while the window stays open
    second = open_and_wait(qtbot, window, np.full((40, 56, 3), 90, np.uint8))
    assert dialog.isVisible() and dialog.values is second.depth
    np.testing.assert_array_equal(dialog.canvas.rgb, window.depth_panel.canvas.rgb)


def _wheel(widget, pos: QPointF, steps: int) -> None:
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def _move(widget, pos: QPointF, held=Qt.MouseButton.NoButton) -> None:
    event = QMouseEvent(QEvent.Type.MouseMove, pos, QPointF(widget.mapToGlobal(pos)), Qt.MouseButton.NoButton,
                        held, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def test_enlarged_map_zooms_about_the_mouse_pans_and_resets(qtbot, window, photo):
    open_and_wait(qtbot, window, photo)
    qtbot.mouseClick(window.attention_panel.tiles.tiles[0], Qt.MouseButton.LeftButton, pos=window.attention_panel.tiles.tiles[0].rect().center())
    canvas = window.attention_panel.detail.canvas
    qtbot.waitUntil(lambda: not canvas.fit_rect().isEmpty(), timeout=TIMEOUT)
    fit = canvas.fit_rect()
    at = QPointF(fit.left() + 0.3 * fit.width(), fit.top() + 0.6 * fit.height())
    before = canvas.to_image(at)
    _wheel(canvas, at, 3)  # zoom in about the mouse: the image point under it stays under it
    assert canvas.zoom == pytest.approx(1.25**3)
    assert canvas.image_rect().width() == pytest.approx(fit.width() * 1.25**3)
    after = canvas.to_image(at)
    assert after == pytest.approx(before, abs=0.05)
    _move(canvas, at)
    rows, cols = window.attention_panel.detail.values.shape
    p = canvas.patch_size
    r, c = int(after[1] // p), int(after[0] // p)
    assert f"(row {r}, col {c})" in window.attention_panel.detail.readout.text()

    # a drag pans the view (the point under the mouse moves with it); a drag is not a click
    clicks = []
    canvas.clicked.connect(clicks.append)
    start = QPointF(fit.center())
    grabbed = canvas.to_image(start)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start.toPoint())
    end = QPointF(start.x() + 40, start.y() + 25)
    _move(canvas, end, Qt.MouseButton.LeftButton)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end.toPoint())
    assert canvas.to_image(end) == pytest.approx(grabbed, abs=0.2)
    assert clicks == []
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=start.toPoint())
    assert len(clicks) == 1 and clicks[0] is not None

    # the zoom stays while stepping through layers; a double-click shows the whole map again
    window.state.set_layer(0)
    assert canvas.zoom > 1
    qtbot.mouseDClick(canvas, Qt.MouseButton.LeftButton, pos=start.toPoint())
    assert canvas.zoom == 1.0 and canvas.image_rect() == canvas.fit_rect()
    _wheel(canvas, at, -2)  # cannot zoom out past the whole image
    assert canvas.zoom == 1.0


def test_export_view_and_all_maps(qtbot, window, photo, tmp_path):
    result = open_and_wait(qtbot, window, photo)
    view = tmp_path / "view.png"
    assert window.export_view(view)
    with Image.open(view) as im:
        assert im.size[0] > 300 and im.size[1] > 200
    folder = tmp_path / "maps"
    window.state.set_layer(1)
    with qtbot.waitSignal(window.export_finished, timeout=TIMEOUT) as blocker:
        window.export_maps(folder)
    names = {Path(f).name for f in blocker.args[1]}
    assert {"result.json", "input.png", "heads_layer1.png", "rollout.png", "depth.png", "depth.npy",
            "cls_attention.npy"} <= names
    np.testing.assert_array_equal(np.load(folder / "cls_attention.npy"), result.cls_attention)


def test_wrong_checkpoint_shows_error_and_keeps_the_model(qtbot, window, photo, tmp_path):
    open_and_wait(qtbot, window, photo)
    model = window.current_model
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.load_model(str(bad))
    assert "bad.json" in blocker.args[0]
    assert window.current_model is model
    assert window.model_combo.currentData() == model.spec
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    assert "bad.json" in window.banner.message()  # still explained after the worker went idle


def test_paste_and_drop_open_images(qtbot, window, images):
    rgb = np.zeros((40, 56, 3), np.uint8)
    rgb[:, :28] = (255, 0, 0)
    qimage = QImage(rgb.data, 56, 40, 56 * 3, QImage.Format.Format_RGB888).copy()
    QGuiApplication.clipboard().setImage(qimage)
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.paste_image()
    assert blocker.args[0].source == "clipboard image"
    assert blocker.args[0].grid.original_size == (56, 40)

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(images[1]))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.dropEvent(event)
    assert blocker.args[0].source == str(images[1])
    assert str(images[1].resolve()) in window.recent.files()


def test_without_a_model_the_app_explains_and_still_opens_images(qtbot, bare_window, images, tmp_path, monkeypatch):
    monkeypatch.setenv("VITVIZ_WEIGHTS", str(tmp_path / "no-weights"))
    sample = bare_window.samples_folder / "sample.png"
    Image.open(images[0]).save(sample)
    assert [a.text() for a in bare_window.sample_actions()] == ["sample"]
    with qtbot.waitSignal(bare_window.preview_shown, timeout=TIMEOUT) as blocker:
        bare_window.startup()
    assert "not installed" in bare_window.banner.message()
    assert blocker.args[0].source == str(sample)
    assert bare_window.input_panel.canvas.rgb.shape == (64, 64, 3)
    assert bare_window.current_result is None and bare_window.attention_panel.tile_count() == 0


def test_startup_opens_the_first_sample_with_the_shipped_model(qtbot, bare_window, tiny_checkpoint, images,
                                                              monkeypatch):
    monkeypatch.setenv("VITVIZ_WEIGHTS", str(tiny_checkpoint.parent))
    for i in (2, 0):
        Image.open(images[i]).save(bare_window.samples_folder / f"s{i}.png")
    with qtbot.waitSignal(bare_window.result_ready, timeout=TIMEOUT) as blocker:
        bare_window.startup(device="cpu")
    assert Path(blocker.args[0].source).name == "s0.png"
    assert bare_window.current_model.name == "tiny"
    assert bare_window.model_combo.currentText() == "tiny"


def test_the_shown_rollout_is_the_rollout_of_the_full_attention(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    rollouts = cumulative_rollout(result.attentions)
    p = result.num_prefix_tokens
    for layer in range(result.num_layers):
        window.state.set_layer(layer)
        np.testing.assert_allclose(rollouts[layer][0, p:].reshape(result.grid.rows, result.grid.cols),
                                   window.state.attention_maps()[2], rtol=1e-5, atol=1e-7)


def test_window_module_does_not_import_torch():
    code = "import sys, vitviz.app.main_window; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_switching_model_reanalyses_the_image_with_the_new_one(qtbot, window, photo, tmp_path, tiny_checkpoint):
    import torch

    from vitviz.models.checkpoint import ModelInfo, save_checkpoint
    from vitviz.models.vit import build_model

    from .conftest import tiny_config

    torch.manual_seed(1)
    model = build_model(tiny_config(depth=2, num_heads=2, embed_dim=16, num_classes=3, depth_head="none"))
    info = ModelInfo(name="other", config=model.config, labels=["x", "y", "z"])
    save_checkpoint(model, info, tmp_path / "other")
    open_and_wait(qtbot, window, photo)
    window.state.set_layer(0)
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.load_model(str(tmp_path / "other.json"))
    result = blocker.args[0]
    assert result.model_name == "other" and result.source == str(photo)
    assert window.attention_panel.tile_count() == 2 + 2
    assert window.state.layer == 1  # a model with another depth starts on its last layer
    assert set(window.predictions_panel.chart.labels()) == {"x", "y", "z"}
    assert window.depth_panel.canvas.rgb is None  # this model predicts no depth
    assert "other" in window.details_panel.value("Model") and window.model_combo.currentText() == "other"

    # a separate depth model completes a classifier without a depth head
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.set_depth_model(str(tiny_checkpoint))
    assert blocker.args[0].depth is not None and blocker.args[0].depth_model_name == "tiny"
    assert window.depth_panel.canvas.rgb is not None and "from tiny" in window.details_panel.value("Outputs")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_explained_and_the_model_stays(qtbot, window, photo):
    open_and_wait(qtbot, window, photo)
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.load_model(window.current_model.spec, device="cuda")
    assert "CUDA" in blocker.args[0]
    assert window.device_combo.currentText() == "cpu" and window.current_model.device == "cpu"


def test_out_of_memory_is_reported_and_the_results_stay(qtbot, window, photo, images):
    result = open_and_wait(qtbot, window, photo)

    def no_memory(*args, **kwargs):
        raise MemoryError

    window.session.worker.engine.analyze = no_memory  # noqa: SLF001 - the worker is idle between requests
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.open_image(images[0])
    assert blocker.args[0].startswith("Out of memory while analysing img0.png")
    assert window.current_result is result and window.predictions_panel.chart.labels() == [p.label for p in result.predictions]


def test_startup_prefers_a_scene_sample(tmp_path):
    from vitviz.app import paths

    for name in ("photo-cat.jpg", "scene-cube.png", "scene-cone.png", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in paths.sample_images(tmp_path)] == ["photo-cat.jpg", "scene-cone.png", "scene-cube.png"]
    assert paths.default_sample(tmp_path).name == "scene-cone.png"
    assert paths.sample_label(tmp_path / "scene-star-prism.png") == "scene: star prism"
    (tmp_path / "scene-cone.png").unlink()
    (tmp_path / "scene-cube.png").unlink()
    assert paths.default_sample(tmp_path).name == "photo-cat.jpg"


def test_notices_are_shown_and_recent_files_listed(qtbot, window, tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    gif = tmp_path / "two.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    result = open_and_wait(qtbot, window, gif)
    assert any("frames" in n for n in result.notices)
    assert window.input_panel.notices.isVisible() and "frames" in window.input_panel.notices.text()
    window.recent_menu.aboutToShow.emit()  # what opening the menu does
    entries = [a.text() for a in window.recent_menu.actions() if a.isEnabled()]
    assert "two.gif" in entries


def _fake_ldd(folder: Path, missing: list[str]) -> None:
    """An ``ldd`` that reports ``missing`` as not found, as on a minimal Debian without Qt's X11 libraries."""
    lines = ["\tlibQt6XcbQpa.so.6 => /x/libQt6XcbQpa.so.6 (0x1)", "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x2)"]
    lines += [f"\t{name} => not found" for name in missing]
    script = folder / "ldd"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    script.chmod(0o755)


def test_display_problems_are_explained_before_qt_aborts(monkeypatch, tmp_path):
    """Qt kills the process when its platform plugin cannot load; vitviz names what is missing instead."""
    import os

    from vitviz.app import display_problem

    assert display_problem({}, "darwin") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert "DISPLAY is not set" in display_problem({}, "linux")
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _fake_ldd(tmp_path, ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-icccm.so.4"])
    message = display_problem({"DISPLAY": ":0"}, "linux")
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in message and "\n" not in message
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1;" in message
    assert "sudo dnf install xcb-util-wm xcb-util-keysyms" in message
    env = {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}
    assert display_problem(env, "linux") is None and env["QT_QPA_PLATFORM"] == "wayland"
    _fake_ldd(tmp_path, ["libfoo-unheard-of.so.3"])
    assert "package of libfoo-unheard-of.so.3" in display_problem({"DISPLAY": ":0"}, "linux")
    _fake_ldd(tmp_path, [])
    assert display_problem({"DISPLAY": ":0"}, "linux") is None


def test_without_ldd_the_loader_error_names_the_missing_library(tmp_path):
    from vitviz.app import _dlopen_missing

    assert _dlopen_missing(str(tmp_path / "libqxcb-gone.so")) == [str(tmp_path / "libqxcb-gone.so")]


def test_pretrained_download_shows_progress_in_status_bar(qtbot, bare_window, tiny_checkpoint, monkeypatch):
    """A model fetched from the Hub reports its download progress in the window while the worker loads it."""
    from vitviz.models import zoo
    from vitviz.models.checkpoint import load_checkpoint

    seen: list[str] = []

    def fake_load(spec, progress=None, cache=None):
        for done in (0, 40 * 2**20, 80 * 2**20):
            progress(done, 80 * 2**20)
            time.sleep(0.05)
        return load_checkpoint(tiny_checkpoint)

    monkeypatch.setattr(zoo, "is_known", lambda spec: spec == "fake-hub-model")
    monkeypatch.setattr(zoo, "load", fake_load)
    # connected after the status bar, so it reads the label the status bar just wrote
    bare_window.session.download_progress.connect(lambda *_: seen.append(bare_window.busy_label.text()))
    with qtbot.waitSignal(bare_window.model_ready, timeout=TIMEOUT):
        bare_window.load_model("fake-hub-model", "cpu")
    assert seen[-1] == "Downloading model… 80 of 80 MB"
    assert "40 of 80 MB" in seen[1]
    qtbot.waitUntil(lambda: not bare_window.is_busy, timeout=TIMEOUT)
    assert bare_window.busy_bar.maximum() == 0  # indeterminate again for the next job


def test_many_qt_calls_do_not_exhaust_none_refcount():
    """PySide6 6.12 on Python 3.11 leaks a reference to None per void call; the app must survive long sessions."""
    code = (
        "import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from vitviz.app import create_app\n"
        "from PySide6.QtWidgets import QLabel\n"
        "app = create_app(); label = QLabel()\n"
        "for _ in range(30000): label.setText('x'); label.isVisible()\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.strip() == "ok"


def test_class_evidence_follows_the_clicked_bar_and_the_method_without_rerunning(qtbot, window, photo):
    result = open_and_wait(qtbot, window, photo)
    engine = window.session.worker.engine
    calls = {"evidence": 0, "analyze": 0}
    real_evidence, real_analyze = engine.evidence, engine.analyze

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    engine.evidence, engine.analyze = counted("evidence", real_evidence), counted("analyze", real_analyze)
    panel = window.evidence_panel
    window.side_views.setCurrentWidget(panel)  # shown: it asks for the top classes' gradients, once
    qtbot.waitUntil(lambda: panel.values is not None, timeout=TIMEOUT)
    assert calls == {"evidence": 1, "analyze": 0}
    assert sorted(window.state.evidence.targets) == sorted(p.index for p in result.predictions)
    top = panel.values.copy()
    assert top.sum() == pytest.approx(1.0, abs=1e-5) and result.predictions[0].label in panel.title.text()

    chart = window.predictions_panel.chart
    qtbot.mouseClick(chart.plot.viewport(), Qt.MouseButton.LeftButton, pos=chart.bar_center(1).toPoint())
    second = result.predictions[1]
    assert window.state.target == second.index and chart.selected == 1
    assert second.label in panel.title.text() and not np.allclose(panel.values, top)
    relevance = panel.values.copy()
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("grad-rollout"))
    assert window.state.method == "grad-rollout" and not np.allclose(panel.values, relevance)
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("rollout"))
    np.testing.assert_allclose(panel.values, result.rollout().ravel().reshape(panel.values.shape) /
                               result.rollout().sum(), rtol=1e-4, atol=1e-7)
    assert calls == {"evidence": 1, "analyze": 0}  # the held gradients served every class and method

    window.state.set_threshold(0.6)
    assert "patches that hold 60%" in panel.info.text()


def test_a_large_models_clicked_patch_is_computed_on_the_worker(qtbot, window, photo, monkeypatch):
    """Above the full-tensor budget a result keeps queries and keys: a click asks the worker for the patch's rows,
    the CLS maps stay until they arrive, and they equal the full tensors' rows."""
    import vitviz.engine as engine_module

    monkeypatch.setattr(engine_module, "FULL_ATTENTION_BUDGET", 0)
    result = open_and_wait(qtbot, window, photo)
    assert result.attentions is None and result.attention.queries is not None
    state = window.state
    with qtbot.waitSignal(state.query_changed, timeout=TIMEOUT):
        state.set_query(5)
        assert state.query is None and state.pending_query == 5  # asked, not shown yet
    assert state.query == 5
    heads, _mean, roll = state.attention_maps()
    reference = window.session.worker.engine.analyze(photo, attention="full")
    p, layer = reference.num_prefix_tokens, state.layer
    np.testing.assert_allclose(heads, reference.query_attention(layer, 5), atol=1e-6)
    expected = cumulative_rollout(reference.attentions)[layer][p + 5, p:].reshape(result.grid.rows, result.grid.cols)
    np.testing.assert_allclose(roll, expected, atol=1e-6)


def test_a_large_models_rollout_options_are_computed_on_the_worker(qtbot, window, photo, monkeypatch):
    """Max fusion with a discard ratio sweeps every layer's attention from the queries and keys: the worker does it,
    the view says so meanwhile, and then shows the same map as the full tensors give."""
    import threading

    import vitviz.attention_maps as maps_module
    import vitviz.engine as engine_module
    from vitviz.explain import Evidence

    monkeypatch.setattr(engine_module, "FULL_ATTENTION_BUDGET", 0)
    sweeps = []
    real = maps_module.rollout_rows
    monkeypatch.setattr(maps_module, "rollout_rows",
                        lambda *a, **k: sweeps.append(threading.current_thread()) or real(*a, **k))
    result = open_and_wait(qtbot, window, photo)
    assert result.attentions is None
    window.side_views.setCurrentWidget(window.evidence_panel)
    state = window.state
    state.set_method("rollout")
    sweeps.clear()
    state.set_rollout_options("max", 0.5)
    assert "on the worker" in window.evidence_panel.info.text() and window.evidence_panel.values is None
    qtbot.waitUntil(lambda: window.evidence_panel.values is not None, timeout=TIMEOUT)
    assert sweeps and all(t is not threading.main_thread() for t in sweeps)  # never on the UI thread
    reference = window.session.worker.engine.analyze(photo, attention="full")
    expected = Evidence.from_result(reference).map("rollout", None, head_fusion="max", discard_ratio=0.5)
    np.testing.assert_allclose(window.evidence_panel.values, expected, atol=1e-6)


def test_garbage_is_collected_on_the_ui_thread_while_the_worker_allocates(qtbot, bare_window):
    """Cyclic garbage (a closed dialog's widgets, say) is freed on the UI thread, never in the middle of the worker's
    model building: freeing widgets in another thread deadlocked or aborted the app."""
    freed_on: list[int] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed_on.append(threading.get_ident())

    Cycle()  # unreachable at once: only a cyclic collection frees it
    kept: list = []
    worker = threading.Thread(target=lambda: kept.extend([] for _ in range(50_000)))  # many collections' worth
    worker.start()
    worker.join()
    assert freed_on == []  # the other thread's allocations started no collection
    qtbot.waitUntil(lambda: bool(freed_on), timeout=5000)
    assert freed_on == [threading.get_ident()]
