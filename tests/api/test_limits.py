"""Abuse limits (RELIABILITY cases 12, 18, 19): body size while streaming, per-client rate, CORS origins."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from indexer.embedding import HashEmbedder
from search_api.app import create_app
from search_api.limits import BodyLimitMiddleware, TokenBuckets, client_identity
from search_api.settings import ApiSettings

ORIGIN = "https://alliance.example"


def _scope(method: str = "POST", path: str = "/search", headers: dict[str, str] | None = None) -> Scope:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "method": method, "path": path, "headers": raw, "client": ("10.0.0.9", 4000)}


class _Recorder:
    """An ASGI app that reads the whole body and answers 200, remembering how many bytes it got."""

    def __init__(self) -> None:
        self.received = 0
        self.finished_reading = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            self.received += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.finished_reading = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _run(app: BodyLimitMiddleware, scope: Scope, chunks: list[bytes]) -> tuple[list[Message], int]:
    """Drive `app` with `chunks` as the body; returns what it sent and how many chunks it pulled."""
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, pulled


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    inner = _Recorder()
    app = BodyLimitMiddleware(inner, request_limit=5000, upload_limit=10**9)
    sent, pulled = _run(app, _scope(headers={"Transfer-Encoding": "chunked"}), [b"x" * 1000] * 100)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "too_large"
    # The sixth chunk passes 5000 bytes: nothing after it is read, and the route never sees a whole body.
    assert pulled == 6 and inner.received == 5000 and not inner.finished_reading


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    inner = _Recorder()
    app = BodyLimitMiddleware(inner, request_limit=5000, upload_limit=10**9)
    sent, pulled = _run(app, _scope(headers={"Content-Length": "5001"}), [b"x" * 5001])
    assert sent[0]["status"] == 413 and pulled == 0 and inner.received == 0
    sent, pulled = _run(app, _scope(headers={"Content-Length": "5000"}), [b"x" * 5000])
    assert sent[0]["status"] == 200 and inner.received == 5000
    sent, _ = _run(app, _scope(headers={"Content-Length": "12abc"}), [b""])
    assert sent[0]["status"] == 400


def test_uploads_get_their_own_larger_limit() -> None:
    app = BodyLimitMiddleware(_Recorder(), request_limit=5000, upload_limit=80_000)
    assert app.limit_for(_scope("POST", "/documents")) == 80_000
    assert app.limit_for(_scope("POST", "/documents/")) == 80_000
    assert app.limit_for(_scope("PATCH", "/documents/0123456789abcdef")) == 5000
    assert app.limit_for(_scope("POST", "/search")) == 5000
    sent, _ = _run(app, _scope("POST", "/documents"), [b"x" * 10_000] * 7)
    assert sent[0]["status"] == 200
    sent, _ = _run(app, _scope("POST", "/documents"), [b"x" * 10_000] * 9)
    assert sent[0]["status"] == 413


def test_upload_limit_defaults_to_the_file_limit_plus_the_form() -> None:
    assert ApiSettings(max_file_bytes=1000).upload_body_limit == 1000 + 1024 * 1024
    assert ApiSettings(max_file_bytes=1000, max_upload_bytes=5000).upload_body_limit == 5000


@pytest.fixture
def settings_small(settings: ApiSettings) -> ApiSettings:
    return settings.model_copy(
        update={
            "max_request_bytes": 2000,
            "rate_limit_per_second": 0.5,
            "rate_limit_burst": 3,
            "cors_origins": [ORIGIN],
        }
    )


def test_the_real_app_answers_413_json_with_and_without_content_length(
    settings_small: ApiSettings, embedder: HashEmbedder
) -> None:
    body = json.dumps({"query": "x" * 5000}).encode()
    with TestClient(create_app(settings_small, embedder)) as client:
        declared = client.post("/search", content=body, headers={"Content-Type": "application/json"})
        streamed = client.post(
            "/search",
            content=(body[i : i + 500] for i in range(0, len(body), 500)),
            headers={"Content-Type": "application/json"},
        )
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["error"] == {
            "code": "too_large",
            "message": "the request body is larger than 2000 bytes",
        }


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    now = [100.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back every 1/rate seconds
    assert buckets.take("b") == 0  # another client has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0 and buckets.take("a") == pytest.approx(0.5)
    now[0] += 60  # refills up to the burst, not beyond
    assert [buckets.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_token_buckets_forget_the_least_recent_clients_first() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_clients=2, clock=lambda: 0.0)
    assert buckets.take("a") == 0 and buckets.take("b") == 0
    assert buckets.take("c") == 0  # "a" is forgotten: it starts afresh with a full bucket
    assert buckets.take("a") == 0 and buckets.take("c") > 0


def test_clients_are_their_key_hash_or_their_ip() -> None:
    by_bearer = client_identity(_scope(headers={"Authorization": "Bearer secret-1"}))
    by_header = client_identity(_scope(headers={"X-API-Key": "secret-1"}))
    assert by_bearer == by_header and by_bearer.startswith("key:") and "secret-1" not in by_bearer
    assert client_identity(_scope(headers={"X-API-Key": "secret-2"})) != by_bearer
    assert client_identity(_scope()) == "ip:10.0.0.9"


def test_a_burst_from_one_client_gets_429_and_others_are_unaffected(
    settings_small: ApiSettings, embedder: HashEmbedder
) -> None:
    app = create_app(settings_small, embedder)
    with TestClient(app, client=("10.0.0.1", 5000)) as first:
        alice = {"X-API-Key": "alice-key"}
        assert [first.get("/", headers=alice).status_code for _ in range(3)] == [200, 200, 200]
        throttled = first.get("/", headers=alice)
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "rate_limited"
        assert throttled.headers["retry-after"] in {"1", "2"}  # one token every 2 s at 0.5/s
        assert first.get("/health", headers=alice).status_code == 200  # probes are never throttled
        assert first.get("/", headers={"X-API-Key": "bob-key"}).status_code == 200  # another key, same IP
        assert [first.get("/").status_code for _ in range(4)] == [200, 200, 200, 429]  # anonymous: by IP
        other_ip = TestClient(app, client=("10.0.0.2", 5000))
        assert other_ip.get("/").status_code == 200


def test_made_up_keys_drain_their_address_and_are_then_refused(
    settings_small: ApiSettings, embedder: HashEmbedder
) -> None:
    app = create_app(settings_small, embedder)
    with TestClient(app, client=("10.0.0.3", 5000)) as guesser:
        # Every made-up key has a fresh bucket of its own, but each 401 also costs its address a token.
        codes = [guesser.get("/documents", headers={"X-API-Key": f"msk_{i:08x}_guess"}).status_code for i in range(4)]
        assert codes == [401, 401, 401, 429]
        assert guesser.get("/documents").status_code == 200  # anonymous requests count in their own bucket
        other = TestClient(app, client=("10.0.0.4", 5000))
        assert other.get("/documents", headers={"X-API-Key": "msk_00000000_guess"}).status_code == 401


def test_cors_allows_only_configured_origins(settings_small: ApiSettings, embedder: HashEmbedder) -> None:
    with TestClient(create_app(settings_small.model_copy(update={"rate_limit_per_second": 0}), embedder)) as client:
        for method in ("GET", "POST", "PATCH", "DELETE"):
            allowed = client.options(
                "/documents/0123456789abcdef",
                headers={"Origin": ORIGIN, "Access-Control-Request-Method": method},
            )
            assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
            assert method in allowed.headers["access-control-allow-methods"]
        refused = client.options(
            "/search", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in refused.headers
        simple = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers
        assert client.get("/health", headers={"Origin": ORIGIN}).headers["access-control-allow-origin"] == ORIGIN
