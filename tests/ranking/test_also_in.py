"""Translations of one document appear as one result with "also in" links, when grouping by document."""

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
from search_api.ranking.grouping import collapse_translations
from search_api.searcher import Searcher
from search_api.settings import ApiSettings

QUERY = "peer assessment calibrated rubrics"
# name: (language, translation group, visibility, text). The copies share the query's words so that
# the hashed bag-of-words embedder and BM25 both find each of them.
DOCUMENTS = {
    "peer-en.txt": ("en", "peer", "public", "Peer assessment with calibrated rubrics in large courses."),
    "peer-zh.txt": ("zh", "peer", "public", "大规模课程中的同伴互评 peer assessment calibrated rubrics。"),
    "peer-es.txt": ("es", "peer", "public", "Evaluación entre pares: peer assessment, calibrated rubrics."),
    "peer-fr.txt": ("fr", "peer", "alliance", "Évaluation par les pairs : peer assessment, calibrated rubrics."),
    "rubrics-en.txt": ("en", None, "public", "Calibrated rubrics make peer grades fair in design courses."),
    "lab-en.txt": ("en", "lab", "public", "Virtual laboratories let students repeat experiments at home."),
    "lab-es.txt": ("es", "lab", "public", "Laboratorios virtuales: repetir experimentos en casa."),
}


@pytest.fixture
def ids(settings: ApiSettings, embedder: HashEmbedder) -> dict[str, str]:
    indexer = Indexer(settings, embedder)
    out = {}
    for name, (language, group, visibility, text) in DOCUMENTS.items():
        metadata = DocumentMetadata(
            title=name.removesuffix(".txt"), language=language, translation_group=group, visibility=visibility
        )
        out[name] = indexer.ingest(text.encode(), name, metadata).document.id
    indexer.build()
    indexer.close()
    return out


@pytest.fixture
def searcher(settings: ApiSettings, embedder: HashEmbedder, ids: dict[str, str]) -> Iterator[Searcher]:
    reader = open_published(settings.data_dir)
    assert reader is not None
    yield Searcher(reader, embedder)
    reader.close()


def _expected(searcher: Searcher, filters: SearchFilters, query: str = QUERY) -> list[tuple[str, list[str]]]:
    """Oracle from the passage ranking: documents in order of first appearance, each translation group kept at
    its first document's place and shown as its copy in the query's language if that copy is a candidate (else
    that first document), with the group's other documents that pass the filters, by language."""
    result = searcher.search(query, k=100, filters=filters)
    passages = result.hits
    groups = {name: group for name, (_, group, _, _) in DOCUMENTS.items()}
    own_language = {
        groups[h.passage.filename]: h.passage.filename
        for h in reversed(passages)
        if DOCUMENTS[h.passage.filename][0] == result.query_language
    }
    info = {f"{d.title}.txt": d for d in searcher.reader.documents}
    seen_documents: set[str] = set()
    seen_groups: set[str] = set()
    out = []
    for hit in passages:
        name = hit.passage.filename
        group = groups[name]
        if name in seen_documents or group in seen_groups:
            seen_documents.add(name)
            continue
        seen_documents.add(name)
        if group is None:
            out.append((name, []))
            continue
        seen_groups.add(group)
        name = own_language.get(group, name)
        others = [n for n in DOCUMENTS if n != name and groups[n] == group and filters.matches(info[n])]
        out.append((name, sorted(others, key=lambda n: (info[n].language or "", info[n].id))))
    return out


@pytest.mark.parametrize(
    "filters",
    [
        SearchFilters(),
        SearchFilters(languages=("en", "zh", "fr")),
        SearchFilters(visibilities=("public",)),
        SearchFilters(languages=("es",)),
    ],
    ids=["unfiltered", "languages", "visibility", "spanish-only"],
)
@pytest.mark.parametrize("query", [QUERY, "Evaluación entre pares: rúbricas calibradas"], ids=["en", "es"])
def test_translations_collapse_into_the_best_copy(searcher: Searcher, filters: SearchFilters, query: str) -> None:
    result = searcher.search(query, k=10, per_document=True, filters=filters)
    got = [(h.passage.filename, [f"{d.title}.txt" for d in h.also_in]) for h in result.hits]
    assert got == _expected(searcher, filters, query)
    assert [h.rank for h in result.hits] == list(range(1, len(got) + 1))
    assert result.total_candidates == len(got)


