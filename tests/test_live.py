"""Live mode: sources, capture thread, controller (pytest-qt, offscreen), smoothing, recording, faults.

Video tests need PyAV (the ``live`` extra, which CI installs) and are skipped without it; GIFs need only Pillow.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitviz.engine import AnalysisResult, Engine, PatchGrid, prepare_image
from vitviz.live import (
    CameraError,
    CaptureThread,
    DomainWindow,
    LatestFrame,
    MissingLiveExtra,
    Recorder,
    VideoError,
    ema_result,
    live_extra_available,
    open_source,
)
from vitviz.live.scene import DEFAULT_SCENE_SEED, SceneSource, animate_spec
from vitviz.models.domain import DomainVerdict
from vitviz.live.sources import Frame, VideoFileSource
from vitviz.synthetic.scenes import random_spec, render_spec

needs_av = pytest.mark.skipif(not live_extra_available(), reason='PyAV missing: pip install -e ".[live]"')

LEVEL = 5  # a test video's frame i is a flat grey of level LEVEL * i (+ a little noise): its index can be read back


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> Engine:
    return Engine(str(tiny_checkpoint), device="cpu")


@pytest.fixture()
def controller(qtbot, engine):
    from vitviz.app.live import LiveController

    ctl = LiveController(lambda: engine)
    pairs: list = []
    errors: list = []
    ctl.frame_ready.connect(lambda frame, shown: pairs.append((frame, shown)))
    ctl.error.connect(lambda message, fatal: errors.append((message, fatal)))
    ctl.pairs, ctl.errors = pairs, errors
    yield ctl
    assert ctl.stop(), "a live thread did not stop within a second"


def small_scene(frames: int = 8, prerender: bool = False) -> SceneSource:
    return SceneSource(frames=frames, fps=40.0, size=48, prerender=prerender)


def write_video(path: Path, n: int = 30, fps: float = 30.0, size: tuple[int, int] = (48, 64)) -> Path:
    rng = np.random.default_rng(0)
    rec = Recorder(path, fps_hint=fps)
    for i in range(n):
        img = np.full((*size, 3), LEVEL * i, np.float32) + rng.normal(0, 2, (*size, 3))
        assert rec.add(img.clip(0, 255).astype(np.uint8), i / fps, block=True)
    return rec.close()


def index_of(image: np.ndarray) -> int:
    return int(round(float(image.mean()) / LEVEL))


# ------------------------------------------------------------------------------------------ pure parts


def test_latest_frame_keeps_only_the_newest_and_counts_drops():
    slot = LatestFrame()
    for i in range(3):
        slot.put(Frame(np.zeros((2, 2, 3), np.uint8), i, i / 10))
    assert slot.take(0).index == 2
    assert slot.dropped == 2
    assert slot.take(0.01) is None


def test_scene_loop_is_seamless_and_keeps_exact_depth():
    spec = random_spec(1)
    start, end = animate_spec(spec, 0.0), animate_spec(spec, 1.0)
    np.testing.assert_allclose(start["camera"]["position"], spec["camera"]["position"], atol=1e-9)
    np.testing.assert_allclose(end["camera"]["position"], start["camera"]["position"], atol=1e-9)
    np.testing.assert_allclose(end["objects"][0]["rotation"], start["objects"][0]["rotation"], atol=1e-9)
    quarter = render_spec(animate_spec(spec, 0.25), 32)
    assert np.isfinite(quarter.depth).all() and (quarter.depth > 0).all()
    assert not np.array_equal(quarter.image, render_spec(spec, 32).image)  # the view moved


def test_ema_smoothing_blends_maps_and_is_pure():
    def result(value: float, depth_shape=(4, 4)) -> AnalysisResult:
        return AnalysisResult(
            "x", np.zeros((4, 4, 3), np.uint8), PatchGrid(1, 1, 4, (4, 4), (4, 4)), "m", "cpu",
            cls_attention=np.full((1, 1, 1, 1), value, np.float32), depth=np.full(depth_shape, value, np.float32),
            depth_kind="metric")

    a, b = result(0.0), result(1.0)
    out = ema_result(a, b, 0.25)
    assert float(out.cls_attention[0, 0, 0, 0]) == pytest.approx(0.25)
    assert float(out.depth[0, 0]) == pytest.approx(0.25)
    assert float(b.depth[0, 0]) == 1.0 and float(a.depth[0, 0]) == 0.0  # inputs untouched
    assert ema_result(None, b, 0.25) is b
    fresh = ema_result(a, result(1.0, depth_shape=(8, 8)), 0.25)  # new size: starts afresh
    assert float(fresh.depth[0, 0]) == 1.0


def test_video_without_the_extra_says_what_to_install(monkeypatch, tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0" * 64)
    monkeypatch.setitem(sys.modules, "av", None)  # import av now fails, as without the extra
    assert not live_extra_available()
    with pytest.raises(MissingLiveExtra, match=r'pip install -e "\.\[live\]"'):
        VideoFileSource(path).open()
    with pytest.raises(MissingLiveExtra, match=r'pip install -e "\.\[live\]"'):
        Recorder(tmp_path / "out.mp4")


def test_missing_camera_is_a_clear_error():
    if Path("/dev/video99").exists() or not sys.platform.startswith("linux"):
        pytest.skip("needs Linux without /dev/video99")
    with pytest.raises(CameraError, match="no camera at /dev/video99"):
        open_source("/dev/video99").open()
    with pytest.raises(CameraError, match="no camera|there is no camera 99"):
        open_source("camera:99").open()


# ------------------------------------------------------------------------------------------ controller


def test_scene_frames_advance_and_results_belong_to_their_frame(qtbot, controller, engine):
    controller.start(small_scene(prerender=True))  # rendered ahead by a helper process
    qtbot.waitUntil(lambda: len(controller.pairs) >= 5, timeout=15000)
    frames = [f for f, _ in controller.pairs]
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})  # in order, none twice
    assert len({f.index for f in frames}) >= 3  # the loop moves
    cfg = engine.info.config
    for frame, shown in controller.pairs:
        assert frame.depth is not None and frame.depth.shape == frame.image.shape[:2]  # ground truth kept
        assert shown.result.source.endswith(f"frame {frame.index}")
        expected = prepare_image(Image.fromarray(frame.image), cfg.image_size, cfg.patch_size)
        np.testing.assert_array_equal(shown.result.image, expected)  # the result was computed from this frame
        assert shown.result.attention is not None and shown.result.attention.rollout_rows.shape[0] == cfg.depth
    stats = controller.stats()
    assert stats.shown >= 5 and stats.engine_ms > 0


def test_freeze_holds_the_frame_and_resume_goes_on(qtbot, controller):
    controller.start(small_scene())
    qtbot.waitUntil(lambda: len(controller.pairs) >= 2, timeout=15000)
    frozen = []
    controller.frozen_changed.connect(frozen.append)
    controller.freeze()
    qtbot.wait(100)  # a pair already in flight is discarded, not shown
    held, count = controller.last, len(controller.pairs)
    qtbot.wait(400)
    assert len(controller.pairs) == count and controller.last is held and controller.stats().frozen
    controller.toggle_freeze()
    qtbot.waitUntil(lambda: len(controller.pairs) >= count + 2, timeout=15000)
    assert frozen == [True, False]
    assert controller.pairs[-1][0].seq > held[0].seq


def test_stop_ends_every_thread_within_a_second(qtbot, controller):
    controller.start(small_scene())
    qtbot.waitUntil(lambda: len(controller.pairs) >= 1, timeout=15000)
    capture, analysis = controller._capture, controller._analysis
    t0 = time.perf_counter()
    assert controller.stop()
    assert time.perf_counter() - t0 < 1.0
    assert not capture.is_alive() and not analysis.is_alive()
    count = len(controller.pairs)
    qtbot.wait(200)
    assert len(controller.pairs) == count  # nothing arrives after stop


def test_quitting_waits_for_an_analysis_that_outlives_stop(qtbot, engine):
    """A frame's analysis cannot be cancelled mid-way: stop() gives up after its second, and quitting the app
    (finish) then waits for the frame, so that the process never exits with a thread inside PyTorch."""
    from vitviz.app.live import LiveController

    entered = threading.Event()

    class SlowEngine:
        def analyze(self, *args, **kwargs):
            entered.set()
            time.sleep(1.5)
            return engine.analyze(*args, **kwargs)

    slow = SlowEngine()
    ctl = LiveController(lambda: slow)
    ctl.start(small_scene())
    qtbot.waitUntil(entered.is_set, timeout=15000)
    analysis = ctl._analysis
    assert not ctl.stop(timeout=0.2) and analysis.is_alive()
    assert ctl.finish(timeout=10.0)
    assert not analysis.is_alive()


def test_live_mode_keeps_full_garbage_collections_short_and_restores_them(qtbot, controller):
    """While live, the objects made before it are frozen out of the collector (a full collection of the app's
    objects takes ~200 ms with the GIL held, a visible stall); stopping makes them collectable again."""
    import gc

    gc.unfreeze()
    before = len(gc.get_objects())
    controller.start(small_scene())
    assert gc.get_freeze_count() >= before
    qtbot.waitUntil(lambda: len(controller.pairs) >= 2, timeout=15000)
    assert len(gc.get_objects()) < before  # what a full collection scans now
    assert controller.stop()
    assert gc.get_freeze_count() == 0


def test_gif_recording_has_the_frames_shown(qtbot, controller, tmp_path):
    controller.start(small_scene())
    qtbot.waitUntil(lambda: len(controller.pairs) >= 1, timeout=15000)
    assert controller.start_recording(tmp_path / "clip.gif")
    start = len(controller.pairs)
    qtbot.waitUntil(lambda: len(controller.pairs) >= start + 6, timeout=15000)
    recorder = controller._recorder  # noqa: SLF001 - to read how many frames its encoder could not keep up with
    path = controller.stop_recording()
    shown = len(controller.pairs) - start
    assert recorder.written == shown - recorder.dropped and recorder.dropped <= shown // 2  # every kept frame written
    with Image.open(path) as gif:
        # Pillow stores a frame identical to the one before as a longer duration of that one (a busy machine shows
        # some frames twice), so the file has at most that many frames
        assert 1 <= gif.n_frames <= recorder.written
        assert gif.size == (48, 48)


@needs_av
def test_video_plays_with_results_of_the_shown_frame(qtbot, controller, tmp_path, engine):
    path = write_video(tmp_path / "ramp.mp4", n=30)
    controller.start(str(path))
    qtbot.waitUntil(lambda: len(controller.pairs) >= 5, timeout=15000)
    assert controller.source_info.kind == "video" and controller.source_info.frame_count == 30
    for frame, shown in controller.pairs:
        assert abs(index_of(frame.image) - frame.index) <= 1  # the frame is the one its index says
        assert abs(index_of(shown.result.image) - frame.index) <= 1  # and the result was made from it
    assert [f.index for f, _ in controller.pairs[:5]] == sorted(f.index for f, _ in controller.pairs[:5])
    assert controller.errors == []


@needs_av
def test_video_seek_and_step_while_frozen(qtbot, controller, tmp_path):
    path = write_video(tmp_path / "ramp.mp4", n=30)
    controller.start(str(path))
    qtbot.waitUntil(lambda: len(controller.pairs) >= 1, timeout=15000)
    controller.freeze()
    qtbot.wait(100)
    count = len(controller.pairs)
    controller.seek(20)
    qtbot.waitUntil(lambda: len(controller.pairs) > count, timeout=5000)
    assert controller.last[0].index == 20 and index_of(controller.last[0].image) == 20
    controller.step(1)
    qtbot.waitUntil(lambda: controller.last[0].index == 21, timeout=5000)
    controller.step(-1)
    qtbot.waitUntil(lambda: controller.last[0].index == 20, timeout=5000)
    assert controller.frozen


@needs_av
def test_mp4_recording_is_playable_with_the_expected_frame_count(qtbot, controller, tmp_path):
    import av

    controller.start(small_scene())
    qtbot.waitUntil(lambda: len(controller.pairs) >= 1, timeout=15000)
    assert controller.start_recording(tmp_path / "clip.mp4")
    start = len(controller.pairs)
    qtbot.waitUntil(lambda: len(controller.pairs) >= start + 8, timeout=15000)
    path = controller.stop_recording()
    shown = len(controller.pairs) - start
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == shown
    assert decoded[0].width == 48 and decoded[0].height == 48


@needs_av
def test_a_file_that_is_not_a_video_gives_the_banner_and_keeps_the_last_frame(qtbot, controller, tmp_path):
    good = write_video(tmp_path / "ramp.mp4", n=10)
    controller.start(str(good))
    qtbot.waitUntil(lambda: len(controller.pairs) >= 1, timeout=15000)
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    last = controller.last
    controller.start(str(junk))
    qtbot.waitUntil(lambda: bool(controller.errors), timeout=5000)
    message, fatal = controller.errors[-1]
    assert fatal and "holiday.mp4: not a video file, or a damaged one" in message
    assert controller.last is last  # what was shown stays


@needs_av
def test_damaged_frames_are_skipped_with_a_message(qtbot, controller, tmp_path):
    path = write_video(tmp_path / "ramp.mp4", n=40, size=(64, 96))
    data = bytearray(path.read_bytes())
    mid, span = len(data) // 3, len(data) // 4
    data[mid:mid + span] = np.random.default_rng(1).integers(0, 256, span, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    controller.loop = False
    ended = []
    controller.ended.connect(lambda: ended.append(True))
    controller.start(str(bad))
    # the frame in flight at the end is still shown: on a busy machine the first (traced) analysis can outlast
    # the clip
    qtbot.waitUntil(lambda: bool(ended) and bool(controller.pairs), timeout=15000)
    assert any("damaged.mp4: a damaged frame was skipped" in m and not fatal for m, fatal in controller.errors)
    assert controller.stats().damaged > 0


def test_missing_camera_gives_the_banner(qtbot, controller):
    if Path("/dev/video99").exists() or not sys.platform.startswith("linux"):
        pytest.skip("needs Linux without /dev/video99")
    controller.start("/dev/video99")
    qtbot.waitUntil(lambda: bool(controller.errors), timeout=5000)
    assert controller.errors[-1] == ("no camera at /dev/video99" + _present_hint(), True)


def _present_hint() -> str:
    from vitviz.live import list_cameras

    cams = list_cameras()
    return f" (cameras present: {', '.join(c.device for c in cams)})" if cams else " (no camera found)"


def test_webp_and_gif_play_without_pyav(tmp_path):
    frames = [Image.fromarray(np.full((16, 16, 3), LEVEL * i, np.uint8)) for i in range(4)]
    for suffix in (".gif", ".webp"):
        path = tmp_path / f"anim{suffix}"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0, lossless=True)
        with open_source(path) as src:
            got = []
            while (f := src.read()) is not None:
                got.append((f.index, index_of(f.image)))
        assert got == [(i, i) for i in range(4)], suffix
        assert src.fps == pytest.approx(20.0)


def test_video_error_names_a_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        open_source(tmp_path / "nope.mkv").open()


def test_capture_thread_reports_an_unopenable_source(tmp_path):
    slot, errors = LatestFrame(), []
    thread = CaptureThread(open_source(tmp_path / "nope.webm"), slot, on_error=lambda m, f: errors.append((m, f)))
    thread.start()
    thread.join(2)
    assert not thread.is_alive() and errors and errors[0][1] is True and "no such file" in errors[0][0]


def test_cli_live_passes_the_source_to_the_app(monkeypatch, capsys):
    import vitviz.app
    from vitviz.cli import main

    calls = []
    monkeypatch.setattr(vitviz.app, "run_app", lambda **kw: calls.append(kw) or 0)
    assert main(["live"]) == 0 and calls[-1]["live"] == "scene"
    assert main(["live", "scene:4", "--model", "m"]) == 0 and calls[-1]["live"] == "scene:4"
    assert calls[-1]["model"] == "m"
    assert main(["live", "/no/such/clip.mp4"]) == 2
    assert "/no/such/clip.mp4: no such file" in capsys.readouterr().err
    assert len(calls) == 2


def test_window_grabs_become_rgb_arrays(qtbot):
    from PySide6.QtGui import QColor, QImage

    from vitviz.app.live import qimage_to_rgb

    image = QImage(7, 3, QImage.Format.Format_ARGB32)  # odd width: rows are padded in memory
    image.fill(QColor(10, 200, 30))
    rgb = qimage_to_rgb(image)
    assert rgb.shape == (3, 7, 3) and rgb.dtype == np.uint8
    assert (rgb == [10, 200, 30]).all()


class _FakeCamera:
    """What av.open returns for a camera: ``frames`` frames, then the device disappears (ENODEV)."""

    def __init__(self, frames: int) -> None:
        import types

        self.frames = frames
        self.streams = types.SimpleNamespace(video=[types.SimpleNamespace(average_rate=30, guessed_rate=30,
                                                                          thread_type=None)])

    def decode(self, _stream):
        import errno

        import av

        for i in range(self.frames):
            yield av.VideoFrame.from_ndarray(np.full((24, 32, 3), LEVEL * i, np.uint8), format="rgb24")
            time.sleep(0.15)  # slow enough that a busy machine analyses a frame before the camera goes
        raise OSError(errno.ENODEV, "No such device")

    def close(self) -> None:
        pass


@needs_av
def test_busy_camera_is_a_clear_error(monkeypatch, tmp_path):
    import errno

    import av

    from vitviz.live.sources import CameraSource

    device = tmp_path / "video0"
    device.touch()

    def busy(*args, **kwargs):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(av, "open", busy)
    with pytest.raises(CameraError, match="is busy: another program is using it"):
        CameraSource(str(device), name="Test cam").open()


@needs_av
def test_camera_unplugged_mid_stream_gives_the_banner_and_keeps_the_last_frame(qtbot, controller, monkeypatch,
                                                                               tmp_path):
    import av

    from vitviz.live.sources import CameraSource

    device = tmp_path / "video0"
    device.touch()
    monkeypatch.setattr(av, "open", lambda *a, **k: _FakeCamera(frames=6))
    controller.start(CameraSource(str(device), name="Test cam"))
    qtbot.waitUntil(lambda: bool(controller.errors), timeout=10000)
    assert controller.errors[-1] == ("Test cam is not there (unplugged?)", True)
    qtbot.wait(300)  # a frame already being analysed still arrives; then nothing more
    count = len(controller.pairs)
    qtbot.wait(300)
    assert count >= 1 and len(controller.pairs) == count and controller.last[0] is controller.pairs[-1][0]
    assert controller.source_info.kind == "camera"
    last_frame, last_shown = controller.last
    assert abs(index_of(last_shown.result.image) - last_frame.index) <= 1


@needs_av
@pytest.mark.parametrize("name, codec", [("clip.webm", "libvpx-vp9"), ("clip.mkv", "libx264"), ("clip.mov", "libx264")])
def test_other_containers_play_and_seek(tmp_path, name, codec):
    import av

    path = tmp_path / name
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), LEVEL * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with open_source(path) as src:
        assert src.frame_count == 12 and src.fps == pytest.approx(25.0)
        assert [index_of(src.read().image) for _ in range(3)] == [0, 1, 2]
        src.seek(9)
        frame = src.read()
        assert frame.index == 9 and index_of(frame.image) == 9


def test_the_window_follows_the_live_scene_and_freezes_it(qtbot, tiny_checkpoint, tmp_path):
    """The real window in live mode: every panel shows each frame's own result; freeze keeps one for the still tools."""
    from PySide6.QtCore import QSettings

    from vitviz.app.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "v.ini"), QSettings.Format.IniFormat),
                        samples=tmp_path)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model_ready, timeout=30_000):
        window.load_model(str(tiny_checkpoint), "cpu")
    frames = []
    window.live.controller.frame_ready.connect(lambda frame, shown: frames.append((frame, shown)))
    window.live.start("scene")
    qtbot.waitUntil(lambda: len(frames) >= 3, timeout=60_000)
    frame, shown = frames[-1]
    assert window.current_result is shown.result and f"frame {frame.index}" in shown.result.source
    np.testing.assert_array_equal(window.input_panel.canvas.rgb, shown.result.image)
    assert window.predictions_panel.chart.labels() == [p.label for p in shown.result.predictions]
    assert len({f.index for f, _ in frames}) == len(frames)  # frames advance

    window.live.act_freeze.trigger()
    qtbot.waitUntil(lambda: window.live.controller.frozen, timeout=5_000)
    held = window.current_result
    qtbot.wait(600)
    assert window.current_result is held  # frozen: the stream no longer replaces it
    window.live.act_truth.trigger()  # the scene's exact depth instead of the prediction
    assert "ground truth" in (window.current_result.depth_model_name or "")
    np.testing.assert_allclose(window.current_result.depth.mean(), window.live.controller.last[0].depth.mean(),
                               rtol=0.05)
    window.live.act_freeze.trigger()
    qtbot.waitUntil(lambda: window.current_result is not held, timeout=30_000)
    assert window.live.stop()
    assert "fps" in window.live.readout.text()
    window.close()


