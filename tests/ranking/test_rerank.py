"""The optional cross-encoder stage, with a tiny randomly initialised BERT cross-encoder built in the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from indexer.embedding import HashEmbedder
from indexer.generation_reader import GenerationReader, open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.ranking.reranking import RerankerError, load_reranker, rerank_text
from search_api.searcher import Searcher
from search_api.settings import ApiSettings
from tests.helpers.models import save_tiny_cross_encoder

WORDS = [
    "peer",
    "assessment",
    "rubrics",
    "calibrated",
    "offline",
    "video",
    "learners",
    "download",
    "engineering",
    "course",
    "design",
    "grades",
]
TEXTS = [
    "Peer assessment with calibrated rubrics in engineering courses.",
    "Calibrated rubrics make peer grades fair in design courses.",
    "Offline video packages let learners download lectures.",
    "Learners grade design work with rubrics.",
    "Engineering course design for large cohorts of learners.",
    "Peer grades and calibrated assessment of design work.",
    "Download the course videos for offline viewing.",
    "Rubrics for peer assessment of engineering design.",
]
QUERY = "peer assessment rubrics"


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with one output and a WordPiece vocabulary of the test's words, saved locally."""
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("cross-encoder"), WORDS)


def _oracle_scores(folder: Path, query: str, texts: list[str]) -> list[float]:
    """The cross-encoder's logit for each (query, text) pair, one pair at a time with plain transformers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    scores = []
    with torch.no_grad():
        for text in texts:
            encoded = tokenizer(query, text, truncation=True, return_tensors="pt")
            scores.append(float(model(**encoded).logits[0, 0]))
    return scores


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GenerationReader]:
    data = tmp_path_factory.mktemp("data")
    settings = ApiSettings(data_dir=data, model="hash-256", multilingual_model=None, passage_max_tokens=64)
    indexer = Indexer(settings, HashEmbedder(256))
    for number, text in enumerate(TEXTS):
        indexer.ingest(text.encode(), f"t{number}.txt", DocumentMetadata(language="en"))
    indexer.build()
    indexer.close()
    opened = open_published(data)
    assert opened is not None
    yield opened
    opened.close()


@pytest.mark.slow  # torch and transformers take seconds to import
def test_the_cross_encoder_reorders_the_top_fused_candidates(reader: GenerationReader, cross_encoder: Path) -> None:
    embedder = HashEmbedder(256)
    fused = Searcher(reader, embedder).search(QUERY, k=len(TEXTS))
    depth = 5
    reranked = Searcher(reader, embedder, reranker=load_reranker(cross_encoder), rerank_depth=depth).search(
        QUERY, k=len(TEXTS)
    )
    head = [h.passage for h in fused.hits[:depth]]
    scores = _oracle_scores(cross_encoder, QUERY, [rerank_text(p) for p in head])
    oracle_head = [p.row for _, p in sorted(zip(scores, head, strict=True), key=lambda item: -item[0])]
    assert oracle_head != [p.row for p in head], "the model must actually change the order for this test to bite"
    expected = oracle_head + [h.passage.row for h in fused.hits[depth:]]
    assert [h.passage.row for h in reranked.hits] == expected
    assert [h.rerank_score is not None for h in reranked.hits] == [True] * depth + [False] * (len(TEXTS) - depth)
    assert "rerank" in reranked.seconds and "rerank" not in fused.seconds
    # Paging walks the reranked order.
    second = Searcher(reader, embedder, reranker=load_reranker(cross_encoder), rerank_depth=depth).search(
        QUERY, k=2, offset=2
    )
    assert [h.passage.row for h in second.hits] == expected[2:4]


@pytest.mark.slow  # torch and transformers take seconds to import
def test_the_api_reranks_when_configured_and_not_otherwise(reader: GenerationReader, cross_encoder: Path) -> None:
    base = {"data_dir": reader.folder.parent.parent, "model": "hash-256", "multilingual_model": None}
    with TestClient(create_app(ApiSettings(**base), HashEmbedder(256))) as client:
        plain = client.get("/search", params={"q": QUERY, "k": 8}).json()["hits"]
    fused = Searcher(reader, HashEmbedder(256)).search(QUERY, k=8)
    assert [h["passage_id"] for h in plain] == [h.passage.passage_id for h in fused.hits], "off: fused order"
    assert all(h["rerank_score"] is None for h in plain)

    settings = ApiSettings(**base, reranker_model=str(cross_encoder), rerank_depth=8)
    with TestClient(create_app(settings, HashEmbedder(256))) as client:
        hits = client.get("/search", params={"q": QUERY, "k": 8}).json()["hits"]
    scores = _oracle_scores(cross_encoder, QUERY, [rerank_text(h.passage) for h in fused.hits])
    order = sorted(range(8), key=lambda i: -scores[i])
    assert [h["passage_id"] for h in hits] == [fused.hits[i].passage.passage_id for i in order]
    assert [h["rerank_score"] for h in hits] == sorted((h["rerank_score"] for h in hits), reverse=True)


def test_a_missing_reranker_folder_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"reranker_model .*missing.* is not a folder"):
        ApiSettings(data_dir=tmp_path, reranker_model=str(tmp_path / "missing"))


@pytest.mark.slow  # torch and transformers take seconds to import
def test_a_folder_without_a_model_fails_at_startup(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(RerankerError, match=r"cannot load the cross-encoder in .*not-a-model"):
        load_reranker(empty)
    settings = ApiSettings(
        data_dir=tmp_path / "data", model="hash-256", multilingual_model=None, reranker_model=str(empty)
    )
    with pytest.raises(RerankerError), TestClient(create_app(settings, HashEmbedder(256))):
        pass
