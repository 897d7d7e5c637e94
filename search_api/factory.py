"""One way to make the read side's query parts from settings.

`serve`, the quality gate, `moocsearch eval` and `moocsearch search` each open a searcher over a generation; when
each assembled its own, they drifted (evaluation ran without the configured reranker, so it scored another
ranking than `serve` answered). They all go through `load_query_models` and `open_searcher` now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.embedding import Embedder, load_embedders
from indexer.generation_reader import GenerationReader
from search_api.ranking.reranking import Reranker, load_reranker
from search_api.searcher import Searcher
from search_api.settings import ApiSettings


@dataclass(frozen=True)
class QueryModels:
    """Everything besides the generation that ranks a query: the encoders and the optional cross-encoder."""

    encoders: tuple[Embedder, ...]
    reranker: Reranker | None = None


def load_encoders(settings: ApiSettings) -> tuple[Embedder, ...]:
    """The configured encoders, primary first; raises UnknownModelError for an unknown one."""
    return tuple(load_embedders(settings.model, settings.multilingual_model, settings.embed_batch_size))


def load_query_models(settings: ApiSettings, encoders: Sequence[Embedder] | None = None) -> QueryModels:
    """The configured encoders (or `encoders`, already loaded) and the configured reranker.

    Raises UnknownModelError for an unknown encoder and RerankerError for a reranker folder without a model."""
    loaded = load_encoders(settings) if encoders is None else tuple(encoders)
    return QueryModels(loaded, load_reranker(settings.reranker_model))


def open_searcher(reader: GenerationReader, settings: ApiSettings, models: QueryModels) -> Searcher:
    """A searcher over `reader` that ranks exactly as `serve` does with these settings and models."""
    return Searcher(
        reader,
        list(models.encoders),
        settings.dense_weight,
        settings.lexical_weight,
        reranker=models.reranker,
        rerank_depth=settings.rerank_depth,
    )
