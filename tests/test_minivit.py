"""The design notes' MiniViT opened from its bare state_dict: the architecture worked out from the weights, the rest
from arguments or a JSON file beside it, and the refusals."""

import json
import os
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitviz.errors import CheckpointError
from vitviz.models.checkpoint import IMAGENET_MEAN, IMAGENET_STD
from vitviz.models.minivit import (
    MiniViT,
    is_minivit_file,
    is_minivit_state_dict,
    load_minivit,
    minivit_spec,
    read_checkpoint_state,
)

# The notes' encoder warns that it cannot use nested tensors (odd head counts, pre-norm): irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")


# ---- the user's code: the design notes' classes as written there, plus the notes' depth head --------------------


class PatchEmbedding(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_channels=3, embed_dim=768):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, embed_dim,
                              kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        x = self.proj(x)  # [B, embed_dim, H', W']
        x = x.flatten(2)  # [B, embed_dim, N]
        x = x.transpose(1, 2)  # [B, N, embed_dim]
        return x


class NotesMiniViT(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_channels=3, embed_dim=768, num_classes=10, depth=6,
                 num_heads=8, **layer_options):
        super().__init__()
        self.patch_embed = PatchEmbedding(
            img_size, patch_size, in_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(
            1, (img_size // patch_size) ** 2 + 1, embed_dim))

        self.transformer = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(
                d_model=embed_dim, nhead=num_heads, batch_first=True, **layer_options),
            num_layers=depth
        )

        self.mlp_head = nn.Sequential(
            nn.LayerNorm(embed_dim),
            nn.Linear(embed_dim, num_classes)
        )

    def forward(self, x):
        B = x.size(0)
        x = self.patch_embed(x)  # [B, N, D]
        cls_tokens = self.cls_token.expand(B, -1, -1)  # [B, 1, D]
        x = torch.cat((cls_tokens, x), dim=1)  # [B, N+1, D]
        x = x + self.pos_embed[:, :x.size(1)]  # positional encoding

        x = self.transformer(x)  # [B, N+1, D]
        cls_out = x[:, 0]  # CLS token output
        return self.mlp_head(cls_out)  # [B, num_classes]


class NotesDepthMiniViT(NotesMiniViT):
    """The notes' "turn your classification ViT into a depth model" changes, added to the classifier."""

    def __init__(self, img_size=224, patch_size=16, in_channels=3, embed_dim=768, **kwargs):
        super().__init__(img_size, patch_size, in_channels, embed_dim, **kwargs)
        D = embed_dim
        self.img_size = img_size
        self.depth_head = nn.Sequential(
            nn.ConvTranspose2d(D, D//2, kernel_size=2, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(D//2, D//4, kernel_size=2, stride=2),
            nn.ReLU(),
            nn.Conv2d(D//4, 1, kernel_size=1)  # Output single-channel depth map
        )

    def forward(self, x):
        B = x.size(0)
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + self.pos_embed[:, :x.size(1)]
        x = self.transformer(x)
        logits = self.mlp_head(x[:, 0])
        patch_tokens = x[:, 1:, :]
        D = patch_tokens.size(2)
        H = W = int((x.size(1) - 1)**0.5)
        feat_map = patch_tokens.transpose(1, 2).reshape(B, D, H, W)
        depth = self.depth_head(feat_map)
        depth = F.interpolate(depth, size=(self.img_size, self.img_size), mode='bilinear')
        return logits, depth


# ---- helpers -------------------------------------------------------------------------------------------------------


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial CLS and positional embeddings (the notes initialise them to zeros), in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        model.cls_token.normal_(0, 0.5)
        model.pos_embed.normal_(0, 0.5)
    return model.eval()


def save_state(model: nn.Module, path, wrap=None):
    state = model.state_dict()
    torch.save(wrap(state) if wrap else state, path)
    return path


SMALL = dict(img_size=32, patch_size=8, in_channels=3, embed_dim=24, num_classes=5, depth=2, num_heads=3)


# ---- loading the notes' model --------------------------------------------------------------------------------------


def test_notes_classifier_state_dict_loads_with_equal_logits(tmp_path):
    torch.manual_seed(1)
    user = randomised(NotesMiniViT(**SMALL))
    path = save_state(user, tmp_path / "minivit.pth")
    opened = load_minivit(path, heads=3)
    model = opened["model"]
    assert isinstance(model, MiniViT) and not model.training and model.depth_head is None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), user(x), atol=1e-5)
    assert opened["image_size"] == 32 and opened["channels"] == 3
    assert opened["labels"] == [f"class {i}" for i in range(5)]
    assert opened["mean"] == IMAGENET_MEAN and opened["std"] == IMAGENET_STD


def test_notes_depth_model_loads_with_equal_logits_and_depth(tmp_path):
    torch.manual_seed(2)
    user = randomised(NotesDepthMiniViT(img_size=64, patch_size=16, embed_dim=32, num_classes=4, depth=3,
                                        num_heads=4))
    path = save_state(user, tmp_path / "minivit.pth")
    model = load_minivit(path, heads=4)["model"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, depth = model(x)
        user_logits, user_depth = user(x)
    assert depth.shape == (2, 1, 64, 64)
    assert torch.allclose(logits, user_logits, atol=1e-5)
    assert torch.allclose(depth, user_depth, atol=1e-5)


@pytest.mark.parametrize(
    "layer_options, hints",
    [
        (dict(dim_feedforward=40, activation="gelu"), dict(activation="gelu")),
        (dict(norm_first=True, layer_norm_eps=1e-6), dict(norm_first=True, layer_norm_eps=1e-6)),
    ],
)
def test_layer_options_given_as_arguments_reproduce_the_module(tmp_path, layer_options, hints):
    torch.manual_seed(3)
    user = randomised(NotesMiniViT(**SMALL, **layer_options))
    path = save_state(user, tmp_path / "minivit.pth")
    model = load_minivit(path, heads=3, **hints)["model"]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), user(x), atol=1e-5)


def test_wrong_norm_first_changes_the_outputs(tmp_path):
    """norm_first is not in the weights: the default (post-norm) on a pre-norm model gives other logits, which is why
    the option exists."""
    torch.manual_seed(4)
    user = randomised(NotesMiniViT(**SMALL, norm_first=True))
    path = save_state(user, tmp_path / "minivit.pth")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(load_minivit(path, heads=3)["model"](x), user(x), atol=1e-3)


def test_every_hyperparameter_is_inferred_from_the_weights():
    user = NotesDepthMiniViT(img_size=48, patch_size=12, in_channels=1, embed_dim=40, num_classes=7, depth=4,
                             num_heads=5, dim_feedforward=56)
    spec = minivit_spec(user.state_dict())
    assert spec == dict(img_size=48, patch_size=12, in_channels=1, embed_dim=40, num_classes=7, depth=4,
                        depth_head=True, dim_feedforward=56, bias=True, final_norm=False)
    assert minivit_spec(NotesMiniViT(**SMALL).state_dict())["depth_head"] is False


def test_one_channel_model_gets_one_number_of_mean_and_std(tmp_path):
    user = randomised(NotesMiniViT(**{**SMALL, "in_channels": 1}))
    opened = load_minivit(save_state(user, tmp_path / "gray.pth"), heads=3)
    assert opened["channels"] == 1 and len(opened["mean"]) == 1 and len(opened["std"]) == 1
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(opened["model"](x), user(x), atol=1e-5)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {"model_state_dict": s, "optimizer_state_dict": {}, "epoch": 3},
        lambda s: {"state_dict": s},
        lambda s: {f"module.{k}": v for k, v in s.items()},
    ],
    ids=["model_state_dict", "state_dict", "DataParallel"],
)
def test_training_wrappers_and_dataparallel_prefix_are_recognised(tmp_path, wrap):
    user = randomised(NotesMiniViT(**SMALL))
    path = save_state(user, tmp_path / "ckpt.pt", wrap)
    assert is_minivit_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_minivit(path, heads=3)["model"](x), user(x), atol=1e-5)


