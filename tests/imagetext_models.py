"""Small CLIP and SigLIP folders in the Hub's transformers format, with random weights and tokenizers trained here,
for the image-text tests (built with transformers, the reference implementation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TEXTS = [
    "a photo of a cat.", "a photo of a dog.", "a red ball beside a blue capsule", "a teapot on the floor",
    "the quick brown fox jumps over the lazy dog", "zebra, yak & xylophone!", "Hello, World", "café au lait",
]


def clip_tokenizer(folder: Path) -> tuple[int, int]:
    """A byte-level BPE ``tokenizer.json`` as CLIP's (start and end-of-text tokens around the text); returns
    (vocabulary size, end-of-text id)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS * 4, trainer)
    bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    return tok.get_vocab_size(), eos


def siglip_tokenizer(folder: Path) -> int:
    """A SentencePiece ``spiece.model`` as SigLIP's (pad 0, end of text 1, unknown 2); returns its vocabulary size."""
    import io

    sentencepiece = pytest.importorskip("sentencepiece")  # the text extra

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([t.lower() for t in TEXTS] * 8), model_writer=model, vocab_size=60,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, model_type="unigram", hard_vocab_limit=False,
        minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16, "do_lower_case": True}))
    return 60


def make_clip(folder: Path, patch: int = 8, image: int = 32, layers: int = 2, seed: int = 0):
    """A CLIP folder (config.json, model.safetensors, tokenizer, preprocessor_config.json); returns the model."""
    import torch

    pytest.importorskip("transformers", minversion="4.47")  # the reference extra
    from transformers import CLIPConfig, CLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab, eos = clip_tokenizer(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, max_position_embeddings=16, bos_token_id=0, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=layers, num_attention_heads=4,
                           image_size=image, patch_size=patch),
        projection_dim=24,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with torch.no_grad():  # the default initialisation leaves norms at 1 and biases at 0: make them count
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias") or "class_embedding" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"shortest_edge": image}, "do_center_crop": True,
        "crop_size": {"height": image, "width": image}, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    return model


def make_siglip(folder: Path, patch: int = 8, image: int = 32, layers: int = 2, seed: int = 0):
    """A SigLIP folder (config.json, model.safetensors, spiece.model, preprocessor_config.json); returns the model."""
    import torch

    pytest.importorskip("transformers", minversion="4.47")  # the reference extra
    from transformers import SiglipConfig, SiglipModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = siglip_tokenizer(folder)
    config = SiglipConfig(
        text_config=dict(vocab_size=vocab, hidden_size=48, intermediate_size=96, num_hidden_layers=layers,
                         num_attention_heads=4, max_position_embeddings=16, pad_token_id=1, eos_token_id=1,
                         bos_token_id=None),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=layers, num_attention_heads=4,
                           image_size=image, patch_size=patch),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias") or "probe" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"height": image, "width": image}, "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5]}))
    return model
