"""One member must not make everyone's builds slow or stuck by uploading a lot (issue 11, defect 6).

Attacks: a member key uploads until the server refuses (pending quota, over HTTP, racing itself at the edge); a
member's backlog of pending documents sits ahead of another member's single upload (round-robin extraction); a
backlog larger than a build can extract in its time (extraction budget: the rest is deferred, never lost).

Oracles: the catalog's rows and the stored originals before and after a refusal; the quota's bound counted in the
catalog; the extraction order recorded as documents are recorded; the set of documents acknowledged, compared
with the set indexed after the builds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.buildreport import Deferred
from indexer.catalog import INDEXED, PENDING, Catalog, PendingQuota, QuotaExceeded
from indexer.embedding import HashEmbedder
from indexer.ingest import ingest_bytes
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from indexer.store import OriginalsStore
from search_api.app import create_app
from search_api.cli.build import print_build_report
from search_api.schemas import BuildOut
from search_api.settings import ApiSettings

ALPHA, BETA = "Alpha University", "Beta Institute"


def _text(n: int, size: int = 0) -> bytes:
    """A distinct plain-text document (distinct bytes: not a duplicate of any other), padded to `size` bytes."""
    body = f"Document number {n} about course design and peer review in open online courses.\n".encode()
    return body + b"x" * max(0, size - len(body))


def _settings(settings: ApiSettings, **changes: object) -> ApiSettings:
    base = {
        "reload_interval_seconds": 0,
        "rate_limit_per_second": 0,
        "upload_min_free_mb": 0,
        "quality_gate": False,
        "build_schedule": "",
        "build_soon_seconds": 0,
    }
    return settings.model_copy(update=base | changes)


def _catalog_rows(data_dir: Path) -> list[tuple[object, ...]]:
    catalog = Catalog(data_dir / "catalog.sqlite3")
    try:
        return [
            (d.id, d.status, d.filename, d.size_bytes, d.metadata.to_dict(), d.updated_at)
            for d in catalog.list_documents(limit=-1)
        ]
    finally:
        catalog.close()


def _originals(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "originals").rglob("*") if p.is_file())


# Quota at upload, over HTTP.


@dataclass
class Service:
    client: TestClient
    settings: ApiSettings
    keys: dict[str, str]

    def upload(self, who: str, data: bytes, filename: str = "report.txt"):
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        return self.client.post("/documents", files={"file": (filename, data, "text/plain")}, headers=headers)


def _service(settings: ApiSettings, embedder: HashEmbedder, **changes: object) -> Iterator[Service]:
    config = _settings(settings, **changes)
    indexer = Indexer(config, embedder)
    indexer.ingest(_text(0), "seed.txt", DocumentMetadata(language="en"))
    indexer.build()
    indexer.close()
    catalog = Catalog(config.data_dir / "catalog.sqlite3")
    try:
        catalog.add_member("alpha", ALPHA)
        catalog.add_member("beta", BETA)
        keys = {
            "alpha": catalog.create_key("alpha")[1],
            "beta": catalog.create_key("beta")[1],
            "admin": catalog.create_key(None, admin=True)[1],
        }
    finally:
        catalog.close()
    with TestClient(create_app(config, embedder)) as client:
        yield Service(client, config, keys)


@pytest.fixture
def service(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[Service]:
    yield from _service(settings, embedder, member_max_pending_documents=3, member_max_pending_mb=0)


def test_an_upload_over_the_pending_document_quota_is_refused_and_stores_nothing(service: Service) -> None:
    for n in range(1, 4):
        assert service.upload("alpha", _text(n)).status_code == 201
    rows, originals = _catalog_rows(service.settings.data_dir), _originals(service.settings.data_dir)

    refused = service.upload("alpha", _text(4))

    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "3 documents" in error["message"] and "next index build" in error["message"]
    assert _catalog_rows(service.settings.data_dir) == rows  # not a row, not a timestamp changed
    assert _originals(service.settings.data_dir) == originals  # and no original written
    # The quota is per member: another member and an admin key upload as before; known bytes are no new pending.
    assert service.upload("beta", _text(4)).status_code == 201
    assert service.upload("admin", _text(5)).status_code == 201
    assert service.upload("alpha", _text(1)).status_code == 200


def test_the_quota_clears_once_a_build_extracts_the_pending_documents(service: Service, embedder: HashEmbedder) -> None:
    for n in range(1, 4):
        assert service.upload("alpha", _text(n)).status_code == 201
    assert service.upload("alpha", _text(4)).status_code == 429
    with Indexer(service.settings, embedder) as indexer:
        indexer.build()
    assert service.upload("alpha", _text(4)).status_code == 201


def test_an_upload_over_the_pending_bytes_quota_is_refused(settings: ApiSettings, embedder: HashEmbedder) -> None:
    for service in _service(settings, embedder, member_max_pending_documents=0, member_max_pending_mb=1):
        assert service.upload("alpha", _text(1, size=600_000)).status_code == 201
        rows = _catalog_rows(service.settings.data_dir)
        refused = service.upload("alpha", _text(2, size=600_000))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert "1 MB" in refused.json()["error"]["message"]
        assert _catalog_rows(service.settings.data_dir) == rows
        assert service.upload("alpha", _text(3, size=300_000)).status_code == 201  # still fits


def test_uploads_racing_at_the_quota_edge_never_pass_it(settings: ApiSettings) -> None:
    """Eight uploads on eight connections, each held after its own quota check until all have checked: only the
    count in the insert's transaction can keep them from all passing. The documented bound: no overshoot."""
    quota = PendingQuota("alpha", max_documents=5, max_bytes=0)
    data_dir = settings.data_dir
    store = OriginalsStore(data_dir / "originals")
    first = Catalog(data_dir / "catalog.sqlite3")
    first.add_member("alpha", ALPHA)
    metadata = DocumentMetadata(member=ALPHA)
    for n in range(4):
        ingest_bytes(store, first, _text(n), f"{n}.txt", metadata, 1 << 20, owner_id="alpha", quota=quota)
    first.close()

    racers = 8
    all_checked = threading.Barrier(racers, timeout=30)

    class HeldStore(OriginalsStore):
        def put(self, data: bytes) -> str:  # storing comes after the early check, before the insert
            all_checked.wait()
            return super().put(data)

    outcomes: list[str] = []

    def upload(n: int) -> None:
        catalog = Catalog(data_dir / "catalog.sqlite3")
        try:
            ingest_bytes(
                HeldStore(data_dir / "originals"), catalog, _text(100 + n), "r.txt", metadata, 1 << 20, "alpha", quota
            )
            outcomes.append("stored")
        except QuotaExceeded:
            outcomes.append("refused")
        finally:
            catalog.close()

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(outcomes) == ["refused"] * (racers - 1) + ["stored"]
    catalog = Catalog(data_dir / "catalog.sqlite3")
    try:
        pending = [d for d in catalog.list_documents(PENDING, limit=-1) if d.metadata.member == ALPHA]
    finally:
        catalog.close()
    assert len(pending) == 5


