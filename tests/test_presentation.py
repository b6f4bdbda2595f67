"""Presentation mode, driven for real (offscreen) through the main window with the shipped model; every wait is on a
window signal and the timers are driven by hand (no sleeping)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialog, QLabel  # noqa: E402

from vitviz.app import paths  # noqa: E402
from vitviz.app.main_window import MainWindow  # noqa: E402
from vitviz.app.presentation import FONT_PX, answer_lines, explanations  # noqa: E402

TIMEOUT = 60_000  # ms; generous for two busy CPU cores
SHIPPED = next((m for m in paths.shipped_models() if m.name == paths.DEFAULT_MODEL), None)
pytestmark = pytest.mark.skipif(SHIPPED is None, reason="the shipped model is not installed")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three shipped scene samples and, between the first two, a file that only pretends to be a PNG."""
    out = tmp_path_factory.mktemp("show")
    for i, name in enumerate(("scene-cube.png", "scene-torus.png", "scene-sphere.png")):
        shutil.copy(paths.REPO_ROOT / "assets" / "samples" / name, out / f"{i * 2}-{name}")
    (out / "1-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    return out


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory, folder):
    """One main window with the shipped model for the whole module (loading it is the slow part)."""
    tmp = tmp_path_factory.mktemp("settings")
    settings = QSettings(str(tmp / "vitviz.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings, samples=folder)
    win.resize(1280, 800)
    win.move(40, 30)
    win.show()
    loaded = []
    win.model_ready.connect(loaded.append)
    win.load_model(str(SHIPPED.config), "cpu")
    deadline = time.monotonic() + TIMEOUT / 1000
    while not loaded and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert loaded, "the shipped model did not load"
    yield win
    win.presentation.leave()
    win.close()


@pytest.fixture
def view(window):
    yield window.presentation
    window.presentation.leave()
    window.presentation.set_playlist([])


def open_and_wait(qtbot, window, source):
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.open_image(source)
    return blocker.args[0]


def enter_and_wait(qtbot, window, target):
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.present(target)
    return blocker.args[0]


def test_f11_enters_and_escape_restores_the_window_as_it_was(qtbot, window, view, folder):
    result = open_and_wait(qtbot, window, folder / "0-scene-cube.png")
    window.state.set_layer(2)
    geometry, state = window.geometry(), window.windowState()
    assert window.act_present.shortcut().toString() == "F11"
    assert window.act_present in window.menuBar().actions()[2].menu().actions()  # View → Present

    window.act_present.trigger()
    assert view.active and view.isVisible() and view.isFullScreen()
    assert not window.isVisible()
    assert view.result is result and "cube" in view.answer_text()

    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert not view.active and not view.isVisible()
    assert window.isVisible() and window.geometry() == geometry and window.windowState() == state
    assert window.state.layer == 2 and window.current_result is result  # nothing ran again, nothing moved


def test_leaving_after_stepping_to_other_images_shows_the_first_one_again(qtbot, window, view, folder):
    first = open_and_wait(qtbot, window, folder / "0-scene-cube.png")
    window.present()
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        qtbot.keyClick(view, Qt.Key.Key_Left)  # the previous picture of the same folder (wrapping to the last)
    assert blocker.args[0].source != first.source
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert blocker.args[0].source == first.source and window.isVisible()


def test_the_answer_holds_the_predicted_label_and_the_runner_ups(qtbot, window, view, folder):
    result = enter_and_wait(qtbot, window, folder / "4-scene-sphere.png")
    top = result.predictions[0]
    assert view.answer_text().startswith(f"I think this is a {top.label} — ")
    assert view.answer_text().endswith(f"{min(100 * top.probability, 99):.0f} %")
    runner_ups = [p.label for p in result.predictions[1:4] if p.probability >= 0.005]
    assert all(label in view.runner_text() for label in runner_ups)
    assert "sphere" in view.answer_text()  # the shipped model knows its own scenes

    no_classifier = dataclasses.replace(result, predictions=[], labels=[], probabilities=None)
    view.show_result(no_classifier)
    assert view.answer_text() == "This model has no class labels; it learned to see by itself"

    from vitviz.models.domain import DomainVerdict

    unknown = dataclasses.replace(result, domain=DomainVerdict("mahalanobis", 900.0, 439.4, False))
    view.show_result(unknown)
    assert "don't know this kind of picture" in view.answer_text()
    assert top.label not in view.answer_text() + view.runner_text()
    unusual = dataclasses.replace(result, domain=DomainVerdict("mahalanobis", 512.1, 439.4, False))
    view.show_result(unusual)  # only just over the threshold: the answer stays, with a caution
    assert top.label in view.answer_text() and "unusual for me" in view.runner_text()


def test_the_window_notes_a_photo_is_unlike_the_shipped_models_scenes(qtbot, window, folder):
    """In the normal window: a photo gets the plain note above the bars (with the photo model offered); a scene not."""
    photo = Path(__file__).resolve().parent.parent / "assets" / "samples" / "photo-cat.jpg"
    open_and_wait(qtbot, window, photo)
    panel = window.predictions_panel
    assert panel.note.isVisible() and "synthetic shapes" in panel.note_text.text()
    assert "DeiT-S" in panel.note_button.text()
    open_and_wait(qtbot, window, folder / "0-scene-cube.png")
    assert not panel.note.isVisible()


def test_a_photo_on_the_shipped_model_is_not_given_a_class(qtbot, window, view):
    """The shipped model's out-of-domain detector flags a real photo: the answer says so instead of a shape."""
    photo = Path(__file__).resolve().parent.parent / "assets" / "samples" / "photo-cat.jpg"
    result = enter_and_wait(qtbot, window, photo)
    assert result.domain is not None and not result.domain.in_domain
    assert "don't know this kind of picture" in view.answer_text()
    assert result.predictions[0].label not in view.answer_text()


def test_the_attention_map_plays_through_the_layers(qtbot, window, view, folder):
    result = enter_and_wait(qtbot, window, folder / "0-scene-cube.png")
    layers = result.num_layers
    lens = window.state.shown.lens  # each layer says what the model would answer there (the logit lens)
    guesses = [result.labels[int(i)].replace("_", " ") for i in lens.cls_probabilities.argmax(axis=1)]
    assert view.layer == 0 and view.layer_count == layers
    assert view.caption_text().startswith(f"Layer 1 of {layers}: where the model looks — here it thinks "
                                          f"{guesses[0]} (")
    assert view.layer_timer.isActive() and view.layer_timer.interval() == 1000
    first = view.attention_part.picture.image().copy()
    view.layer_timer.timeout.emit()
    assert view.layer == 1 and view.caption_text().startswith(f"Layer 2 of {layers}: where the model looks")
    assert view.attention_part.picture.image() != first  # another layer, another map
    for _ in range(layers - 2):
        view.layer_timer.timeout.emit()
    assert view.caption_text().startswith(f"Layer {layers} of {layers}: where the model looks — here it thinks "
                                          f"{result.predictions[0].label.replace('_', ' ')} (")
    assert view.layer_timer.interval() > 1000  # rests longer on the last layer
    view.layer_timer.timeout.emit()
    assert view.layer == 0  # and plays again


def test_autoplay_moves_on_skips_a_corrupt_image_and_pauses_on_a_key(qtbot, window, view, folder):
    view.set_interval(5)
    first = enter_and_wait(qtbot, window, folder)
    assert first.source == str(folder / "0-scene-cube.png")
    assert view.autoplaying and view.autoplay_timer.isActive() and view.interval_s == 5
    assert [p.name for p in view.playlist][:2] == ["0-scene-cube.png", "1-broken.png"]

    # the next image is the broken one: a caption says it was skipped and the one after it is shown
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT):
        view.autoplay_timer.timeout.emit()
    assert view.result is first  # the previous image stays meanwhile
    assert view.status_text().startswith("Skipped 1-broken.png")
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        pass
    assert blocker.args[0].source == str(folder / "2-scene-torus.png") and view.result is blocker.args[0]
    assert "Skipped 1-broken.png" in view.status_text()  # the caption stays a while
    assert view.autoplay_timer.isActive()
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()]
    assert QApplication.activeModalWidget() is None  # calm: no dialog

    qtbot.keyClick(view, Qt.Key.Key_Question)  # any key pauses (and still does its job)
    assert not view.autoplaying and not view.autoplay_timer.isActive() and view.explanations_visible
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert view.autoplaying
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton)
    assert not view.autoplaying


