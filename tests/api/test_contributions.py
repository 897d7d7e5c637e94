"""Contributions, keys and visibility through the real app (RELIABILITY cases 10, 11, 13, 14, 16, 17, 26).

Oracle: four documents whose words are known, one per visibility and member; each test knows which of them
every caller may see, and checks search, listing, show, file, patch and delete against that.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from indexer.access import ANONYMOUS, Viewer, hash_key
from indexer.catalog import Catalog, DocumentAccess
from indexer.embedding import HashEmbedder
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.auth import AdminCaller
from search_api.cli import app as cli_app
from search_api.filters import SearchFilters
from search_api.settings import ApiSettings
from tests.helpers import make_docx, make_pdf

TSINGHUA, NAIROBI = "Tsinghua University", "University of Nairobi"
# Each document has words no other has, so a query for them matches that document alone (lexically).
DOCS = {
    "public": ("Peer assessment rubrics calibrate reviewers in large courses.", TSINGHUA, "public"),
    "alliance": ("Quokka zanzibar accreditation workflow for partner universities.", NAIROBI, "alliance"),
    "tsinghua_only": ("Xylophone marmalade budget of the engineering department.", TSINGHUA, "member"),
    "nairobi_only": ("Kumquat zeppelin salaries of the teaching assistants.", NAIROBI, "member"),
}


@dataclass
class World:
    """A served generation with the four documents, two members with keys, and an admin key."""

    client: TestClient
    settings: ApiSettings
    ids: dict[str, str]
    keys: dict[str, str]

    def auth(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}

    def search_ids(self, query: str, who: str | None, k: int = 10) -> list[str]:
        response = self.client.get("/search", params={"q": query, "k": k}, headers=self.auth(who))
        assert response.status_code == 200, response.text
        return [h["document_id"] for h in response.json()["hits"]]

    def reload(self) -> None:
        self.client.app.state.service.load_published()  # type: ignore[attr-defined]


def _settings(settings: ApiSettings, **changes: object) -> ApiSettings:
    base = {"reload_interval_seconds": 0, "rate_limit_per_second": 0, "upload_min_free_mb": 0, "quality_gate": False}
    return settings.model_copy(update=base | changes)


def _build(settings: ApiSettings, embedder: HashEmbedder) -> None:
    indexer = Indexer(settings, embedder)
    try:
        indexer.build()
    finally:
        indexer.close()


def _make_keys(data_dir: Path) -> dict[str, str]:
    catalog = Catalog(data_dir / "catalog.sqlite3")
    try:
        catalog.add_member("tsinghua", TSINGHUA)
        catalog.add_member("nairobi", NAIROBI)
        catalog.add_member("closed", "Closed College")
        keys = {
            "tsinghua": catalog.create_key("tsinghua")[1],
            "nairobi": catalog.create_key("nairobi")[1],
            "admin": catalog.create_key(None, admin=True)[1],
            "revoked": catalog.create_key("tsinghua")[1],
            "disabled": catalog.create_key("closed")[1],
        }
        catalog.revoke_key(keys["revoked"].split("_")[1])
        catalog.set_member_disabled("closed", True)
        return keys
    finally:
        catalog.close()


@pytest.fixture
def world(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[World]:
    config = _settings(settings)
    indexer = Indexer(config, embedder)
    ids = {}
    for name, (text, member, visibility) in DOCS.items():
        metadata = DocumentMetadata(member=member, visibility=visibility, language="en", title=name)
        ids[name] = indexer.ingest(text.encode(), f"{name}.txt", metadata).document.id
    indexer.build()
    indexer.close()
    keys = _make_keys(config.data_dir)
    with TestClient(create_app(config, embedder)) as client:
        yield World(client, config, ids, keys)


VISIBLE = {
    None: {"public"},
    "tsinghua": {"public", "alliance", "tsinghua_only"},
    "nairobi": {"public", "alliance", "nairobi_only"},
    "admin": set(DOCS),
}


def _multipart(
    file: tuple[bytes, bytes, str] | None, fields: list[tuple[str, str]] = (), boundary: str = "b0undary"
) -> tuple[bytes, dict[str, str]]:
    """A multipart body built by hand, so file names can hold anything (NUL, '../', 1,000 characters)."""
    out = io.BytesIO()
    for name, value in fields:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if file is not None:
        filename, data, content_type = file
        out.write(f"--{boundary}\r\n".encode())
        out.write(b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n')
        out.write(f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _upload(world: World, who: str | None, data: bytes, filename: str = "report.txt", **fields: str):
    return world.client.post(
        "/documents",
        files={"file": (filename, data, "text/plain")},
        data=fields,
        headers=world.auth(who),
    )


def _originals(settings: ApiSettings) -> list[Path]:
    return sorted(p for p in (settings.data_dir / "originals").rglob("*") if p.is_file())


# Visibility inside retrieval.


@pytest.mark.parametrize("who", [None, "tsinghua", "nairobi", "admin"])
def test_each_caller_finds_exactly_the_documents_it_may_see(world: World, who: str | None) -> None:
    for name, (text, _, _) in DOCS.items():
        # k=1 with the words of one document: a hidden document must give way to a visible one *inside*
        # retrieval. Filtering only the top k afterwards would leave the page empty.
        hits = world.search_ids(text, who, k=1)
        expected = world.ids[name] if name in VISIBLE[who] else None
        assert len(hits) == 1
        if expected is not None:
            assert hits == [expected]
        else:
            assert hits[0] in {world.ids[n] for n in VISIBLE[who]}
    every = set(world.search_ids("the of for in", who, k=50))
    assert every == {world.ids[n] for n in VISIBLE[who]}


def test_anonymous_search_never_returns_alliance_or_member_documents(world: World) -> None:
    hidden = {world.ids[n] for n in ("alliance", "tsinghua_only", "nairobi_only")}
    for query in ("xylophone marmalade budget", "kumquat zeppelin", "quokka zanzibar accreditation"):
        for params in ({"q": query, "k": 1}, {"q": query, "k": 10, "group": "document"}):
            hits = world.client.get("/search", params=params).json()["hits"]
            assert hits and not {h["document_id"] for h in hits} & hidden
            assert all(h["title"] == "public" for h in hits)
        body = world.client.post("/search", json={"query": query, "filters": {"member": [NAIROBI]}}).json()
        assert body["hits"] == []  # Nairobi's only documents are hidden: nothing, not a leak


def test_row_mask_matches_the_visibility_rule_for_every_viewer(world: World) -> None:
    reader = open_published(world.settings.data_dir)
    assert reader is not None
    access = world.client.app.state.service.catalog.document_access()  # type: ignore[attr-defined]
    viewers = [ANONYMOUS, Viewer(member_id="tsinghua"), Viewer(member_id="nairobi"), Viewer(admin=True)]
    for viewer in viewers:
        mask = SearchFilters().for_viewer(viewer, access).row_mask(reader.documents, reader.row_document)
        documents = [reader.documents[p] for p in reader.row_document]
        expected = np.array([viewer.can_see(access[d.id].visibility, access[d.id].owner) for d in documents])
        assert np.array_equal(np.ones(len(documents), bool) if mask is None else mask, expected), viewer
    reader.close()


# Two members cannot see or touch each other's member-only documents.


def test_two_members_cannot_see_or_touch_each_others_member_only_documents(world: World) -> None:
    client = world.client
    for who, other in (("tsinghua", "nairobi_only"), ("nairobi", "tsinghua_only")):
        doc, headers = world.ids[other], world.auth(who)
        assert doc not in world.search_ids(DOCS[other][0], who)
        listed = client.get("/documents", params={"limit": 100}, headers=headers).json()
        assert doc not in {d["id"] for d in listed["documents"]}
        assert listed["total"] == 3
        for method, path, kwargs in (
            ("GET", f"/documents/{doc}", {}),
            ("GET", f"/documents/{doc}/file", {}),
            ("PATCH", f"/documents/{doc}", {"json": {"title": "mine now"}}),
            ("DELETE", f"/documents/{doc}", {}),
        ):
            response = client.request(method, path, headers=headers, **kwargs)
            assert response.status_code == 404, (who, method, path)
            assert response.json()["error"]["code"] == "not_found"
            assert DOCS[other][0] not in response.text and other not in response.text
    # Visible but not theirs: 403. Their own: allowed.
    alliance = world.ids["alliance"]
    response = client.patch(f"/documents/{alliance}", json={"title": "x"}, headers=world.auth("tsinghua"))
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert client.delete(f"/documents/{alliance}", headers=world.auth("tsinghua")).status_code == 403
    own = client.patch(f"/documents/{alliance}", json={"tags": ["accreditation"]}, headers=world.auth("nairobi"))
    assert own.status_code == 200 and own.json()["metadata"]["tags"] == ["accreditation"]
    # Nothing was changed by the refused requests.
    catalog = client.app.state.service.catalog  # type: ignore[attr-defined]
    assert catalog.get_document(world.ids["nairobi_only"]).title == "nairobi_only"
    assert catalog.get_document(world.ids["tsinghua_only"]).status == "indexed"


def test_a_member_may_not_give_its_document_to_another_member_but_an_admin_may(world: World) -> None:
    doc = world.ids["tsinghua_only"]
    response = world.client.patch(f"/documents/{doc}", json={"member": NAIROBI}, headers=world.auth("tsinghua"))
    assert response.status_code == 403
    response = world.client.patch(f"/documents/{doc}", json={"member": NAIROBI}, headers=world.auth("admin"))
    assert response.status_code == 200 and response.json()["member"] == NAIROBI
    # Ownership moved at once: Nairobi finds it, Tsinghua no longer does.
    assert doc in world.search_ids(DOCS["tsinghua_only"][0], "nairobi")
    assert doc not in world.search_ids(DOCS["tsinghua_only"][0], "tsinghua")


def test_a_visibility_change_counts_in_searches_at_once(world: World) -> None:
    doc = world.ids["public"]
    assert world.search_ids(DOCS["public"][0], None, k=1) == [doc]
    response = world.client.patch(f"/documents/{doc}", json={"visibility": "member"}, headers=world.auth("tsinghua"))
    assert response.status_code == 200 and response.json()["visibility"] == "member"
    assert doc not in world.search_ids(DOCS["public"][0], None)
    assert doc not in world.search_ids(DOCS["public"][0], "nairobi")
    assert world.search_ids(DOCS["public"][0], "tsinghua", k=1) == [doc]
    assert world.client.get(f"/documents/{doc}/file").status_code == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [({"visibility": "secret"}, 422), ({"year": 1200}, 422), ({"colour": "red"}, 422), ({"language": "english"}, 422)],
)
def test_bad_patches_get_422_and_change_nothing(world: World, body: dict, code: int) -> None:
    doc = world.ids["public"]
    response = world.client.patch(f"/documents/{doc}", json=body, headers=world.auth("tsinghua"))
    assert response.status_code == code and set(response.json()["error"]) == {"code", "message"}
    assert world.client.get(f"/documents/{doc}").json()["metadata"]["visibility"] == "public"


# Keys (case 16).


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer msk_00000000_" + "a" * 43},
        {"X-API-Key": "msk_zz"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_write_routes_without_a_valid_key_get_401(world: World, headers: dict[str, str]) -> None:
    doc = world.ids["public"]
    before = _originals(world.settings)
    for method, path, kwargs in (
        ("POST", "/documents", {"files": {"file": ("a.txt", b"hello world", "text/plain")}}),
        ("PATCH", f"/documents/{doc}", {"json": {"title": "x"}}),
        ("DELETE", f"/documents/{doc}", {}),
    ):
        response = world.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 401, (method, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert world.client.get(f"/documents/{doc}").json()["title"] == "public"
    assert _originals(world.settings) == before  # nothing stored by the refusals


@pytest.mark.parametrize("who", ["revoked", "disabled"])
def test_revoked_keys_and_disabled_members_keys_get_401_everywhere(world: World, who: str) -> None:
    for response in (
        world.client.get("/search", params={"q": "peer"}, headers=world.auth(who)),
        world.client.get("/documents", headers=world.auth(who)),
        _upload(world, who, b"a new document about rubrics"),
    ):
        assert response.status_code == 401


def test_a_key_works_from_either_header_and_stops_at_once_when_revoked(world: World) -> None:
    key = world.keys["nairobi"]
    doc = world.ids["nairobi_only"]
    assert world.client.get(f"/documents/{doc}", headers={"X-API-Key": key}).status_code == 200
    assert world.client.get(f"/documents/{doc}", headers={"Authorization": f"bearer {key}"}).status_code == 200
    # Revoked from another connection (the CLI): the next request is refused.
    other = Catalog(world.settings.data_dir / "catalog.sqlite3")
    other.revoke_key(key.split("_")[1])
    other.close()
    assert world.client.get(f"/documents/{doc}", headers={"X-API-Key": key}).status_code == 401


def test_admin_routes_dependency_gives_401_then_403_then_passes(world: World) -> None:
    app: FastAPI = world.client.app  # type: ignore[assignment]

    @app.get("/admin-probe")
    def probe(caller: AdminCaller) -> dict[str, bool]:
        return {"admin": caller.admin}

    assert world.client.get("/admin-probe").status_code == 401
    assert world.client.get("/admin-probe", headers=world.auth("tsinghua")).status_code == 403
    assert world.client.get("/admin-probe", headers=world.auth("admin")).json() == {"admin": True}


def test_keys_are_stored_hashed_and_never_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for who in ("tsinghua", "revoked", "admin"):
        world.client.get("/documents", headers=world.auth(who))
        _upload(world, who, f"a document uploaded by {who} about rubrics".encode())
    world.client.get("/documents", headers={"Authorization": world.keys["tsinghua"][:-2] + "xx"})
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    stored = b"".join(p.read_bytes() for p in world.settings.data_dir.glob("catalog.sqlite3*"))
    for key in world.keys.values():
        secret = key.split("_", 2)[2]
        assert secret not in logged and key not in logged
        assert secret.encode() not in stored
    with sqlite3.connect(world.settings.data_dir / "catalog.sqlite3") as db:
        digests = {row[0] for row in db.execute("SELECT digest FROM api_keys")}
    assert {hash_key(k) for k in world.keys.values()} == digests
    listed = CliRunner().invoke(cli_app, ["--data-dir", str(world.settings.data_dir), "keys", "list", "--json"])
    assert listed.exit_code == 0 and all(k not in listed.stdout for k in world.keys.values())


# Uploads.


def test_an_upload_is_acknowledged_once_stored_and_searchable_after_the_next_build(
    world: World, embedder: HashEmbedder
) -> None:
    text = b"Gamified quizzes with badges keep learners returning each week."
    response = world.client.post(
        "/documents",
        files={"file": ("quizzes.txt", text, "text/plain")},
        data={"title": "Gamified quizzes", "tags": "gamification, quizzes", "visibility": "alliance", "year": "2025"},
        headers=world.auth("nairobi"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["duplicate_of"] is None
    assert body["media_type"] == "text/plain" and "next index build" in body["note"]
    doc = body["id"]
    stored = world.settings.data_dir / "originals" / body["sha256"][:2] / body["sha256"]
    assert stored.read_bytes() == text
    shown = world.client.get(f"/documents/{doc}", headers=world.auth("nairobi")).json()
    assert (shown["member"], shown["visibility"], shown["metadata"]["tags"]) == (
        NAIROBI,
        "alliance",
        ["gamification", "quizzes"],
    )
    assert (shown["searchable"], shown["generation"], shown["note"]) == (False, None, "pending next build")
    assert world.client.get(f"/documents/{doc}").status_code == 404  # alliance: not for anonymous callers
    _build(world.settings, embedder)
    world.reload()
    shown = world.client.get(f"/documents/{doc}", headers=world.auth("tsinghua")).json()
    assert shown["status"] == "indexed" and shown["searchable"] and shown["passages"] == 1
    assert shown["generation"] == world.client.get("/health").json()["generation"]
    assert world.search_ids("gamified quizzes badges", "tsinghua", k=1) == [doc]
    assert doc not in world.search_ids("gamified quizzes badges", None)


def test_metadata_as_one_json_part_and_the_member_comes_from_the_key(world: World) -> None:
    body, headers = _multipart(
        (b"notes.md", b"# Rubrics\n\nCalibrated rubrics for essays.", "text/markdown"),
        [("metadata", '{"title": "Rubric notes", "language": "en", "resource_type": "teaching_resource"}')],
    )
    response = world.client.post("/documents", content=body, headers=headers | world.auth("tsinghua"))
    assert response.status_code == 201, response.text
    # Left out, the visibility is the member's default (member-only), so only its keys see it.
    shown = world.client.get(f"/documents/{response.json()['id']}", headers=world.auth("tsinghua")).json()
    assert (shown["title"], shown["member"], shown["metadata"]["resource_type"]) == (
        "Rubric notes",
        TSINGHUA,
        "teaching_resource",
    )
    # A member cannot upload in another member's name.
    response = _upload(world, "tsinghua", b"another text about rubrics", member=NAIROBI)
    assert response.status_code == 422 and "member" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"visibility": "secret"}, "visibility"),
        ({"year": "last year"}, "year"),
        ({"colour": "blue"}, "unknown field"),
        ({"metadata": "{not json"}, "JSON"),
        ({"metadata": "[1, 2]"}, "object"),
        ({"metadata": '{"year": 1e400}'}, "year"),
    ],
)
def test_invalid_upload_metadata_gets_422_and_stores_nothing(world: World, fields: dict, message: str) -> None:
    before = _originals(world.settings)
    response = _upload(world, "tsinghua", b"some text about peer review", **fields)
    assert response.status_code == 422 and message in response.json()["error"]["message"]
    assert _originals(world.settings) == before


def test_an_upload_without_a_file_or_with_an_empty_one_gets_422(world: World) -> None:
    body, headers = _multipart(None, [("title", "x")])
    response = world.client.post("/documents", content=body, headers=headers | world.auth("tsinghua"))
    assert response.status_code == 422 and "file" in response.json()["error"]["message"]
    assert _upload(world, "tsinghua", b"").status_code == 422
    response = world.client.post("/documents", json={"file": "abc"}, headers=world.auth("tsinghua"))
    assert response.status_code == 415


def test_the_same_bytes_twice_are_stored_once_with_a_clear_duplicate_answer(world: World) -> None:
    """Case 14: same or different member -> one stored original, `duplicate of` the first."""
    data = b"Weekly office hours on video reduce forum load in large courses."
    first = _upload(world, "tsinghua", data, "hours.txt", visibility="public")
    assert first.status_code == 201
    doc = first.json()["id"]
    before = _originals(world.settings)
    for who in ("tsinghua", "nairobi"):
        again = _upload(world, who, data, "copy-of-hours.txt")
        assert again.status_code == 200, again.text
        assert again.json()["duplicate_of"] == doc and f"duplicate of {doc}" in again.json()["note"]
    assert _originals(world.settings) == before
    listed = world.client.get("/documents", params={"limit": 100}, headers=world.auth("admin")).json()
    assert [d["id"] for d in listed["documents"]].count(doc) == 1 and listed["total"] == 5
    # A duplicate of a document the uploader cannot see names no id, title or name.
    secret = _upload(world, "tsinghua", b"Confidential pay scales.", "pay.txt", visibility="member").json()["id"]
    again = _upload(world, "nairobi", b"Confidential pay scales.", "other.txt")
    assert again.status_code == 200 and again.json()["id"] is None and again.json()["duplicate_of"] is None
    assert "pay.txt" not in again.text and "Confidential" not in again.text
    assert world.client.get(f"/documents/{secret}", headers=world.auth("nairobi")).status_code == 404


@pytest.mark.parametrize(
    "filename",
    [b"../../etc/passwd", b"/etc/passwd", b"..\\..\\windows\\win.ini", b"report\x00.txt", b"a" * 1000 + b".txt"],
)
def test_hostile_file_names_are_stored_under_the_server_made_name(world: World, filename: bytes) -> None:
    """Case 10: the original is stored under its sha256; the cleaned name is metadata only."""
    data = b"Discussion forum moderation guide for teaching assistants. " + filename[:20].hex().encode()
    body, headers = _multipart((filename, data, "text/plain"))
    response = world.client.post("/documents", content=body, headers=headers | world.auth("tsinghua"))
    assert response.status_code == 201, response.text
    sha256 = response.json()["sha256"]
    assert world.settings.data_dir / "originals" / sha256[:2] / sha256 in _originals(world.settings)
    name = world.client.get(f"/documents/{response.json()['id']}", headers=world.auth("tsinghua")).json()["filename"]
    assert "/" not in name and "\\" not in name and "\x00" not in name and ".." not in name
    assert 0 < len(name) <= 200
    root = world.settings.data_dir.parent
    assert not [p for p in root.rglob("*") if p.name in ("passwd", "win.ini") or "\x00" in p.name]
    assert name == {
        b"../../etc/passwd": "passwd",
        b"/etc/passwd": "passwd",
        b"..\\..\\windows\\win.ini": "win.ini",
        b"report\x00.txt": "report.txt",
    }.get(filename, name)


def _zip(names: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in names.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("filename", "data", "content_type"),
    [
        ("report.pdf", b"<!DOCTYPE html><html><body>not a pdf</body></html>", "application/pdf"),
        ("report.pdf", _zip({"evil.exe": b"MZ"}), "application/pdf"),
        ("report.pdf", make_docx([("p", "a Word file in disguise")]), "application/pdf"),
        ("notes.txt", make_pdf(["A PDF that says it is text."]), "text/plain"),
        ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png"),
        ("archive.docx", _zip({"readme.txt": b"hello"}), "application/octet-stream"),
    ],
)
def test_spoofed_or_unsupported_types_get_415_and_store_nothing(
    world: World, filename: str, data: bytes, content_type: str
) -> None:
    """Case 11: the type is read from the bytes; a name or header that says otherwise is refused."""
    before = _originals(world.settings)
    response = world.client.post(
        "/documents", files={"file": (filename, data, content_type)}, headers=world.auth("tsinghua")
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert _originals(world.settings) == before
    assert world.client.get("/documents", headers=world.auth("admin")).json()["total"] == len(DOCS)


def test_a_real_pdf_with_an_honest_name_is_accepted(world: World) -> None:
    response = world.client.post(
        "/documents",
        files={"file": ("r.pdf", make_pdf(["Honest PDF about rubrics."]), "application/pdf")},
        headers=world.auth("tsinghua"),
    )
    assert response.status_code == 201 and response.json()["media_type"] == "application/pdf"


def test_thousands_of_form_fields_or_a_huge_part_header_are_refused_fast(world: World) -> None:
    """Case 13."""
    body, headers = _multipart((b"a.txt", b"text", "text/plain"), [(f"f{i}", "x") for i in range(5000)])
    started = time.perf_counter()
    response = world.client.post("/documents", content=body, headers=headers | world.auth("tsinghua"))
    assert response.status_code == 400 and "fields" in response.json()["error"]["message"]
    huge = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="' + b"x" * 500_000
    huge += b'"\r\nContent-Type: text/plain\r\n\r\ntext\r\n--b0undary--\r\n'
    response = world.client.post("/documents", content=huge, headers=headers | world.auth("tsinghua"))
    assert response.status_code in (400, 413), response.text
    assert time.perf_counter() - started < 10
    assert world.client.get("/documents", headers=world.auth("admin")).json()["total"] == len(DOCS)


def test_uploads_are_refused_with_507_when_free_disk_is_below_the_reserve(
    settings: ApiSettings, embedder: HashEmbedder
) -> None:
    config = _settings(settings, upload_min_free_mb=1 << 40)
    keys = _make_keys(config.data_dir)
    with TestClient(create_app(config, embedder)) as client:
        response = client.post(
            "/documents",
            files={"file": ("a.txt", b"hello rubrics", "text/plain")},
            headers={"Authorization": f"Bearer {keys['tsinghua']}"},
        )
        assert response.status_code == 507 and response.json()["error"]["code"] == "insufficient_storage"
    assert not (config.data_dir / "originals").exists() or not _originals(config)


# Listing.


def test_listing_filters_and_pages_what_the_caller_may_see(world: World) -> None:
    client = world.client
    anonymous = client.get("/documents").json()
    assert [d["title"] for d in anonymous["documents"]] == ["public"] and anonymous["total"] == 1
    mine = client.get("/documents", params={"member": TSINGHUA.lower()}, headers=world.auth("tsinghua")).json()
    assert {d["title"] for d in mine["documents"]} == {"public", "tsinghua_only"}
    pages = [
        client.get("/documents", params={"limit": 2, "offset": o}, headers=world.auth("admin")).json()
        for o in (0, 2, 4)
    ]
    assert [len(p["documents"]) for p in pages] == [2, 2, 0] and {p["total"] for p in pages} == {4}
    assert [d["title"] for p in pages for d in p["documents"]] == list(DOCS)
    indexed = client.get("/documents", params={"status": "indexed", "language": "en"}, headers=world.auth("nairobi"))
    assert indexed.json()["total"] == 3
    assert all(d["searchable"] and d["generation"] for d in indexed.json()["documents"])
    assert client.get("/documents", params={"status": "pending"}).json()["total"] == 0
    for params in ({"status": "lost"}, {"limit": 0}, {"limit": 101}, {"offset": -1}, {"language": "English"}):
        response = client.get("/documents", params=params)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


# Deletion (case 26).


def test_a_deleted_document_leaves_results_at_once_and_the_next_generation_for_good(
    world: World, embedder: HashEmbedder
) -> None:
    doc, text = world.ids["public"], DOCS["public"][0]
    assert world.search_ids(text, None, k=1) == [doc]
    response = world.client.delete(f"/documents/{doc}", headers=world.auth("tsinghua"))
    assert response.status_code == 200 and response.json()["status"] == "deleted"
    # At once, in the generation still being served, and inside retrieval (k=1 still gets a visible hit).
    assert world.search_ids(text, None) == []  # it was the only public document
    for who in ("tsinghua", "nairobi", "admin"):
        hits = world.search_ids(text, who, k=1)
        assert hits and doc not in hits
    assert world.client.get(f"/documents/{doc}", headers=world.auth("tsinghua")).status_code == 404
    assert world.client.get(f"/documents/{doc}/file").status_code == 404
    assert world.client.delete(f"/documents/{doc}", headers=world.auth("tsinghua")).status_code == 404
    admin_view = world.client.get(f"/documents/{doc}", headers=world.auth("admin")).json()
    assert admin_view["status"] == "deleted" and not admin_view["searchable"]
    _build(world.settings, embedder)
    reader = open_published(world.settings.data_dir)
    assert reader is not None
    assert {d.id for d in reader.documents} == {world.ids[n] for n in DOCS} - {doc}
    reader.close()


def test_a_delete_from_the_command_line_takes_effect_in_the_running_service_at_once(world: World) -> None:
    doc, text = world.ids["alliance"], DOCS["alliance"][0]
    assert world.search_ids(text, "nairobi", k=1) == [doc]
    result = CliRunner().invoke(cli_app, ["--data-dir", str(world.settings.data_dir), "documents", "delete", doc])
    assert result.exit_code == 0, result.output
    assert doc not in world.search_ids(text, "nairobi")
    missing = CliRunner().invoke(cli_app, ["--data-dir", str(world.settings.data_dir), "documents", "delete", "0" * 16])
    assert missing.exit_code == 1 and "no document" in missing.output


def test_uploading_deleted_bytes_again_brings_the_document_back(world: World, embedder: HashEmbedder) -> None:
    text = DOCS["tsinghua_only"][0].encode()
    doc = world.ids["tsinghua_only"]
    assert world.client.delete(f"/documents/{doc}", headers=world.auth("tsinghua")).status_code == 200
    again = _upload(world, "tsinghua", text, "budget.txt", visibility="member")
    assert again.status_code == 201 and again.json()["id"] == doc and again.json()["status"] == "pending"
    _build(world.settings, embedder)
    world.reload()
    assert world.search_ids(text.decode(), "tsinghua", k=1) == [doc]
    assert doc not in world.search_ids(text.decode(), "nairobi")


def test_a_document_deleted_during_extraction_stays_deleted(indexer: Indexer) -> None:
    doc = indexer.ingest(b"Rubric calibration notes.", "r.txt").document
    indexer.catalog.delete_document(doc.id)
    indexer.catalog.record_extraction(
        doc.id, [], media_type="text/plain", title=None, language=None, page_count=None, truncated=False,
        chunker="c", seconds=0.1,
    )  # fmt: skip
    indexer.catalog.record_failure(doc.id, "timeout", "slow", 1.0)
    assert indexer.catalog.get_document(doc.id).status == "deleted"


def test_document_access_follows_changes_from_other_processes_without_mutating_old_tables(tmp_path: Path) -> None:
    catalog, other = Catalog(tmp_path / "c.sqlite3"), Catalog(tmp_path / "c.sqlite3")
    doc, _ = other.add_document("a" * 64, "a.txt", 1, DocumentMetadata(member="X"))
    first = catalog.document_access()
    assert first == {doc.id: DocumentAccess("pending", "public", None)}  # "X" is no registered member
    assert catalog.document_access() is first  # nothing changed: the same table, no read
    other.update_metadata(doc.id, DocumentMetadata(member="X", visibility="member"))
    second = catalog.document_access()
    assert second[doc.id].visibility == "member" and first[doc.id].visibility == "public"
    # A commit carrying an older timestamp than the newest seen (a writer that waited for the lock) still counts.
    late = (datetime.now(UTC) - timedelta(seconds=60)).isoformat(timespec="milliseconds")
    other._write([("UPDATE documents SET status = 'deleted', updated_at = ? WHERE id = ?", (late, doc.id))])
    assert catalog.document_access()[doc.id].status == "deleted"
    new, _ = other.add_document("b" * 64, "b.txt", 1, DocumentMetadata())
    assert set(catalog.document_access()) == {doc.id, new.id}
    catalog.close()
    other.close()


# CLI.


def test_members_and_keys_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data")]

    def run(*args: str) -> str:
        result = runner.invoke(cli_app, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    run("members", "add", "tsinghua", "--name", "Tsinghua University")
    duplicate = runner.invoke(cli_app, [*base, "members", "add", "other", "--name", "tsinghua university"])
    assert duplicate.exit_code == 1 and "already named" in duplicate.output
    bad = runner.invoke(cli_app, [*base, "members", "add", "Bad Id!", "--name", "X"])
    assert bad.exit_code == 1 and "member id" in bad.output
    token = run("keys", "create", "--member", "tsinghua", "--label", "alice").strip().splitlines()[0]
    assert token.startswith("msk_")
    catalog = Catalog(tmp_path / "data" / "catalog.sqlite3")
    holder = catalog.authenticate(token)
    assert holder is not None and (holder.member_name, holder.admin) == ("Tsinghua University", False)
    assert "alice" in run("keys", "list") and token not in run("keys", "list")
    assert "1 key(s)" in run("members", "list")
    run("members", "disable", "tsinghua")
    assert catalog.authenticate(token) is None
    run("members", "enable", "tsinghua")
    assert catalog.authenticate(token) is not None
    run("keys", "revoke", token.split("_")[1])
    assert catalog.authenticate(token) is None
    admin = run("keys", "create", "--admin").strip().splitlines()[0]
    assert catalog.authenticate(admin).admin  # type: ignore[union-attr]
    catalog.close()
    assert runner.invoke(cli_app, [*base, "keys", "create"]).exit_code == 2
    assert runner.invoke(cli_app, [*base, "keys", "create", "--member", "nobody"]).exit_code == 1
    assert runner.invoke(cli_app, [*base, "keys", "revoke", "deadbeef"]).exit_code == 1


def test_more_like_this_never_reveals_or_returns_hidden_passages(world: World) -> None:
    hits = world.client.get(
        "/search", params={"q": DOCS["tsinghua_only"][0], "k": 1}, headers=world.auth("tsinghua")
    ).json()["hits"]
    passage = hits[0]["passage_id"]
    assert world.client.get(f"/passages/{passage}/similar", headers=world.auth("tsinghua")).status_code == 200
    for who in (None, "nairobi"):
        response = world.client.get(f"/passages/{passage}/similar", headers=world.auth(who))
        assert response.status_code == 404 and "tsinghua_only" not in response.text
    public = world.search_ids(DOCS["public"][0], None, k=1)
    assert public == [world.ids["public"]]
    public_passage = world.client.get("/search", params={"q": DOCS["public"][0], "k": 1}).json()["hits"][0]
    similar = world.client.get(f"/passages/{public_passage['passage_id']}/similar", params={"k": 10}).json()
    assert {h["document_id"] for h in similar["hits"]} <= {world.ids[n] for n in VISIBLE[None]}


def test_translations_the_caller_may_not_see_are_not_listed_as_also_in(
    settings: ApiSettings, embedder: HashEmbedder
) -> None:
    config = _settings(settings)
    indexer = Indexer(config, embedder)
    text = "Rubric calibration sessions for peer assessment in large courses."
    en = indexer.ingest(
        text.encode(), "en.txt", DocumentMetadata(language="en", translation_group="g", member=TSINGHUA)
    )
    es = indexer.ingest(
        b"Sesiones de calibracion de rubricas: rubric calibration, peer assessment en cursos masivos.",
        "es.txt",
        DocumentMetadata(language="es", translation_group="g", member=TSINGHUA, visibility="member"),
    )
    indexer.build()
    indexer.close()
    keys = _make_keys(config.data_dir)
    with TestClient(create_app(config, embedder)) as client:
        params = {"q": "rubric calibration peer assessment", "group": "document", "k": 5}
        anonymous = client.get("/search", params=params).json()["hits"]
        assert [h["document_id"] for h in anonymous] == [en.document.id] and anonymous[0]["also_in"] == []
        owner = client.get("/search", params=params, headers={"X-API-Key": keys["tsinghua"]}).json()["hits"]
        shown = {owner[0]["document_id"], *(t["document_id"] for t in owner[0]["also_in"])}
        assert shown == {en.document.id, es.document.id}


def test_metadata_with_lone_surrogates_or_controls_is_cleaned_not_a_500(world: World) -> None:
    doc = world.ids["public"]
    body = b'{"title": "Rubrics \\ud800\\u0000\\u202eguide", "tags": ["\\udfff"]}'
    response = world.client.patch(
        f"/documents/{doc}", content=body, headers=world.auth("tsinghua") | {"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Rubrics guide" and response.json()["metadata"]["tags"] == []
