"""Hardening of the desktop window (offscreen, tiny checkpoint): bad files never replace what is shown, bad models
never replace the working one, out-of-memory falls back, rapid use shows only the newest image and leaks no thread,
and closing during inference stops the worker promptly."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
import torch  # noqa: E402
from PySide6.QtCore import QSettings, QThread, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import vitviz.images  # noqa: E402
from vitviz.app import main_window  # noqa: E402
from vitviz.app.main_window import MainWindow  # noqa: E402

from .hardening_cases import BAD_CHECKPOINTS, BAD_IMAGES, ODD_IMAGES, PWNED_MARKER, exif_rotated  # noqa: E402

TIMEOUT = 30_000  # ms; generous for two busy CPU cores


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "vitviz.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings, tmp_path, tiny_checkpoint):
    samples = tmp_path / "samples"
    samples.mkdir()
    w = MainWindow(settings=settings, samples=samples)
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    with qtbot.waitSignal(w.model_ready, timeout=TIMEOUT):
        w.load_model(str(tiny_checkpoint), "cpu")
    yield w
    w.close()


def open_and_wait(qtbot, window, source):
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as blocker:
        window.open_image(source)
    return blocker.args[0]


def snapshot(window):
    """What the user sees of the current result."""
    return {
        "result": window.current_result,
        "image": window.input_panel.canvas.rgb.copy(),
        "tiles": [window.attention_panel.tiles.tiles[i].rgb.copy() for i in range(window.attention_panel.tile_count())],
        "labels": window.predictions_panel.chart.labels(),
        "depth": window.depth_panel.canvas.rgb.copy(),
        "title": window.windowTitle(),
        "model": window.current_model,
    }


def assert_unchanged(window, before):
    assert window.current_result is before["result"]
    np.testing.assert_array_equal(window.input_panel.canvas.rgb, before["image"])
    assert window.attention_panel.tile_count() == len(before["tiles"])
    for i, tile in enumerate(before["tiles"]):
        np.testing.assert_array_equal(window.attention_panel.tiles.tiles[i].rgb, tile)
    assert window.predictions_panel.chart.labels() == before["labels"]
    np.testing.assert_array_equal(window.depth_panel.canvas.rgb, before["depth"])
    assert window.windowTitle() == before["title"]
    assert window.current_model is before["model"]


def python_and_qt_threads(window) -> tuple[int, int]:
    return threading.active_count(), len(window.findChildren(QThread))


def os_threads() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------ bad images


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_shows_the_reason_and_keeps_the_previous_results(kind, qtbot, window, photo, tmp_path):
    open_and_wait(qtbot, window, photo)
    before = snapshot(window)
    make, reason = BAD_IMAGES[kind]
    path = make(tmp_path)
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.open_image(path)
    message = blocker.args[0]
    assert path.name in message and reason in message and "\n" not in message
    assert window.banner.isVisible() and reason in window.banner.message()
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    assert_unchanged(window, before)
    assert reason in window.banner.message()  # still explained once the worker is idle
    # a model switch re-analyses what is shown, not the refused file
    with qtbot.waitSignal(window.result_ready, timeout=TIMEOUT) as again:
        window.load_model(window.current_model.spec)
    assert again.args[0].source == str(photo)


def test_odd_images_open_with_their_notices(qtbot, window, tmp_path):
    for kind, (make, notice) in ODD_IMAGES.items():
        result = open_and_wait(qtbot, window, make(tmp_path))
        assert result.grid.num_patches >= 1, kind
        np.testing.assert_array_equal(window.input_panel.canvas.rgb, result.image)
        if notice:
            assert window.input_panel.notices.isVisible() and notice in window.input_panel.notices.text(), kind


def test_exif_rotated_image_is_shown_upright(qtbot, window, tmp_path):
    result = open_and_wait(qtbot, window, exif_rotated(tmp_path))
    shown = window.input_panel.canvas.rgb
    h, w = shown.shape[:2]
    assert h > w  # portrait, as the camera was held
    assert shown[2, w // 2, 0] > 200 and shown[2, w // 2, 2] < 60  # red on top
    assert shown[-3, w // 2, 2] > 200 and shown[-3, w // 2, 0] < 60  # blue at the bottom
    assert result.grid.original_size == (20, 40)
    assert "EXIF" in window.input_panel.notices.text() and window.input_panel.notices.isVisible()
    assert window.depth_panel.canvas.rgb.shape[:2] == (h, w)


def test_bad_image_without_a_model_keeps_the_previous_preview(qtbot, settings, tmp_path, photo, monkeypatch):
    monkeypatch.setenv("VITVIZ_WEIGHTS", str(tmp_path / "no-weights"))
    samples = tmp_path / "samples"
    samples.mkdir()
    w = MainWindow(settings=settings, samples=samples)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.preview_shown, timeout=TIMEOUT):
        w.open_image(photo)
    image = w.input_panel.canvas.rgb.copy()
    with qtbot.waitSignal(w.error_shown, timeout=TIMEOUT) as blocker:
        w.open_image(BAD_IMAGES["decompression-bomb"][0](tmp_path))
    assert "bomb.png" in blocker.args[0] and "decompression bomb" in blocker.args[0]
    qtbot.waitUntil(lambda: not w.is_busy, timeout=TIMEOUT)
    np.testing.assert_array_equal(w.input_panel.canvas.rgb, image)
    assert w.windowTitle().startswith("photo.jpg")
    w.close()


# ------------------------------------------------------------------------------------------------ bad models


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_bad_checkpoint_shows_the_reason_and_the_previous_model_keeps_working(kind, qtbot, window, photo, images,
                                                                               tmp_path, tiny_checkpoint):
    PWNED_MARKER.unlink(missing_ok=True)
    open_and_wait(qtbot, window, photo)
    before = snapshot(window)
    make, reason = BAD_CHECKPOINTS[kind]
    spec = make(tiny_checkpoint, tmp_path / "ckpt")
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.load_model(str(spec))
    assert reason in blocker.args[0] and "\n" not in blocker.args[0]
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    assert_unchanged(window, before)
    assert window.model_combo.currentData() == before["model"].spec
    assert reason in window.banner.message()
    assert not PWNED_MARKER.exists()
    # the previous model still analyses new images
    result = open_and_wait(qtbot, window, images[0])
    assert result.model_name == "tiny" and result.source == str(images[0])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Twenty small distinct images (distinct sizes, so each result is recognisable)."""
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(20):
        p = folder / f"img{i:02d}.png"
        Image.fromarray((rng.random((32 + 8 * (i % 5), 40 + 8 * (i // 5), 3)) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------- runtime errors


def test_unexpected_engine_error_is_a_message_and_the_results_stay(qtbot, window, photo, images, monkeypatch):
    open_and_wait(qtbot, window, photo)
    before = snapshot(window)
    engine = window.session.worker.engine  # noqa: SLF001 - the worker is idle between requests
    real = engine._analyze  # noqa: SLF001

    def weird(image, *args, **kwargs):
        if str(image) == str(images[1]):
            raise RuntimeError("shape '[1, 3, -1]' is invalid for input of size 7")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(engine, "_analyze", weird)
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.open_image(images[1])
    assert blocker.args[0] == ("Unexpected error while analysing img01.png: RuntimeError: "
                               "shape '[1, 3, -1]' is invalid for input of size 7")
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    assert_unchanged(window, before)
    assert open_and_wait(qtbot, window, images[2]).source == str(images[2])


def test_cuda_out_of_memory_falls_back_to_the_cpu_and_says_so(qtbot, window, photo, monkeypatch):
    engine = window.session.worker.engine  # noqa: SLF001 - the worker is idle between requests
    real = engine._analyze  # noqa: SLF001
    devices = []

    def oom_on_cuda(*args, **kwargs):
        devices.append(engine.device.type)
        if engine.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_analyze", oom_on_cuda)
    monkeypatch.setattr(engine, "device", torch.device("cuda"))  # pretend the model is on a GPU
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    window.state.model = dataclasses.replace(window.state.model, device="cuda")  # noqa: SLF001 - as if loaded on the GPU
    errors = []
    window.error_shown.connect(errors.append)
    result = open_and_wait(qtbot, window, photo)
    assert devices == ["cuda", "cpu"] and not errors
    assert result.device == "cpu" and engine.device.type == "cpu"
    assert any("out of memory" in n for n in result.notices)
    assert window.input_panel.notices.isVisible() and "out of memory" in window.input_panel.notices.text()
    assert "cpu" in window.timing_label.text()
    # the Details panel follows the model to the CPU instead of still naming the GPU
    details = window.details_panel
    assert details.value("Device") == "cpu" and "cuda" not in details.text()
    assert window.predictions_panel.chart.labels() == [p.label for p in result.predictions]


# --------------------------------------------------------------------------------------------------- threads


def test_decoding_and_inference_never_run_on_the_ui_thread(qtbot, window, photo, tmp_path, monkeypatch):
    ui = threading.get_ident()
    seen: dict[str, set[int]] = {"decode": set(), "forward": set()}
    real_load = vitviz.images.load_image

    def load(*args, **kwargs):
        seen["decode"].add(threading.get_ident())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(vitviz.images, "load_image", load)
    model = window.session.worker.engine.model  # noqa: SLF001
    real_forward = model.forward

    def forward(*args, **kwargs):
        seen["forward"].add(threading.get_ident())
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    open_and_wait(qtbot, window, photo)
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT):
        window.open_image(BAD_IMAGES["truncated-png"][0](tmp_path))
    assert seen["decode"] and seen["forward"]
    assert ui not in seen["decode"] | seen["forward"]


def test_twenty_rapid_opens_show_only_the_last_and_leak_no_thread(qtbot, window, photo, images):
    open_and_wait(qtbot, window, photo)  # every pool PyTorch and Qt start lazily exists from here on
    qtbot.wait(50)
    baseline, baseline_os = python_and_qt_threads(window), os_threads()
    shown = []
    window.result_ready.connect(shown.append)
    ids = [window.open_image(p) for p in images]
    assert ids == sorted(ids) and window.is_busy
    assert images[-1].name in window.busy_label.text()
    qtbot.waitUntil(lambda: not window.is_busy, timeout=TIMEOUT)
    qtbot.wait(100)  # let any stray queued answer arrive
    assert [r.source for r in shown] == [str(images[-1])]
    assert window.current_result.source == str(images[-1]) and window.windowTitle().startswith(images[-1].name)
    np.testing.assert_array_equal(window.input_panel.canvas.rgb, shown[0].image)
    assert python_and_qt_threads(window) == baseline == (baseline[0], 1)
    if baseline_os is not None:
        assert os_threads() <= baseline_os


# --------------------------------------------------------------------------------------------------- closing


def test_closing_during_inference_stops_the_worker_promptly(qtbot, window, photo, monkeypatch):
    """Every block of the model sleeps 1 s: closing after the first block began stops the worker once that block
    ends (cancellation is checked between blocks), not after the whole forward pass."""
    python_threads = threading.active_count()
    blocks = window.session.worker.engine.model.blocks  # noqa: SLF001
    started = threading.Event()
    ran = []

    def slow(real):
        def forward(*args, **kwargs):
            started.set()
            time.sleep(1.0)
            ran.append(1)
            return real(*args, **kwargs)

        return forward

    for block in blocks:
        monkeypatch.setattr(block, "forward", slow(block.forward))
    assert len(blocks) == 3
    shown = []
    window.result_ready.connect(shown.append)
    window.open_image(photo)
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT)
    t0 = time.perf_counter()
    window.close()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.9  # the whole forward pass would have needed 2 s more
    assert not window.session.thread.isRunning() and window.session.thread.isFinished()  # noqa: SLF001
    assert len(ran) == 1
    qtbot.wait(100)
    assert shown == []  # nothing is drawn into a closed window
    assert threading.active_count() <= python_threads


def test_closing_during_a_model_download_stops_the_download(qtbot, window, tiny_checkpoint, monkeypatch):
    """A pretrained model that would download for 20 s: closing the window stops it at the next chunk instead of
    leaving a thread that Qt would destroy while it still runs."""
    from vitviz.models import zoo
    from vitviz.models.checkpoint import load_checkpoint
    from vitviz.errors import LoadCancelled

    started = threading.Event()
    chunks, cancelled = [], []

    def slow_download(spec, progress=None, cache=None):
        try:
            for i in range(400):
                progress(i, 400)
                chunks.append(i)
                started.set()
                time.sleep(0.05)
        except LoadCancelled:
            cancelled.append(len(chunks))
            raise
        return load_checkpoint(tiny_checkpoint)

    monkeypatch.setattr(zoo, "is_known", lambda spec: spec == "fake-hub-model")
    monkeypatch.setattr(zoo, "load", slow_download)
    errors = []
    window.error_shown.connect(errors.append)
    window.load_model("fake-hub-model", "cpu")
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT)
    window.close()
    assert not window.session.thread.isRunning() and window.session.thread.isFinished()  # noqa: SLF001
    assert cancelled and cancelled[0] < 400  # stopped part-way, not after the whole download
    qtbot.wait(100)
    assert errors == []  # a cancelled download is not an error to show


def test_run_app_returns_0_when_the_window_is_closed(qtbot, tmp_path, tiny_checkpoint, photo, monkeypatch):
    """The real entry point: window shown, model loaded, image analysed, window closed -> exit status 0."""
    from vitviz.app import run_app

    class TmpSettings(QSettings):
        def __init__(self, *args):
            super().__init__(str(tmp_path / "app.ini"), QSettings.Format.IniFormat)

    opened = []

    class ClosingWindow(MainWindow):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)
            self.result_ready.connect(lambda _r: QTimer.singleShot(0, self.close))

    monkeypatch.setattr(main_window, "QSettings", TmpSettings)
    monkeypatch.setattr(main_window, "MainWindow", ClosingWindow)
    app = QApplication.instance()
    assert app.quitOnLastWindowClosed()
    # a window of an earlier test left open would keep the event loop alive
    assert [w for w in app.topLevelWidgets() if w.isVisible()] == []
    watchdog = QTimer()
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(lambda: QApplication.exit(3))
    watchdog.start(TIMEOUT)
    try:
        code = run_app(image=str(photo), model=str(tiny_checkpoint), device="cpu")
    finally:
        watchdog.stop()
    assert code == 0
    [w] = opened
    assert w.current_result is not None and w.current_result.source == str(photo)
    assert not w.session.thread.isRunning()  # noqa: SLF001
    assert (tmp_path / "app.ini").is_file()  # the geometry went to our settings, not the user's


def _run_app_quitting_after_first_result(tmp_path, monkeypatch, **kwargs) -> int:
    """``run_app`` with ``VITVIZ_QUIT_AFTER_FIRST_RESULT=1`` (as CI launches the README's command), settings in
    ``tmp_path``, and a watchdog that fails the test rather than hang it."""
    from vitviz.app import run_app

    class TmpSettings(QSettings):
        def __init__(self, *args):
            super().__init__(str(tmp_path / "app.ini"), QSettings.Format.IniFormat)

    monkeypatch.setattr(main_window, "QSettings", TmpSettings)
    monkeypatch.setenv("VITVIZ_QUIT_AFTER_FIRST_RESULT", "1")
    watchdog = QTimer()
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(lambda: QApplication.exit(3))
    watchdog.start(TIMEOUT)
    try:
        return run_app(device="cpu", **kwargs)
    finally:
        watchdog.stop()


def test_quit_after_first_result_exits_0_once_the_analysis_is_shown(qtbot, tmp_path, tiny_checkpoint, photo,
                                                                    monkeypatch):
    opened = []
    monkeypatch.setattr(main_window.MainWindow, "startup", _recording(main_window.MainWindow.startup, opened))
    code = _run_app_quitting_after_first_result(tmp_path, monkeypatch, image=str(photo), model=str(tiny_checkpoint))
    assert code == 0
    [w] = opened
    assert w.current_result is not None and w.current_result.source == str(photo)
    assert not w.isVisible() and not w.session.thread.isRunning()  # noqa: SLF001


def test_quit_after_first_result_exits_1_naming_the_error(qtbot, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    code = _run_app_quitting_after_first_result(tmp_path, monkeypatch, image=str(broken), model=str(tiny_checkpoint))
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("vitviz: error:") and "broken.jpg" in err and "not an image file" in err


def _recording(startup, opened: list):
    def wrapped(self, *args, **kwargs):
        opened.append(self)
        return startup(self, *args, **kwargs)

    return wrapped


# ------------------------------------------------------------------------------------ the app survives its bugs


def test_a_bug_in_a_views_override_becomes_a_message_and_the_window_goes_on(qtbot, window, photo, tmp_path,
                                                                              monkeypatch):
    from vitviz.app.exception_guard import install_exception_guard

    open_and_wait(qtbot, window, photo)
    panel = window.attention_panel
    assert panel.isVisible()

    def broken_paint(event):
        raise RuntimeError("a bug in the attention view")

    log = tmp_path / "vitviz.log"
    with qtbot.capture_exceptions() as caught:  # pytest-qt's hook: the guard passes the exceptions on to it
        guard = install_exception_guard(window, log)
        try:
            # on the instance: PySide reads an override from there each time (patching the class can crash it)
            monkeypatch.setattr(panel, "paintEvent", broken_paint)
            with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as shown:
                panel.update()
            assert "RuntimeError" in shown.args[0] and "a bug in the attention view" in shown.args[0]
            assert "a bug in the attention view" in window.banner.message()
            result = open_and_wait(qtbot, window, photo)  # the window still answers, with the view still broken
            assert window.current_result is result
            monkeypatch.undo()
            qtbot.wait(50)
        finally:
            guard.uninstall()
    assert caught and all("a bug in the attention view" in str(exc) for _, exc, _ in caught)
    text = log.read_text()
    assert text.count("Traceback") == 1 and "broken_paint" in text  # logged once, however often it repeated
    assert window.isVisible()


def test_a_bug_in_a_views_show_event_when_its_tab_is_opened_becomes_a_message(qtbot, window, tmp_path, monkeypatch):
    from vitviz.app.exception_guard import install_exception_guard

    tabs, panel = window.center_views, window.features_panel
    assert tabs.currentWidget() is not panel

    def broken_show(event):
        raise ValueError("a bug in the features view")

    with qtbot.capture_exceptions() as caught:
        guard = install_exception_guard(window, tmp_path / "vitviz.log")
        try:
            monkeypatch.setattr(panel, "showEvent", broken_show)
            with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as shown:
                QTimer.singleShot(0, lambda: tabs.setCurrentWidget(panel))  # as a click on its tab does
            monkeypatch.undo()
        finally:
            guard.uninstall()
    assert "ValueError" in shown.args[0] and "a bug in the features view" in shown.args[0]
    assert len(caught) == 1 and window.isVisible()
    tabs.setCurrentIndex(0)
    assert tabs.currentIndex() == 0  # the tabs still answer


def test_a_bug_in_a_slot_becomes_a_message(qtbot, window, tmp_path):
    from vitviz.app.exception_guard import install_exception_guard

    def broken_slot():
        raise KeyError("missing entry")

    with qtbot.capture_exceptions() as caught:
        guard = install_exception_guard(window, tmp_path / "vitviz.log")
        try:
            with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as shown:
                QTimer.singleShot(0, broken_slot)
        finally:
            guard.uninstall()
    assert len(caught) == 1 and "KeyError in broken_slot" in shown.args[0]


def test_export_all_maps_asks_before_replacing_an_earlier_export(qtbot, window, photo, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from vitviz.app import dialogs

    open_and_wait(qtbot, window, photo)
    monkeypatch.setattr(dialogs, "ask_folder", lambda *args: str(tmp_path))
    answers, asked = [], []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args[2]) or answers.pop(0))
    with qtbot.waitSignal(window.export_finished, timeout=TIMEOUT):
        window.act_export_maps.trigger()  # a new folder: no question
    assert not asked
    target = tmp_path / f"{photo.stem}-vitviz"
    (target / "result.json").write_text("the earlier export\n")

    answers.append(QMessageBox.StandardButton.Cancel)
    with qtbot.assertNotEmitted(window.export_finished, wait=500):
        window.act_export_maps.trigger()
    assert len(asked) == 1 and str(target) in asked[0]
    assert (target / "result.json").read_text() == "the earlier export\n"  # kept

    answers.append(QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.export_finished, timeout=TIMEOUT):
        window.act_export_maps.trigger()
    assert len(asked) == 2 and json.loads((target / "result.json").read_text())["source"] == str(photo)
