"""More like this: passages ranked by a stored passage's own vectors, against a brute-force numpy oracle."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from indexer.embedding import HashEmbedder
from indexer.generation_reader import GenerationReader, open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.cli import app as cli_app
from search_api.filters import SearchFilters
from search_api.searcher import Searcher, UnknownPassageError
from search_api.settings import ApiSettings
from tests.helpers import language_places_oracle, make_pdf

ENGLISH = HashEmbedder(256, languages=frozenset({"en"}))
MULTILINGUAL = HashEmbedder(128, languages=frozenset({"en", "es", "zh"}))
PEER_PAGES = [
    "Peer assessment with calibrated rubrics lets large engineering courses grade design work.",
    "Calibrated rubrics and peer assessment training improve the agreement of peer grades.",
]
OTHERS = {
    "peer-zh.txt": ("zh", "在大规模工程课程中使用校准评分量表进行同伴互评 peer assessment rubrics。"),
    "peer-es.txt": ("es", "La evaluación entre pares con rubrics calibradas funciona en cursos de ingeniería."),
    "rubrics-en.txt": ("en", "Rubrics calibrated on sample work make peer grades of design courses fair."),
    "lab-en.txt": ("en", "Virtual laboratories let engineering students repeat experiments at home."),
    "offline-en.txt": ("en", "Offline packages let learners in low bandwidth regions download lecture videos."),
}


def _ingest(indexer: Indexer) -> str:
    """The corpus of these tests; returns the id of the two-page English PDF."""
    pdf = indexer.ingest(make_pdf(PEER_PAGES), "peer.pdf", DocumentMetadata(title="Peer grading", language="en"))
    for name, (language, text) in OTHERS.items():
        indexer.ingest(text.encode(), name, DocumentMetadata(language=language))
    indexer.build()
    return pdf.document.id


def _first_row_of(reader: GenerationReader, document_id: str) -> int:
    records = reader.passages(range(reader.manifest.passage_count))
    return min(row for row, record in records.items() if record.document_id == document_id)


def _passage_id(reader: GenerationReader, document_id: str) -> str:
    row = _first_row_of(reader, document_id)
    return reader.passages([row])[row].passage_id


def _oracle(reader: GenerationReader, row: int, encoders: list[HashEmbedder]) -> list[tuple[int, float]]:
    """Brute force: each encoder ranks its route's rows (the row's language for the English encoder, the rest
    for the multilingual one) by cosine with the row's own vector, other documents only; RRF, then the
    languages' places as the multilingual encoder gives them."""
    own = reader.row_document[row]
    languages = reader.row_language
    fused: dict[int, float] = {}
    multilingual: list[tuple[float, list[int]]] = []
    for position, dense in enumerate(reader.dense):
        vectors = dense.index.reconstruct_n(0, dense.index.ntotal)
        scores = vectors @ vectors[row]
        if len(encoders) == 1:
            route = np.ones(len(languages), dtype=bool)
        elif position == 0:
            route = languages == languages[row]
        else:
            route = languages != languages[row]
        others = [int(r) for r in np.argsort(-scores, kind="stable") if reader.row_document[r] != own]
        for rank, r in enumerate([r for r in others if route[r]], start=1):
            fused[r] = fused.get(r, 0.0) + 1.0 / (60 + rank)
        if len(encoders) > 1 and position > 0:
            multilingual.append((1.0, others))
    if not multilingual:
        return sorted(fused.items(), key=lambda item: -item[1])
    return language_places_oracle(fused, multilingual, languages, str(languages[row]))


@pytest.fixture
def routed(settings: ApiSettings) -> Iterator[tuple[Searcher, str]]:
    indexer = Indexer(settings, ENGLISH, [MULTILINGUAL])
    pdf_id = _ingest(indexer)
    indexer.close()
    reader = open_published(settings.data_dir)
    assert reader is not None
    yield Searcher(reader, [ENGLISH, MULTILINGUAL]), pdf_id
    reader.close()


def test_similar_fuses_the_routed_stored_vectors_and_leaves_out_the_own_document(
    routed: tuple[Searcher, str],
) -> None:
    searcher, pdf_id = routed
    reader = searcher.reader
    row = _first_row_of(reader, pdf_id)
    source = reader.passages([row])[row]
    expected = _oracle(reader, row, [ENGLISH, MULTILINGUAL])
    result = searcher.similar(source.passage_id, k=10)
    assert [h.passage.row for h in result.hits] == [r for r, _ in expected]
    assert [round(h.score, 9) for h in result.hits] == [round(s, 9) for _, s in expected]
    assert pdf_id not in {h.passage.document_id for h in result.hits}, "not the passage, nor its document"
    assert {h.passage.language for h in result.hits} == {"en", "es", "zh"}, "other languages are found"
    assert result.source == source and result.query_language == "en"
    assert set(result.seconds) == {"dense:hash-256-en", "dense:hash-128-en-es-zh", "fetch"}


