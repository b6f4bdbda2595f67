"""Checkpoints: round trip, and refusal of damaged, foreign or malicious files with a clear message."""

import json
import pickle

import pytest
import torch

from vitviz.models.checkpoint import load_checkpoint, read_state_dict
from vitviz.errors import CheckpointError


def test_round_trip_gives_identical_outputs(tiny_checkpoint):
    model, info = load_checkpoint(tiny_checkpoint)
    again, _ = load_checkpoint(tiny_checkpoint.with_suffix(".safetensors"))
    x = torch.randn(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)
    assert info.labels[0] == "alpha" and info.depth_kind == "metric"
    assert not model.training


def test_folder_with_one_checkpoint_loads(tiny_checkpoint):
    _, info = load_checkpoint(tiny_checkpoint.parent)
    assert info.name == "tiny"


def _copy_pair(src_json, dst_dir, weights_bytes=None, config=None):
    dst_dir.mkdir(parents=True, exist_ok=True)
    (dst_dir / "m.json").write_text(json.dumps(config) if config else src_json.read_text())
    data = weights_bytes if weights_bytes is not None else src_json.with_suffix(".safetensors").read_bytes()
    (dst_dir / "m.safetensors").write_bytes(data)
    return dst_dir / "m.json"


def test_truncated_safetensors_is_refused(tiny_checkpoint, tmp_path):
    data = tiny_checkpoint.with_suffix(".safetensors").read_bytes()
    path = _copy_pair(tiny_checkpoint, tmp_path, data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file, or it is truncated"):
        load_checkpoint(path)


def test_random_bytes_are_refused(tiny_checkpoint, tmp_path):
    path = _copy_pair(tiny_checkpoint, tmp_path, bytes(range(256)) * 40)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/vitviz-pwned",))


def test_pickle_with_code_is_refused_never_executed(tmp_path):
    marker = "/tmp/vitviz-pwned"
    import os

    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"w": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="never unpickles"):
        read_state_dict(path)
    assert not os.path.exists(marker)


def test_plain_tensor_state_dict_is_accepted(tmp_path):
    path = tmp_path / "sd.pth"
    torch.save({"a": torch.ones(2)}, path)
    assert torch.equal(read_state_dict(path)["a"], torch.ones(2))


def test_shapes_disagreeing_with_config_are_named(tiny_checkpoint, tmp_path):
    config = json.loads(tiny_checkpoint.read_text())
    config["architecture"]["embed_dim"] = 30
    path = _copy_pair(tiny_checkpoint, tmp_path, config=config)
    with pytest.raises(CheckpointError, match=r"wrong shape: .*cls_token \(1, 1, 24\) \(model expects \(1, 1, 30\)\)"):
        load_checkpoint(path)


def test_missing_and_extra_keys_are_named(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_checkpoint.with_suffix(".safetensors")))
    state.pop("head.weight")
    state["surprise.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "w.safetensors"))
    path = _copy_pair(tiny_checkpoint, tmp_path / "c", (tmp_path / "w.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"missing: head.weight.*unexpected: surprise.weight"):
        load_checkpoint(path)


def test_config_must_be_a_vitviz_config(tiny_checkpoint, tmp_path):
    path = _copy_pair(tiny_checkpoint, tmp_path, config={"hello": 1})
    with pytest.raises(CheckpointError, match="not a vitviz checkpoint config"):
        load_checkpoint(path)


def test_missing_weights_beside_config(tiny_checkpoint, tmp_path):
    (tmp_path / "lonely.json").write_text(tiny_checkpoint.read_text())
    with pytest.raises(CheckpointError, match="weights file lonely.safetensors beside it is missing"):
        load_checkpoint(tmp_path / "lonely.json")
