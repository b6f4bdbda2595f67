"""Comparison mode in the window (View → Compare with…): A beside B, driven for real (offscreen) with two tiny
checkpoints of different depth and patch size; every wait is on a window signal."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402

from vitviz.app.compare_mode import SETTINGS_KEY, layer_for_b  # noqa: E402
from vitviz.app.main_window import MainWindow  # noqa: E402
from vitviz.compare import match_layer  # noqa: E402

from .compare_models import save_deeper_checkpoint  # noqa: E402
from .test_app import TIMEOUT, bare_window, images, open_and_wait, settings, window  # noqa: E402,F401 - fixtures


@pytest.fixture(scope="module")
def deeper_checkpoint(tmp_path_factory):
    return save_deeper_checkpoint(tmp_path_factory.mktemp("deeper"))


def start_and_wait(qtbot, window, spec):
    """Compare with ``spec`` and wait for B's result of the shown image."""
    with qtbot.waitSignal(window.compare.b_shown, timeout=TIMEOUT) as blocker:
        window.compare.start(str(spec))
    return blocker.args[0]


def test_compare_shows_both_models_and_the_slider_moves_both(qtbot, window, photo, deeper_checkpoint):
    a = open_and_wait(qtbot, window, photo)
    window.side_views.setCurrentIndex(1)  # the user looks at class evidence before comparing
    sizes = window.splitter.sizes()
    tabs = [[(t.widget(i), t.tabText(i)) for i in range(t.count())] for t in (window.center_views, window.side_views)]
    b = start_and_wait(qtbot, window, deeper_checkpoint)
    view = window.compare.view
    assert window.compare.active and view.isVisible()
    assert not window.center_views.isVisible() and not window.side_views.isVisible()
    assert b.source == a.source and b.model_name == "deeper" and (a.num_layers, b.num_layers) == (3, 5)
    # each side draws its own model: predictions, one tile per head + mean + rollout, depth with its own unit
    side_a, side_b = view.side_a, view.side_b
    assert side_a.attention is window.attention_panel and side_a.depth is window.depth_panel  # A is drawn once
    assert window.predictions_panel.chart.labels() == [p.label for p in a.predictions]  # A's: left, as always
    assert side_b.predictions.chart.labels() == [p.label for p in b.predictions]
    assert side_a.attention.tile_count() == a.num_heads + 2 and side_b.attention.tile_count() == b.num_heads + 2
    assert side_b.attention.tiles.tiles[0].rgb.shape == b.image.shape
    assert "metres" in side_a.depth.title.text() and "relative" in side_b.depth.title.text()
    # their disagreement: B aligned to A in inverse depth (B's depth is relative)
    d = view.disagreement.alignment
    assert d is not None and d.space == "inverse depth" and d.difference.shape == a.depth.shape
    assert view.disagreement.canvas.rgb is not None and "AbsRel" in view.disagreement.info.text()
    # the layers match by relative depth; A's slider moves both, and each side says its layer
    b_state = window.compare.state_b
    assert (window.state.layer, b_state.layer) == (2, 4)
    for layer in range(3):
        side_a.attention.layer_slider.setValue(layer)
        assert window.state.layer == layer and b_state.layer == match_layer(layer, 3, 5)
        assert f"layer {layer} of 0–2" in side_a.header.plain_text()
        assert f"layer {b_state.layer} of 0–4" in side_b.header.plain_text()
        assert f"layer {b_state.layer}" in side_b.attention.title.text()
    # B's slider moves A to the nearest match, and B snaps to it
    side_b.attention.layer_slider.setValue(3)
    assert window.state.layer == layer_for_b(3, 3, 5) == 1 and b_state.layer == 2
    # the main window's tabs stay as they were, and come back when comparison ends
    window.compare.stop()
    assert not window.compare.active and not view.isVisible()
    assert window.center_views.isVisible() and window.side_views.isVisible()
    assert window.splitter.sizes() == sizes
    assert [[(t.widget(i), t.tabText(i)) for i in range(t.count())]
            for t in (window.center_views, window.side_views)] == tabs
    assert window.center_views.currentIndex() == 0 and window.side_views.currentIndex() == 1
    assert window.attention_panel.isVisible()
    assert window.attention_panel.tile_count() == a.num_heads + 2


def test_a_newer_image_supersedes_both_sides(qtbot, window, photo, images, deeper_checkpoint):
    open_and_wait(qtbot, window, photo)
    start_and_wait(qtbot, window, deeper_checkpoint)
    with qtbot.waitSignal(window.compare.b_shown, timeout=TIMEOUT,
                          check_params_cb=lambda r: r.source == str(images[1])) as blocker:
        window.open_image(images[0])
        window.open_image(images[1])  # supersedes the first on both sides
    b = blocker.args[0]
    qtbot.waitUntil(lambda: not window.is_busy and not window.compare.session_b.is_busy, timeout=TIMEOUT)
    assert window.current_result.source == b.source == str(images[1])
    assert window.compare.state_b.result is b
    assert window.compare.view.disagreement.alignment is not None