def test_similar_applies_the_filters_and_pages(routed: tuple[Searcher, str]) -> None:
    searcher, pdf_id = routed
    passage_id = _passage_id(searcher.reader, pdf_id)
    spanish = searcher.similar(passage_id, k=10, filters=SearchFilters(languages=("es",)))
    assert [h.passage.filename for h in spanish.hits] == ["peer-es.txt"]
    everything = searcher.similar(passage_id, k=4).hits
    second = searcher.similar(passage_id, k=2, offset=2).hits
    assert [h.passage.row for h in second] == [h.passage.row for h in everything[2:4]]
    assert [h.rank for h in second] == [3, 4]


def test_an_unknown_or_hidden_passage_is_unknown(routed: tuple[Searcher, str]) -> None:
    searcher, pdf_id = routed
    with pytest.raises(UnknownPassageError, match="no passage 0123456789abcdef01234567"):
        searcher.similar("0123456789abcdef01234567")
    with pytest.raises(UnknownPassageError):
        searcher.similar(_passage_id(searcher.reader, pdf_id), filters=SearchFilters(visibilities=("member",)))


@pytest.fixture
def client(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[tuple[TestClient, str]]:
    indexer = Indexer(settings, embedder)
    pdf_id = _ingest(indexer)
    indexer.close()
    with TestClient(create_app(settings, embedder)) as test_client:
        yield test_client, pdf_id


def test_the_route_ranks_by_cosine_with_the_passage(client: tuple[TestClient, str]) -> None:
    test_client, pdf_id = client
    reader = test_client.app.state.service.searcher.reader  # type: ignore[attr-defined]
    passage_id = _passage_id(reader, pdf_id)  # its cosines with the other rows have no ties
    hits = test_client.get("/search", params={"q": "peer assessment calibrated rubrics", "k": 10}).json()["hits"]
    source = next(h for h in hits if h["passage_id"] == passage_id)
    response = test_client.get(f"/passages/{source['passage_id']}/similar", params={"k": 3})
    assert response.status_code == 200
    body = response.json()
    row = reader.row_of(source["passage_id"])
    expected = _oracle(reader, row, [HashEmbedder(256)])[:3]
    records = reader.passages([r for r, _ in expected])
    assert [h["passage_id"] for h in body["hits"]] == [records[r].passage_id for r, _ in expected]
    assert (body["passage_id"], body["document_id"], body["language"]) == (source["passage_id"], pdf_id, "en")
    assert body["generation"] == reader.generation_id and [h["rank"] for h in body["hits"]] == [1, 2, 3]
    assert all("<mark>" not in h["snippet"] for h in body["hits"]), "no query, nothing to mark"

    grouped = test_client.get(f"/passages/{source['passage_id']}/similar", params={"group": "document"}).json()
    documents = [h["document_id"] for h in grouped["hits"]]
    assert len(documents) == len(set(documents)) == len(OTHERS) and pdf_id not in documents
    filtered = test_client.get(f"/passages/{source['passage_id']}/similar", params={"language": "zh"}).json()
    assert [h["language"] for h in filtered["hits"]] == ["zh"]


@pytest.mark.parametrize(
    ("passage_id", "params", "status", "code"),
    [
        ("0123456789abcdef01234567", {}, 404, "not_found"),
        ("not-a-passage", {}, 422, "invalid_request"),
        (None, {"k": 0}, 422, "invalid_k"),
        (None, {"offset": -1}, 422, "invalid_offset"),
        (None, {"resource_type": "poem"}, 422, "invalid_filter"),
    ],
)
def test_bad_similar_requests_get_json_errors(
    client: tuple[TestClient, str], passage_id: str | None, params: dict[str, object], status: int, code: str
) -> None:
    test_client, _ = client
    if passage_id is None:
        passage_id = test_client.get("/search", params={"q": "rubrics"}).json()["hits"][0]["passage_id"]
    response = test_client.get(f"/passages/{passage_id}/similar", params=params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_the_command_line_finds_more_like_a_passage(settings: ApiSettings, embedder: HashEmbedder) -> None:
    indexer = Indexer(settings, embedder)
    pdf_id = _ingest(indexer)
    indexer.close()
    reader = open_published(settings.data_dir)
    assert reader is not None
    row = _first_row_of(reader, pdf_id)
    passage_id = reader.passages([row])[row].passage_id
    expected = [r for r, _ in _oracle(reader, row, [embedder])[:2]]
    expected_ids = [reader.passages([r])[r].passage_id for r in expected]
    reader.close()
    base = ["--data-dir", str(settings.data_dir), "--model", "hash-256", "search"]
    result = CliRunner().invoke(cli_app, [*base, "--like", passage_id, "--k", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["like"] == passage_id and [h["passage_id"] for h in body["hits"]] == expected_ids

    unknown = CliRunner().invoke(cli_app, [*base, "--like", "0123456789abcdef01234567"])
    assert unknown.exit_code == 1 and "no passage 0123456789abcdef01234567" in unknown.stderr
    both = CliRunner().invoke(cli_app, [*base, "peer", "--like", passage_id])
    assert both.exit_code == 2 and "either a query or --like" in both.stderr
