"""Every text of the window is readable: no label is cut off at the sizes the app supports (1280x800 and up), and no
text uses a character its font lacks (shown as a box)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtGui import QFontDatabase, QFontMetrics, QTextDocument  # noqa: E402
from PySide6.QtWidgets import QAbstractButton, QApplication, QGroupBox, QLabel, QTabBar, QWidget  # noqa: E402

from vitviz.app.main_window import MainWindow  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def transparent(tmp_path_factory) -> Path:
    """A scene with an alpha channel: the Input panel notes "transparent areas shown on white"."""
    rgba = np.asarray(Image.open(SAMPLES / "scene-cube.png").convert("RGBA")).copy()
    rgba[:20, :, 3] = 0
    path = tmp_path_factory.mktemp("alpha") / "alpha.png"
    Image.fromarray(rgba).save(path)
    return path


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat)
    (tmp_path / "samples").mkdir()
    w = MainWindow(settings=settings, samples=tmp_path / "samples")
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.model_ready, timeout=TIMEOUT):
        w.load_model("vitviz-mini", "cpu")  # the shipped model: it has the out-of-domain detector
    yield w
    w.close()


def _show(qtbot, window, size, image) -> None:
    window.resize(*size)
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT):
        window.open_image(str(image))
    for _ in range(5):
        QApplication.processEvents()
        qtbot.wait(20)


def _visible_texts(window: QWidget) -> list[tuple[QWidget, str]]:
    """(widget, plain text) of every visible label, button, group box and tab of the window."""
    found: list[tuple[QWidget, str]] = []
    for w in window.findChildren(QWidget):
        if not w.isVisible():
            continue
        if isinstance(w, QLabel) and w.text():
            doc = QTextDocument()
            doc.setHtml(w.text()) if "<" in w.text() else doc.setPlainText(w.text())
            found.append((w, doc.toPlainText()))
        elif isinstance(w, QAbstractButton) and w.text():
            found.append((w, w.text().replace("&", "")))
        elif isinstance(w, QGroupBox) and w.title():
            found.append((w, w.title()))
        elif isinstance(w, QTabBar):
            found += [(w, w.tabText(i)) for i in range(w.count())]
    return found


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_no_label_is_cut_off(qtbot, window, size, transparent):
    for image in (SAMPLES / "photo-cat.jpg", transparent):  # the out-of-domain note; the Input panel's notices
        _show(qtbot, window, size, image)
        assert (window.width(), window.height()) == size  # the window fits a screen of that size
        if image.name == "photo-cat.jpg":
            assert window.predictions_panel.note.isVisible()
            chart = window.predictions_panel.chart
            assert chart.height() >= chart.minimumSizeHint().height()  # the bars are not squeezed under the note
        for label in [w for w, _ in _visible_texts(window) if isinstance(w, QLabel) and w.wordWrap()]:
            needed = label.heightForWidth(label.width())
            assert needed <= label.height(), (
                f"{label.text()[:60]!r} needs {needed} px of height at {size}, gets {label.height()}")


def test_no_text_uses_a_character_its_font_lacks(qtbot, window, transparent):
    if not QFontDatabase.families():
        pytest.skip("no fonts installed")
    for image in (SAMPLES / "photo-cat.jpg", transparent, SAMPLES / "scene-cone.png"):
        _show(qtbot, window, (1600, 1000), image)
        for widget, text in _visible_texts(window):
            metrics = QFontMetrics(widget.font())
            lacking = {ch for ch in text if not ch.isspace() and not metrics.inFontUcs4(ord(ch))}
            assert not lacking, f"{text[:60]!r} ({type(widget).__name__}) uses {sorted(lacking)}, not in its font"
