"""The gallery's data (vitviz.gallery): reading a run, sorting, filtering, thumbnails, and the bad runs it meets."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from vitviz.cli import main
from vitviz.gallery import Gallery, Overlay, RunError, open_run
from vitviz.thumbnails import ThumbnailRenderer
from vitviz.render import normalize, overlay

from .browse_runs import analyze_run, copy_run, write_images


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_checkpoint) -> Path:
    """A real run of 6 images and a broken file, with the default outputs and class evidence."""
    root = tmp_path_factory.mktemp("browse")
    write_images(root / "images")
    return analyze_run(root / "images", root / "run", tiny_checkpoint, "--explain", "attention")


def table_run(folder: Path, rows: list[dict]) -> Path:
    """A run folder with only a results.csv of these rows (the gallery's order does not need image folders)."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = ["name", "status", "error", "source", "model", "label_1", "prob_1", "domain_score", "domain_in_domain",
              "settings"]
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({"status": "ok", "model": "m", "settings": "k", **row})
    return folder


ROWS = [
    dict(name="cats/b", label_1="cat", prob_1=0.9, domain_score=10, domain_in_domain=True),
    dict(name="cats/a", label_1="cat", prob_1=0.4, domain_score=80, domain_in_domain=False),
    dict(name="dog1", label_1="dog", prob_1=0.7, domain_score=30, domain_in_domain=True),
    dict(name="broken", status="error", error="broken.png: not an image file"),
    dict(name="Zebra", label_1="zebra", prob_1=0.55, domain_score=200, domain_in_domain=False),
]


def names(gallery: Gallery) -> list[str]:
    return [gallery.entry(i).name for i in range(len(gallery))]


def test_sorts_put_the_least_sure_first_and_failed_inputs_last(tmp_path):
    g = Gallery(open_run(table_run(tmp_path / "run", ROWS)))
    g.sort = "confidence"
    g.update()
    assert names(g) == ["cats/a", "Zebra", "dog1", "cats/b", "broken"]
    g.descending = True
    g.update()
    assert names(g) == ["cats/b", "dog1", "Zebra", "cats/a", "broken"]  # reversed, the failed one still last
    g.descending, g.sort = False, "domain"
    g.update()
    assert names(g) == ["Zebra", "cats/a", "dog1", "cats/b", "broken"]  # farthest from the domain first
    g.sort = "label"
    g.update()
    assert names(g) == ["cats/a", "cats/b", "dog1", "Zebra", "broken"]
    g.sort = "name"
    g.update()
    assert names(g) == ["broken", "cats/a", "cats/b", "dog1", "Zebra"]  # case-insensitive


def test_filters_by_label_status_domain_and_search(tmp_path):
    g = Gallery(open_run(table_run(tmp_path / "run", ROWS)), sort="name")
    assert g.labels() == ["cat", "dog", "zebra"]  # most frequent first
    g.label = "cat"
    g.update()
    assert names(g) == ["cats/a", "cats/b"]
    g.label, g.status = "", "failed"
    g.update()
    assert names(g) == ["broken"] and g.entry(0).error == "broken.png: not an image file"
    g.status, g.domain = "ok", "out"
    g.update()
    assert names(g) == ["cats/a", "Zebra"]
    g.domain = "in"
    g.update()
    assert names(g) == ["cats/b", "dog1"]
    g.domain, g.status, g.search = "all", "all", "CATS/"
    g.update()
    assert names(g) == ["cats/a", "cats/b"]


def test_disagreement_sort_reads_compare_json(tmp_path):
    folder = table_run(tmp_path / "run", ROWS[:3])
    for name, agree, absrel in (("cats/b", True, 0.30), ("cats/a", False, 0.05), ("dog1", True, 0.02)):
        (folder / name).mkdir(parents=True)
        (folder / name / "compare.json").write_text(json.dumps({"top1_agree": agree, "depth_absrel": absrel}))
    g = Gallery(open_run(folder), sort="disagreement")
    assert names(g) == ["cats/a", "cats/b", "dog1"]  # top-1 disagreement first, then the larger depth AbsRel


