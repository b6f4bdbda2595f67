"""Property-based tests of the command line and of the app worker's load path (hypothesis): random combinations of
valid and invalid options, random small images in odd modes, random bytes. No run may end in "unexpected error" or
a traceback, the exit status keeps its meaning (0 all written, 1 some images failed, 2 nothing run), and a run
refused before its first image leaves nothing behind."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vitviz.cli import main

# -- what a user may type

VALID = {
    "--topk": st.integers(1, 12).map(str),
    "--alpha": st.floats(0.0, 1.0).map(lambda v: f"{v:.3g}"),
    "--cmap": st.sampled_from(["inferno", "viridis", "gray", "turbo"]),
    "--depth-cmap": st.sampled_from(["turbo", "magma"]),
    "--layer": st.integers(-3, 2).map(str),
    "--workers": st.integers(1, 3).map(str),
    "--batch-size": st.integers(1, 4).map(str),
    "--outputs": st.sampled_from(["json", "json,depth", "png", "none", "heads,attention-npy", "all"]),
    "--explain": st.sampled_from(["attention", "rollout,relevance", "grad-rollout"]),
}
INVALID = {
    "--topk": st.sampled_from(["0", "-3", "two", "1.5", ""]),
    "--alpha": st.sampled_from(["7", "-0.1", "nan", "inf", "half"]),
    "--cmap": st.sampled_from(["nosuch", "", "Inferno"]),
    "--depth-cmap": st.sampled_from(["jet!", "none"]),
    "--layer": st.sampled_from(["9", "-9", "last"]),
    "--workers": st.sampled_from(["-1", "0", "many"]),
    "--batch-size": st.sampled_from(["0", "-2", "x"]),
    "--outputs": st.sampled_from(["bogus", "json,,nope"]),
    "--explain": st.sampled_from(["nope", ","]),
    "--target": st.sampled_from(["nosuchclass", "top0", "99"]),  # a label it lacks, K < 1, an index out of range
}
MODES = ["RGB", "L", "1", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F"]


@st.composite
def options(draw) -> tuple[list[str], bool]:
    """(argv options, whether an invalid one is among them)."""
    argv: list[str] = []
    bad = False
    for flag in draw(st.lists(st.sampled_from(sorted(set(VALID) | set(INVALID))), unique=True, max_size=4)):
        use_bad = flag not in VALID or (flag in INVALID and draw(st.booleans()))
        value = draw(INVALID[flag] if use_bad else VALID[flag])
        argv += [flag, value] if not value.startswith("-") else [f"{flag}={value}"]
        bad = bad or use_bad
    return argv, bad


@st.composite
def odd_images(draw) -> tuple[str, bytes]:
    """(file name, bytes) of a small image in an odd mode, or of something that is not one."""
    kind = draw(st.sampled_from(["image", "image", "image", "truncated", "garbage", "empty"]))
    if kind == "empty":
        return "empty.png", b""
    if kind == "garbage":
        return "noise.jpg", draw(st.binary(min_size=1, max_size=256))
    mode = draw(st.sampled_from(MODES))
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else draw(st.sampled_from(["PNG", "WEBP", "GIF", "BMP"]))
    if fmt in ("GIF", "BMP") and mode in ("RGBA", "LA"):
        fmt = "PNG"
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    data = buf.getvalue()
    if kind == "truncated":
        data = data[: max(1, len(data) // 2)]
    return f"{mode.replace(';', '_')}.{fmt.lower()}", data


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # main() itself must not raise it
            pytest.fail(f"main() raised SystemExit({exc.code}) for {argv}")
    return code, err.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opts=options(), image=odd_images())
def test_any_command_line_ends_in_a_clear_status(tiny_checkpoint, opts, image):
    argv_opts, bad = opts
    with tempfile.TemporaryDirectory() as tmp:
        name, data = image
        path = Path(tmp) / "in" / name
        path.parent.mkdir()
        path.write_bytes(data)
        out = Path(tmp) / "out"
        code, err = _run(["analyze", str(path), "--out", str(out), "--model", str(tiny_checkpoint), "--quiet",
                          *argv_opts])
        assert "unexpected error" not in err.lower() and "Traceback" not in err, err
        assert code in (0, 1, 2), (code, err)
        assert not (out / ".partial").exists(), "a half-written image folder was left behind"
        if bad:
            assert code == 2, f"{argv_opts} was accepted: {err}"
        if code == 2:
            assert not out.exists(), f"a refused run wrote {list(out.rglob('*'))}"
            assert len(err.strip().splitlines()) == 1, err  # one line
        elif code == 1:
            assert "failed" in err and (out / "results.csv").is_file()
        else:
            assert (out / "results.csv").is_file()


@pytest.mark.parametrize("option", [["--cmap", "nosuch"], ["--workers", "-1"], ["--alpha", "7"], ["--topk", "0"],
                                    ["--topk", "-3"], ["--layer", "9"], ["--interval", "0"]])
def test_the_issue_s_bad_options_are_refused_before_any_image(tiny_checkpoint, photo, tmp_path, option):
    command = ["gui"] if option[0] == "--interval" else ["analyze", str(photo), "--out", str(tmp_path / "out")]
    code, err = _run([*command, "--model", str(tiny_checkpoint), *option])
    assert code == 2 and option[0] in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# -- the app worker's load path

@st.composite
def odd_arrays(draw) -> np.ndarray:
    """Arrays a clipboard, a test or a plugin could hand the app: any common dtype, 2 or 3 dimensions, odd sizes."""
    from hypothesis.extra.numpy import arrays

    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]))
    h, w = draw(st.integers(0, 40)), draw(st.integers(0, 40))
    shape = (h, w) if draw(st.booleans()) else (h, w, draw(st.integers(1, 5)))
    if np.dtype(dtype).kind == "f":
        elements = st.floats(-2.0, 2.0, allow_nan=False) | st.sampled_from([np.nan, np.inf, -np.inf, 0.5])
        return draw(arrays(dtype, shape, elements=elements))
    return draw(arrays(dtype, shape))


@pytest.fixture(scope="module")
def worker(tiny_checkpoint):
    from vitviz.app.worker import AnalysisWorker, RequestTracker
    from vitviz.engine import Engine

    w = AnalysisWorker(RequestTracker())
    w.engine = Engine(tiny_checkpoint, device="cpu")
    return w


def _through_worker(worker, source) -> tuple[list, list]:
    ready, failed = [], []
    worker.analysis_ready.connect(lambda _rid, shown: ready.append(shown))
    worker.failed.connect(lambda _rid, _kind, message: failed.append(message))
    try:
        worker.tracker.latest_analysis += 1
        worker.analyze(worker.tracker.latest_analysis, source)  # raises nothing, whatever the source
    finally:
        worker.analysis_ready.disconnect()
        worker.failed.disconnect()
    return ready, failed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(array=odd_arrays())
def test_any_array_through_the_worker_is_shown_or_refused_in_words(qapp, worker, array):
    ready, failed = _through_worker(worker, (array, "pasted"))
    assert len(ready) + len(failed) == 1
    if failed:
        assert not failed[0].startswith("Unexpected error"), failed[0]
    else:
        result = ready[0].result
        assert np.isfinite(result.probabilities).all() and np.isfinite(result.depth).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=odd_images())
def test_any_file_through_the_worker_is_shown_or_refused_in_words(qapp, worker, image):
    name, data = image
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        ready, failed = _through_worker(worker, str(path))
    assert len(ready) + len(failed) == 1
    if failed:
        assert not failed[0].startswith("Unexpected error"), failed[0]