def test_hand_checked_collapse(searcher: Searcher) -> None:
    """Hand-checked: every 'peer' copy is one result, 'lab' is another, 'rubrics' stands alone."""
    hits = searcher.search(QUERY, k=10, per_document=True).hits
    groups = [DOCUMENTS[h.passage.filename][1] for h in hits]
    assert sorted(groups, key=str) == sorted(["peer", "lab", None], key=str)
    peer = next(h for h in hits if DOCUMENTS[h.passage.filename][1] == "peer")
    copies = {peer.passage.filename, *(f"{d.title}.txt" for d in peer.also_in)}
    assert copies == {"peer-en.txt", "peer-zh.txt", "peer-es.txt", "peer-fr.txt"}
    assert [d.language for d in peer.also_in] == sorted(d.language or "" for d in peer.also_in)
    hidden = searcher.search(QUERY, k=10, per_document=True, filters=SearchFilters(visibilities=("public",)))
    peer = next(h for h in hidden.hits if DOCUMENTS[h.passage.filename][1] == "peer")
    assert "fr" not in {peer.passage.language, *(d.language for d in peer.also_in)}, "a hidden copy is not linked"


def test_a_group_shows_its_copy_in_the_query_language_at_the_place_of_its_best_copy(searcher: Searcher) -> None:
    # Hand-made ranking: the Spanish copy of "peer" first, the English one third; an English query.
    rows = {h.passage.filename: h.passage.row for h in searcher.search(QUERY, k=100).hits}
    ranked = [(rows["peer-es.txt"], 0.9), (rows["rubrics-en.txt"], 0.8), (rows["peer-en.txt"], 0.7)]
    kept, also_in = collapse_translations(ranked, searcher.document_rows, SearchFilters(), frozenset(), "en")
    assert kept == [(rows["peer-en.txt"], 0.9), (rows["rubrics-en.txt"], 0.8)]
    assert [d.language for d in also_in[rows["peer-en.txt"]]] == ["es", "fr", "zh"]
    # In a language no copy is in, or with no language, the best-ranked copy.
    for language in ("ru", None):
        kept, _ = collapse_translations(ranked, searcher.document_rows, SearchFilters(), frozenset(), language)
        assert kept == [(rows["peer-es.txt"], 0.9), (rows["rubrics-en.txt"], 0.8)]


def test_passage_results_are_not_collapsed(searcher: Searcher) -> None:
    hits = searcher.search(QUERY, k=10).hits
    assert {h.passage.filename for h in hits} == set(DOCUMENTS)
    assert all(h.also_in == () for h in hits)


def test_the_api_links_the_other_languages(settings: ApiSettings, embedder: HashEmbedder, ids: dict[str, str]) -> None:
    with TestClient(create_app(settings, embedder)) as client:
        body = client.get("/search", params={"q": QUERY, "group": "document", "language": ["en", "es"]}).json()
        passages = client.get("/search", params={"q": QUERY, "language": ["en", "es"]}).json()
    peer = next(h for h in body["hits"] if h["document_id"] in {ids["peer-en.txt"], ids["peer-es.txt"]})
    other = "peer-es.txt" if peer["document_id"] == ids["peer-en.txt"] else "peer-en.txt"
    language = DOCUMENTS[other][0]
    assert peer["also_in"] == [
        {
            "document_id": ids[other],
            "language": language,
            "title": other.removesuffix(".txt"),
            "link": f"/documents/{ids[other]}/file",
        }
    ]
    assert all(h["also_in"] == [] for h in passages["hits"])