def test_legacy_torch_save_format_loads(tmp_path):
    user = randomised(NotesMiniViT(**SMALL))
    path = tmp_path / "old.pt"
    torch.save(user.state_dict(), path, _use_new_zipfile_serialization=False)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_minivit(path, heads=3)["model"](x), user(x), atol=1e-5)


def test_safetensors_file_loads(tmp_path):
    from safetensors.torch import save_file

    user = randomised(NotesMiniViT(**SMALL))
    path = tmp_path / "minivit.safetensors"
    save_file({k: v.contiguous() for k, v in user.state_dict().items()}, str(path))
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other))
    assert is_minivit_file(path) and not is_minivit_file(other)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_minivit(path, heads=3)["model"](x), user(x), atol=1e-5)


# ---- the JSON file beside the checkpoint ---------------------------------------------------------------------------


def test_json_beside_the_checkpoint_supplies_what_weights_cannot_hold(tmp_path):
    torch.manual_seed(5)
    user = randomised(NotesMiniViT(**SMALL, norm_first=True, activation="gelu"))
    path = save_state(user, tmp_path / "minivit.pth")
    sidecar = {"heads": 3, "classes": ["a", "b", "c", "d", "e"], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
               "norm_first": True, "activation": "gelu"}
    (tmp_path / "minivit.json").write_text(json.dumps(sidecar))
    opened = load_minivit(path)
    assert opened["labels"] == ["a", "b", "c", "d", "e"]
    assert opened["mean"] == (0.5, 0.5, 0.5) and opened["std"] == (0.25, 0.25, 0.25)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(opened["model"](x), user(x), atol=1e-5)


