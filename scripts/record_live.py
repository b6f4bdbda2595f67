#!/usr/bin/env python
"""Record the app's live mode on the built-in scene as an animated GIF, with the app's own recorder.

    python scripts/record_live.py                         # -> assets/live.gif (about 6 s)
    python scripts/record_live.py --seconds 4 --width 720 --out /tmp/live.gif

The window runs offscreen with the shipped model; what is recorded is the window's central area (the panels),
scaled to ``--width`` pixels, at the live frame rate. The recording starts once the scene's loop is rendered.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "live.gif")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--width", type=int, default=800, help="width of the recording in pixels")
    parser.add_argument("--size", default="1400x860", help="window size WxH")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from vitviz.app import create_app
    from vitviz.app.live import qimage_to_rgb
    from vitviz.app.main_window import MainWindow
    from vitviz.live import open_source

    def spin(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    create_app()
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(settings=QSettings(f"{tmp}/v.ini", QSettings.Format.IniFormat), samples=Path(tmp))
        w, h = (int(v) for v in args.size.split("x"))
        window.resize(w, h)
        window.show()
        loaded = QEventLoop()
        window.model_ready.connect(lambda _m: loaded.quit())
        window.load_model("vitviz-mini", "cpu")
        loaded.exec()
        controller = window.live.controller
        source = open_source("scene")
        controller.start(source)
        t0 = time.monotonic()
        while source.rendered < source.frame_count and time.monotonic() - t0 < 300:
            spin(0.5)  # the loop renders ahead in a helper process; once done, the stream runs at full rate

        def grab() -> np.ndarray:
            rgb = qimage_to_rgb(window.centralWidget().grab().toImage())
            height = round(rgb.shape[0] * args.width / rgb.shape[1])
            return np.asarray(Image.fromarray(rgb).resize((args.width, height), Image.Resampling.LANCZOS))

        controller.start_recording(args.out, grab=grab)
        spin(args.seconds)
        path = controller.stop_recording()
        controller.stop()
        window.close()
    print(f"record_live: wrote {path} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
