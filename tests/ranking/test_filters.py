"""Filters inside retrieval: oracle = the unfiltered ranking restricted to matching documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from indexer.embedding import HashEmbedder
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.filters import SearchFilters
from search_api.searcher import Searcher
from search_api.settings import ApiSettings

DOCS = [
    ("peer-en.txt", "Peer assessment rubrics calibrate reviewers in large courses.",
     DocumentMetadata(member="Tsinghua University", language="en", year=2022, resource_type="practice_report",
                      tags=("peer assessment",))),
    ("peer-es.txt", "Rubricas de evaluacion entre pares en cursos masivos, peer assessment rubrics.",
     DocumentMetadata(member="Universidad de Chile", language="es", year=2024, resource_type="practice_report",
                      tags=("peer assessment",))),
    ("lab-en.txt", "Virtual laboratory simulations replace wet labs; rubrics grade lab reports.",
     DocumentMetadata(member="Politecnico di Milano", language="en", year=2023, resource_type="teaching_resource",
                      tags=("virtual labs",))),
    ("syllabus.txt", "Syllabus week one rubrics week two peer review week three projects.",
     DocumentMetadata(member="University of Toronto", language="en", year=2021, resource_type="syllabus")),
]  # fmt: skip


@pytest.fixture
def searcher(indexer: Indexer) -> Iterator[Searcher]:
    for name, text, metadata in DOCS:
        # Several passages per document, so filters act on rows of many documents.
        body = "\n\n".join(f"{text} Paragraph {i}." for i in range(5))
        indexer.ingest(body.encode(), name, metadata)
    indexer.build()
    reader = open_published(indexer.data_dir)
    assert reader is not None
    yield Searcher(reader, indexer.embedder)
    reader.close()


def _titles(searcher: Searcher, filters: SearchFilters, k: int = 50) -> list[str]:
    return [h.passage.filename for h in searcher.search("peer assessment rubrics", k=k, filters=filters).hits]


@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        (SearchFilters(members=("universidad de chile",)), {"peer-es.txt"}),
        (SearchFilters(languages=("en",)), {"peer-en.txt", "lab-en.txt", "syllabus.txt"}),
        (SearchFilters(resource_types=("syllabus", "teaching_resource")), {"lab-en.txt", "syllabus.txt"}),
        (SearchFilters(tags=("virtual labs",)), {"lab-en.txt"}),
        (SearchFilters(year_from=2023), {"peer-es.txt", "lab-en.txt"}),
        (SearchFilters(year_to=2022, languages=("en",)), {"peer-en.txt", "syllabus.txt"}),
    ],
)
def test_filtered_ranking_is_the_unfiltered_ranking_restricted(
    searcher: Searcher, filters: SearchFilters, allowed: set[str]
) -> None:
    dense_only = Searcher(searcher.reader, searcher.embedder, 1.0, 0.0)
    everything = _titles(dense_only, SearchFilters(), k=100)
    assert len(everything) == searcher.reader.manifest.passage_count
    # Dense ranking: restricting inside FAISS keeps the order of the unfiltered ranking exactly.
    assert _titles(dense_only, filters) == [name for name in everything if name in allowed]
    # Hybrid: every matching passage is found (nothing lost to a post-filtered top k), nothing else.
    hybrid = _titles(searcher, filters)
    assert sorted(hybrid) == sorted(name for name in everything if name in allowed)


def test_a_narrow_filter_still_fills_the_page(searcher: Searcher) -> None:
    # The syllabus is not in the unfiltered top 2, yet filtering to it returns 3 of its passages.
    assert "syllabus.txt" not in _titles(searcher, SearchFilters(), k=2)
    assert _titles(searcher, SearchFilters(resource_types=("syllabus",)), k=3) == ["syllabus.txt"] * 3


def test_a_filter_matching_nothing_returns_nothing(searcher: Searcher) -> None:
    assert _titles(searcher, SearchFilters(members=("Unknown University",))) == []
    assert _titles(searcher, SearchFilters(year_from=2030)) == []


@pytest.fixture
def client(settings: ApiSettings, embedder: HashEmbedder, searcher: Searcher) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedder)) as test_client:
        yield test_client


def test_api_filters_by_query_parameters_and_json(client: TestClient) -> None:
    params = {"q": "peer assessment rubrics", "k": 50, "member": ["Tsinghua University", "University of Toronto"]}
    hits = client.get("/search", params=params).json()["hits"]
    assert {h["member"] for h in hits} == {"Tsinghua University", "University of Toronto"}
    body = {"query": "rubrics", "k": 50, "filters": {"language": ["es"], "tag": ["Peer Assessment"]}}
    hits = client.post("/search", json=body).json()["hits"]
    assert {h["member"] for h in hits} == {"Universidad de Chile"}
    assert len(hits) == sum(
        1
        for h in client.get("/search", params={"q": "rubrics", "k": 50}).json()["hits"]
        if h["member"] == "Universidad de Chile"
    )


@pytest.mark.parametrize(
    "params",
    [
        {"language": "english"},
        {"resource_type": "poem"},
        {"year_from": 2024, "year_to": 2020},
        {"year_from": 1200},
    ],
)
def test_bad_filter_values_get_422(client: TestClient, params: dict) -> None:
    response = client.get("/search", params={"q": "rubrics", **params})
    assert response.status_code == 422
    assert response.json()["error"]["code"] in ("invalid_filter", "invalid_request")
