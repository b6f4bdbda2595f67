"""The shipped image-text model in the window (offscreen): a Model menu entry like any shipped model, its own label
presets and the words it knows in the label box, and presentation mode's "ask it" line, offline."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
from vitviz.app import paths  # noqa: E402

from .test_app import TIMEOUT, bare_window, open_and_wait, settings  # noqa: E402,F401 - fixtures
from .test_shipped_imagetext import NAME, SAMPLES  # noqa: E402


def test_the_label_box_lists_the_models_presets_and_words(qtbot):
    from vitviz.app.panels.labels import PRESETS, LabelBox

    box = LabelBox()
    qtbot.addWidget(box)
    asked = []
    box.asked.connect(lambda text, templates: asked.append(text))
    box.set_model({"Its colours": "red object, blue object"}, ["a", "ball", "red", "."])
    items = [box.presets.itemText(i) for i in range(box.presets.count())]
    assert items[1] == "★ Its colours" and set(PRESETS) <= set(items)
    assert "ball, red" in box.known.text() and "." not in box.known.text().split(":")[1][:-1]
    box._on_preset(1)
    assert asked == ["red object, blue object"]
    box.set_model({}, [])  # a CLIP or SigLIP model: no word list, the general presets only
    assert box.known.isHidden() and box.presets.count() == len(PRESETS) + 1


def test_in_the_window_it_is_a_model_menu_entry_with_its_presets_and_the_ask_it_line(qtbot, bare_window):
    from vitviz.app.presentation import PresentationView

    window = bare_window
    entry = next(spec for label, spec, _tip in window.picker.entries() if label == NAME)
    with qtbot.waitSignal(window.model_ready, timeout=TIMEOUT):
        window.load_model(entry, "cpu")
    box = window.predictions_panel.labels
    assert box.isVisibleTo(window) and box.known.isVisibleTo(window) and "sphere" in box.known.text()
    assert box.presets.itemText(1).startswith("★ ")
    open_and_wait(qtbot, window, SAMPLES / "scene-capsule.png")
    view = window.presentation if hasattr(window, "presentation") else PresentationView.for_window(window)
    view.enter(str(SAMPLES / "scene-capsule.png"))
    qtbot.waitUntil(lambda: view.result is not None, timeout=TIMEOUT)
    view.ask_line.setText("red ball, capsule")
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT):
        view.ask_line.returnPressed.emit()
    qtbot.waitUntil(lambda: view.result is not None and view.result.labels == ["red ball", "capsule"],
                    timeout=TIMEOUT)
    assert "“capsule”" in view.answer_text()
    view.leave()
