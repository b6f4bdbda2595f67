#!/usr/bin/env python
"""Screenshots of comparison mode (View → Compare with…): the window with model A beside model B, and presentation
mode's two-up story.

    python scripts/screenshot_compare.py --b PATH [IMAGE] [--model A] [--out docs/guide/compare.png]
        [--present-out docs/guide/compare-presentation.png] [--layer L]

Runs offscreen (no display needed); settings are isolated in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", default=str(ROOT / "assets" / "samples" / "scene-cube.png"))
    parser.add_argument("--model", default="vitviz-mini", help="model A (default: the shipped model)")
    parser.add_argument("--b", required=True, help="model B: a shipped or pretrained name, or a checkpoint path")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "guide" / "compare.png")
    parser.add_argument("--present-out", type=Path, default=None, help="also picture presentation mode here")
    parser.add_argument("--size", default="1600x1000")
    parser.add_argument("--layer", type=int, default=None, help="A's layer to show (default: the last)")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from vitviz.app import create_app
    from vitviz.app.main_window import MainWindow

    app = create_app()
    tmp = Path(tempfile.mkdtemp(prefix="vitviz-shot-"))
    window = MainWindow(settings=QSettings(str(tmp / "vitviz.ini"), QSettings.Format.IniFormat), samples=tmp)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()

    def wait(signal) -> None:
        loop = QEventLoop()
        signal.connect(lambda *_: loop.quit())
        QTimer.singleShot(int(args.timeout * 1000), loop.quit)
        loop.exec()

    window.load_model(args.model, "cpu")
    wait(window.model_ready)
    window.open_image(args.image)
    wait(window.result_ready)
    window.compare.start(args.b)
    wait(window.compare.b_shown)
    if args.layer is not None:
        window.state.set_layer(args.layer)
    for _ in range(20):
        app.processEvents()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out))
    print("wrote", args.out)
    if args.present_out is not None:
        view = window.presentation
        view.enter()
        view.layer_timer.stop()
        view.resize(1920, 1080)
        view.set_layer(view.layer_count - 1)
        for _ in range(20):
            app.processEvents()
        view.grab().save(str(args.present_out))
        print("wrote", args.present_out)
        view.leave()
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