def test_live_menu_says_which_extra_video_needs(qtbot, monkeypatch, tmp_path):
    from PySide6.QtCore import QSettings

    import vitviz.app.live_mode as live_mode
    from vitviz.app.main_window import MainWindow

    monkeypatch.setattr(live_mode, "live_extra_available", lambda: False)
    window = MainWindow(settings=QSettings(str(tmp_path / "v.ini"), QSettings.Format.IniFormat), samples=tmp_path)
    qtbot.addWidget(window)
    window.live.menu.aboutToShow.emit()  # what opening the Live menu does
    assert '.[live]' in window.live.act_video.text() and '.[live]' in window.live.camera_menu.title()
    assert not window.live.camera_menu.isEnabled()
    window.close()


def test_the_default_live_scene_is_named_right_and_in_domain_on_its_loop():
    """The shipped model reads its own default live scene (benchmarks/choose_live_scene.py measured all 96 frames;
    here every fourth of them)."""
    source = SceneSource(frames=24, prerender=False)
    assert source.seed == DEFAULT_SCENE_SEED
    results = Engine(None, device="cpu").analyze_batch([source.render(i)[0] for i in range(24)], topk=1)
    good = sum(r.predictions[0].label == source._label and r.domain.in_domain for r in results)  # noqa: SLF001
    assert good / 24 >= 0.95, f"{good} of 24 frames named {source._label} and in domain"  # noqa: SLF001


