"""A real `moocsearch serve` process (fake embedder): hot reload under load, corrupt generations, body limits.

RELIABILITY cases 12 (body over the limit, with and without Content-Length, refused while streaming), 23 (a bit
flipped in the published generation: refused, the previous one keeps serving, health says degraded) and 24
(queries under load while generations swap: zero 5xx, each response from exactly one generation).
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.embedding import HashEmbedder
from indexer.generation import DENSE_FILE, generations_root
from indexer.pipeline import Indexer
from search_api.settings import ApiSettings
from tests.helpers import free_port, start_server, stop_server, wait_for

pytestmark = pytest.mark.e2e

BODY_LIMIT = 4096
DOCUMENTS = {
    "peer.txt": "Learners grade each other with calibrated rubrics in peer assessment.",
    "offline.txt": "Learners in low bandwidth regions download lecture videos for offline study.",
    "lab.txt": "Learners run virtual laboratory simulations before the chemistry practical.",
}


@dataclass
class Server:
    base: str
    port: int
    settings: ApiSettings
    log: Path


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`moocsearch serve` on a data directory with one published generation (the first document)."""
    tmp = tmp_path_factory.mktemp("serve")
    settings = ApiSettings(data_dir=tmp / "data", model="hash-256", multilingual_model=None)
    indexer = Indexer(settings, HashEmbedder(256))
    indexer.ingest(DOCUMENTS["peer.txt"].encode(), "peer.txt")
    indexer.build()
    indexer.close()
    port = free_port()
    env = {
        **os.environ,
        "MOOCSEARCH_DATA_DIR": str(settings.data_dir),
        "MOOCSEARCH_MODEL": "hash-256",
        "MOOCSEARCH_MULTILINGUAL_MODEL": "",
        "MOOCSEARCH_RELOAD_INTERVAL_SECONDS": "0.2",
        "MOOCSEARCH_RATE_LIMIT_PER_SECOND": "0",
        "MOOCSEARCH_MAX_REQUEST_BYTES": str(BODY_LIMIT),
        "MOOCSEARCH_LOG_FORMAT": "json",
    }
    log = tmp / "serve.log"
    process = start_server(env, port, log, "--no-build-if-missing")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(base + "/ready")[0] == 200, 300, "the server to be ready", process)
        yield Server(base, port, settings, log)
    finally:
        stop_server(process)


def _generation_of(server: Server) -> dict:
    return _get(server.base + "/health")[1]


def test_queries_under_swaps_and_a_corrupt_generation_never_fail_or_mix(server: Server) -> None:
    indexer = Indexer(server.settings, HashEmbedder(256))
    documents: dict[str, set[str]] = {}  # generation -> the documents it holds (the oracle)
    first = _generation_of(server)["generation"]
    documents[first] = {d.id for d in indexer.catalog.list_documents()}
    answers: list[tuple[int, str | None, set[str]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def query_loop() -> None:
        url = server.base + "/search?" + urllib.parse.urlencode({"q": "learners", "k": 10})
        try:
            while not stop.is_set():
                status, body = _get(url)
                answers.append((status, body.get("generation"), {h["document_id"] for h in body.get("hits", [])}))
        except BaseException as exc:  # a connection refused or reset is a failure too
            errors.append(exc)

    worker = threading.Thread(target=query_loop, daemon=True)
    worker.start()
    try:
        wait_for(lambda: len(answers) >= 5, 60, "queries to flow")  # swaps happen while queries run
        generations = [first]
        for name in ("offline.txt", "lab.txt"):
            indexer.ingest(DOCUMENTS[name].encode(), name)
            generation = indexer.build().generation_id
            assert generation is not None
            documents[generation] = {d.id for d in indexer.catalog.list_documents()}
            generations.append(generation)
            wait_for(lambda g=generation: _generation_of(server)["generation"] == g, 60, f"switch to {generation}")
        _, second, third = generations
        indexer.rollback(second)
        wait_for(lambda: _generation_of(server)["generation"] == second, 60, "rollback")
        # A bit flipped in the newest generation, then published behind the indexer's back.
        dense = generations_root(server.settings.data_dir) / third / DENSE_FILE
        data = bytearray(dense.read_bytes())
        data[len(data) // 2] ^= 0x01
        dense.write_bytes(bytes(data))
        (generations_root(server.settings.data_dir) / "CURRENT").write_text(third + "\n")
        wait_for(lambda: _generation_of(server)["status"] == "degraded", 60, "degraded health")
        refused_at = len(answers)
        time.sleep(1.0)
    finally:
        stop.set()
        worker.join(60)
        indexer.close()
    health = _generation_of(server)
    assert health["generation"] == second and "checksum" in health["problem"] and third in health["problem"]
    assert errors == [] and [a for a in answers if a[0] != 200] == []
    assert len(answers) > 20
    for _, generation, hit_documents in answers:
        # Every answer comes from one generation: exactly that generation's documents match "learners".
        assert generation in documents and hit_documents == documents[generation], (generation, hit_documents)
    assert {g for _, g, _ in answers} >= {first, second}
    assert {g for _, g, _ in answers[refused_at + 1 :]} == {second}
    log_lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert any(e["level"] == "ERROR" and "refused" in e["message"] and third in e["message"] for e in log_lines)
    access = [e for e in log_lines if e["logger"] == "search_api.access" and e.get("route") == "/search"]
    assert len(access) >= len(answers) - 1 and all(len(e["request_id"]) == 32 for e in access)


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_declared_length_over_the_limit_is_refused_without_sending_the_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        status, body = _read_response(sock)  # answered though not one byte of the body was sent
    assert status == 413 and body["error"]["code"] == "too_large"


def test_a_chunked_body_is_refused_while_it_streams(server: Server) -> None:
    chunk = b"x" * 1024
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        # Send 1 KiB chunks until the server answers; it must answer long before the 100 MiB are sent.
        while sent < 100 * 1024 * 1024 and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(b"400\r\n" + chunk + b"\r\n")
            except OSError:
                break
            sent += len(chunk)
        status, body = _read_response(sock)
    assert status == 413 and body["error"]["message"] == f"the request body is larger than {BODY_LIMIT} bytes"
    assert BODY_LIMIT < sent < 100 * 1024 * 1024, sent  # refused after the limit, long before the end
