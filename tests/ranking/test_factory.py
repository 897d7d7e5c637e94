"""One way to build a searcher: the four paths that rank (the service, the quality gate, `evaluate()` and
`moocsearch search`) give the same documents in the same order, with the same scores where they show them, for
the same settings, a tiny randomly initialised cross-encoder reranker included."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from indexer.embedding import HashEmbedder
from indexer.generation import generations_root, published_generation_id
from search_api.app import create_app
from search_api.cli import app as cli_app
from search_api.factory import load_query_models
from search_api.operations.evaluation import BeirData, BeirDocument, evaluate, ingest_corpus
from search_api.operations.gate import generation_search
from search_api.operations.indexers import open_indexer
from search_api.settings import ApiSettings
from tests.helpers.models import save_tiny_cross_encoder

WORDS = ["peer", "assessment", "rubrics", "calibrated", "offline", "video", "learners", "download", "design", "course"]
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
QUERIES = {"q0": "peer assessment rubrics", "q1": "offline video download", "q2": "course design learners"}
DATA = BeirData(
    "tiny",
    [BeirDocument(f"d{number}", "", text) for number, text in enumerate(TEXTS)],
    QUERIES,
    {query_id: {"d0": 1} for query_id in QUERIES},
)

Ranking = list[tuple[str, float | None]]  # (BEIR document id, score where the path shows one), best first


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT cross-encoder with one output and a vocabulary of the test's words, saved locally."""
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("cross-encoder"), WORDS)


def _settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> ApiSettings:
    """One set of settings, from the environment, so that `moocsearch search` reads exactly these too."""
    given = {"DATA_DIR": str(data_dir), "MODEL": "hash-256", "MULTILINGUAL_MODEL": "", "PASSAGE_MAX_TOKENS": "64"}
    for name, value in {**given, **extra}.items():
        monkeypatch.setenv(f"MOOCSEARCH_{name}", value)
    return ApiSettings()


def _eval_rankings(settings: ApiSettings) -> dict[str, list[str]]:
    """What `evaluate()` ranks for each query (it builds its own data directory from DATA)."""
    rankings: dict[str, list[str]] = {}
    evaluate(DATA, settings, HashEmbedder(256), on_query=lambda query_id, ranking: rankings.update({query_id: ranking}))
    return rankings


def _assert_four_paths_rank_alike(settings: ApiSettings) -> dict[str, list[str]]:
    """Rank QUERIES through the four paths over DATA; every path gives the service's documents in its order,
    `moocsearch search` its scores too (the gate and eval show none). Returns eval's rankings."""
    with closing(open_indexer(settings, gate=False)) as indexer:
        beir_ids = ingest_corpus(indexer, DATA)
        indexer.build()
    beir_of = {catalog_id: ids[0] for catalog_id, ids in beir_ids.items()}
    k = len(TEXTS)

    service: dict[str, Ranking] = {}
    with TestClient(create_app(settings, HashEmbedder(256))) as client:
        for query_id, query in QUERIES.items():
            hits = client.get("/search", params={"q": query, "k": k, "group": "document"}).json()["hits"]
            reranked = [hit["rerank_score"] is not None for hit in hits]
            assert reranked == [bool(settings.reranker_model)] * len(hits)
            service[query_id] = [(beir_of[hit["document_id"]], round(hit["score"], 4)) for hit in hits]

    root = generations_root(settings.data_dir)
    published = published_generation_id(root)
    assert published is not None
    gate_search = generation_search(settings, load_query_models(settings, [HashEmbedder(256)]))
    gated = gate_search(root / published, list(QUERIES.values()), k)
    gate = {query_id: [beir_of[ids[0]] for ids in found] for query_id, found in zip(QUERIES, gated, strict=True)}

    cli: dict[str, Ranking] = {}
    for query_id, query in QUERIES.items():
        result = CliRunner().invoke(cli_app, ["search", query, "-k", str(k), "--per-document", "--json"])
        assert result.exit_code == 0, result.stderr
        cli[query_id] = [(beir_of[hit["document_id"]], hit["score"]) for hit in json.loads(result.stdout)["hits"]]

    evaluated = _eval_rankings(settings)

    for query_id in QUERIES:
        order = [doc for doc, _ in service[query_id]]
        assert len(order) == len(TEXTS)
        assert cli[query_id] == service[query_id], f"{query_id}: moocsearch search"
        assert gate[query_id] == order, f"{query_id}: the quality gate"
        assert evaluated[query_id] == order, f"{query_id}: evaluate()"
    return evaluated


def test_service_gate_eval_and_cli_rank_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Weights other than the defaults: a path that built its searcher without the settings would drift.
    settings = _settings(tmp_path / "data", monkeypatch, DENSE_WEIGHT="0.4", LEXICAL_WEIGHT="1.7")
    evaluated = _assert_four_paths_rank_alike(settings)
    assert _eval_rankings(settings.model_copy(update={"dense_weight": 1.0, "lexical_weight": 1.0})) != evaluated


@pytest.mark.slow  # torch and transformers take seconds to import
def test_service_gate_eval_and_cli_rank_alike_with_the_reranker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cross_encoder: Path
) -> None:
    settings = _settings(tmp_path / "data", monkeypatch, RERANKER_MODEL=str(cross_encoder), RERANK_DEPTH="8")
    evaluated = _assert_four_paths_rank_alike(settings)
    # The reranker changes eval's ranking, so the comparison above would catch an eval that dropped it.
    plain = _eval_rankings(settings.model_copy(update={"reranker_model": ""}))
    assert plain != evaluated
