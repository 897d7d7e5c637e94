"""Operations through the real app: /health, /ready, /metrics, request ids and the JSON access log."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from indexer.catalog import Catalog
from indexer.embedding import HashEmbedder
from indexer.generation import generations_root
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.limits import UNLIMITED_PATHS
from search_api.logging_setup import JsonFormatter, RequestIdFilter, TextFormatter, configure_logging
from search_api.settings import ApiSettings

PEER = "Peer assessment with calibrated rubrics lets thousands of learners grade design work."
OFFLINE = "Offline packages let learners in low bandwidth regions download lecture videos."


@pytest.fixture
def generation(settings: ApiSettings, embedder: HashEmbedder) -> str:
    """Two indexed documents and one that failed, in a published generation; returns its id."""
    indexer = Indexer(settings, embedder)
    indexer.ingest(PEER.encode(), "peer.txt")
    indexer.ingest(OFFLINE.encode(), "offline.txt")
    indexer.ingest(b"%PDF-", "broken.pdf")
    generation_id = indexer.build().generation_id
    indexer.close()
    assert generation_id is not None
    return generation_id


@pytest.fixture
def client(settings: ApiSettings, embedder: HashEmbedder, generation: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedder)) as test_client:
        yield test_client


def _admin_headers(settings: ApiSettings) -> dict[str, str]:
    """An admin key's header: /metrics needs one (issue 11), as Prometheus sends it."""
    catalog = Catalog(settings.data_dir / "catalog.sqlite3")
    _, secret = catalog.create_key(None, admin=True, label="prometheus")
    catalog.close()
    return {"Authorization": f"Bearer {secret}"}


