"""The vitviz desktop app (PySide6 + pyqtgraph). ``run_app()`` opens the window; torch is imported by the worker
thread after the window is shown, so the window appears quickly."""

from __future__ import annotations

import os
import sys
from typing import Sequence

__all__ = ["run_app", "create_app", "display_problem", "missing_xcb_libraries", "MainWindow"]


def __getattr__(name: str):
    if name == "MainWindow":
        from .main_window import MainWindow

        return MainWindow
    raise AttributeError(name)


def create_app(argv: Sequence[str] | None = None):
    """The QApplication (created once), with the app's name, icon and style set."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from . import paths

    app = QApplication.instance()
    if app is None:
        if hasattr(QApplication, "setHighDpiScaleFactorRoundingPolicy"):
            from PySide6.QtCore import Qt

            QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(list(argv) if argv is not None else [sys.argv[0]])
        app.setStyle("Fusion")
    app.setApplicationName("vitviz")
    app.setOrganizationName("vitviz")
    app.setApplicationDisplayName("vitviz")
    icon = paths.icon_path()
    if icon is not None:
        qicon = QIcon()
        for size_file in sorted(icon.parent.glob("vitviz-*.png")) + [icon]:
            qicon.addFile(str(size_file))
        app.setWindowIcon(qicon)
    return app


def display_problem(env: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why Qt could not open a window here (Linux only), or None; may switch Qt to Wayland when X11 lacks a library.

    Qt aborts the whole process when its platform plugin cannot load, so the common causes are checked first.
    """

    env = os.environ if env is None else env
    platform = platform or sys.platform
    if not platform.startswith("linux"):
        return None
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen and not chosen.startswith("xcb"):
        return None  # offscreen, wayland, vnc, ...: the user chose
    has_x11, has_wayland = bool(env.get("DISPLAY")), bool(env.get("WAYLAND_DISPLAY"))
    if not chosen and not has_x11 and has_wayland:
        return None  # Qt picks Wayland by itself
    if not has_x11:
        return (
            "no display to open the window on (DISPLAY is not set); "
            "use 'vitviz analyze IMAGE --out DIR' without a display"
        )
    missing = missing_xcb_libraries()
    if missing:
        if has_wayland and not chosen:
            env["QT_QPA_PLATFORM"] = "wayland"
            return None
        return missing_libraries_message(missing)
    return None


# The system libraries of Qt's X11 plugin (PySide6 6.x), with the packages that install them: (Debian/Ubuntu, Fedora).
XCB_PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
}