def test_a_model_compared_with_itself_shows_identical_sides(qtbot, window, photo, tiny_checkpoint):
    a = open_and_wait(qtbot, window, photo)
    b = start_and_wait(qtbot, window, tiny_checkpoint)
    view = window.compare.view
    np.testing.assert_array_equal(view.side_a.attention.tiles.tiles[0].rgb, view.side_b.attention.tiles.tiles[0].rgb)
    assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
    d = view.disagreement.alignment
    assert d.absrel == 0.0 and d.delta1 == 1.0 and not d.difference.any()


def test_an_unreadable_checkpoint_as_b_shows_an_error_on_b_only(qtbot, window, photo, tmp_path):
    a = open_and_wait(qtbot, window, photo)
    bad = tmp_path / "broken.json"
    bad.write_text("{ this is not a checkpoint")
    errors = []
    window.error_shown.connect(errors.append)
    with qtbot.waitSignal(window.compare.b_failed, timeout=TIMEOUT):
        window.compare.start(str(bad))
    view = window.compare.view
    assert view.side_b.header.error and "broken" in view.side_b.header.plain_text()
    assert not view.side_a.header.error and errors == []  # the window and side A say nothing
    assert window.current_result is a and view.side_a.attention.tile_count() == a.num_heads + 2
    assert window.compare.state_b.result is None


def test_the_second_model_persists_and_the_menu_offers_the_models(qtbot, tmp_path, window, photo, deeper_checkpoint,
                                                                   tiny_checkpoint):
    open_and_wait(qtbot, window, photo)
    start_and_wait(qtbot, window, deeper_checkpoint)
    assert window.settings.value(SETTINGS_KEY) == str(deeper_checkpoint)
    window.compare.fill_menu()
    labels = [a.text() for a in window.compare.menu.actions()]
    assert "deeper.json" in labels and "Stop comparing" in labels and "Checkpoint…" in labels
    checked = [a.text() for a in window.compare.menu.actions() if a.isChecked()]
    assert checked == ["deeper.json"]
    window.compare.act_toggle.trigger()  # Ctrl+Shift+C: stop
    assert not window.compare.active
    # a new window remembers B and compares with it again on the toggle
    settings = QSettings(window.settings.fileName(), QSettings.Format.IniFormat)
    window.settings.sync()
    other = MainWindow(settings=settings, samples=tmp_path)
    qtbot.addWidget(other)
    try:
        assert other.compare.remembered == str(deeper_checkpoint)
        with qtbot.waitSignal(other.model_ready, timeout=TIMEOUT):
            other.load_model(str(tiny_checkpoint), "cpu")
        open_and_wait(qtbot, other, photo)
        with qtbot.waitSignal(other.compare.b_shown, timeout=TIMEOUT):
            other.compare.act_toggle.trigger()
        assert other.compare.active and other.compare.state_b.result.model_name == "deeper"
    finally:
        other.close()


def test_presentation_tells_the_two_up_story(qtbot, window, photo, deeper_checkpoint):
    open_and_wait(qtbot, window, photo)
    start_and_wait(qtbot, window, deeper_checkpoint)
    view, strip = window.presentation, window.compare.presentation
    view.enter()
    try:
        assert strip.isVisible() and "deeper" in strip.heading.text()
        assert strip.attention.image() is not None
        for layer in range(view.layer_count):
            view.set_layer(layer)
            assert strip.layer_b == match_layer(layer, view.layer_count, 5)
    finally:
        view.leave()
    window.compare.stop()
    view.enter()
    try:
        assert not strip.isVisible()
    finally:
        view.leave()


def test_class_evidence_of_each_side_follows_its_own_model(qtbot, window, photo, deeper_checkpoint):
    open_and_wait(qtbot, window, photo)
    b = start_and_wait(qtbot, window, deeper_checkpoint)
    view, b_state = window.compare.view, window.compare.state_b
    assert view.side_a.evidence is window.evidence_panel and view.side_b.evidence is not None
    # a click on one of B's bars asks B's worker for B's evidence and shows it on B's side
    with qtbot.waitSignal(window.compare.session_b.evidence_ready, timeout=TIMEOUT) as blocker:
        b_state.set_target(b.predictions[1].index)
    result, evidence = blocker.args
    assert result is b_state.result and view.side_b.top_views.currentWidget() is view.side_b.evidence
    assert evidence.labels == b.labels
    qtbot.waitUntil(lambda: b_state.evidence is not None, timeout=TIMEOUT)
    window.compare.stop()
    assert window.side_views.indexOf(window.evidence_panel) == 1  # given back to its tab
