"""Small models made inside the test: nothing is downloaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def save_tiny_cross_encoder(folder: Path, words: Sequence[str]) -> Path:
    """A 2-layer, 32-wide BERT cross-encoder with one output and a WordPiece vocabulary of `words`, saved in
    `folder`; wide random weights give clearly different scores for different texts."""
    import torch  # heavy (20-30 s here): only the slow tests that build a reranker pay for it
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(folder / "vocab.txt"), model_max_length=512)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
        initializer_range=0.5,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
