"""The optional reranking stage: a cross-encoder rescoring the best fused candidates of a query."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.generation_reader import PassageRecord
from indexer.passages import embedding_text
from search_api.ranking.types import ScoredRows


class RerankerError(RuntimeError):
    """The configured reranker cannot be loaded."""


class Reranker(Protocol):
    """Scores how well each text answers a query; higher is better."""

    model_id: str

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One float32 score per text."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder loaded from a local folder (never downloaded from a hub)."""

    def __init__(self, path: Path, batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder

        if not path.is_dir():
            raise RerankerError(f"reranker_model {path} is not a folder holding a saved cross-encoder")
        try:
            self.model = CrossEncoder(str(path), local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise RerankerError(f"cannot load the cross-encoder in {path}: {exc}") from exc
        self.model_id = path.name
        self.batch_size = batch_size

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The cross-encoder's score of every (query, text) pair."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        scores = self.model.predict(
            [(query, text) for text in texts], batch_size=self.batch_size, show_progress_bar=False
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(texts))


def load_reranker(path: str | Path | None) -> Reranker | None:
    """The cross-encoder in the local folder `path`, or None when reranking is off (empty path)."""
    if path is None or not str(path).strip():
        return None
    return CrossEncoderReranker(Path(str(path).strip()).expanduser())


def rerank_text(passage: PassageRecord) -> str:
    """What the cross-encoder reads of a passage: the text the retrievers indexed (context, then text)."""
    return embedding_text(passage.text, passage.title, passage.heading)


def rerank(
    reranker: Reranker,
    query: str,
    ranked: ScoredRows,
    passages: Callable[[Sequence[int]], Mapping[int, PassageRecord]],
    depth: int,
) -> tuple[ScoredRows, dict[int, float]]:
    """The best `depth` fused rows reordered by the cross-encoder's scores, then the rest as fused; and each
    reranked row's cross-encoder score. `passages` reads the records of rows (a row it lacks is dropped)."""
    head, tail = ranked[:depth], ranked[depth:]
    records = passages([row for row, _ in head])
    head = [(row, score) for row, score in head if row in records]
    texts = [rerank_text(records[row]) for row, _ in head]
    scores = reranker.score(query, texts)
    order = np.argsort(-scores, kind="stable")
    return [head[i] for i in order] + tail, {head[i][0]: float(scores[i]) for i in order}