def _metrics(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels), read with an admin key."""
    settings: ApiSettings = client.app.state.settings  # type: ignore[attr-defined]
    response = client.get("/metrics", headers=_admin_headers(settings))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_ready_names_the_generation_served(client: TestClient, settings: ApiSettings, generation: str) -> None:
    manifest = json.loads((generations_root(settings.data_dir) / generation / "manifest.json").read_text())
    body = client.get("/ready").json()
    assert body["status"] == "ready" and body["generation"] == generation
    assert (body["passages"], body["documents"]) == (manifest["passage_count"], 2)
    assert body["models"] == ["hash-256"] and body["created_at"] == manifest["created_at"]
    assert 0 <= body["age_seconds"] < 600


def test_ready_is_503_and_health_starting_before_any_generation(settings: ApiSettings, embedder: HashEmbedder) -> None:
    with TestClient(create_app(settings, embedder)) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "not_ready"
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "starting"


def test_metrics_count_requests_by_route_template_and_stage(
    client: TestClient, settings: ApiSettings, generation: str
) -> None:
    for query in ("rubrics", "offline videos", "learners"):
        assert client.get("/search", params={"q": query}).status_code == 200
    assert client.get("/search", params={"q": ""}).status_code == 422
    assert client.get("/documents/0123456789abcdef/file").status_code == 404
    samples = _metrics(client)

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert sample("moocsearch_http_requests_total", method="GET", route="/search", status="200") == 3
    assert sample("moocsearch_http_requests_total", method="GET", route="/search", status="422") == 1
    # The route template, not the raw path: one series for every document id.
    assert sample("moocsearch_http_requests_total", method="GET", route="/documents/{document_id}/file", status="404")
    assert sample("moocsearch_http_request_duration_seconds_count", method="GET", route="/search", status="200") == 3
    assert sample("moocsearch_search_stage_seconds_count", stage="lexical") == 3
    assert sample("moocsearch_search_stage_seconds_count", stage="dense:hash-256") == 3
    folder = generations_root(settings.data_dir) / generation
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sample("moocsearch_index_passages") == manifest["passage_count"]
    assert sample("moocsearch_index_documents") == 2
    assert sample("moocsearch_index_bytes") == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert sample("moocsearch_documents", status="indexed") == 2
    assert sample("moocsearch_documents", status="failed") == 1
    assert sample("moocsearch_generation_info", generation=generation, model="hash-256") == 1
    assert 0 <= sample("moocsearch_generation_age_seconds") < 600
    assert sample("moocsearch_last_build_success", outcome="published") == 1
    assert abs(sample("moocsearch_last_build_timestamp_seconds") - time.time()) < 600
    assert sample("moocsearch_degraded") == 0


def test_request_id_is_kept_when_sane_and_made_otherwise(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123.x"}).headers["x-request-id"] == "abc-123.x"
    for bad in ("", "a b", "x" * 200, "<script>"):
        made = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert made != bad and len(made) == 32 and int(made, 16) >= 0
    first, second = (client.get("/health").headers["x-request-id"] for _ in range(2))
    assert first != second


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """The access log lines written while the test runs, formatted as `moocsearch serve` writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("search_api.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    yield stream
    access.removeHandler(handler)
    access.setLevel(previous)


def test_one_json_access_line_per_request_without_secrets(
    settings: ApiSettings, embedder: HashEmbedder, generation: str, access_log: io.StringIO
) -> None:
    catalog = Catalog(settings.data_dir / "catalog.sqlite3")
    catalog.add_member("tsinghua", "Tsinghua University")
    key, secret = catalog.create_key("tsinghua")
    catalog.close()
    wrong = "sk-live-Very-Secret-Key-42"
    with TestClient(create_app(settings, embedder)) as client:
        refused = client.get(
            "/search",
            params={"q": "rubrics", "api_key": wrong},
            headers={"X-API-Key": wrong, "X-Request-ID": "req-42"},
        )
        accepted = client.get("/search", params={"q": "rubrics"}, headers={"Authorization": f"Bearer {secret}"})
    assert (refused.status_code, accepted.status_code) == (401, 200)
    lines = [json.loads(line) for line in access_log.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["request_id"] == "req-42" and first["method"] == "GET"
    assert (first["route"], first["path"], first["status"], first["key_prefix"]) == ("/search", "/search", 401, None)
    assert first["duration_ms"] >= 0 and first["client"] == "testclient" and first["logger"] == "search_api.access"
    assert (second["status"], second["key_prefix"]) == (200, key.prefix)
    assert second["request_id"] == accepted.headers["x-request-id"]
    assert wrong not in access_log.getvalue() and secret not in access_log.getvalue()


def test_log_records_carry_the_request_id_in_json_and_text() -> None:
    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": "built %s", "args": ("g1",)})
    record.request_id = "r1"
    record.documents = 3
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["message"], entry["request_id"], entry["documents"], entry["level"]) == ("built g1", "r1", 3, "INFO")
    assert TextFormatter().format(record).endswith("INFO x [r1] built g1 documents=3")


def test_configure_logging_sends_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("json", "INFO")
        logging.getLogger("search_api.test").info("hello %s", "world", extra={"generation": "g1"})
        entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert (entry["message"], entry["generation"], entry["request_id"]) == ("hello world", "g1", "-")
        assert logging.getLogger("uvicorn.access").disabled
    finally:
        logging.getLogger("uvicorn.access").disabled = False
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_health_is_degraded_with_the_reason_when_the_published_generation_is_refused(
    settings: ApiSettings, embedder: HashEmbedder, generation: str
) -> None:
    folder = generations_root(settings.data_dir) / generation
    dense = folder / "dense.faiss"
    data = bytearray(dense.read_bytes())
    data[len(data) // 2] ^= 0x01
    dense.write_bytes(bytes(data))
    with TestClient(create_app(settings, embedder)) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "checksum" in health["problem"] and health["generation"] is None
        ready = client.get("/ready")
        assert ready.status_code == 503 and "checksum" in ready.json()["error"]["message"]
        assert _metrics(client)[("moocsearch_degraded", ())] == 1


def test_every_route_declares_the_json_errors_it_can_give(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorOut"}
    assert "HTTPValidationError" not in json.dumps(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"400", "413", "500"} | (set() if path in UNLIMITED_PATHS else {"429"})
            assert expected <= set(responses), (method, path)
            assert "429" not in responses or path not in UNLIMITED_PATHS, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == error, (method, path, status)


def test_every_example_in_the_schema_is_valid(client: TestClient) -> None:
    import jsonschema_rs

    components = client.get("/openapi.json").json()["components"]["schemas"]
    checked, invalid = 0, []
    for name, component in components.items():
        validator = jsonschema_rs.validator_for(
            {"$ref": f"#/components/schemas/{name}", "components": {"schemas": components}}
        )
        for example in component.get("examples", []):
            invalid += [(name, error.message) for error in validator.iter_errors(example)]
            checked += 1
    assert invalid == []
    assert checked >= 4  # at least ErrorOut, HealthOut, ReadyOut and SearchOut have one
