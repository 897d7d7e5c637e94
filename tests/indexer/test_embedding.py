"""Encoder registry and the deterministic fake."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.embedding import HashEmbedder, UnknownModelError, load_embedders, model_list


def test_multilingual_models_are_a_comma_separated_list_loaded_lazily() -> None:
    assert model_list(" use-multilingual-v3, multilingual-e5-small ,") == [
        "use-multilingual-v3",
        "multilingual-e5-small",
    ]
    assert model_list("") == model_list(None) == []
    loaded = load_embedders("hash-256", "use-multilingual-v3,multilingual-e5-small,hash-256")
    assert [e.model_id for e in loaded] == [
        "hash-256",
        "google/universal-sentence-encoder-multilingual-3",
        "intfloat/multilingual-e5-small",
    ]
    assert [e.dimension for e in loaded] == [256, 512, 384]
    assert loaded[1].languages is not None and "zh" in loaded[1].languages and loaded[2].languages is None


def test_unknown_models_are_refused_with_the_known_ids() -> None:
    with pytest.raises(UnknownModelError, match="all-minilm-l6-v2"):
        load_embedders("hash-256", "no-such-model")


def test_the_fake_is_deterministic_normalised_and_lexical() -> None:
    fake = HashEmbedder(64)
    vectors = fake.embed_passages(["peer review rubrics", "peer review rubrics", "offline video download"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(vectors[0], vectors[1])
    query = fake.embed_queries(["rubrics for peer review"])[0]
    assert query @ vectors[0] > query @ vectors[2]
