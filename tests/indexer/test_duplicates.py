"""Exact and near duplicates: one stored original, near duplicates linked and shown once, and only merged within
one access scope, so no caller loses a copy it may see."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from fastapi.testclient import TestClient

from indexer.access import ANONYMOUS, Viewer
from indexer.fingerprint import access_scope, duplicate_clusters, minhash, scoped_links, similarity
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.filters import SearchFilters
from search_api.searcher import Searcher
from search_api.settings import ApiSettings
from tests.helpers import CORPUS, make_pdf

REPORT = " ".join(
    f"In week {i} the cohort of {1000 + i} learners reviewed {3 + i % 4} design submissions each using the "
    f"calibrated rubric number {i}, and instructors audited a sample of {50 + i} reviews."
    for i in range(30)
)


def test_similarity_estimates_overlap_of_word_shingles() -> None:
    edited = REPORT.replace("week 3 ", "week three ").replace("audited", "checked", 2)
    unrelated = (CORPUS / "files" / "question-banks-cornell-en.txt").read_text()
    scores = similarity(minhash(REPORT), np.stack([minhash(REPORT), minhash(edited), minhash(unrelated)]))
    assert scores[0] == 1.0
    assert 0.8 <= scores[1] < 1.0
    assert scores[2] < 0.1


def test_unspaced_scripts_use_character_shingles() -> None:
    text = (CORPUS / "files" / "app-certificates-offline-faq-xuetangx-zh.txt").read_text()
    edited = text.replace("证书", "证明", 2)
    assert similarity(minhash(text), minhash(edited)[None, :])[0] > 0.85


def test_clusters_are_keyed_by_their_newest_member() -> None:
    order = ["a", "b", "c", "d", "e"]
    clusters = duplicate_clusters({"c": "a", "e": "c"}, order)
    assert clusters == {"b": [], "d": [], "e": ["c", "a"]}


def test_a_re_export_is_linked_and_search_shows_one_document(indexer: Indexer) -> None:
    original = indexer.ingest(REPORT.encode(), "report.txt", DocumentMetadata(member="Tsinghua University"))
    other = indexer.ingest(b"Offline packages for learners with poor connectivity. " * 20, "offline.txt")
    indexer.build()
    # The same text re-exported as a PDF: other bytes, same words.
    pages = [REPORT[: len(REPORT) // 2], REPORT[len(REPORT) // 2 :]]
    re_export = indexer.ingest(make_pdf(pages), "report.pdf", DocumentMetadata(member="Tsinghua University"))
    assert re_export.created, "different bytes are a new document"
    report = indexer.build()
    linked = indexer.catalog.get_document(re_export.document.id)
    assert linked is not None and linked.near_duplicate_of == original.document.id
    assert indexer.catalog.get_document(other.document.id).near_duplicate_of is None  # type: ignore[union-attr]
    assert report.documents_indexed == 2
    reader = open_published(indexer.data_dir)
    assert reader is not None
    assert {d.id for d in reader.documents} == {re_export.document.id, other.document.id}
    hits = Searcher(reader, indexer.embedder).search("calibrated rubric design submissions", k=10).hits
    assert hits[0].passage.document_id == re_export.document.id
    assert original.document.id not in {h.passage.document_id for h in hits}
    assert hits[0].passage.near_duplicates == (original.document.id,)
    reader.close()


def test_translations_are_not_near_duplicates(indexer: Indexer) -> None:
    for name in (
        "peer-assessment-tsinghua-en.pdf",
        "peer-assessment-tsinghua-es.pdf",
        "peer-assessment-tsinghua-ru.pdf",
    ):
        indexer.ingest((CORPUS / "files" / name).read_bytes(), name)
    indexer.build()
    assert all(d.near_duplicate_of is None for d in indexer.catalog.list_documents())


# Access scopes: a cluster shows its newest copy only, so copies merge only when the same callers may see them.

TSINGHUA, NAIROBI = "Tsinghua University", "University of Nairobi"
QUERY = "calibrated rubric design submissions"
VIEWERS = {
    "anonymous": ANONYMOUS,
    "tsinghua": Viewer(member_id="tsinghua"),
    "nairobi": Viewer(member_id="nairobi"),
    "admin": Viewer(admin=True),
}
# A lightly edited copy of REPORT, and a copy of that copy: each is most similar to the one before it.
EDITED = REPORT.replace("week 3 ", "week three ").replace("audited", "checked", 3)
EDITED_AGAIN = EDITED.replace("week 5 ", "week five ").replace("learners", "students", 2)


MEMBER_IDS = {TSINGHUA: "tsinghua", NAIROBI: "nairobi"}


def _ingest(indexer: Indexer, text: str, name: str, visibility: str = "public", member: str = TSINGHUA) -> str:
    if indexer.catalog.member_by_name(member) is None:  # documents belong to registered members, by id
        indexer.catalog.add_member(MEMBER_IDS[member], member)
    metadata = DocumentMetadata(member=member, visibility=visibility, language="en", title=name)
    return indexer.ingest(text.encode(), f"{name}.txt", metadata).document.id


def _found(indexer: Indexer, viewer: Viewer) -> dict[str, tuple[str, ...]]:
    """The documents `viewer` finds for QUERY in the published generation, each with its near duplicates."""
    reader = open_published(indexer.data_dir)
    assert reader is not None
    try:
        filters = SearchFilters().for_viewer(viewer, indexer.catalog.document_access())
        hits = Searcher(reader, indexer.embedder).search(QUERY, k=10, per_document=True, filters=filters).hits
        return {h.passage.document_id: h.passage.near_duplicates for h in hits}
    finally:
        reader.close()


def _set_access(indexer: Indexer, document_id: str, visibility: str) -> None:
    """What PATCH /documents/{id} does to visibility: it takes effect at query time, before the next build."""
    document = indexer.catalog.get_document(document_id)
    assert document is not None
    indexer.catalog.update_metadata(document_id, replace(document.metadata, visibility=visibility))


def test_scopes_are_equal_exactly_when_the_same_callers_see_both_and_the_same_member_owns_both() -> None:
    assert access_scope("public", "tsinghua") == access_scope("public", "tsinghua")
    assert access_scope("public", None) == access_scope("public", None)  # the operator's documents
    distinct = {
        access_scope("public", "tsinghua"),
        access_scope("public", "nairobi"),  # the same callers see both, but another member owns it
        access_scope("public", None),
        access_scope("alliance", "tsinghua"),
        access_scope("alliance", "nairobi"),
        access_scope("member", "tsinghua"),
        access_scope("member", "nairobi"),
        access_scope("member", None),  # admins only
    }
    assert len(distinct) == 8


def test_a_link_across_scopes_is_replaced_by_the_closest_twin_in_scope() -> None:
    signatures = {name: minhash(text).tobytes() for name, text in {"a": REPORT, "b": EDITED, "c": EDITED_AGAIN}.items()}
    public, own = access_scope("public", None), access_scope("member", TSINGHUA)
    # c was linked to b (its closest text), which is member-only: c links to a, the closest public copy, instead.
    assert scoped_links({"b": "a", "c": "b"}, {"a": public, "b": own, "c": public}, signatures, 0.8) == {"c": "a"}
    # Same scope: the stored links stand; a link to a document not being indexed is dropped.
    assert scoped_links({"b": "a", "c": "b"}, {"b": own, "c": own}, signatures, 0.8) == {"c": "b"}
    # No twin in scope reaches the threshold: no link.
    assert scoped_links({"c": "b"}, {"a": own, "b": public, "c": own}, signatures, 0.999) == {}


def test_a_member_only_near_copy_of_a_public_document_hides_nothing(indexer: Indexer) -> None:
    public = _ingest(indexer, REPORT, "public")
    indexer.build()
    member_copy = _ingest(indexer, EDITED, "member-copy", visibility="member")
    report = indexer.build()
    assert indexer.catalog.get_document(member_copy).near_duplicate_of == public  # type: ignore[union-attr]
    assert report.documents_indexed == 2, "copies of different scopes are both indexed"
    expected = {
        "anonymous": {public: ()},
        "nairobi": {public: ()},
        "tsinghua": {public: (), member_copy: ()},
        "admin": {public: (), member_copy: ()},
    }
    assert {who: _found(indexer, viewer) for who, viewer in VIEWERS.items()} == expected

    # A public copy of the member-only copy (its closest text) still merges with the public original.
    public_copy = _ingest(indexer, EDITED_AGAIN, "public-copy")
    report = indexer.build()
    assert indexer.catalog.get_document(public_copy).near_duplicate_of == member_copy  # type: ignore[union-attr]
    assert report.documents_indexed == 2
    expected = {
        "anonymous": {public_copy: (public,)},
        "nairobi": {public_copy: (public,)},
        "tsinghua": {public_copy: (public,), member_copy: ()},
        "admin": {public_copy: (public,), member_copy: ()},
    }
    assert {who: _found(indexer, viewer) for who, viewer in VIEWERS.items()} == expected


def test_copies_of_different_members_never_merge(indexer: Indexer) -> None:
    # Issue 11 (defect 5): merging them let the newer member's copy stand for the older member's document.
    first = _ingest(indexer, REPORT, "first", visibility="alliance")
    second = _ingest(indexer, EDITED, "second", visibility="alliance", member=NAIROBI)
    assert indexer.build().documents_indexed == 2
    assert _found(indexer, VIEWERS["tsinghua"]) == {first: (), second: ()}
    assert _found(indexer, ANONYMOUS) == {}


def test_a_change_of_access_after_a_build_regroups_the_copies_at_the_next(indexer: Indexer) -> None:
    original = _ingest(indexer, REPORT, "original")
    newer = _ingest(indexer, EDITED, "newer")
    indexer.build()
    assert _found(indexer, ANONYMOUS) == {newer: (original,)}

    _set_access(indexer, newer, "member")
    # Until the next build the query-time mask applies to the copy shown: the original, merged into it, is not
    # indexed, so anonymous callers find neither (the residual documented in the README).
    assert _found(indexer, ANONYMOUS) == {}
    assert _found(indexer, VIEWERS["tsinghua"]) == {newer: (original,)}
    indexer.build()
    assert _found(indexer, ANONYMOUS) == {original: ()}
    assert _found(indexer, VIEWERS["tsinghua"]) == {original: (), newer: ()}

    _set_access(indexer, newer, "public")  # the stored link is kept: back in one scope, merged again
    indexer.build()
    assert _found(indexer, ANONYMOUS) == {newer: (original,)}


def test_a_hit_names_only_the_near_duplicates_the_caller_may_see(indexer: Indexer, settings: ApiSettings) -> None:
    original = _ingest(indexer, REPORT, "original")
    newer = _ingest(indexer, EDITED, "newer")
    indexer.build()
    key = indexer.catalog.create_key("tsinghua")[1]
    _set_access(indexer, original, "member")  # the copy merged away becomes member-only, before the next build
    config = settings.model_copy(update={"reload_interval_seconds": 0, "rate_limit_per_second": 0})
    with TestClient(create_app(config, indexer.embedder)) as client:
        for headers, expected in (({}, []), ({"Authorization": f"Bearer {key}"}, [original])):
            response = client.get("/search", params={"q": QUERY, "group": "document"}, headers=headers)
            assert response.status_code == 200, response.text
            assert [(h["document_id"], h["near_duplicates"]) for h in response.json()["hits"]] == [(newer, expected)]
        # The document's own record names the link only to callers who may see the linked copy.
        for headers, expected_link in (({}, None), ({"Authorization": f"Bearer {key}"}, original)):
            response = client.get(f"/documents/{newer}", headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["near_duplicate_of"] == expected_link
