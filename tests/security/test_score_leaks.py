"""Issue 11, defect 3 and the "more like this" timing oracle of defect 6: nothing a caller may not see changes
what it observes.

The attack: an anonymous caller compares the fused score of a visible hit for `secretword otherword` against a
control. With BM25's IDF and average length (and the coverage weight) computed over every row of a generation,
the score moves when member-only documents contain `secretword`, and by how much tells in how many passages.
The oracle: the same searches before and after hidden documents (another member's member-only ones, alliance
ones for the anonymous, a deleted public one) enter the catalog and the generation give identical answers, down
to the last bit of every score.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from indexer.access import ANONYMOUS, Viewer
from indexer.embedding import HashEmbedder
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.filters import SearchFilters
from search_api.searcher import Searcher
from search_api.services import search as search_service
from search_api.services.generations import SearchService
from search_api.settings import ApiSettings

ALPHA, BETA = "Alpha University", "Beta Institute"
VISIBLE = {
    "report.txt": ("The secretword of the rubric study sits next to otherword in this public report.", None),
    "control.txt": ("Otherword otherword: calibration of peer grading rubrics in large courses.", None),
    "notes.txt": ("Peer grading notes on rubrics, calibration and otherword for design courses.", None),
    "video.txt": ("Offline video packages for learners in low bandwidth regions.", None),
    "copy-a.txt": ("Identical lab notes on otherword and virtual laboratories.", None),
    "copy-b.txt": ("Identical lab notes on otherword and virtual laboratories.", None),
    "alpha-own.txt": ("Alpha's own member-only notes on otherword and secretword rubrics.", "member"),
}
# Hidden from the anonymous and from Alpha: Beta's member-only documents, many passages holding `secretword`.
BETA_PRIVATE = "\n\n".join(f"Section {i}. The secretword appears here again, secretword {i}." for i in range(12))
# Hidden from the anonymous only (alliance), in a language no visible document is in.
ALLIANCE = "La palabra secretword aparece en este informe de la alianza sobre rúbricas y otherword."
QUERIES = [
    "secretword otherword",
    "otherword",
    "secretword",
    "secretword rubrics",
    "otherword calibration secretword",
    "palabra secretword",
    "virtual laboratories",
]


def _ingest(indexer: Indexer, name: str, text: str, **metadata: Any) -> str:
    return indexer.ingest(text.encode(), name, DocumentMetadata(**metadata)).document.id


@pytest.fixture
def world(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[Indexer]:
    """The visible documents, published: public ones (two identical, so ties are exercised) and Alpha's own."""
    with Indexer(settings, embedder) as indexer:
        indexer.catalog.add_member("alpha", ALPHA)  # documents naming a registered member are owned by it
        indexer.catalog.add_member("beta", BETA)
        for name, (text, visibility) in VISIBLE.items():
            owner = ALPHA if name.startswith("alpha") else None
            _ingest(indexer, name, text, member=owner, visibility=visibility or "public", language="en")
        indexer.build()
        yield indexer


def _service_view(service: SearchService, viewer: Viewer) -> list[Any]:
    """What the service answers a viewer: every hit's passage, rank and exact score, totals, languages."""
    seen: list[Any] = []
    for query in QUERIES:
        for per_document in (False, True):
            for filters in (SearchFilters(), SearchFilters(languages=("en",))):
                answer = search_service.search(service, viewer, query, k=10, per_document=per_document, filters=filters)
                result = answer.result
                hits = [(h.rank, h.passage.passage_id, h.score, h.more_passages, h.also_in) for h in result.hits]
                seen.append((query, per_document, result.total_candidates, result.query_language, hits))
    return seen


def _http_view(client: TestClient) -> list[Any]:
    """What an anonymous HTTP caller reads: the whole answers, less the generation's id and the time taken."""
    seen: list[Any] = []
    for query in QUERIES:
        for group in ("passage", "document"):
            body = client.get("/search", params={"q": query, "k": 10, "group": group}).json()
            body.pop("generation"), body.pop("took_ms")
            seen.append(body)
    source = client.get("/search", params={"q": "virtual laboratories", "k": 1}).json()["hits"][0]["passage_id"]
    similar = client.get(f"/passages/{source}/similar", params={"k": 10}).json()
    similar.pop("generation"), similar.pop("took_ms")
    return [*seen, similar]


def _observe(settings: ApiSettings, embedder: HashEmbedder) -> dict[str, list[Any]]:
    with TestClient(create_app(settings, embedder)) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        return {
            "http": _http_view(client),
            "anonymous": _service_view(service, ANONYMOUS),
            "alpha": _service_view(service, Viewer(member_id="alpha")),
        }


def test_hidden_documents_change_nothing_a_caller_observes(
    world: Indexer, settings: ApiSettings, embedder: HashEmbedder
) -> None:
    before = _observe(settings, embedder)
    assert any(h["hits"] for h in before["http"]), "the attack needs visible hits"

    # Beta's member-only documents, and a public one deleted after the build (still rows of the generation).
    for number in range(3):
        _ingest(world, f"beta-{number}.txt", BETA_PRIVATE, member=BETA, visibility="member", language="en")
    deleted = _ingest(world, "gone.txt", f"{BETA_PRIVATE}\n\nsecretword otherword", language="en")
    assert world.build().outcome == "published"
    world.catalog.delete_document(deleted)
    hidden = _observe(settings, embedder)
    assert hidden == before

    # An alliance document: hidden from the anonymous (not from Alpha, who may now see it).
    _ingest(world, "alliance.txt", ALLIANCE, member=BETA, visibility="alliance", language="es")
    assert world.build().outcome == "published"
    after = _observe(settings, embedder)
    assert (after["http"], after["anonymous"]) == (before["http"], before["anonymous"])


@pytest.fixture
def served(world: Indexer, settings: ApiSettings, embedder: HashEmbedder) -> Iterator[tuple[TestClient, Path]]:
    _ingest(world, "beta-private.txt", BETA_PRIVATE, member=BETA, visibility="member", language="en")
    world.build()
    with TestClient(create_app(settings, embedder)) as client:
        yield client, settings.data_dir


def test_more_like_a_hidden_passage_is_refused_before_any_search_runs(
    served: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = served
    service: SearchService = client.app.state.service  # type: ignore[attr-defined]
    reader = service.searcher.reader
    records = reader.passages(range(reader.manifest.passage_count)).values()
    hidden = next(p.passage_id for p in records if p.filename == "beta-private.txt")
    visible = next(p.passage_id for p in records if p.filename == "video.txt")
    missing = "0123456789abcdef01234567"
    searches: list[str] = []
    original = Searcher._dense_evidence

    def counting(self: Searcher, *args: Any, **kwargs: Any) -> Any:
        searches.append("dense")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Searcher, "_dense_evidence", counting)
    answers = {}
    for passage_id in (hidden, missing):
        response = client.get(f"/passages/{passage_id}/similar")
        body = response.json()
        answers[passage_id] = (response.status_code, body["error"]["code"], body["error"]["message"])
    assert searches == [], "the search ran for a passage the caller may not see"
    generation = reader.generation_id
    assert answers == {p: (404, "not_found", f"no passage {p} in generation {generation}") for p in (hidden, missing)}
    # Beta itself may ask, and then the search runs.
    assert client.get(f"/passages/{visible}/similar").status_code == 200 and searches == ["dense"]
    owner = search_service.similar(service, Viewer(member_id="beta"), hidden)
    assert owner.result.source is not None and owner.result.source.passage_id == hidden
    assert searches == ["dense", "dense"]