def test_an_error_outside_autoplay_is_a_one_line_caption(qtbot, window, view, folder):
    result = enter_and_wait(qtbot, window, folder / "0-scene-cube.png")
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT):
        window.open_image(folder / "1-broken.png")
    assert view.result is result and "cube" in view.answer_text()
    assert "1-broken.png" in view.status_text() and "\n" not in view.status_text()
    assert view.isVisible() and not window.isVisible()


def test_no_text_is_smaller_than_24_px_at_1920x1080(qtbot, window, view, folder):
    result = enter_and_wait(qtbot, window, folder / "0-scene-cube.png")
    view.showNormal()  # the offscreen screen is smaller than a projector's
    view.resize(1920, 1080)
    view.toggle_explanations(True)  # the captions must be readable too
    qtbot.waitUntil(lambda: view.width() == 1920 and view.height() == 1080)
    QApplication.processEvents()
    shown = [w for w in view.findChildren(QLabel) if w.isVisibleTo(view) and w.text()]
    assert len(shown) >= 12  # answer, runner-ups, titles, scales, four explanations, keys, ...
    sizes = {w.text()[:30]: w.font().pixelSize() for w in shown}
    assert min(sizes.values()) >= 24, sizes
    assert view.answer_label.font().pixelSize() >= 64
    assert min(view.text_pixel_sizes().values()) >= 24
    # the explanations are written for the parts shown
    texts = explanations(result)
    assert f"{result.grid.num_patches} little squares" in texts["patch"]
    assert view.wrong_label.text() == texts["wrong"] and "wrong" in texts["wrong"]
    assert min(FONT_PX.values()) >= 24


