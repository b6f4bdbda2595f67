"""The training of the shipped image-text model (vitviz.synthetic.train_text): hard negative captions, the loss with
captions true of no scene, the per-patch targets of the dense loss, and a tower resized to finer patches."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vitviz.synthetic.captions import (COLOURS, SHAPE_WORDS, CaptionFacts, Mention, ObjectFacts, caption,
                                       hard_negative, query, truth)
from vitviz.synthetic.train_text import contrastive_loss, patch_targets, sigmoid_loss

from .conftest import tiny_config

AREA = 128 * 128
# a red cube (18 % of the picture), a blue ball left of it and in front (4 %: salient), a tiny two-coloured cone
SCENE = [ObjectFacts(0, "cube", ("red",), 3000, (), 0.6, 2.0),
         ObjectFacts(1, "sphere", ("blue",), 650, ("to the left of",), 0.3, 1.5),
         ObjectFacts(2, "cone", ("green", "yellow"), 100, (), 0.9, 2.1)]
TRUE, MOOT, FALSE = 2, 1, 0


def _says(*mentions: Mention) -> CaptionFacts:
    return CaptionFacts(tuple(mentions))


def test_each_word_is_true_of_any_salient_object_and_moot_of_a_tiny_one():
    claims = [_says(Mention("cube")), _says(Mention("sphere")), _says(Mention("cone")), _says(Mention("torus")),
              _says(Mention("cone", small=True)), _says(Mention("cube", small=True)),
              _says(Mention(None, ("blue",))), _says(Mention(None, ("yellow",))), _says(Mention("sphere", ("red",)))]
    assert truth([SCENE], claims, AREA)[0].tolist() == [TRUE, TRUE, MOOT, FALSE, TRUE, FALSE, TRUE, MOOT, FALSE]


def test_relations_and_their_anchor_decide_a_caption():
    left = _says(Mention("cube"), Mention("sphere", relation="to the left of"))
    right = _says(Mention("cube"), Mention("sphere", relation="to the right of"))
    front = _says(Mention("cube"), Mention("sphere", relation="in front of"))
    swapped = _says(Mention("sphere"), Mention("cube", relation="to the right of"))  # the ball as the anchor
    itself = _says(Mention("cube"), Mention("cube"))  # a second cube: there is none
    assert truth([SCENE], [left, right, front, swapped, itself], AREA)[0].tolist() == [TRUE, FALSE, TRUE, TRUE, FALSE]


def test_captions_name_every_salient_object_and_are_true_of_their_scene():
    rng = np.random.default_rng(1)
    for _ in range(30):
        _text, claim = caption(SCENE, rng, AREA, mention_p=1.0)
        named = sorted(m.shape or "?" for m in claim.mentions if not m.small)
        assert len(claim.mentions) == 3 and [m.small for m in claim.mentions].count(True) == 1
        assert set(named) <= {"cube", "sphere", "?"} and len(named) == 2
        assert truth([SCENE], [claim], AREA)[0, 0] == TRUE
        _text, question = query(SCENE, rng, AREA)
        assert len(question.mentions) == 1 and truth([SCENE], [question], AREA)[0, 0] == TRUE


def test_hard_negatives_change_one_thing_and_are_mostly_false_of_their_scene():
    rng = np.random.default_rng(0)
    negatives = [hard_negative(SCENE, rng, AREA) for _ in range(300)]
    judged = truth([SCENE], [c for _, c in negatives], AREA)[0]
    assert (judged == FALSE).mean() > 0.8
    lone = [hard_negative(SCENE[:1], rng, AREA) for _ in range(50)]  # one object: it changes
    assert (truth([SCENE[:1]], [c for _, c in lone], AREA)[0] == FALSE).mean() > 0.8


def test_the_loss_reads_captions_true_of_no_scene_as_negatives_only():
    torch.manual_seed(0)
    image = F.normalize(torch.randn(4, 8), dim=-1)
    text = torch.cat([image, F.normalize(torch.randn(2, 8), dim=-1)])  # 4 true captions, 2 true of none
    positive = torch.zeros(4, 6, dtype=torch.bool)
    positive[range(4), range(4)] = True
    scale = torch.tensor(10.0)
    loss = contrastive_loss(image, text, scale, positive)
    assert torch.isfinite(loss)
    aligned = contrastive_loss(image, text[torch.tensor([1, 0, 3, 2, 4, 5])], scale, positive)
    assert loss < aligned  # lower when each scene's own caption is nearest
    closer = torch.cat([image, image[:2]])  # negatives equal to scenes 0 and 1: harder
    assert contrastive_loss(image, closer, scale, positive) > loss


def test_the_sigmoid_loss_judges_each_pair_alone_and_leaves_moot_ones_out():
    torch.manual_seed(0)
    image = F.normalize(torch.randn(4, 8), dim=-1)
    text = image.clone()
    judged = np.zeros((4, 4), np.int8)
    np.fill_diagonal(judged, TRUE)
    scale, bias = torch.tensor(10.0), torch.tensor(-5.0)
    loss = sigmoid_loss(image, text, scale, bias, judged)
    assert loss < sigmoid_loss(image, text[torch.tensor([1, 0, 3, 2])], scale, bias, judged)
    moot = judged.copy()
    moot[0, 1] = MOOT  # a pair left out changes the loss by exactly its term
    term = F.softplus(scale * image[0] @ text[1] + bias) / 4
    torch.testing.assert_close(loss - sigmoid_loss(image, text, scale, bias, moot), term)
    # a second true caption of scene 0 changes only its own term: the captions do not compete (unlike a softmax)
    two = judged.copy()
    two[0, 1] = TRUE
    logit = scale * image[0] @ text[1] + bias
    torch.testing.assert_close(sigmoid_loss(image, text, scale, bias, two) - loss,
                               (F.softplus(-logit) - F.softplus(logit)) / 4)
    # a caption's weight scales its own terms alone (the label box's one-word questions weigh more in training)
    weight = torch.tensor([1.0, 3.0, 1.0, 1.0])
    torch.testing.assert_close(sigmoid_loss(image, text, scale, bias, judged, weight) - loss,
                               2.0 * sum(F.softplus(scale * image[i] @ text[1] + bias) for i in (0, 2, 3)) / 4
                               + 2.0 * F.softplus(-(scale * image[1] @ text[1] + bias)) / 4)


def test_patch_targets_name_each_objects_patches_and_weigh_the_objects_alike():
    ids = np.full((1, 32, 32), -1, np.int8)  # a 4x4 grid of 8-pixel patches
    ids[0, :16, :16] = 0  # the main object: 4 patches
    ids[0, 24:30, 24:30] = 1  # a distractor: 36 of one patch's 64 pixels
    ids[0, 0:2, 30:32] = 2  # a speck: 4 pixels, under the minimum cover
    facts = [[ObjectFacts(0, "torus", ("pink",), 256), ObjectFacts(1, "star prism", ("grey", "red"), 36),
              ObjectFacts(2, "cone", ("green",), 4)]]
    shape, colour, weight = patch_targets(ids, facts, (4, 4), min_cover=0.25)
    grid = shape[0].reshape(4, 4)
    assert (grid[:2, :2] == SHAPE_WORDS.index("torus")).all() and grid[3, 3] == SHAPE_WORDS.index("star prism")
    assert (shape[0] >= 0).sum() == 5  # not the speck, not the background
    assert colour[0].reshape(4, 4)[3, 3] == COLOURS.index("grey")  # an object's first colour
    np.testing.assert_allclose(weight[0].reshape(4, 4)[:2, :2], 0.25)
    assert weight[0].reshape(4, 4)[3, 3] == 1.0 and weight[0][shape[0] < 0].sum() == 0


def _tiny_tower():
    from vitviz.models.vit import VisionTransformer

    torch.manual_seed(0)
    tower = VisionTransformer(tiny_config())
    with torch.no_grad():
        tower.pos_embed.normal_(0, 0.5)
    return tower.eval()


def test_a_tower_resized_to_finer_patches_sees_a_plain_image_as_before():
    from vitviz.synthetic.train_text import resized_tower

    tower = _tiny_tower()
    finer = resized_tower(tower, 4)  # 8 px patches of a 32 px image become 4 px ones: a 4x4 grid becomes 8x8
    assert finer.config.patch_size == 4 and finer.config.grid_size == 8
    assert finer.pos_embed.shape[1] == 1 + 64 and finer.depth_head is None
    plain = torch.full((1, 3, 32, 32), 0.3)
    before, _ = tower.patch_embed(plain)
    after, grid = finer.patch_embed(plain)
    assert grid == (8, 8)
    torch.testing.assert_close(after, before[:, :1].expand(-1, 64, -1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(finer.blocks[0].state_dict(), tower.blocks[0].state_dict())
    torch.testing.assert_close(finer.pos_embed[:, 0], tower.pos_embed[:, 0])  # the CLS token's, kept
    # at its own patch size (train_text's --train-embedding) the copy starts as the tower: only training moves it
    same = resized_tower(tower, 8)
    image = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(same.embed(image)[0], tower.embed(image)[0], atol=1e-6, rtol=1e-6)


def test_a_model_trained_on_finer_patches_exports_a_folder_the_engine_reads(tmp_path):
    from types import SimpleNamespace

    from vitviz.engine import Engine
    from vitviz.synthetic.export_text import export_folder
    from vitviz.synthetic.train_text import (EOS, ImageTextModel, TextTrainConfig, build_tokenizer, final_patch_mean,
                                             resized_tower)

    cfg = TextTrainConfig(image_size=32, new_blocks=3, embed_dim=16, text_width=16, text_depth=1, text_heads=2)
    tower = resized_tower(_tiny_tower(), 4)
    tok = build_tokenizer(cfg.context_length)
    model = ImageTextModel(cfg, tower, tok.get_vocab_size(), tok.token_to_id(EOS), embedding=tower).eval()
    with torch.no_grad():  # as if trained: the embedding differs from the resampled one, weights as float16 stores
        tower.patch_embed.proj.weight.add_(0.05 * torch.randn_like(tower.patch_embed.proj.weight))
        for p in model.parameters():
            p.copy_(p.half().float())
    info = SimpleNamespace(mean=(0.5,) * 3, std=(0.5,) * 3)
    # an out-of-domain detector of two parts (one per kind of scene), as train_text fits it
    rng = np.random.default_rng(1)

    def tokens(n: int, lo: int, hi: int) -> torch.Tensor:  # mean final patch tokens of n images of a kind
        with torch.no_grad():
            return final_patch_mean(model, torch.from_numpy(rng.integers(lo, hi, (n, 32, 32, 3), dtype=np.uint8)))

    parts = [{"fit": tokens(40, lo, hi), "val": tokens(20, lo, hi), "fit_labels": torch.arange(40) % 10}
             for lo, hi in ((0, 128), (128, 256))]
    folder = export_folder(model, tower, info, tok, cfg, {}, tmp_path / "text-p4", {"parts": parts})
    engine = Engine(str(folder), device="cpu")
    detector = engine.info.domain_detector
    assert detector.threshold == 1.0 and detector.part_thresholds.shape == (2,) and detector.means.shape[0] == 20
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    result = engine.analyze(image)
    assert result.domain is not None and result.domain.threshold == 1.0
    assert (result.grid.rows, result.grid.cols, result.grid.patch_size) == (8, 8, 4)
    with torch.no_grad():
        expected = model.image(torch.from_numpy(image)[None])[0].numpy()
    np.testing.assert_allclose(result.image_embedding, expected, atol=2e-3)
    # the recipe's per-word scoring and its learnt bias travel with the folder: each label its own sigmoid
    assert engine.scoring == "sigmoid" and result.scoring == "sigmoid"
    assert float(engine.model.text.logit_bias) == float(model.text.logit_bias.half())
    np.testing.assert_allclose(result.probabilities, 1 / (1 + np.exp(-result.logits)), rtol=1e-5)


def test_group_scenes_show_two_or_three_objects_of_different_shapes_each_plainly_visible():
    from vitviz.synthetic.captions import scene_facts, second_object, shape_presence
    from vitviz.synthetic.groups import MIN_SALIENT_SHARE, random_group_spec
    from vitviz.synthetic.scenes import object_ids, render_spec

    seen = []
    for seed in range(12):
        spec = random_group_spec(seed)
        ids = object_ids(spec, 96)
        shares = np.bincount(ids[ids >= 0].ravel().astype(np.int64), minlength=len(spec["objects"])) / ids.size
        salient = [k for k, share in enumerate(shares) if share >= MIN_SALIENT_SHARE]
        seen.append(len(salient))
        shapes = [spec["objects"][k]["shape"] for k in salient]
        assert len(set(shapes)) == len(shapes)
        facts = scene_facts(spec, ids)
        if len(salient) >= 2:
            assert second_object(facts, ids.size) is not None and len(shape_presence(facts, ids.size)[0]) >= 2
        assert np.isfinite(render_spec(spec, 32).depth).all()  # every ray hits ground or wall
    assert min(seen) >= 1 and sum(n >= 2 for n in seen) >= 10 and 3 in seen
    assert random_group_spec(3) == random_group_spec(3)  # deterministic in the seed


def test_pair_scenes_are_standard_scenes_with_a_second_object_of_another_shape():
    """The pair kind: a large main object and a second salient one, which one standard scene in twelve has."""
    from vitviz.synthetic.captions import scene_facts, second_object
    from vitviz.synthetic.groups import random_pair_spec
    from vitviz.synthetic.scenes import object_ids, random_spec

    found = 0
    for seed in range(8):
        spec = random_pair_spec(seed)
        assert set(spec) == set(random_spec(seed))  # the standard generator's scene, nothing added
        facts = scene_facts(spec, object_ids(spec, 128))
        second = second_object(facts, 128 * 128)
        found += second is not None
        if second is not None:
            assert second.shape != facts[0].shape and second.pixels >= 0.03 * 128 * 128
    assert found >= 7  # checked at 64 px: the 128 px map may put one just under 3 %
    assert random_pair_spec(5) == random_pair_spec(5)
    plain = [random_spec(seed) for seed in range(24)]
    assert sum(second_object(scene_facts(s, object_ids(s, 64)), 64 * 64) is not None for s in plain) <= 8


def test_a_mirrored_scene_swaps_left_and_right_and_its_patches_mirror_with_it():
    from vitviz.synthetic.captions import mirrored, scene_facts
    from vitviz.synthetic.scenes import object_ids
    from vitviz.synthetic.text_data import scene_spec
    from vitviz.synthetic.train_text import mirrored_rows

    left_of = _says(Mention("cube"), Mention("sphere", relation="to the left of"))
    right_of = _says(Mention("cube"), Mention("sphere", relation="to the right of"))
    assert truth([SCENE], [left_of, right_of]).tolist() == [[TRUE, FALSE]]
    assert truth([mirrored(SCENE, 128)], [left_of, right_of]).tolist() == [[FALSE, TRUE]]
    sides = 0
    for kind, seed in (("standard", 5), ("group", 5), ("group", 6), ("group", 7)):
        spec = scene_spec(seed, kind)
        ids = object_ids(spec, 64)
        flipped = np.ascontiguousarray(ids[:, ::-1])
        expected = scene_facts(spec, flipped)  # what the mirror image's own render says
        got = mirrored(scene_facts(spec, ids), 64)
        assert [(o.index, o.shape, o.colours, o.relations, o.z) for o in got] == \
            [(o.index, o.shape, o.colours, o.relations, o.z) for o in expected]
        assert np.allclose([o.x for o in got], [o.x for o in expected], atol=1e-6)
        sides += sum(r in ("to the left of", "to the right of") for o in got for r in o.relations)
        targets = patch_targets(ids[None], [scene_facts(spec, ids)], (4, 4), 0.25)
        mirror_targets = patch_targets(flipped[None], [expected], (4, 4), 0.25)
        for plain, mirror in zip(targets, mirror_targets):
            assert torch.equal(mirrored_rows(torch.from_numpy(plain), torch.tensor([True]), (4, 4)),
                               torch.from_numpy(mirror))
            assert torch.equal(mirrored_rows(torch.from_numpy(plain), torch.tensor([False]), (4, 4)),
                               torch.from_numpy(plain))
    assert sides  # some relation was swapped


def test_an_epoch_shows_every_scene_and_the_pair_scenes_as_often_as_asked():
    from vitviz.synthetic.train_text import TextTrainConfig, epoch_pool

    cfg = TextTrainConfig(train_size=5, pair_size=3, group_size=4, pair_repeat=3)
    counts = torch.bincount(epoch_pool(12, cfg), minlength=12).tolist()
    assert counts == [1] * 5 + [3] * 3 + [1] * 4  # standard, pair (three times), group
    assert torch.bincount(epoch_pool(12, TextTrainConfig(train_size=5, pair_size=3))).tolist() == [1] * 12