def _verdicts(scores, threshold=100.0):
    return [DomainVerdict("mahalanobis", float(s), threshold, s <= threshold) for s in scores]


def test_one_odd_frame_neither_shows_nor_hides_the_out_of_domain_note():
    window = DomainWindow()
    shown = [not window.update(v).in_domain for v in _verdicts([60, 70, 65, 900, 62, 68, 64])]
    assert not any(shown)  # one wild frame among in-domain ones: no note
    shown = [not window.update(v).in_domain for v in _verdicts([300, 320, 310, 290, 305])]
    assert shown[-1] and shown.index(True) >= 1  # a lasting change shows it, after a frame or two
    shown = [not window.update(v).in_domain for v in _verdicts([310, 40, 300, 295, 305])]
    assert all(shown)  # one in-domain frame among out-of-domain ones: the note stays
    shown = [not window.update(v).in_domain for v in _verdicts([95, 96, 94, 97, 95, 96])]
    assert all(shown)  # just under the threshold is not far enough under it to hide the note (hysteresis)
    shown = [not window.update(v).in_domain for v in _verdicts([50, 55, 52, 51, 50])]
    assert not shown[-1]


def test_a_new_detector_starts_the_window_afresh():
    window = DomainWindow()
    for v in _verdicts([300] * 5):
        window.update(v)
    assert window.update(DomainVerdict("energy", -12.0, -8.0, True)).in_domain