def test_a_real_run_is_read_with_its_model_shape_and_overlays(run_dir):
    run = open_run(run_dir)
    assert (run.layers, run.heads) == (3, 3) and run.model == "tiny"
    assert run.available["head"] and run.available["evidence"] and run.available["depth"]
    assert run.evidence_methods == ["attention"]
    assert run.counts() == {"images": 7, "failed": 1, "analysed": 6, "out_of_domain": 0}
    failed = next(e for e in run.entries if e.failed)
    assert "not an image file" in failed.error
    g = Gallery(run, sort="confidence")
    confidences = [g.entry(i).confidence for i in range(len(g))]
    assert confidences[:6] == sorted(confidences[:6]) and math.isnan(confidences[6])
    assert run.notices() == []


def test_the_chosen_head_is_what_every_thumbnail_draws(run_dir):
    run = open_run(run_dir)
    renderer = ThumbnailRenderer(run, size=40)
    entries = [e for e in run.entries if not e.failed]
    for entry in entries:
        cls = np.load(run_dir / entry.name / "cls_attention.npy")
        head0 = renderer.render(entry, Overlay("head", layer=1, head=0)).rgb
        head2 = renderer.render(entry, Overlay("head", layer=1, head=2)).rgb
        base = renderer._base(entry)[0]
        assert np.abs(head2.astype(int) - overlay(base, normalize(cls[1, 2])).astype(int)).max() <= 1
        assert np.abs(head0.astype(int) - head2.astype(int)).mean() > 1.0  # another head, another picture
        mean = renderer.render(entry, Overlay("head", layer=-1, head=None)).rgb
        assert np.abs(mean.astype(int) - overlay(base, normalize(cls[2].mean(axis=0))).astype(int)).max() <= 1
    evidence = renderer.render(entries[0], Overlay("evidence", method="attention"))
    depth = renderer.render(entries[0], Overlay("depth"))
    assert evidence.note == "" and depth.note == "" and evidence.rgb.shape == depth.rgb.shape


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(RunError, match="is not the output folder of a vitviz analyze run: it has no results.csv"):
        open_run(tmp_path / "photos")
    with pytest.raises(RunError, match="no such folder"):
        open_run(tmp_path / "nothing")


def test_a_half_written_run_shows_what_is_there(run_dir, tmp_path):
    run_path = copy_run(run_dir, tmp_path / "run")
    text = (run_path / "results.csv").read_text()
    (run_path / "results.csv").write_text(text[: len(text) - 40])  # the last row cut short by a killed run
    (run_path / ".partial").mkdir()
    (run_path / ".vitviz-run.lock").write_text("")  # other files of a run being written are tolerated
    run = open_run(run_path)
    assert run.being_written and len(run.entries) == 6  # every complete row
    assert any("still being written or was interrupted" in n for n in run.notices())
    # no table yet: the images' own result.json files are shown (results.parquet exists where pyarrow is installed)
    for table in ("results.csv", "results.parquet"):
        (run_path / table).unlink(missing_ok=True)
    run = open_run(run_path)
    assert run.from_folders and len(run.entries) == 6 and run.entries[0].label
    assert "has no results.csv" in run.notices()[0]


def test_a_missing_image_file_still_draws_and_opens_what_the_run_kept(run_dir, tmp_path):
    run = open_run(copy_run(run_dir, tmp_path / "run"))
    entry = next(e for e in run.entries if not e.failed)
    # the analysed file is gone: input.png stands in
    source = Path(entry.source)
    moved = source.with_suffix(".moved")
    source.rename(moved)
    try:
        path, note = run.image_to_open(entry)
        assert path == run.folder_of(entry) / "input.png" and "no longer there" in note
        (run.folder_of(entry) / "input.png").unlink()
        path, note = run.image_to_open(entry)
        assert path is None and "kept no input.png" in note
        thumb = ThumbnailRenderer(run, size=40).render(entry, Overlay("head"))
        assert "image missing" in thumb.note and thumb.rgb.shape[2] == 3
    finally:
        moved.rename(source)


