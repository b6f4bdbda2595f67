"""Each panel driven through the ViewState alone, without a MainWindow, worker or model: a panel must draw whatever
the state holds and change the view only through the state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402

from vitviz.app.panels import AttentionPanel, DepthPanel, DetailsPanel, InputPanel, PredictionsPanel  # noqa: E402
from vitviz.app.state import ViewState  # noqa: E402
from vitviz.app.worker import ModelSummary, Shown  # noqa: E402
from vitviz.engine import AnalysisResult, PatchGrid, Prediction  # noqa: E402
from vitviz.features import FeatureSet, patch_similarity  # noqa: E402
from vitviz.attention import AttentionMaps  # noqa: E402
from vitviz.render import cls_maps  # noqa: E402

LAYERS, HEADS, ROWS, COLS, PATCH = 3, 2, 3, 4, 8


def make_shown(seed: int = 0, depth: bool = True, classes: bool = True, device: str = "cpu") -> Shown:
    """A result as the worker would deliver it, from random softmax attentions (no model needed)."""
    rng = np.random.default_rng(seed)
    t = 1 + ROWS * COLS
    logits = rng.standard_normal((LAYERS, HEADS, t, t)) * 2.0
    att = np.exp(logits - logits.max(axis=-1, keepdims=True))
    att = (att / att.sum(axis=-1, keepdims=True)).astype(np.float32)
    h, w = ROWS * PATCH, COLS * PATCH
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    labels = ["cube", "cone", "ring"]
    probs = np.array([0.7, 0.2, 0.1], np.float32)
    result = AnalysisResult(
        source=f"scene-{seed}.png", image=image, grid=PatchGrid(ROWS, COLS, PATCH, (h, w), (w * 2, h * 2)),
        model_name="tiny", device=device, labels=labels if classes else [],
        probabilities=probs if classes else None,
        predictions=[Prediction(labels[i], i, float(probs[i])) for i in range(3)] if classes else [],
        attention=AttentionMaps.from_full(att, (ROWS, COLS), PATCH), cls_attention=cls_maps(att, (ROWS, COLS)).astype(np.float32),
        depth=(1.0 + np.linspace(0, 3, h * w).reshape(h, w)).astype(np.float32) if depth else None,
        depth_kind="metric" if depth else None, depth_model_name="tiny" if depth else None,
        timings={"preprocess": 1.0, "forward": 5.0, "postprocess": 1.0, "total": 7.0},
    )
    result.hidden_states = rng.standard_normal((LAYERS, t, 16)).astype(np.float32)
    return Shown(result, features=FeatureSet.from_result(result, pca_layers=(LAYERS - 1,)))


@pytest.fixture
def state(qtbot) -> ViewState:
    return ViewState()


def test_state_signals_only_real_changes_and_clamps_the_layer(state):
    seen = []
    state.layer_changed.connect(seen.append)
    state.set_layer(1)  # nothing shown yet: there is no layer to go to
    assert seen == [] and state.layer == 0
    state.show(make_shown())
    assert state.layer == LAYERS - 1  # a new result starts on its last layer
    state.set_layer(99)
    state.set_layer(-1)
    assert seen == []  # already on the last layer
    state.set_layer(0)
    state.step_layer(-1)
    assert seen == [0] and state.layer == 0


def test_state_keeps_layer_and_query_across_results_of_the_same_shape(state):
    state.show(make_shown(0))
    state.set_layer(1)
    state.toggle_query(5)
    assert state.query == 5
    state.show(make_shown(1))
    assert (state.layer, state.query) == (1, 5)
    state.toggle_query(5)  # clicking the selected patch again returns to CLS
    assert state.query is None
    state.set_query(ROWS * COLS)  # out of range: ignored
    assert state.query is None


def test_state_view_settings_persist(tmp_path):
    settings = QSettings(str(tmp_path / "v.ini"), QSettings.Format.IniFormat)
    first = ViewState.from_settings(settings)
    first.set_colormap("viridis")
    first.set_opacity(0.25)
    first.set_normalisation("layer")
    first.set_grid(False)
    second = ViewState.from_settings(settings)
    assert (second.cmap, second.opacity, second.normalisation, second.grid) == ("viridis", 0.25, "layer", False)
    settings.setValue("view/opacity", "not a number")
    assert ViewState.from_settings(settings).opacity == 0.6


def test_input_panel_draws_the_image_and_publishes_hover_and_clicks(qtbot, state):
    panel = InputPanel(state)
    qtbot.addWidget(panel)
    panel.resize(400, 300)
    panel.show()
    shown = make_shown()
    state.show(shown)
    np.testing.assert_array_equal(panel.canvas.rgb, shown.result.image)
    assert panel.canvas.patch_size == PATCH and panel.canvas.grid_visible
    assert "scene-0.png" in panel.title.text() and "4×3 patches" in panel.info.text()
    statuses = []
    state.status.connect(statuses.append)
    center = panel.canvas.patch_rect(6).center()
    qtbot.mouseClick(panel.canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(center.x()), int(center.y())))
    assert state.query == 6 and panel.canvas.marked_patch == 6
    state.set_grid(False)
    assert not panel.canvas.grid_visible and not panel.grid_check.isChecked()
    panel.grid_check.setChecked(True)
    assert state.grid
    state.set_hover(3)
    assert panel.canvas.hover_patch == 3


def test_predictions_panel_shows_the_classes_or_says_there_are_none(qtbot, state):
    panel = PredictionsPanel(state)
    qtbot.addWidget(panel)
    state.show(make_shown())
    assert panel.chart.labels() == ["cube", "cone", "ring"]
    assert "cube" in panel.title.text()
    state.show(make_shown(classes=False))
    assert panel.chart.labels() == [] and panel.title.text() == "Predictions"


def test_attention_panel_follows_layer_query_and_style(qtbot, state):
    panel = AttentionPanel(state)
    qtbot.addWidget(panel)
    panel.resize(600, 500)
    panel.show()
    shown = make_shown()
    state.show(shown)
    result = shown.result
    assert len(panel.tiles.tiles) == HEADS + 2
    np.testing.assert_allclose(panel.values[0], result.cls_attention[LAYERS - 1][0])
    state.set_layer(0)
    assert panel.layer_slider.value() == 0 and panel.tiles.tiles[HEADS + 1].caption == "rollout 0–0"
    np.testing.assert_allclose(panel.values[1], result.cls_attention[0][1])
    state.set_query(4)
    np.testing.assert_allclose(panel.values[0], result.query_attention(0, 4)[0])
    assert "Patch #4" in panel.mode_chip.text() and panel.cls_button.isVisibleTo(panel)
    panel.cls_button.click()
    assert state.query is None
    panel.layer_slider.setValue(2)  # the panel's own control goes through the state
    assert state.layer == 2
    before = panel.tiles.tiles[0].rgb.copy()
    state.set_colormap("viridis")
    assert panel.cmap_combo.currentText() == "viridis" and not np.array_equal(panel.tiles.tiles[0].rgb, before)
    state.set_opacity(0.0)
    np.testing.assert_array_equal(panel.tiles.tiles[0].rgb, result.image)  # no overlay left
    assert panel.alpha_slider.value() == 0
    state.set_normalisation("layer")
    assert panel.legend.lo is not None and panel.norm_combo.currentData() == "layer"
    panel.open_detail(HEADS)
    assert panel.detail.isVisible() and "mean of heads" in panel.detail.title.text()
    state.set_layer(1)
    assert "Layer 1" in panel.detail.title.text()
    panel.detail.close()


def test_depth_panel_colours_the_map_and_enlarges_it(qtbot, state):
    panel = DepthPanel(state)
    qtbot.addWidget(panel)
    panel.resize(400, 400)
    panel.show()
    shown = make_shown()
    state.show(shown)
    assert panel.canvas.rgb.shape == shown.result.image.shape
    assert panel.bar.lo == pytest.approx(1.0) and "metres" in panel.title.text()
    before = panel.canvas.rgb.copy()
    state.set_depth_colormap("gray")
    assert panel.cmap_combo.currentText() == "gray" and not np.array_equal(panel.canvas.rgb, before)
    panel.open_detail()
    np.testing.assert_array_equal(panel.detail.canvas.rgb, panel.canvas.rgb)
    state.show(make_shown(depth=False))
    assert panel.canvas.rgb is None and not panel.detail.isVisible()
    assert panel.canvas.placeholder == "This model predicts no depth."


def test_details_panel_names_the_device_the_model_really_ran_on(qtbot, state):
    panel = DetailsPanel(state)
    qtbot.addWidget(panel)
    assert "none loaded" in panel.value("Model")
    summary = ModelSummary(name="tiny", spec="tiny.json", device="cuda (NVIDIA H200)", image_size=32, patch_size=8,
                           layers=LAYERS, heads=HEADS, num_classes=3, depth_kind="metric", depth_model=None,
                           load_ms=12.0)
    state.set_model(summary)
    assert "cuda" in panel.value("Device")
    # the engine fell back to the CPU after a GPU out-of-memory error: the details follow the model there
    state.show(make_shown(device="cpu"))
    assert panel.value("Device") == "cpu" and "cuda" not in panel.text()
    assert state.model == dataclasses.replace(summary, device="cpu")


def test_clicking_a_prediction_bar_reports_its_row(qtbot, state):
    panel = PredictionsPanel(state)
    qtbot.addWidget(panel)
    panel.resize(400, 300)
    panel.show()
    state.show(make_shown())
    qtbot.waitExposed(panel)
    chart = panel.chart
    with qtbot.waitSignal(chart.bar_clicked, timeout=2000) as blocker:
        qtbot.mouseClick(chart.plot.viewport(), Qt.MouseButton.LeftButton, pos=chart.bar_center(1).toPoint())
    assert blocker.args == [1]


def test_features_panel_pca_similarity_and_norms(qtbot, state):
    from vitviz.app.panels import FeaturesPanel

    panel = FeaturesPanel(state)
    qtbot.addWidget(panel)
    panel.resize(500, 450)
    panel.show()
    shown = make_shown()
    state.show(shown)
    fs = shown.features
    np.testing.assert_allclose(panel.values, fs.pca(LAYERS - 1))
    assert panel.canvas.rgb.shape == shown.result.image.shape
    state.set_layer(0)
    np.testing.assert_allclose(panel.values, fs.pca(0))
    panel.set_mode("similarity")
    assert panel.values is None and "Click a patch" in panel.info.text()
    center = panel.canvas.patch_rect(5).center()
    qtbot.mouseClick(panel.canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(center.x()), int(center.y())))
    assert state.query == 5
    expected = patch_similarity(shown.result.hidden_states[0], 5, 1, shown.result.grid)
    np.testing.assert_allclose(panel.values, expected, rtol=1e-5)
    assert panel.values[1, 1] == pytest.approx(1.0)  # patch 5 is row 1, col 1: itself
    center = panel.canvas.patch_rect(9).center()
    qtbot.mouseClick(panel.canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(center.x()), int(center.y())))
    np.testing.assert_allclose(panel.values, patch_similarity(shown.result.hidden_states[0], 9, 1,
                                                              shown.result.grid), rtol=1e-5)
    panel.set_mode("norms")
    norms = np.linalg.norm(shown.result.hidden_states[0], axis=-1)
    np.testing.assert_allclose(panel.values, norms[1:].reshape(ROWS, COLS), rtol=1e-5)
    assert f"CLS {norms[0]:.1f}" in panel.info.text()


def test_hidden_features_panel_waits_until_shown(qtbot, state):
    from vitviz.app.panels import FeaturesPanel

    panel = FeaturesPanel(state)
    qtbot.addWidget(panel)
    state.show(make_shown())
    assert panel.values is None  # hidden: nothing computed or drawn
    panel.show()
    assert panel.values is not None


def test_clicking_a_point_of_the_head_atlas_picks_its_layer_and_head(qtbot, state):
    from vitviz.app.panels import HeadAtlasPanel

    panel = HeadAtlasPanel(state)
    qtbot.addWidget(panel)
    panel.resize(700, 450)
    panel.show()
    shown = make_shown()
    state.show(shown)
    qtbot.waitExposed(panel)
    assert len(panel.points) == LAYERS * HEADS
    pos = panel.point_position(0, 1).toPoint()
    qtbot.mouseClick(panel.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert (state.layer, state.head) == (0, 1)
    assert panel.head_canvas.rgb is not None and "Layer 0, head 1" in panel.head_caption.text()
    assert f"{shown.features.mean_distance[0, 1]:.1f} px" in panel.head_caption.text()
    panel.set_measure("entropy")
    pos = panel.point_position(2, 0).toPoint()
    qtbot.mouseClick(panel.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert (state.layer, state.head) == (2, 0)


def test_evidence_panel_without_a_classifier_says_so_and_still_offers_attention(qtbot, state):
    from vitviz.app.panels import EvidencePanel

    panel = EvidencePanel(state)
    qtbot.addWidget(panel)
    panel.show()
    asked = []
    state.evidence_requested.connect(lambda result, request: asked.append(request[0]))
    shown = make_shown(classes=False)
    state.show(shown)
    assert panel.values is None and "needs a classifier" in panel.info.text() and not asked
    state.set_method("rollout")
    assert panel.values is not None and panel.values.sum() == pytest.approx(1.0, abs=1e-5)
    state.set_method("attention")
    state.set_layer(0)
    expected = shown.result.cls_attention[0].mean(axis=0)
    np.testing.assert_allclose(panel.values, expected / expected.sum(), rtol=1e-5)


def test_evidence_panel_asks_for_the_top_classes_once_when_shown(qtbot, state):
    from vitviz.app.panels import EvidencePanel

    panel = EvidencePanel(state)
    qtbot.addWidget(panel)
    asked = []
    state.evidence_requested.connect(lambda result, request: asked.append(request[0]))
    state.show(make_shown())
    assert asked == []  # hidden: no backward pass
    panel.show()
    assert asked == [[0, 1, 2]] and "Computing the evidence" in panel.info.text()
    state.set_target(1)
    assert asked == [[0, 1, 2]]  # already asked for


def test_threshold_view_keeps_the_patches_holding_the_mass(qtbot, state):
    panel = AttentionPanel(state)
    qtbot.addWidget(panel)
    panel.resize(600, 500)
    panel.show()
    shown = make_shown()
    state.show(shown)
    state.set_opacity(1.0)
    full = panel.tiles.tiles[0].rgb.copy()
    panel.threshold.check.setChecked(True)
    assert state.threshold == pytest.approx(0.6)
    thresholded = panel.tiles.tiles[0].rgb
    assert not np.array_equal(full, thresholded)
    from vitviz.explain import mass_threshold_mask

    m = shown.result.cls_attention[LAYERS - 1][0]
    kept = mass_threshold_mask(m, 0.6)
    assert m[kept].sum() >= 0.6 * m.sum() and m[kept].sum() - m[kept].min() < 0.6 * m.sum()
    state.set_threshold(None)
    np.testing.assert_array_equal(panel.tiles.tiles[0].rgb, full)


def test_an_out_of_domain_image_gets_a_plain_note_and_a_photo_model(qtbot, state, monkeypatch):
    import threading

    from vitviz.app.panels import predictions
    from vitviz.models.domain import DomainVerdict

    looked_up_on = []
    monkeypatch.setattr(predictions, "_download_size",
                        lambda: looked_up_on.append(threading.current_thread()) or "88 MB")
    panel = PredictionsPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    state.show(make_shown())
    assert not panel.note.isVisible()
    shown = make_shown()
    shown.result.domain = DomainVerdict("mahalanobis", 900.0, 439.4, False)
    state.show(shown)
    assert panel.note.isVisible() and "3 simple synthetic shapes" in panel.note_text.text()
    assert "DeiT-S" in panel.note_button.text() and panel.chart.labels()  # the bars stay, below the note
    # what the photo model costs is looked up off the UI thread (it imports the Hub client), then shown
    qtbot.waitUntil(lambda: panel.note_button.text() == "Use DeiT-S for photos (88 MB)")
    assert looked_up_on and looked_up_on[0] is not threading.main_thread()
    with qtbot.waitSignal(state.model_requested) as blocker:
        panel.note_button.click()
    assert blocker.args == ["deit-small"]
    shown = make_shown()
    shown.result.domain = DomainVerdict("mahalanobis", 100.0, 439.4, True)
    state.show(shown)
    assert not panel.note.isVisible()
    shown = make_shown()  # just over the threshold: a softer word, and no photo model offered
    shown.result.domain = DomainVerdict("mahalanobis", 512.1, 439.4, False)
    state.show(shown)
    assert panel.note.isVisible() and "unusual for this model" in panel.note_text.text()
    assert "mean nothing" not in panel.note_text.text() and not panel.note_button.isVisible()
