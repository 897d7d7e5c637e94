"""The HTTP API through the real app (FastAPI TestClient), with the fake embedder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from indexer.embedding import HashEmbedder
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.settings import ApiSettings
from tests.helpers import make_pdf

PEER = "Peer assessment with calibrated rubrics lets thousands of learners grade design work."
OFFLINE = "Offline packages let learners in low bandwidth regions download lecture videos."


@pytest.fixture
def built(settings: ApiSettings, embedder: HashEmbedder) -> dict[str, str]:
    indexer = Indexer(settings, embedder)
    pdf = indexer.ingest(
        make_pdf(["Course context and the cohort of the engineering course.", PEER]),
        "peer.pdf",
        DocumentMetadata(
            title="Peer Assessment at Scale",
            member="Tsinghua University",
            language="en",
            resource_type="practice_report",
            year=2024,
        ),
    )
    txt = indexer.ingest(OFFLINE.encode(), "offline.txt", DocumentMetadata(member="University of Nairobi"))
    indexer.build()
    indexer.close()
    return {"pdf": pdf.document.id, "txt": txt.document.id}


@pytest.fixture
def client(settings: ApiSettings, embedder: HashEmbedder, built: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedder)) as test_client:
        yield test_client


def test_get_search_returns_ranked_cited_passages(client: TestClient, built: dict[str, str]) -> None:
    response = client.get("/search", params={"q": "calibrated rubrics peer assessment", "k": 3})
    assert response.status_code == 200
    body = response.json()
    top = body["hits"][0]
    assert top["text"] == PEER
    assert top["document_id"] == built["pdf"]
    assert (top["title"], top["member"], top["page"], top["resource_type"], top["year"]) == (
        "Peer Assessment at Scale",
        "Tsinghua University",
        2,
        "practice_report",
        2024,
    )
    assert top["link"] == f"/documents/{built['pdf']}/file#page=2"
    assert top["language"] == "en" and top["rank"] == 1
    assert body["generation"].startswith("g") and body["k"] == 3
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_post_search_takes_the_same_parameters_as_json(client: TestClient, built: dict[str, str]) -> None:
    response = client.post("/search", json={"query": "download videos offline low bandwidth", "k": 1})
    assert response.status_code == 200
    [hit] = response.json()["hits"]
    assert hit["document_id"] == built["txt"] and hit["page"] is None
    assert hit["link"] == f"/documents/{built['txt']}/file"


def test_offset_pages_through_the_same_ranking(client: TestClient) -> None:
    everything = client.get("/search", params={"q": "learners", "k": 3}).json()["hits"]
    second = client.get("/search", params={"q": "learners", "k": 1, "offset": 1}).json()["hits"]
    assert [h["passage_id"] for h in second] == [everything[1]["passage_id"]]
    assert second[0]["rank"] == 2


def test_group_by_document_returns_one_passage_per_document(client: TestClient, built: dict[str, str]) -> None:
    hits = client.get("/search", params={"q": "course learners", "k": 10, "group": "document"}).json()["hits"]
    assert len(hits) == len({h["document_id"] for h in hits}) == 2
    # The PDF has two passages: one shown, one more counted.
    assert {h["document_id"]: h["more_passages"] for h in hits} == {built["pdf"]: 1, built["txt"]: 0}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"q": ""}, "invalid_query"),
        ({"q": "   \t "}, "invalid_query"),
        ({"q": "x" * 1001}, "invalid_query"),
        ({"q": "rubrics", "k": 0}, "invalid_k"),
        ({"q": "rubrics", "k": 101}, "invalid_k"),
        ({"q": "rubrics", "offset": -1}, "invalid_offset"),
        ({"q": "rubrics", "k": "ten"}, "invalid_request"),
        ({"q": "rubrics", "group": "member"}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
def test_bad_search_parameters_get_422_with_a_json_error(client: TestClient, params: dict, code: str) -> None:
    response = client.get("/search", params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


@pytest.mark.parametrize(
    "body", [{"query": ""}, {"query": "a", "k": 0}, {"query": "a", "k": 1000}, {"k": 3}, {"query": "a", "offset": -2}]
)
def test_bad_post_bodies_get_422(client: TestClient, body: dict) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == 422 and set(response.json()["error"]) == {"code", "message"}


def test_malformed_json_gets_422(client: TestClient) -> None:
    response = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_the_original_file_is_served_with_its_type(client: TestClient, built: dict[str, str]) -> None:
    response = client.get(f"/documents/{built['pdf']}/file")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert response.headers["content-disposition"] == "inline; filename*=UTF-8''peer.pdf"
    text = client.get(f"/documents/{built['txt']}/file")
    assert text.content == OFFLINE.encode() and text.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("document_id", ["0123456789abcdef", "not-an-id", "..%2F..%2Fcatalog.sqlite3"])
def test_unknown_documents_are_404_or_422(client: TestClient, document_id: str) -> None:
    response = client.get(f"/documents/{document_id}/file")
    assert response.status_code in (404, 422)
    assert "error" in response.json()


def test_health_names_the_generation_and_counts(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["generation"].startswith("g")
    assert (body["documents"], body["model"]) == (2, "hash-256")
    assert body["passages"] == 3


def test_openapi_documents_the_routes_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/search", "/documents/{document_id}/file", "/health"} <= set(schema["paths"])
    assert "422" in schema["paths"]["/search"]["get"]["responses"]
    assert client.get("/docs").status_code == 200


def test_unknown_routes_get_the_json_error_shape(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_before_any_build_search_answers_503_and_health_says_starting(
    settings: ApiSettings, embedder: HashEmbedder
) -> None:
    with TestClient(create_app(settings, embedder)) as test_client:
        response = test_client.get("/search", params={"q": "anything"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "index_not_ready"
        assert test_client.get("/health").json()["status"] == "starting"


def test_a_generation_built_with_another_model_is_refused(settings: ApiSettings, built: dict[str, str]) -> None:
    with TestClient(create_app(settings, HashEmbedder(128))) as test_client:
        health = test_client.get("/health").json()
        assert health["status"] == "degraded" and "hash-256" in health["problem"]
        assert test_client.get("/search", params={"q": "rubrics"}).status_code == 503


def test_settings_refuse_turning_off_every_retriever(tmp_path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="cannot both be 0"):
        ApiSettings(data_dir=tmp_path, dense_weight=0, lexical_weight=0)


def test_hits_carry_a_marked_snippet_and_highlight_offsets(client: TestClient) -> None:
    body = client.get("/search", params={"q": "calibrated rubrics", "k": 1}).json()
    hit = body["hits"][0]
    assert body["query_language"] == "en"
    assert "<mark>calibrated</mark> <mark>rubrics</mark>" in hit["snippet"]
    assert [hit["text"][s:e] for s, e in hit["highlights"]] == ["calibrated", "rubrics"]
