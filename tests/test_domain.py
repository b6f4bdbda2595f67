"""The out-of-domain detector: scenes count as in domain, photos do not, and the verdict reaches result.json and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vitviz.cli import main
from vitviz.engine import Engine
from vitviz.errors import CheckpointError
from vitviz.models.checkpoint import load_checkpoint
from vitviz.models.domain import (
    DomainDetector,
    DomainVerdict,
    calibrate_threshold,
    fit_mahalanobis,
    load_sidecar,
    sidecar_path,
    token_features,
)
from vitviz.synthetic.scenes import render_scene

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "weights" / "vitviz-mini.json"
SIDECAR = ROOT / "weights" / "vitviz-mini.ood.safetensors"
SAMPLES = ROOT / "assets" / "samples"
PHOTOS = sorted(SAMPLES.glob("photo-*.jpg"))
SCENES = sorted(SAMPLES.glob("scene-*.png"))


@pytest.fixture(scope="module")
def mini() -> Engine:
    return Engine("vitviz-mini", device="cpu")


def test_shipped_detector_is_loaded_from_its_sidecar_file():
    from safetensors import safe_open

    _, info = load_checkpoint(CONFIG)
    detector = info.domain_detector
    assert detector is not None and sidecar_path(info.source) == SIDECAR
    with safe_open(str(SIDECAR), framework="pt") as fh:
        assert detector.method == fh.metadata()["method"]
        assert detector.threshold == pytest.approx(float(fh.get_tensor("threshold")[0]))
        assert detector.feature == fh.metadata()["feature"]
    assert detector.threshold > 0 and detector.known == "10 synthetic shapes"


def test_generated_scenes_count_as_in_domain_and_photos_do_not(mini):
    # The threshold keeps 95 % of held-out scenes in domain; these 8 sample scenes and 30 fresh ones (seeds used by
    # no fit, calibration or report) may lose one or two to that 5 %, never many.
    scenes = [mini.analyze(p).domain for p in SCENES] + [
        mini.analyze(render_scene(seed, 128).image).domain for seed in range(920_000, 920_030)]
    assert all(v is not None for v in scenes)
    assert sum(v.in_domain for v in scenes) >= 0.9 * len(scenes)
    assert len(PHOTOS) == 3
    for path in PHOTOS:
        verdict = mini.analyze(path).domain
        assert not verdict.in_domain, path.name
        assert verdict.score > verdict.threshold


def test_domain_is_scored_from_the_same_forward_pass(mini):
    calls = []
    hook = mini.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        result = mini.analyze(PHOTOS[0])
    finally:
        hook.remove()
    assert result.domain is not None and len(calls) == 1


def test_result_json_has_a_domain_block_only_for_models_with_a_detector(mini, tmp_path, tiny_checkpoint):
    from vitviz.export import write_outputs

    write_outputs(mini.analyze(PHOTOS[0]), tmp_path / "photo")
    domain = json.loads((tmp_path / "photo" / "result.json").read_text())["domain"]
    assert set(domain) == {"method", "score", "threshold", "in_domain"}
    assert domain["method"] in ("mahalanobis", "energy") and domain["in_domain"] is False
    assert domain["score"] > domain["threshold"]

    # The same weights without the sidecar file, and a tiny model of the tests: no detector, no block.
    plain = tmp_path / "plain"
    plain.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(CONFIG.with_suffix(suffix), plain / f"vitviz-mini{suffix}")
    for model in (plain / "vitviz-mini.json", tiny_checkpoint):
        result = Engine(model, device="cpu").analyze(PHOTOS[0])
        assert result.domain is None and "domain" not in result.summary()


def test_cli_sums_up_out_of_domain_images_once_per_run(tmp_path, capsys):
    cone = SAMPLES / "scene-cone.png"  # just over the threshold today: "unusual", not "like none of them"
    images = [str(p) for p in (*PHOTOS, SCENES[0], cone)]
    assert main(["analyze", *images, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    summary = [line for line in out if "image(s) look like none" in line]
    assert summary == [f"vitviz: {len(PHOTOS)} of {len(images)} image(s) look like none of the 10 synthetic shapes "
                       "this model knows, 1 more is unusual for it; see the domain_* columns of results.csv "
                       "(--verbose: a line per image). For photos, use --model deit-small"]
    assert not any(line.startswith(str(PHOTOS[0])) and "none of them" in line for line in out)  # no line per image

    assert main(["analyze", *images, "--out", str(tmp_path / "b"), "--quiet", "--verbose"]) == 0
    out = capsys.readouterr().out.splitlines()
    far = [line for line in out if "looks like none of them" in line]
    assert sorted(line.split(":")[0] for line in far) == sorted(map(str, PHOTOS))
    assert all("only knows 10 synthetic shapes" in line and "--model deit-small" in line for line in far)
    (soft,) = [line for line in out if line.startswith(f"{cone}: this image is unusual for this model")]
    assert "within 1.25x" in soft and "none of them" not in soft
    assert not any("image(s) look like none" in line for line in out)


def test_near_the_threshold_the_verdict_is_unusual_rather_than_unknown():
    assert DomainVerdict("mahalanobis", 120.0, 100.0, False).unusual
    assert not DomainVerdict("mahalanobis", 126.0, 100.0, False).unusual
    assert not DomainVerdict("mahalanobis", 90.0, 100.0, True).unusual
    assert DomainVerdict("energy", -7.0, -8.0, False).unusual  # energy thresholds are negative


def _fitted(dim: int = 6, classes: int = 3, feature: str = "cls") -> tuple[DomainDetector, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % classes
    feats = torch.randn(300, dim, generator=gen) + 4.0 * torch.nn.functional.one_hot(labels, dim).float()
    det = fit_mahalanobis(feats, labels, classes, known="three blobs", feature=feature)
    det.threshold = calibrate_threshold(det.scores(feats, torch.zeros(300, classes)), 0.95)
    return det, feats, labels


def test_mahalanobis_scores_are_the_nearest_class_distance():
    det, feats, labels = _fitted()
    x = feats[:5]
    expected = []
    for f in x.double():
        d = [float((f - m) @ det.precision @ (f - m)) for m in det.means]
        expected.append(min(d))
    assert det.scores(x, torch.zeros(5, 3)).tolist() == pytest.approx(expected, rel=1e-9)
    inside = det.scores(feats, torch.zeros(300, 3)) <= det.threshold
    assert inside.double().mean() == pytest.approx(0.95, abs=0.01)
    assert float(det.scores(torch.full((1, 6), 40.0), torch.zeros(1, 3))[0]) > det.threshold


def test_energy_score_is_minus_logsumexp(tiny_checkpoint):
    det = DomainDetector("energy", threshold=-3.0)
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.1, 0.0, 0.2]])
    scores = det.scores(torch.zeros(2, 4), logits)
    assert scores.tolist() == pytest.approx((-torch.logsumexp(logits.double(), -1)).tolist())
    model, _ = load_checkpoint(tiny_checkpoint)
    tokens = torch.zeros(1, 17, 24)
    assert det.assess(model, tokens, logits[:1]).in_domain
    assert not det.assess(model, tokens, logits[1:]).in_domain


def test_features_are_the_head_input_or_the_mean_patch_token(tiny_checkpoint):
    model, _ = load_checkpoint(tiny_checkpoint)
    tokens = torch.randn(2, 17, 24)
    assert torch.equal(token_features(model, tokens, "cls"), tokens[:, 0])
    assert torch.allclose(token_features(model, tokens, "patch_mean"), tokens[:, 1:].mean(dim=1))


def test_detector_file_round_trip_and_refusals(tmp_path, tiny_checkpoint):
    det, feats, _ = _fitted(dim=24, classes=5, feature="patch_mean")
    path = det.save(tmp_path / "m.ood.safetensors")
    back = DomainDetector.load(path)
    assert (back.method, back.threshold, back.known, back.feature) == (det.method, det.threshold, "three blobs",
                                                                        "patch_mean")
    assert torch.equal(back.scores(feats, torch.zeros(300, 5)), det.scores(feats, torch.zeros(300, 5)))

    model, _ = load_checkpoint(tiny_checkpoint)  # head: 5 classes of 24 features, as fitted above
    weights = tmp_path / "m.safetensors"
    assert load_sidecar(weights, model) is not None
    assert load_sidecar(tmp_path / "none.safetensors", model) is None
    wrong, *_ = _fitted(dim=6, classes=3)
    wrong.save(tmp_path / "m.ood.safetensors")
    with pytest.raises(CheckpointError, match="do not match the model"):
        load_sidecar(weights, model)
    (tmp_path / "m.ood.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="not a valid out-of-domain detector"):
        load_sidecar(weights, model)
    from safetensors.torch import save_file

    save_file({"threshold": torch.tensor([1.0])}, str(tmp_path / "m.ood.safetensors"), metadata={"format": "x"})
    with pytest.raises(CheckpointError, match="not a vitviz out-of-domain detector"):
        load_sidecar(weights, model)


def test_a_checkpoint_carries_its_detector_into_the_engine(tmp_path, tiny_checkpoint, photo):
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    DomainDetector("energy", threshold=-100.0, known="five letters").save(tmp_path / "tiny.ood.safetensors")
    result = Engine(tmp_path / "tiny.json", device="cpu").analyze(photo)
    assert result.domain is not None and result.domain.method == "energy"
    assert result.domain.in_domain is False  # every energy is above -100
    assert result.summary()["domain"]["threshold"] == -100.0


def test_a_detector_of_parts_takes_each_kind_on_its_own_covariance(tmp_path):
    """One part per kind of training scene, each with its own covariance and threshold: an image is in domain when
    one part takes it. A single covariance fitted on both kinds is widened by the spread-out kind, and takes images
    near the tight kind that neither kind is like (the sample photos, for the image-text model)."""
    gen = torch.Generator().manual_seed(1)
    n, dim = 400, 6
    labels = torch.arange(n) % 2
    tight = torch.randn(n, dim, generator=gen) + 5.0 * torch.nn.functional.one_hot(labels, dim).float()
    wide = torch.randn(n, dim, generator=gen) * torch.tensor([8.0, 1, 1, 1, 1, 1]) - 5.0
    parts = []
    for feats in (tight, wide):
        part = fit_mahalanobis(feats, labels, 2, known="two kinds", feature="patch_mean")
        part.threshold = calibrate_threshold(part.scores(feats, None), 0.95)
        parts.append(part)
    both = DomainDetector.of_parts(parts)
    assert both.threshold == 1.0 and both.means.shape == (4, dim) and both.precision.shape == (2, dim, dim)
    for feats in (tight, wide):
        assert (both.scores(feats, None) <= 1.0).double().mean() >= 0.95
    x = torch.cat([tight[:3], wide[:3]])
    expected = torch.minimum(*(p.scores(x, None) / p.threshold for p in parts))
    torch.testing.assert_close(both.scores(x, None), expected)

    pooled = fit_mahalanobis(torch.cat([tight, wide]), torch.cat([labels, labels + 2]), 4, feature="patch_mean")
    pooled.threshold = calibrate_threshold(pooled.scores(torch.cat([tight, wide]), None), 0.95)
    stranger = parts[0].means[:1].float() + torch.tensor([[12.0, 0, 0, 0, 0, 0]])  # off the tight kind, like neither
    assert float(pooled.scores(stranger, None)[0]) <= pooled.threshold  # the widened covariance takes it
    assert float(both.scores(stranger, None)[0]) > 1.0  # the parts do not

    back = DomainDetector.load(both.save(tmp_path / "parts.ood.safetensors"))
    torch.testing.assert_close(back.scores(x, None), both.scores(x, None))
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tmp_path / "parts.ood.safetensors"))
    tensors["part_of"] = torch.tensor([0, 1, 2, 1])  # a third part that is not there
    save_file(tensors, str(tmp_path / "bad.ood.safetensors"),
              metadata={"format": "vitviz-ood", "method": "mahalanobis", "feature": "patch_mean"})
    with pytest.raises(CheckpointError, match="each class's part"):
        DomainDetector.load(tmp_path / "bad.ood.safetensors")
