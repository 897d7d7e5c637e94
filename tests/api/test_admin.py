"""Admin routes through the real app: POST /admin/rebuild (a build in a child process) and GET /admin/builds."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.embedding import HashEmbedder
from indexer.faults import PAUSE_AT, PAUSE_MARKER
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.operations.buildrunner import BuildRunner
from search_api.settings import ApiSettings


@pytest.fixture
def client(settings: ApiSettings, embedder: HashEmbedder, indexer: Indexer) -> Iterator[TestClient]:
    indexer.ingest(b"Calibrated peer review with rubrics for large online courses.", "peer.txt")
    indexer.build()
    with TestClient(create_app(settings, embedder)) as test_client:
        yield test_client


@pytest.fixture
def admin(indexer: Indexer) -> dict[str, str]:
    _, token = indexer.catalog.create_key(None, admin=True, label="ops")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def member(indexer: Indexer) -> dict[str, str]:
    indexer.catalog.add_member("toronto", "University of Toronto")
    _, token = indexer.catalog.create_key("toronto")
    return {"X-API-Key": token}


def _runner(client: TestClient) -> BuildRunner:
    runner: BuildRunner = client.app.state.build_runner  # type: ignore[attr-defined]
    return runner


@pytest.mark.parametrize(("method", "path"), [("POST", "/admin/rebuild"), ("GET", "/admin/builds")])
def test_admin_routes_need_an_admin_key(client: TestClient, member: dict[str, str], method: str, path: str) -> None:
    anonymous = client.request(method, path)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    bad = client.request(method, path, headers={"Authorization": "Bearer msk_00000000_" + "x" * 40})
    assert bad.status_code == 401
    member_call = client.request(method, path, headers=member)
    assert member_call.status_code == 403 and member_call.json()["error"]["code"] == "forbidden"
    assert not _runner(client).busy()


def test_rebuild_starts_one_build_in_a_child_process_and_refuses_a_second(
    client: TestClient, admin: dict[str, str], indexer: Indexer
) -> None:
    before = client.get("/health").json()["generation"]
    indexer.ingest(b"Offline packages for regions with little bandwidth.", "offline.txt")
    accepted = client.post("/admin/rebuild", headers=admin)
    assert accepted.status_code == 202, accepted.text
    build_id = accepted.json()["build_id"]
    assert accepted.headers["location"] == f"/admin/builds/{build_id}" and accepted.json()["status"] == "queued"
    for _ in range(3):  # an operator retrying: each refused, none recorded
        refused = client.post("/admin/rebuild", headers=admin)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "build_already_running"
    assert _runner(client).wait(180) == 0

    record = client.get(f"/admin/builds/{build_id}", headers=admin).json()
    assert (record["trigger"], record["outcome"], record["pid"]) == ("admin", "published", accepted.json()["pid"])
    assert (record["documents_added"], record["documents_changed"], record["documents_deleted"]) == (1, 0, 0)
    assert record["generation_id"] != before and record["seconds"]["total"] > 0
    # The service switches to the new generation by itself (hot reload), without a restart.
    deadline = time.monotonic() + 30
    while client.get("/health").json()["generation"] != record["generation_id"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.get("/health").json()["generation"] == record["generation_id"]
    hits = client.get("/search", params={"q": "offline bandwidth packages", "k": 1}).json()["hits"]
    assert hits[0]["title"] is not None and "Offline" in hits[0]["text"]

    listing = client.get("/admin/builds", headers=admin).json()
    assert listing["total"] == 2 and (listing["limit"], listing["offset"]) == (20, 0)
    assert [(b["trigger"], b["outcome"]) for b in listing["builds"]] == [("admin", "published"), ("cli", "published")]
    page = client.get("/admin/builds", params={"limit": 1, "offset": 1}, headers=admin).json()
    assert [b["trigger"] for b in page["builds"]] == ["cli"] and page["total"] == 2
    assert [b["id"] for b in listing["builds"][:1]] == [build_id]


def test_a_rebuild_right_after_a_published_build_is_accepted_while_its_process_still_exits(
    client: TestClient, admin: dict[str, str], indexer: Indexer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "exiting"
    monkeypatch.setenv(PAUSE_AT, "exit")  # the child stops after recording its build, before it exits
    monkeypatch.setenv(PAUSE_MARKER, str(marker))
    indexer.ingest(b"Offline packages for regions with little bandwidth.", "offline.txt")
    first = client.post("/admin/rebuild", headers=admin).json()
    try:
        deadline = time.monotonic() + 180
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.read_text() == str(first["pid"])
        assert client.get(f"/admin/builds/{first['build_id']}", headers=admin).json()["outcome"] == "published"
        os.kill(first["pid"], 0)  # still alive: recorded, not yet exited
        monkeypatch.delenv(PAUSE_AT)
        indexer.ingest(b"Captions and transcripts for every lecture video.", "captions.txt")
        second = client.post("/admin/rebuild", headers=admin)
        assert second.status_code == 202, second.text
        assert _runner(client).wait(180) == 0
    finally:
        os.kill(first["pid"], signal.SIGKILL)
    record = client.get(f"/admin/builds/{second.json()['build_id']}", headers=admin).json()
    assert (record["outcome"], record["documents_added"]) == ("published", 1)
    builds = client.get("/admin/builds", headers=admin).json()["builds"]
    assert [(b["trigger"], b["outcome"]) for b in builds] == [("admin", "published")] * 2 + [("cli", "published")]


def test_builds_paging_is_validated_and_an_unknown_build_is_404(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/admin/builds", params={"limit": 0}, headers=admin).status_code == 422
    assert client.get("/admin/builds", params={"offset": -1}, headers=admin).status_code == 422
    missing = client.get("/admin/builds/999", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