def test_arguments_override_the_json(tmp_path):
    user = randomised(NotesMiniViT(**SMALL))
    path = save_state(user, tmp_path / "minivit.pth")
    (tmp_path / "minivit.json").write_text(json.dumps({"heads": 3, "classes": list("abcde")}))
    opened = load_minivit(path, classes=list("vwxyz"), mean=(0.1, 0.2, 0.3), std=[0.5])
    assert opened["labels"] == list("vwxyz") and opened["mean"] == (0.1, 0.2, 0.3)
    assert opened["std"] == (0.5, 0.5, 0.5)
    assert opened["model"].transformer.layers[0].self_attn.num_heads == 3


def test_json_with_an_unknown_key_is_named(tmp_path):
    path = save_state(NotesMiniViT(**SMALL), tmp_path / "minivit.pth")
    (tmp_path / "minivit.json").write_text(json.dumps({"head": 3}))
    with pytest.raises(CheckpointError, match="unknown key 'head'"):
        load_minivit(path)


# ---- refusals ------------------------------------------------------------------------------------------------------


def test_missing_heads_error_names_the_option(tmp_path):
    path = save_state(NotesMiniViT(**SMALL), tmp_path / "minivit.pth")
    with pytest.raises(CheckpointError, match="--heads") as err:
        load_minivit(path)
    message = str(err.value)
    assert "\n" not in message and "width 24" in message and "minivit.json" in message


def test_heads_that_do_not_divide_the_width_are_refused(tmp_path):
    path = save_state(NotesMiniViT(**SMALL), tmp_path / "minivit.pth")
    with pytest.raises(CheckpointError, match="--heads 5 does not divide the width 24"):
        load_minivit(path, heads=5)


def test_class_names_must_match_the_head(tmp_path):
    path = save_state(NotesMiniViT(**SMALL), tmp_path / "minivit.pth")
    with pytest.raises(CheckpointError, match="3 class names given for a head of 5 classes"):
        load_minivit(path, heads=3, classes=["a", "b", "c"])


def test_mean_with_the_wrong_number_of_channels_is_refused(tmp_path):
    path = save_state(NotesMiniViT(**SMALL), tmp_path / "minivit.pth")
    with pytest.raises(CheckpointError, match="mean must be 3 numbers"):
        load_minivit(path, heads=3, mean=(0.5, 0.5))


class _Marker:
    def __reduce__(self):
        return (os.system, ("touch /tmp/vitviz-minivit-pwned",))


def test_pickled_whole_model_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(randomised(NotesMiniViT(**SMALL)), path)
    with pytest.raises(CheckpointError, match="unpickling runs code.*--allow-pickle"):
        load_minivit(path, heads=3)
    with pytest.raises(CheckpointError, match="unpickling runs code"):
        is_minivit_file(path)


def test_pickle_with_code_is_never_executed(tmp_path):
    marker = "/tmp/vitviz-minivit-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"pos_embed": _Marker()}))
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint_state(path)
    assert not os.path.exists(marker)


def test_other_state_dicts_are_not_recognised(tmp_path):
    torch.manual_seed(6)
    other = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    assert not is_minivit_state_dict(other.state_dict())
    assert not is_minivit_state_dict({"pos_embed": torch.zeros(1, 5, 4), "cls_token": torch.zeros(1, 1, 4)})
    assert not is_minivit_state_dict({"epoch": 3})
    path = save_state(other, tmp_path / "cnn.pth")
    assert not is_minivit_file(path)
    assert is_minivit_file(save_state(NotesMiniViT(**SMALL), tmp_path / "minivit.pth"))
    with pytest.raises(CheckpointError, match="not a MiniViT state dict"):
        load_minivit(path, heads=1)


def test_extra_layers_are_named_and_point_to_the_code_route(tmp_path):
    state = NotesMiniViT(**SMALL).state_dict()
    state["aux_head.weight"] = torch.zeros(2, 24)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"unexpected: aux_head\.weight; .*--model PATH\.py:NAME"):
        load_minivit(path, heads=3)


def test_truncated_file_is_a_checkpoint_error(tmp_path):
    path = save_state(NotesMiniViT(**SMALL), tmp_path / "minivit.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated") as err:
        load_minivit(path, heads=3)
    assert "\n" not in str(err.value)


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_minivit(tmp_path / "nothing.pth", heads=3)
