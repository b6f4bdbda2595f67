"""The vitviz desktop app (PySide6 + pyqtgraph). ``run_app()`` opens the window; torch is imported by the worker
thread after the window is shown, so the window appears quickly."""

from __future__ import annotations

import os
import sys
from typing import Sequence

__all__ = ["run_app", "create_app", "display_problem", "MainWindow"]


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
    import ctypes.util

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
    if ctypes.util.find_library("xcb-cursor") is None:
        if has_wayland and not chosen:
            env["QT_QPA_PLATFORM"] = "wayland"
            return None
        return (
            "Qt's X11 support needs the system library libxcb-cursor0, which is not installed "
            "(Debian/Ubuntu: sudo apt install libxcb-cursor0; Fedora: sudo dnf install xcb-util-cursor)"
        )
    return None


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
    from .main_window import MainWindow

    window = MainWindow()
    if present is not None:  # presentation mode (issue 21)
        target = str(present or image or "") or None
        if interval is not None:
            window.presentation.set_interval(interval)
        first = target if target is not None and os.path.isfile(target) else None

        def start() -> None:
            window.startup(image=first, model=model, device=device or "auto", depth_model=depth_model)
            window.present(target)  # its image request supersedes the window's own first one

        QTimer.singleShot(0, start)
        return int(app.exec())
    window.show()
    # Start loading once the window is on screen: the worker imports torch meanwhile.
    QTimer.singleShot(0, lambda: window.startup(image=image, model=model, device=device or "auto",
                                                depth_model=depth_model))
    if live:
        QTimer.singleShot(0, lambda: window.live.start(live))
    return int(app.exec())
