"""What the service exposes beyond search (issue 11, defect 6): the operations routes, integers beyond SQLite's,
the text log, the data directory's file modes, the API docs' assets and the security headers.

Oracles: three documents with known visibility (one public, one member-only, one alliance) and the counts a
public reader may know of: the public document's own passages, as the anonymous search finds them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from indexer.catalog import Catalog
from indexer.embedding import HashEmbedder
from indexer.generation import generations_root
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.cli import app as cli_app
from search_api.logging_setup import JsonFormatter, RequestIdFilter, TextFormatter
from search_api.settings import ApiSettings

PUBLIC = "Peer assessment with calibrated rubrics lets thousands of learners grade design work."
HIDDEN = (
    "Secretword drafts of the accreditation review. Internal notes on budget cuts. "
    "A second paragraph so that the hidden document has more than one passage of its own."
)
ALLIANCE = "Alliance-only survey of offline video packages for low bandwidth regions."
HUGE = "99999999999999999999"  # beyond SQLite's 64-bit integers


@dataclass
class World:
    client: TestClient
    settings: ApiSettings
    keys: dict[str, str]
    public_passages: int

    def auth(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}


def _settings(settings: ApiSettings, **changes: object) -> ApiSettings:
    base = {"reload_interval_seconds": 0, "rate_limit_per_second": 0, "upload_min_free_mb": 0, "quality_gate": False}
    return settings.model_copy(update=base | changes)


def _world(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[World]:
    indexer = Indexer(settings, embedder)
    public = indexer.ingest(PUBLIC.encode(), "public.txt", DocumentMetadata(member="tsinghua", visibility="public"))
    indexer.ingest(HIDDEN.encode(), "hidden.txt", DocumentMetadata(member="tsinghua", visibility="member"))
    indexer.ingest(ALLIANCE.encode(), "alliance.txt", DocumentMetadata(member="tsinghua", visibility="alliance"))
    indexer.build()
    indexer.ingest(b"A pending upload nobody may know of yet.", "pending.txt", DocumentMetadata(visibility="member"))
    catalog = indexer.catalog
    # Names equal to the ids: the documents' `member` matches its key whether by name or by id.
    catalog.add_member("tsinghua", "tsinghua")
    catalog.add_member("nairobi", "nairobi")
    keys = {
        "admin": catalog.create_key(None, admin=True, label="prometheus")[1],
        "tsinghua": catalog.create_key("tsinghua")[1],
        "nairobi": catalog.create_key("nairobi")[1],
    }
    indexer.close()
    with TestClient(create_app(settings, embedder)) as client:
        hits = client.get("/search", params={"q": "peer assessment rubrics", "k": 100}).json()["hits"]
        public_passages = sum(1 for hit in hits if hit["document_id"] == public.document.id)
        assert public_passages >= 1 and {hit["document_id"] for hit in hits} == {public.document.id}
        yield World(client, settings, keys, public_passages)


@pytest.fixture
def world(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[World]:
    yield from _world(_settings(settings), embedder)


@pytest.fixture
def public_metrics_world(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[World]:
    yield from _world(_settings(settings, metrics_public=True), embedder)


# /health, /ready and /metrics


def test_anonymous_health_and_ready_count_only_public_documents(world: World) -> None:
    for path in ("/health", "/ready"):
        anonymous = world.client.get(path).json()
        assert (anonymous["documents"], anonymous["passages"]) == (1, world.public_passages), path
        member = world.client.get(path, headers=world.auth("nairobi")).json()
        assert member["documents"] == 2, path  # public and alliance: not tsinghua's member-only one
        owner = world.client.get(path, headers=world.auth("tsinghua")).json()
        admin = world.client.get(path, headers=world.auth("admin")).json()
        assert owner["documents"] == admin["documents"] == 3, path
        assert admin["passages"] > member["passages"] > anonymous["passages"], path
    # A probe never answers 401: a bad key gets the anonymous answer.
    bad = world.client.get("/health", headers={"Authorization": "Bearer msk_00000000_" + "x" * 40})
    assert bad.status_code == 200 and bad.json()["documents"] == 1


def test_adding_a_hidden_document_changes_nothing_anonymous_health_shows(world: World, embedder: HashEmbedder) -> None:
    before = world.client.get("/health").json()
    indexer = Indexer(world.settings, embedder)
    indexer.ingest(b"Another secretword memo, member-only.", "memo.txt", DocumentMetadata(visibility="member"))
    generation = indexer.build().generation_id
    indexer.close()
    world.client.app.state.service.load_published()  # type: ignore[attr-defined]
    after = world.client.get("/health").json()
    assert after["generation"] == generation != before["generation"]
    assert {k: v for k, v in after.items() if k != "generation"} == {
        k: v for k, v in before.items() if k != "generation"
    }


def test_problem_shows_no_absolute_path_to_the_anonymous(settings: ApiSettings, embedder: HashEmbedder) -> None:
    config = _settings(settings)
    indexer = Indexer(config, embedder)
    indexer.ingest(PUBLIC.encode(), "public.txt")
    generation = indexer.build().generation_id
    assert generation is not None
    _, admin_key = indexer.catalog.create_key(None, admin=True)
    indexer.close()
    # A refusal whose reason is an OSError naming a file: the manifest replaced by a folder.
    manifest = generations_root(config.data_dir) / generation / "manifest.json"
    manifest.unlink()
    manifest.mkdir()
    with TestClient(create_app(config, embedder)) as client:
        anonymous = client.get("/health").json()
        assert anonymous["status"] == "degraded" and manifest.name in anonymous["problem"]
        assert str(config.data_dir) not in anonymous["problem"] and "/tmp" not in anonymous["problem"]
        assert not re.search(r"(^|[\s'\"(])/\w", anonymous["problem"]), anonymous["problem"]
        ready = client.get("/ready").json()["error"]["message"]
        assert manifest.name in ready and str(config.data_dir) not in ready
        admin = client.get("/health", headers={"Authorization": f"Bearer {admin_key}"}).json()
        assert str(manifest) in admin["problem"]  # an admin gets the whole reason


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_need_an_admin_key(world: World) -> None:
    anonymous = world.client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    member = world.client.get("/metrics", headers=world.auth("tsinghua"))
    assert member.status_code == 403 and member.json()["error"]["code"] == "forbidden"
    admin = world.client.get("/metrics", headers=world.auth("admin"))
    assert admin.status_code == 200
    samples = _samples(admin.text)
    assert samples[("moocsearch_index_documents", ())] == 3
    assert samples[("moocsearch_documents", (("status", "pending"),))] == 1


def test_public_metrics_say_nothing_about_the_catalog(public_metrics_world: World) -> None:
    world = public_metrics_world
    upload = world.client.post(
        "/documents",
        files={"file": ("note.txt", b"A member-only note.", "text/plain")},
        data={"visibility": "member"},
        headers=world.auth("tsinghua"),
    )
    assert upload.status_code == 201, upload.text
    assert world.client.get("/search", params={"q": "rubrics"}).status_code == 200
    response = world.client.get("/metrics")
    assert response.status_code == 200
    names = {name for name, _ in _samples(response.text)}
    assert ("moocsearch_http_requests_total", (("method", "GET"), ("route", "/search"), ("status", "200"))) in (
        _samples(response.text)
    )
    assert "moocsearch_degraded" in names and "moocsearch_generation_age_seconds" in names
    for private in ("moocsearch_documents", "moocsearch_index_documents", "moocsearch_index_passages"):
        assert private not in names
    assert "/documents" not in response.text and "POST" not in response.text
    # An admin key still gets everything.
    full = _samples(world.client.get("/metrics", headers=world.auth("admin")).text)
    assert full[("moocsearch_documents", (("status", "pending"),))] == 2


# Integers beyond SQLite's


def test_every_integer_parameter_beyond_int64_gets_a_json_4xx(world: World) -> None:
    schema = world.client.get("/openapi.json").json()
    checked = []
    for template, operations in schema["paths"].items():
        for method, operation in operations.items():
            parameters = [p for p in operation.get("parameters", []) if p["schema"].get("type") == "integer"]
            parameters += [
                p
                for p in operation.get("parameters", [])
                if any(option.get("type") == "integer" for option in p["schema"].get("anyOf", []))
            ]
            for parameter in parameters:
                path, params = template, {}
                for other in operation.get("parameters", []):
                    if other["in"] == "path" and other["name"] != parameter["name"]:
                        path = path.replace("{" + other["name"] + "}", "0123456789abcdef")
                if parameter["in"] == "path":
                    path = path.replace("{" + parameter["name"] + "}", HUGE)
                else:
                    params[parameter["name"]] = HUGE
                if template == "/search":
                    params["q"] = "rubrics"
                response = world.client.request(method, path, params=params, headers=world.auth("admin"))
                assert response.status_code in (404, 422), (method, path, params, response.status_code)
                assert set(response.json()["error"]) == {"code", "message"}
                checked.append((method, template, parameter["name"]))
    assert ("get", "/admin/builds/{build_id}", "build_id") in checked
    assert ("get", "/admin/builds", "offset") in checked
    response = world.client.get(f"/admin/builds/{HUGE}", headers=world.auth("admin"))
    assert response.status_code == 422 and response.json()["error"]["code"]


# The text log


@pytest.fixture
def text_access_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("search_api.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    yield stream
    access.removeHandler(handler)
    access.setLevel(previous)


FORGED = "/nope%0a2026-01-01 00:00:00,000 INFO search_api.access [x] GET /admin/rebuild 202%0d%e2%80%a8%c2%85%1b[2J"


def test_a_request_path_with_newlines_writes_one_text_log_line(world: World, text_access_log: io.StringIO) -> None:
    assert world.client.get(FORGED).status_code == 404
    lines = text_access_log.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "\\x0a2026-01-01" in lines[0] and "\x1b" not in lines[0]
    assert re.search(r' path="/nope\\x0a2026-01-01 00:00:00,000 INFO .*" ', lines[0]), lines[0]


def test_json_log_lines_stay_one_line_for_any_path(world: World) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("search_api.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    try:
        world.client.get(FORGED)
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert json.loads(lines[0])["path"].startswith("/nope\n2026-01-01")


# File modes of the data directory


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most machines start processes with (022): files 0644 unless the code says otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _open_to_others(data_dir: Path) -> list[str]:
    paths = [data_dir, *data_dir.rglob("*")]
    return [f"{p.relative_to(data_dir)} {stat.filemode(p.lstat().st_mode)}" for p in paths if p.lstat().st_mode & 0o077]


def test_the_catalog_and_passage_tables_are_owner_only_without_any_umask(
    settings: ApiSettings, embedder: HashEmbedder, usual_umask: None
) -> None:
    indexer = Indexer(_settings(settings), embedder)
    indexer.ingest(HIDDEN.encode(), "hidden.txt", DocumentMetadata(visibility="member"))
    generation = indexer.build().generation_id
    indexer.close()
    assert generation is not None
    data = settings.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in (data / "catalog.sqlite3", generations_root(data) / generation / "passages.sqlite3"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_every_file_of_a_build_and_an_upload_is_owner_only(
    settings: ApiSettings, embedder: HashEmbedder, usual_umask: None, tmp_path: Path
) -> None:
    """Through the entry points, as deployed: `moocsearch ingest` and `index build`, then an upload to the app."""
    data = settings.data_dir
    document = tmp_path / "public.txt"
    document.write_text(PUBLIC)

    def cli(*args: str) -> None:
        result = CliRunner().invoke(cli_app, ["--data-dir", str(data), "--model", "hash-256", *args])
        assert result.exit_code == 0, result.output

    cli("ingest", str(document))
    cli("index", "build")
    os.umask(0o022)  # the app must not rely on the command having set it
    catalog = Catalog(data / "catalog.sqlite3")
    catalog.add_member("tsinghua", "tsinghua")
    _, key = catalog.create_key("tsinghua")
    catalog.close()
    with TestClient(create_app(_settings(settings), embedder)) as client:
        upload = client.post(
            "/documents",
            files={"file": ("hidden.txt", HIDDEN.encode(), "text/plain")},
            data={"visibility": "member"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert upload.status_code == 201, upload.text
    cli("index", "build")
    assert (
        len(list(data.rglob("passages.sqlite3"))) == 2
        and sum(p.is_file() for p in (data / "originals").rglob("*")) == 2
    )
    assert _open_to_others(data) == []


def test_a_data_directory_open_to_others_is_tightened_at_start_with_a_warning(
    settings: ApiSettings, embedder: HashEmbedder, usual_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    data = settings.data_dir
    (data / "originals").mkdir(parents=True)
    (data / "originals" / "old.bin").write_bytes(b"made by an earlier version")
    data.chmod(0o755)
    assert _open_to_others(data)
    with caplog.at_level(logging.WARNING, logger="indexer.permissions"):
        Indexer(settings, embedder).close()
    assert _open_to_others(data) == []
    assert "open to other users" in caplog.text


# The API docs and the security headers


_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_another_origin(world: World, page: str) -> None:
    response = world.client.get(page)
    assert response.status_code == 200
    html = response.text
    assert not _EXTERNAL.search(html), html
    assert "http://" not in html and "https://" not in html
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert any(asset.endswith(".js") for asset in assets), assets
    for asset in assets:
        served = world.client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset
    # Its own policy: scripts from this origin and its inline script by hash, nothing from elsewhere.
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline'" not in policy.split("style-src")[0]
    for inline in re.findall(r"<script>(.*?)</script>", html, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "http" not in policy and "*" not in policy


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/search?q=rubrics", {}),
        ("GET", "/health", {}),
        ("GET", "/", {}),
        ("GET", "/nope", {}),
        ("GET", "/search?q=", {}),
        ("GET", "/metrics", {}),
        ("POST", "/search", {"Content-Type": "application/json"}),
    ],
)
def test_every_response_carries_the_security_headers(
    world: World, method: str, path: str, headers: dict[str, str]
) -> None:
    response = world.client.request(method, path, headers=headers, content=b"{" if method == "POST" else None)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_a_downloaded_original_cannot_run_scripts_here(world: World) -> None:
    documents = world.client.get("/documents", headers=world.auth("admin")).json()["documents"]
    response = world.client.get(f"/documents/{documents[0]['id']}/file", headers=world.auth("admin"))
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-content-type-options"] == "nosniff"