def test_answer_lines_for_a_confident_and_an_unsure_prediction():
    from vitviz.engine import Prediction

    @dataclasses.dataclass
    class Fake:
        predictions: list

    answer, runner = answer_lines(Fake([Prediction("egg", 0, 0.999), Prediction("ball", 1, 0.001)]))
    assert "an <b" in answer and ">egg</b> — 99 %" in answer  # never "100 %" for a guess
    assert runner == "Nothing else came close."


def test_cli_present_option_reaches_the_app(monkeypatch, folder):
    import vitviz.app
    from vitviz import cli

    calls = []
    monkeypatch.setattr(vitviz.app, "run_app", lambda **kw: calls.append(kw) or 0)
    assert cli.main(["--present", str(folder), "--interval", "7"]) == 0
    assert calls[-1]["present"] == str(folder) and calls[-1]["interval"] == 7
    assert cli.main(["--present"]) == 0 and calls[-1]["present"] == ""
    assert cli.main([str(folder / "0-scene-cube.png")]) == 0 and calls[-1]["present"] is None


def test_vitviz_present_folder_starts_in_presentation_mode(qtbot, tmp_path, folder, monkeypatch):
    """The real entry point with ``--present FOLDER``: the first picture of the folder, full-screen, autoplaying;
    leaving shows the window."""
    from PySide6.QtCore import QTimer

    from vitviz.app import main_window, run_app

    class TmpSettings(QSettings):
        def __init__(self, *args):
            super().__init__(str(tmp_path / "app.ini"), QSettings.Format.IniFormat)

    seen = []

    class LeavingWindow(MainWindow):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.result_ready.connect(self._check)

        def _check(self, result):
            view = self.presentation
            seen.append((Path(result.source).name, view.active, view.autoplaying, view.interval_s,
                         self.isVisible(), view.answer_text()))
            view.leave()
            QTimer.singleShot(0, self.close)
            QTimer.singleShot(0, lambda: QApplication.exit(0))  # (this module's other window is still open)

    monkeypatch.setattr(main_window, "QSettings", TmpSettings)
    monkeypatch.setattr(main_window, "MainWindow", LeavingWindow)
    watchdog = QTimer()
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(lambda: QApplication.exit(3))
    watchdog.start(TIMEOUT)
    try:
        code = run_app(model=str(SHIPPED.config), device="cpu", present=str(folder), interval=9)
    finally:
        watchdog.stop()
    assert code == 0, seen
    name, active, autoplaying, interval, window_visible, answer = seen[0]
    assert name == "0-scene-cube.png" and active and autoplaying and interval == 9 and not window_visible
    assert answer.startswith("I think this is a")


def test_a_model_scored_per_word_says_what_it_sees_and_what_it_does_not():
    from vitviz.engine import Prediction

    @dataclasses.dataclass
    class Typed:
        labels: list
        probabilities: np.ndarray
        predictions: list
        image_embedding: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4))
        scoring: str = "sigmoid"

    labels = ["capsule", "red ball", "cube", "donut"]
    probs = np.array([0.98, 0.91, 0.02, 0.004])
    answer, runner = answer_lines(Typed(labels, probs, [Prediction("capsule", 0, 0.98)]))
    plain = re.sub("<[^>]+>", "", answer)
    assert plain == "I see a capsule (98 %) and a red ball (91 %)"
    assert runner == "No donut, no cube."
    nothing = Typed(labels, np.array([0.2, 0.1, 0.03, 0.01]), [Prediction("capsule", 0, 0.2)])
    answer, runner = answer_lines(nothing)
    assert re.sub("<[^>]+>", "", answer) == "I see none of your words — closest: capsule (20 %)"
    assert runner == "No donut, no cube, no red ball."
    softmax = dataclasses.replace(nothing, scoring="softmax")  # CLIP: the words share 100 %
    assert "I pick" in answer_lines(softmax)[0]