def _xcb_plugin() -> str | None:
    """Path of Qt's X11 platform plugin inside the installed PySide6 (found without importing Qt)."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        plugin = os.path.join(folder, "Qt", "plugins", "platforms", "libqxcb.so")
        if os.path.isfile(plugin):
            return plugin
    return None


def missing_xcb_libraries(plugin: str | None = None, ldd_output: str | None = None) -> list[str]:
    """The shared libraries (sonames) that Qt's X11 plugin needs and the system lacks, as the dynamic loader's
    ``ldd`` lists them ("=> not found"); where ``ldd`` itself is missing, the one library a ``dlopen`` of the plugin
    names. Empty when everything loads (or the plugin is not there to check)."""
    import re
    import subprocess

    plugin = plugin or _xcb_plugin()
    if plugin is None:
        return []
    if ldd_output is None:
        try:
            ldd_output = subprocess.run(["ldd", plugin], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return _dlopen_missing(plugin)
    found = re.findall(r"^\s*(\S+)\s+=>\s+not found", ldd_output, flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def _dlopen_missing(plugin: str) -> list[str]:
    """The library named by the loader's error when the plugin is opened (in a child process: Qt's libraries are
    not loaded into this one before its window is due)."""
    import re
    import subprocess

    code = "import ctypes,sys\ntry: ctypes.CDLL(sys.argv[1])\nexcept OSError as e: print(e)"
    try:
        out = subprocess.run([sys.executable, "-c", code, plugin], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return re.findall(r"(\S+\.so[.\d]*): cannot open shared object file", out)


def missing_libraries_message(missing: list[str]) -> str:
    """One line naming the missing libraries and the commands that install them."""
    known = [XCB_PACKAGES[name] for name in missing if name in XCB_PACKAGES]
    debian = " ".join(dict.fromkeys(d for d, _ in known))
    fedora = " ".join(dict.fromkeys(f for _, f in known))
    text = f"Qt's X11 support cannot load the system libraries {', '.join(missing)}"
    if known:
        text += f" (Debian/Ubuntu: sudo apt install {debian}; Fedora: sudo dnf install {fedora})"
    unknown = [name for name in missing if name not in XCB_PACKAGES]
    if unknown:
        text += f"; find the package of {', '.join(unknown)} with your distribution's package search"
    return text


# Set to 1 (with QT_QPA_PLATFORM=offscreen where there is no display), the app exits once its first analysis is shown:
# CI runs the README's launch command this way (docs/development.md).
QUIT_AFTER_FIRST_RESULT = "VITVIZ_QUIT_AFTER_FIRST_RESULT"
FIRST_RESULT_TIMEOUT_S = 300


def _quit_after_first_result(window, env: dict[str, str] | None = None) -> list[int] | None:
    """With ``$VITVIZ_QUIT_AFTER_FIRST_RESULT`` set (not 0): close ``window`` once it shows its first analysis (exit
    status 0) or its first error (1, the error on stderr), or after ``FIRST_RESULT_TIMEOUT_S`` without either (1).
    Returns the list the status is written to, or None when the variable is not set."""
    env = os.environ if env is None else env
    if env.get(QUIT_AFTER_FIRST_RESULT, "").strip() in ("", "0"):
        return None
    from PySide6.QtCore import QTimer

    status: list[int] = []

    def finish(code: int, message: str = "") -> None:
        if status:
            return
        status.append(code)
        if message:
            print(f"vitviz: error: {message}", file=sys.stderr)
        QTimer.singleShot(0, window.close)  # closing the last window stops the worker and ends the event loop

    window.result_ready.connect(lambda _result: finish(0))
    window.error_shown.connect(lambda message: finish(1, message))
    QTimer.singleShot(FIRST_RESULT_TIMEOUT_S * 1000, lambda: finish(
        1, f"no analysis shown within {FIRST_RESULT_TIMEOUT_S} s ({QUIT_AFTER_FIRST_RESULT} is set)"))
    return status


def run_app(
    image: str | os.PathLike[str] | None = None,
    model: str | None = None,
    device: str = "auto",
    depth_model: str | None = None,
    present: str | os.PathLike[str] | None = None,
    interval: float | None = None,
    live: str | None = None,
) -> int:
    """Open the window on ``image`` (default: the first sample) with ``model`` (default: the shipped model).

    ``present`` (an image, a folder, or ``""``: ``image``, else the samples) starts in presentation mode, cycling
    through a folder every ``interval`` seconds. ``live`` starts the live mode on this source (``scene``, a video
    file, ``camera:N``; see :func:`vitviz.live.open_source`) once the window is up. Returns the exit status.
    """
    problem = display_problem()
    if problem:
        print(f"vitviz: error: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtCore import QTimer

    app = create_app()
    from .exception_guard import default_log_file, install_exception_guard
    from .main_window import MainWindow

    window = MainWindow()
    quit_status = _quit_after_first_result(window)
    guard = install_exception_guard(window, default_log_file())  # a bug in a view: a message and a log line
    if present is not None:  # presentation mode (issue 21)
        target = str(present or image or "") or None
        if interval is not None:
            window.presentation.set_interval(interval)
        first = target if target is not None and os.path.isfile(target) else None

        def start() -> None:
            window.startup(image=first, model=model, device=device or "auto", depth_model=depth_model)
            window.present(target)  # its image request supersedes the window's own first one

        QTimer.singleShot(0, start)
        return _exec(app, guard, quit_status)
    try:
        window.show()
    except Exception:  # noqa: BLE001 - a bug in a view's showEvent: reported by the guard, the window goes on
        sys.excepthook(*sys.exc_info())
    # Start loading once the window has painted: the worker imports torch meanwhile.
    window.after_first_paint(lambda: window.startup(image=image, model=model, device=device or "auto",
                                                    depth_model=depth_model))
    if live:
        window.after_first_paint(lambda: window.live.start(live))
    return _exec(app, guard, quit_status)


def _exec(app, guard, quit_status: list[int]) -> int:
    """Run the event loop (the exit status of VITVIZ_QUIT_AFTER_FIRST_RESULT when it set one); the exception guard
    goes with it."""
    try:
        code = int(app.exec())
        return quit_status[0] if quit_status else code
    finally:
        guard.uninstall()