def test_arrays_of_another_model_are_not_drawn(run_dir, tmp_path):
    run = open_run(copy_run(run_dir, tmp_path / "run"))
    entry = next(e for e in run.entries if not e.failed)
    np.save(run.folder_of(entry) / "cls_attention.npy", np.random.rand(12, 12, 14, 14).astype(np.float32))
    thumb = ThumbnailRenderer(run, size=40).render(entry, Overlay("head", layer=0, head=0))
    assert "12 layers x 12 heads, another model's shape (this run: 3 x 3)" in thumb.note
    other = next(e for e in run.entries if not e.failed and e is not entry)
    assert ThumbnailRenderer(run, size=40).render(other, Overlay("head", layer=0, head=0)).note == ""


def test_a_run_of_0_images(tmp_path, capsys):
    folder = table_run(tmp_path / "empty", [])
    run = open_run(folder)
    assert run.entries == [] and "a run of 0 images" in run.notices()[0]
    assert main(["browse", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == f"vitviz: error: {folder} holds a run of 0 images: nothing to browse"
    assert main(["browse", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the output folder of a vitviz analyze run" in err[0]


def test_a_run_without_arrays_says_which_outputs_add_them(tmp_path, tiny_checkpoint):
    write_images(tmp_path / "images", n=2)
    run = open_run(analyze_run(tmp_path / "images", tmp_path / "run", tiny_checkpoint, "--outputs", "json,input"))
    notices = " ".join(run.notices())
    assert "No cls_attention.npy in this run: add --outputs attention-npy" in notices
    assert "--outputs depth-npy" in notices and "--explain" in notices
    entry = next(e for e in run.entries if not e.failed)
    thumb = ThumbnailRenderer(run, size=40).render(entry, Overlay("head"))
    assert "add --outputs attention-npy" in thumb.note
    assert thumb.rgb.mean() > 0  # the image itself is still drawn
    shutil.rmtree(tmp_path / "run")


def test_a_run_with_only_results_parquet(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        (folder / "results.parquet").write_bytes(b"PAR1")
        with pytest.raises(RunError, match="has only results.parquet, and reading it needs pyarrow"):
            open_run(folder)
        return
    rows = [{"name": r["name"], "status": r.get("status", "ok"), "error": r.get("error", ""),
             "label_1": r.get("label_1"), "prob_1": r.get("prob_1"), "domain_in_domain": r.get("domain_in_domain")}
            for r in ROWS]
    pq.write_table(pa.Table.from_pylist(rows), folder / "results.parquet")
    g = Gallery(open_run(folder), sort="confidence")
    assert names(g) == ["cats/a", "Zebra", "dog1", "cats/b", "broken"]
    g.domain = "out"
    g.update()
    assert names(g) == ["cats/a", "Zebra"]


def test_a_growing_table_is_read_again_from_where_it_ended(tmp_path):
    folder = table_run(tmp_path / "run", ROWS[:2])
    table = folder / "results.csv"
    run = open_run(folder)
    assert [e.name for e in run.entries] == ["cats/b", "cats/a"] and not run.cut

    def append(text: str) -> None:
        with open(table, "a", newline="") as fh:
            fh.write(text)

    append("dog1,ok,,,m,dog,0.7,30,True,k\nhalf,ok,,,m,ca")  # a row, and one being written
    run.read()
    assert [e.name for e in run.entries] == ["cats/b", "cats/a", "dog1"] and run.cut
    append("t,0.5,,,k\ncats/a,error,gone,,m,,,,,k\n")  # the rest of it; cats/a analysed again, and failed
    run.read()
    assert [e.name for e in run.entries] == ["cats/b", "cats/a", "dog1", "half"] and not run.cut
    assert run.entries[1].failed and run.entries[1].error == "gone" and run.entries[3].label == "cat"
    # a run resumed with other settings rewrites its table (fewer rows, another column): read from the start
    table_run(folder, [ROWS[4]])
    run.read()
    assert [e.name for e in run.entries] == ["Zebra"]
