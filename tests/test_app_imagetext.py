"""Typed labels in the window (image-text model, offscreen): the label box re-scores the shown picture on the worker
without a new forward pass; a bad list gets a message and keeps the last result; evidence differs by label."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("transformers", minversion="4.47")
pytest.importorskip("tokenizers")
pytest.importorskip("sentencepiece")

from .imagetext_models import make_clip, make_siglip  # noqa: E402
from .test_app import TIMEOUT, bare_window, open_and_wait, settings  # noqa: E402,F401 - fixtures


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    make_clip(folder)
    return folder


@pytest.fixture(scope="module")
def siglip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("siglip") / "tiny-siglip"
    make_siglip(folder)
    return folder


def _load(qtbot, window, folder):
    with qtbot.waitSignal(window.model_ready, timeout=TIMEOUT):
        window.load_model(str(folder), "cpu")
    return window


def _ask(qtbot, window, text, template=None):
    box = window.predictions_panel.labels
    box.edit.setPlainText(text)
    if template is not None:
        box.template.setText(template)
    with qtbot.waitSignal(window.session.labels_ready, timeout=TIMEOUT):
        box.button.click()


def test_typing_labels_updates_the_bars_without_a_forward_pass(qtbot, bare_window, clip_folder, photo):
    window = _load(qtbot, bare_window, clip_folder)
    panel = window.predictions_panel
    assert panel.labels.isVisibleTo(window) and "cat" in panel.labels.edit.toPlainText()
    first = open_and_wait(qtbot, window, photo)
    engine = window.session.worker.engine
    passes: list[int] = []
    hook = engine.model.blocks[0].register_forward_pre_hook(lambda *_: passes.append(1))
    _ask(qtbot, window, "a red ball, a blue cube\n", "{}")
    hook.remove()
    shown = window.current_result
    assert passes == []  # re-scored from the kept image embedding
    assert shown is not first and shown.source == first.source and shown.labels == ["a red ball", "a blue cube"]
    assert sorted(panel.chart.labels()) == ["a blue cube", "a red ball"]
    assert panel.chart.probabilities() == pytest.approx([p.probability for p in shown.predictions])
    assert sum(panel.chart.probabilities()) == pytest.approx(1.0, abs=1e-5)
    assert "of these labels" in panel.title.text()
    assert window.state.model.labels == ["a red ball", "a blue cube"] and window.state.model.templates == ["{}"]
    np.testing.assert_array_equal(shown.cls_attention, first.cls_attention)  # the maps stay; only scores change

    # a bad list: a message, and the last result stays
    box = panel.labels
    box.edit.setPlainText(" ,  , ")
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        box.button.click()
    assert "no labels" in blocker.args[0]
    assert window.current_result is shown and sorted(panel.chart.labels()) == ["a blue cube", "a red ball"]

    # a new picture is scored against the labels asked last
    second = open_and_wait(qtbot, window, np.zeros((40, 40, 3), np.uint8))
    assert second.labels == ["a red ball", "a blue cube"]


def test_evidence_follows_the_chosen_label(qtbot, bare_window, clip_folder, photo):
    window = _load(qtbot, bare_window, clip_folder)
    open_and_wait(qtbot, window, photo)
    _ask(qtbot, window, "a red ball, a blue cube, a teapot")
    result = window.current_result
    engine = window.session.worker.engine
    ev = engine.evidence(result, targets=[0, 1])
    assert not np.allclose(ev.map("relevance", 0), ev.map("relevance", 1))


def test_siglip_scores_each_label_on_its_own(qtbot, bare_window, siglip_folder, photo):
    window = _load(qtbot, bare_window, siglip_folder)
    open_and_wait(qtbot, window, photo)
    _ask(qtbot, window, "a red ball, a blue cube, a teapot")
    result = window.current_result
    assert result.scoring == "sigmoid" and result.pool_attention is not None
    assert "Best match" in window.predictions_panel.title.text()


def test_siglip_heads_show_the_pooling_probe_or_the_attention_received(qtbot, bare_window, siglip_folder, photo):
    window = _load(qtbot, bare_window, siglip_folder)
    result = open_and_wait(qtbot, window, photo)
    state, panel = window.state, window.attention_panel
    assert panel.pool_box.isVisibleTo(window) and state.shows_pool and panel.mode_chip.text() == "POOL"
    heads, _mean, _roll = state.attention_maps()
    np.testing.assert_array_equal(heads, result.pool_attention)
    panel.pool_box.setChecked(False)
    assert panel.mode_chip.text() == "RECEIVED" and "receives" in panel.title.text()
    heads, _mean, _roll = state.attention_maps()
    np.testing.assert_array_equal(heads, result.cls_attention[state.layer])


def test_presentation_ask_it_line_compares_the_picture_with_typed_words(qtbot, bare_window, clip_folder, photo):
    from vitviz.app.presentation import PresentationView

    window = _load(qtbot, bare_window, clip_folder)
    open_and_wait(qtbot, window, photo)
    view = window.presentation if hasattr(window, "presentation") else PresentationView.for_window(window)
    view.enter(str(photo))
    qtbot.waitUntil(lambda: view.result is not None, timeout=TIMEOUT)
    assert view.ask_line.isVisibleTo(view)
    view.ask_line.setText("a red ball, a teapot")
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT):
        view.ask_line.returnPressed.emit()
    qtbot.waitUntil(lambda: view.result is not None and view.result.labels == ["a red ball", "a teapot"],
                    timeout=TIMEOUT)
    assert "“a red ball”" in view.answer_text() or "“a teapot”" in view.answer_text()
    view.leave()


def test_compared_image_text_model_takes_its_own_labels(qtbot, bare_window, clip_folder, siglip_folder, photo):
    window = _load(qtbot, bare_window, clip_folder)
    open_and_wait(qtbot, window, photo)
    with qtbot.waitSignal(window.compare.b_shown, timeout=TIMEOUT):
        window.compare.start(str(siglip_folder))
    side_b, state_b = window.compare.view.side_b, window.compare.state_b
    box = side_b.predictions.labels
    qtbot.waitUntil(lambda: box.isVisibleTo(window), timeout=TIMEOUT)
    box.edit.setPlainText("a teapot, a red ball")
    with qtbot.waitSignal(window.compare.session_b.labels_ready, timeout=TIMEOUT):
        box.button.click()
    assert state_b.result.labels == ["a teapot", "a red ball"]
    assert sorted(side_b.predictions.chart.labels()) == ["a red ball", "a teapot"]
    assert window.current_result.labels != state_b.result.labels  # A keeps its own labels
    window.compare.stop()


def test_siglip_head_atlas_names_the_entropy_of_the_attention_received(qtbot, bare_window, siglip_folder, photo):
    window = _load(qtbot, bare_window, siglip_folder)
    open_and_wait(qtbot, window, photo)
    atlas = window.atlas_panel
    atlas.measure = "entropy"
    assert atlas.unit()[0] == "Entropy of the attention received"
