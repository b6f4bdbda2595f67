"""The gallery window (vitviz.app.browse), driven offscreen: thumbnails, the head chosen once, sorting, and a click
that opens the image in the main window with the run's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from vitviz.app.browse import BrowseWindow  # noqa: E402
from vitviz.app.main_window import MainWindow  # noqa: E402
from vitviz.gallery import open_run  # noqa: E402

from .browse_runs import analyze_run, write_images  # noqa: E402

TIMEOUT = 30_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_checkpoint) -> Path:
    root = tmp_path_factory.mktemp("browse-app")
    write_images(root / "images", n=8)
    return analyze_run(root / "images", root / "run", tiny_checkpoint)


@pytest.fixture
def gallery(qtbot, run_dir):
    window = BrowseWindow(open_run(run_dir))
    qtbot.addWidget(window)
    window.resize(900, 600)
    window.show()
    yield window
    window.close()


def visible_rows(window: BrowseWindow) -> list[int]:
    view = window.view
    rows = []
    for row in range(window.model.rowCount()):
        if view.visualRect(window.model.index(row)).intersects(view.viewport().rect()):
            rows.append(row)
    return rows


def wait_drawn(qtbot, window: BrowseWindow) -> list[QImage]:
    rows = visible_rows(window)
    qtbot.waitUntil(lambda: all(window.model.is_drawn(r) for r in rows), timeout=TIMEOUT)
    return [window.model.index(r).data(Qt.ItemDataRole.DecorationRole) for r in rows]


def pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return arr[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def test_choosing_a_head_redraws_every_visible_thumbnail_with_that_head(qtbot, gallery, run_dir):
    gallery.set_overlay("head", layer=1, head=0)
    first = [pixels(im) for im in wait_drawn(qtbot, gallery)]
    assert len(first) == 9  # every image of the run (8 and a broken file) fits in the window
    gallery.set_overlay("head", layer=1, head=2)
    second = [pixels(im) for im in wait_drawn(qtbot, gallery)]
    renderer = gallery.model.renderer
    for row, (a, b) in enumerate(zip(first, second)):
        entry = gallery.model.gallery.entry(row)
        if entry.failed:
            np.testing.assert_array_equal(a, b)  # a failed input has no maps: drawn greyed the same way
            continue
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0
        from vitviz.gallery import Overlay

        np.testing.assert_array_equal(b, renderer.render(entry, Overlay("head", layer=1, head=2)).rgb)
    assert "layer 1, head 2" in gallery.count_label.text()


def test_sort_and_filter_controls_reorder_the_list(qtbot, gallery):
    gallery.set_sort("confidence")
    model = gallery.model
    confidences = [model.gallery.entry(r).confidence for r in range(model.rowCount())]
    assert confidences[:-1] == sorted(confidences[:-1])  # the failed input last
    gallery.status_combo.setCurrentIndex(gallery.status_combo.findData("failed"))
    assert model.rowCount() == 1
    entry = model.index(0).data(Qt.ItemDataRole.UserRole + 1)
    assert entry.failed and "not an image file" in model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    gallery.status_combo.setCurrentIndex(0)
    gallery.search_edit.setText("img3")
    assert [model.gallery.entry(r).name for r in range(model.rowCount())] == ["img3"]
    assert gallery.count_label.text().startswith("1 of 9 images")


def test_a_click_opens_the_image_in_the_main_window_with_the_runs_model(qtbot, run_dir, tmp_path, tiny_checkpoint):
    main = MainWindow(settings=QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat),
                      samples=tmp_path)
    qtbot.addWidget(main)
    with qtbot.waitSignal(main.model_ready, timeout=TIMEOUT):
        main.load_model(str(tiny_checkpoint), "cpu")
    window = main.open_results(run_dir)
    assert isinstance(window, BrowseWindow) and window.isVisible()
    window.search_edit.setText("img5")
    entry = window.model.gallery.entry(0)
    rect = window.view.visualRect(window.model.index(0))
    with qtbot.waitSignal(main.result_ready, timeout=TIMEOUT) as shown:
        qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert shown.args[0].source == entry.source
    assert main.state.model.name == "tiny"
    window.close()
    main.close()


def test_open_results_on_a_folder_that_is_not_a_run_says_so(qtbot, tmp_path):
    main = MainWindow(settings=QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat),
                      samples=tmp_path)
    qtbot.addWidget(main)
    with qtbot.waitSignal(main.error_shown, timeout=TIMEOUT) as error:
        assert main.open_results(tmp_path) is None
    assert "is not the output folder of a vitviz analyze run" in error.args[0]
    main.close()


def test_a_run_being_written_fills_in(qtbot, run_dir, tmp_path):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    table = (folder / "results.csv").read_text().splitlines(keepends=True)
    (folder / "results.csv").write_text("".join(table[:3]))  # the header and two rows so far
    (folder / ".partial").mkdir()
    window = BrowseWindow(open_run(folder))
    qtbot.addWidget(window)
    window.show()
    assert window.model.rowCount() == 2 and "still being written" in window.banner.message()
    (folder / "results.csv").write_text("".join(table))
    shutil.rmtree(folder / ".partial")
    qtbot.waitUntil(lambda: window.model.rowCount() == 9, timeout=TIMEOUT)
    window.close()


def test_analyze_folder_runs_in_the_background_and_the_gallery_fills_in(qtbot, tmp_path, tiny_checkpoint):
    main = MainWindow(settings=QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat),
                      samples=tmp_path)
    qtbot.addWidget(main)
    with qtbot.waitSignal(main.model_ready, timeout=TIMEOUT):
        main.load_model(str(tiny_checkpoint), "cpu")
    write_images(tmp_path / "images", n=3)
    window = main.analyze_folder(tmp_path / "images", tmp_path / "run")
    assert window.progress_bar.maximum() == 4  # three images and the broken file
    with qtbot.waitSignal(window.job_finished, timeout=120_000) as done:
        pass
    assert done.args[0] == 1  # the broken file failed, alone
    assert window.model.rowCount() == 4 and window.progress_bar.value() == 4
    assert "Analysed 4 images" in window.banner.message() and "1 failed" in window.banner.message()
    assert window.model.overlay.kind == "head" and window.run.model == "tiny"
    failed = [window.model.gallery.entry(r) for r in range(4) if window.model.gallery.entry(r).failed]
    assert len(failed) == 1 and "not an image file" in failed[0].error
    main.close()


def test_present_selection_steps_through_the_chosen_images(qtbot, run_dir, tmp_path, tiny_checkpoint):
    from PySide6.QtCore import QItemSelectionModel

    main = MainWindow(settings=QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat),
                      samples=tmp_path)
    qtbot.addWidget(main)
    with qtbot.waitSignal(main.model_ready, timeout=TIMEOUT):
        main.load_model(str(tiny_checkpoint), "cpu")
    window = main.open_results(run_dir)
    window.set_sort("name")
    chosen = [window.model.index(r) for r in (2, 5)]  # and the failed input, which cannot be shown
    failed_row = next(r for r in range(window.model.rowCount()) if window.model.gallery.entry(r).failed)
    for index in [*chosen, window.model.index(failed_row)]:
        window.view.selectionModel().select(index, QItemSelectionModel.SelectionFlag.Select)
    expected = [window.model.gallery.entry(i.row()).source for i in chosen]
    with qtbot.waitSignal(main.result_ready, timeout=TIMEOUT,
                          check_params_cb=lambda result: result.source == expected[0]):
        files = window.present_selection()
    assert files == expected
    assert main.presentation.playlist == [Path(f) for f in expected]
    with qtbot.waitSignal(main.result_ready, timeout=TIMEOUT,
                          check_params_cb=lambda result: result.source == expected[1]):
        main.presentation.next_image()
    main.presentation.leave()
    main.close()


def test_cancelling_an_analysis_keeps_what_it_wrote(qtbot, tmp_path, tiny_checkpoint):
    # as when the app is started with `&` from a script: Ctrl+C ignored, which the run's process inherits
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _cancel_a_run(qtbot, tmp_path, tiny_checkpoint)
    finally:
        signal.signal(signal.SIGINT, previous)


def _cancel_a_run(qtbot, tmp_path, tiny_checkpoint) -> None:
    main = MainWindow(settings=QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat),
                      samples=tmp_path)
    qtbot.addWidget(main)
    with qtbot.waitSignal(main.model_ready, timeout=TIMEOUT):
        main.load_model(str(tiny_checkpoint), "cpu")
    write_images(tmp_path / "images", n=300)
    window = main.analyze_folder(tmp_path / "images", tmp_path / "run")
    with qtbot.waitSignal(window.job.progress, timeout=120_000):
        pass  # the first image is written
    with qtbot.waitSignal(window.job_finished, timeout=60_000):
        window.cancel_button.click()
    assert "Analysis cancelled after" in window.banner.message()
    assert 0 < window.model.rowCount() < 301
    written = [window.model.gallery.entry(r) for r in range(window.model.rowCount())]
    assert all((tmp_path / "run" / e.name).is_dir() for e in written if not e.failed)
    main.close()


def test_vitviz_browse_opens_the_run_with_a_thumbnail_process(run_dir, monkeypatch):
    import vitviz.app.browse.window as window_module
    from vitviz.cli import main

    opened = {}

    def fake_run_browser(run, model=None, device="auto", process=None, window_class=None):
        opened.update(run=run, model=model, device=device, process=process)
        return 0

    monkeypatch.setattr(window_module, "run_browser", fake_run_browser)
    assert main(["browse", str(run_dir), "--model", "other-model", "--device", "cpu"]) == 0
    try:
        assert opened["run"].folder == run_dir and len(opened["run"].entries) == 9
        assert opened["model"] == "other-model" and opened["device"] == "cpu"
        process = opened["process"]
        entry = next(e for e in opened["run"].entries if not e.failed)
        from vitviz.gallery import Overlay

        process.requests.send(((entry.name, Overlay()), entry, Overlay("head", 1, 0), (3, 3, [])))
        assert process.answers.poll(30)
        [(key, rgb, note)] = process.answers.recv()  # the process draws what the window would ask for
        assert key[0] == entry.name and rgb.shape[2] == 3 and note == ""
    finally:
        opened["process"].close()