# Round-robin extraction and the extraction budget.


def _ingest_backlog(indexer: Indexer) -> dict[str, list[str]]:
    """Alpha's 10 pending documents, then Beta's one, then one the operator ingested without a member."""
    ids: dict[str, list[str]] = {ALPHA: [], BETA: [], "operator": []}
    indexer.catalog.add_member("alpha", ALPHA)  # a registered member's documents are its own queue
    indexer.catalog.add_member("beta", BETA)
    for n in range(10):
        ids[ALPHA].append(indexer.ingest(_text(n), f"a{n}.txt", DocumentMetadata(member=ALPHA)).document.id)
    ids[BETA].append(indexer.ingest(_text(10), "b.txt", DocumentMetadata(member=BETA)).document.id)
    ids["operator"].append(indexer.ingest(_text(11), "o.txt", DocumentMetadata()).document.id)
    return ids


def _all(ids: dict[str, list[str]]) -> list[str]:
    return [i for queue in ids.values() for i in queue]


def _record_order(indexer: Indexer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    order: list[str] = []
    record = indexer.catalog.record_extraction

    def recording(document_id: str, *args: object, **kwargs: object) -> None:
        order.append(document_id)
        record(document_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(indexer.catalog, "record_extraction", recording)
    return order


def test_one_members_backlog_does_not_push_another_members_upload_to_the_end(
    indexer: Indexer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _ingest_backlog(indexer)
    order = _record_order(indexer, monkeypatch)

    indexer.build()

    assert sorted(order) == sorted(_all(ids))
    # Round one takes one document from each queue (in upload order): Alpha's first, Beta's, the operator's.
    assert order[:3] == [ids[ALPHA][0], ids[BETA][0], ids["operator"][0]]
    assert order[3:] == ids[ALPHA][1:]


class FakeClock:
    """Ten seconds pass every time the clock is read: the extraction budget runs out after a few documents."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def _statuses(catalog: Catalog) -> dict[str, tuple[str, str]]:
    return {d.id: (d.status, d.updated_at) for d in catalog.list_documents(limit=-1)}


def test_a_build_out_of_time_defers_the_rest_and_the_next_build_finishes_them(
    settings: ApiSettings, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings.model_copy(update={"build_extract_budget_seconds": 15, "quality_gate": False})
    with Indexer(config, embedder) as indexer:
        ids = _ingest_backlog(indexer)
        acknowledged = set(_all(ids))
        before = _statuses(indexer.catalog)
        indexer.extraction.clock = FakeClock()
        order = _record_order(indexer, monkeypatch)

        report = indexer.build()

        # Round one always runs (every member progresses); then 10 s per document against a 15 s budget: one more.
        assert order == [ids[ALPHA][0], ids[BETA][0], ids["operator"][0], ids[ALPHA][1]]
        assert report.outcome == "published" and report.documents_failed == 0
        assert report.documents_extracted == 4 and report.documents_indexed == 4
        assert report.documents_deferred == 8
        assert report.deferred == [Deferred("alpha", 8)]
        after = _statuses(indexer.catalog)
        for document_id in ids[ALPHA][2:]:
            assert after[document_id] == before[document_id]  # untouched: still pending, same timestamp
        record = indexer.catalog.get_build(report.build_id or 0)
        assert record is not None
        shown = BuildOut.model_validate(record.to_dict())  # what GET /admin/builds/{id} answers
        assert shown.documents_deferred == 8
        assert [(d.member, d.documents) for d in shown.deferred] == [("alpha", 8)]  # member ids
        print_build_report(report)
        assert "deferred 8 pending documents to the next build (the extraction budget was spent): alpha 8" in (
            capsys.readouterr().out
        )

        indexer.settings = config.model_copy(update={"build_extract_budget_seconds": 0})
        second = indexer.build()

        assert second.documents_deferred == 0 and second.deferred == []
        statuses = _statuses(indexer.catalog)
        assert {i for i, (status, _) in statuses.items() if status == INDEXED} == acknowledged  # none lost
        assert not any(status == "failed" for status, _ in statuses.values())


def test_a_full_build_is_not_cut_short_by_the_budget(settings: ApiSettings, embedder: HashEmbedder) -> None:
    config = settings.model_copy(update={"build_extract_budget_seconds": 15, "quality_gate": False})
    with Indexer(config, embedder) as indexer:
        ids = _ingest_backlog(indexer)
        indexer.extraction.clock = FakeClock()
        report = indexer.build(full=True)
        assert report.documents_deferred == 0
        assert report.documents_extracted == len(_all(ids))
