"""The embedding stage of a build: every passage's vector from each encoder, through the embedding cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from indexer.embedcache import EmbeddingCache, text_key
from indexer.embedding import Embedder
from indexer.settings import IndexerSettings


@dataclass(frozen=True)
class Embedded:
    """One matrix per encoder (row i: passage i), and what was computed now rather than read from the cache:
    passages that got at least one new vector, and vectors over all encoders."""

    vectors: list[np.ndarray]
    passages_embedded: int
    vectors_embedded: int


def embed_passages(
    texts: Sequence[str], embedders: Sequence[Embedder], settings: IndexerSettings, full: bool, progress: bool
) -> Embedded:
    """Embed `texts` with every encoder, computing only vectors the cache lacks (all of them with `full`);
    each batch of `embed_commit_passages` is committed, so a killed build resumes where it stopped."""
    vectors, fresh = [], set()
    vectors_embedded = 0
    for embedder in embedders:
        cache = EmbeddingCache(
            settings.embedding_cache_path, f"{embedder.model_id}@{embedder.version}", embedder.dimension
        )
        try:
            name = embedder.model_id.rsplit("/", 1)[-1]
            with tqdm(total=len(texts), desc=f"embed {name}", unit="passage", disable=not progress or not texts) as bar:
                matrix, embedded = cache.embed(
                    texts,
                    embedder.embed_passages,
                    batch_size=settings.embed_commit_passages,
                    on_progress=bar.update,
                    refresh=full,
                )
        finally:
            cache.close()
        vectors.append(matrix)
        vectors_embedded += len(embedded)
        fresh |= embedded
    passages_embedded = sum(1 for text in texts if text_key(text) in fresh) if fresh else 0
    return Embedded(vectors, passages_embedded, vectors_embedded)
