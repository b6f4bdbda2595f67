"""Image-text models (issue 26's speed goals), CLIP-B/32 with random weights of the real architecture, 2-core CPU.

    python benchmarks/bench_imagetext.py [--runs 15]     # writes benchmarks/results/imagetext-<date>.json

Goals and what is timed (interleaved rounds, benchmarks/_common.time_round_robin):

- **Re-scoring after editing up to 10 labels <= 150 ms**: ``Engine.set_labels`` with 10 labels never seen before
  (the text tower runs on all 10, nothing is cached) plus ``Engine.rescore`` of a kept analysis (the image's
  embedding is reused, no image pass).
- **The text path adds <= 5 % to an analysis when the labels are unchanged**: ``Engine.analyze`` of the CLIP model
  against the same engine with its text tower taken out (no label scores, no image embedding); paired per round.
- **Image tower with attentions <= 1.0x transformers' CLIPVisionModel(output_attentions=True)**: vitviz's
  ``forward_features(return_attention=True)`` and the pooled, projected embedding, against transformers' vision
  model with projection, same weights, same 224x224 input, eager attention (the implementation that returns them).
  ``Engine.analyze`` (what the app and the CLI run: summary rows, rollout, label scores) is reported beside them.

The tokenizer is a byte-level BPE trained on a few sentences (tests/imagetext_models.py): it cuts words into more
tokens than CLIP's 49k-word vocabulary does, so the text tower sees at least as many tokens as with the real one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_IMAGE,
    ROOT,
    machine_info,
    machine_line,
    paired_ratio,
    result_path,
    table,
    time_round_robin,
    write_json,
)


def clip_b32_folder(folder: Path) -> None:
    """CLIP ViT-B/32's architecture (transformers' defaults) with random weights and a trained-here tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    sys.path.insert(0, str(ROOT))
    from tests.imagetext_models import clip_tokenizer

    _vocab, eos = clip_tokenizer(folder)
    (folder / "tokenizer_config.json").write_text('{"model_max_length": 77}')
    torch.manual_seed(0)
    config = CLIPConfig(text_config={"eos_token_id": eos, "bos_token_id": 0, "pad_token_id": eos},
                        vision_config={"patch_size": 32})
    CLIPModel(config).save_pretrained(folder)


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import CLIPVisionModelWithProjection

    from vitviz.engine import Engine, prepare_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--name", default="imagetext")
    args = parser.parse_args(argv)
    info = machine_info()
    print("Machine:", machine_line(info), flush=True)
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clip-b32-random"
        folder.mkdir()
        clip_b32_folder(folder)
        engine = Engine(str(folder), device="cpu")
        plain = Engine(str(folder), device="cpu")
        plain.model.text, plain.prompts = None, None  # the same image tower, without the text path
        reference = CLIPVisionModelWithProjection.from_pretrained(folder, attn_implementation="eager").eval()

    image = str(BENCH_IMAGE)
    kept = engine.analyze(image)
    rgb = prepare_image(Image.open(image).convert("RGB"), 224, 32)
    x = engine._tensor(rgb, engine.info)
    assert tuple(x.shape[-2:]) == (224, 224), x.shape
    counter = {"n": 0}

    def edit_ten_labels() -> None:  # 10 labels the cache has never seen
        counter["n"] += 1
        engine.set_labels([f"a photo of thing {counter['n']}-{i}" for i in range(10)], ["{}"])
        engine.rescore(kept)

    def vitviz_tower() -> None:
        out = engine.model.forward_features(x, return_attention=True)
        engine.model.pooled(out.tokens)

    def reference_tower() -> None:
        reference(pixel_values=x, output_attentions=True)

    # the same numbers from both towers (a check that the comparison is fair)
    out = engine.model.forward_features(x, return_attention=True)
    ref = reference(pixel_values=x, output_attentions=True)
    diff = float((torch.nn.functional.normalize(engine.model.pooled(out.tokens), dim=-1)
                  - torch.nn.functional.normalize(ref.image_embeds, dim=-1)).abs().max())
    engine.set_labels("cat, dog, bird, car, person, house, tree, flower, food, text", ["a photo of a {}."])
    raw: dict[str, list[float]] = {}
    timings = time_round_robin({
        "rescore_10_new_labels": edit_ten_labels,
        "analysis": lambda: engine.analyze(image),
        "analysis_without_text": lambda: plain.analyze(image),
        "vitviz_tower_with_attentions": vitviz_tower,
        "transformers_tower_with_attentions": reference_tower,
    }, args.warmup, args.runs, raw=raw)
    text_ratio = paired_ratio(raw["analysis"], raw["analysis_without_text"])
    tower_ratio = paired_ratio(raw["vitviz_tower_with_attentions"], raw["transformers_tower_with_attentions"])
    analysis_ratio = paired_ratio(raw["analysis"], raw["transformers_tower_with_attentions"])
    result = {
        "machine": info, "runs": args.runs, "timings": timings, "embedding_max_abs_diff": diff,
        "goals": {
            "rescore_10_labels_ms": {"median": timings["rescore_10_new_labels"]["median_ms"], "goal": 150.0},
            "text_path_added": {"median": round(text_ratio["median"] - 1.0, 4), "goal": 0.05, "ratio": text_ratio},
            "tower_over_transformers": {"median": tower_ratio["median"], "goal": 1.0, "ratio": tower_ratio},
            "analysis_over_transformers_tower": analysis_ratio,
        },
    }
    rows = [
        ["re-score after 10 new labels", f"{timings['rescore_10_new_labels']['median_ms']:.1f} ms", "<= 150 ms"],
        ["text path added to an analysis", f"{100 * (text_ratio['median'] - 1):+.1f} % "
         f"({100 * (text_ratio['p10'] - 1):+.1f}…{100 * (text_ratio['p90'] - 1):+.1f})", "<= 5 %"],
        ["image tower with attentions / transformers", f"{tower_ratio['median']:.2f}x "
         f"({tower_ratio['p10']:.2f}…{tower_ratio['p90']:.2f})", "<= 1.0x"],
        ["Engine.analyze / transformers tower", f"{analysis_ratio['median']:.2f}x", "(reported)"],
    ]
    print(table(rows, ["measure", "median (p10…p90 of rounds)", "goal"]))
    for name, t in timings.items():
        print(f"  {name}: {t['median_ms']:.1f} ms")
    print("image embeddings agree to", diff)
    print("wrote", write_json(result, result_path(args.name)))
    return 0 if np.isfinite(diff) else 1


if __name__ == "__main__":
    raise SystemExit(main())
