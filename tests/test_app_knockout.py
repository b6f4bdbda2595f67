"""Head knockout and head importance in the window: Ctrl-click heads, knock them out on the worker, see the change,
restore the whole model; rank every head on the worker into a table and the head atlas (tiny checkpoint, offscreen)."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from vitviz.engine import Engine  # noqa: E402

from .test_app import TIMEOUT, bare_window, open_and_wait, settings, window  # noqa: E402,F401 - fixtures


def test_ctrl_click_two_heads_knock_them_out_and_restore(qtbot, window, photo):
    first = open_and_wait(qtbot, window, photo)
    state, panel = window.state, window.attention_panel
    layer = state.layer
    tile = panel.tiles.tiles[1]
    qtbot.mouseClick(tile, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, pos=tile.rect().center())
    assert state.selected_heads == {(layer, 1)}
    assert tile.mark is not None and tile.caption == "head 1 · picked"
    assert not panel.detail.isVisible()  # a Ctrl-click picks, it does not enlarge
    assert not panel.knockout_buttons.knockout.isHidden() and "1 head" in panel.knockout_buttons.knockout.text()
    window.center_views.setCurrentWidget(window.atlas_panel)  # the atlas draws when shown
    window.atlas_panel.click_head(0, 2, ctrl=True)
    assert state.selected_heads == {(layer, 1), (0, 2)}
    assert state.layer == layer  # a Ctrl-click does not move to the point's layer
    window.center_views.setCurrentWidget(panel)

    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.heads.act_knockout.trigger()
    knocked = blocker.args[0]
    assert knocked is not first and knocked.ablated == sorted([(layer, 1), (0, 2)])
    assert state.knocked_out == knocked.ablated and state.original.result is first
    # the bars show the change against the whole model's probability of each class
    expected = [(p.probability - first.probabilities[p.index]) * 100 for p in knocked.predictions]
    deltas = window.predictions_panel.chart.deltas()
    assert len(deltas) == len(knocked.predictions)
    for text, points in zip(deltas, expected):
        assert text == f"{'−' if points < 0 else '+'}{abs(points):.1f} pts"
    assert any(points != 0 for points in expected), expected  # the knockout changed the prediction
    assert tile.caption == "head 1 · knocked out"
    assert "knocked out: L0.H2, L2.H1" in window.windowTitle()
    assert window.banner.isVisible() and "L0.H2, L2.H1" in window.banner.message()
    assert not panel.knockout_buttons.restore.isHidden()
    # the depth panel shows the knockout's change on request, symmetric about 0
    assert not window.depth_panel.change_box.isHidden()
    state.set_depth_change(True)
    change = knocked.depth - first.depth
    assert window.depth_panel.bar.hi == pytest.approx(float(np.abs(change).max()))
    assert window.depth_panel.bar.lo == pytest.approx(-window.depth_panel.bar.hi)
    state.set_depth_change(False)

    window.heads.act_restore.trigger()  # the kept result, not a new analysis
    assert window.current_result is first
    assert state.knocked_out == [] and state.original is None and state.selected_heads == frozenset()
    assert window.predictions_panel.chart.deltas() == []
    assert all(t.mark is None for t in panel.tiles.tiles) and tile.caption == "head 1"
    assert "knocked out" not in window.windowTitle() and not window.banner.isVisible()
    assert panel.knockout_buttons.isHidden() and window.depth_panel.change_box.isHidden()
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    assert window.current_result is first


def test_rank_heads_by_importance_on_the_worker(qtbot, window, photo, tiny_checkpoint, tmp_path):
    first = open_and_wait(qtbot, window, photo)
    engine = window.session.worker.engine
    threads, compute = [], engine.head_importance

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return compute(*args, **kwargs)

    engine.head_importance = recorded
    with qtbot.waitSignal(window.state.importance_changed, timeout=TIMEOUT):
        window.heads.act_rank.trigger()
    assert threads and threads[0] is not threading.main_thread()
    importance = window.state.importance
    assert importance.target == first.predictions[0].index

    reference = Engine(str(tiny_checkpoint), device="cpu").head_importance(str(photo))
    rows = sorted(window.heads.table.rows(), key=lambda r: (r["layer"], r["head"]))
    assert len(rows) == first.num_layers * first.num_heads
    for row, want in zip(rows, reference.rows()):
        assert (row["layer"], row["head"]) == (want["layer"], want["head"])
        for key in ("logit_drop", "prob_drop", "depth_absrel"):
            assert row[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6)
    assert window.heads.table.isVisible()

    path = window.heads.table.export_csv(tmp_path / "heads.csv")
    with open(path, newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == ["layer", "head", "target", "logit_drop", "prob_drop", "depth_absrel"]
    assert len(written) == len(rows) and written[0]["target"] == importance.target_label

    window.center_views.setCurrentWidget(window.atlas_panel)
    window.atlas_panel.set_measure("importance")
    np.testing.assert_allclose(window.atlas_panel.values(), importance.prob_drop * 100)
    assert len(window.atlas_panel.points) == len(rows)


def test_restore_drops_a_pending_knockout(qtbot, window, photo):
    first = open_and_wait(qtbot, window, photo)
    state = window.state
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT):
        state.request_knockout([(0, 0)])
    state.toggle_head_selection(1, 2)
    state.request_knockout()  # still on the worker when the model is restored
    assert state.restore_model()
    assert window.current_result is first
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    assert window.current_result is first and state.knocked_out == []


def test_estimate_head_importance_is_labelled_as_an_estimate(qtbot, window, photo, tiny_checkpoint):
    first = open_and_wait(qtbot, window, photo)
    with qtbot.waitSignal(window.state.importance_changed, timeout=TIMEOUT):
        window.heads.act_estimate.trigger()
    importance = window.state.importance
    assert importance.estimated and importance.target == first.predictions[0].index
    reference = Engine(str(tiny_checkpoint), device="cpu").head_importance(str(photo), method="estimate")
    np.testing.assert_allclose(importance.prob_drop, reference.prob_drop, rtol=1e-4, atol=1e-6)
    table = window.heads.table
    headers = [table.table.horizontalHeaderItem(c).text() for c in range(table.table.columnCount())]
    assert headers == ["Layer", "Head", "Logit drop (est.)", "Prob drop (est., pts)"]  # no depth figure
    assert table.caption.text().startswith("First-order estimate")
    window.center_views.setCurrentWidget(window.atlas_panel)
    window.atlas_panel.set_measure("importance")
    assert "estimate" in window.atlas_panel.unit()[0]
    np.testing.assert_allclose(window.atlas_panel.values(), importance.prob_drop * 100)
