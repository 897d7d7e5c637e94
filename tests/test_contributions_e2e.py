"""An acknowledged upload survives `kill -9` of a real `moocsearch serve` (RELIABILITY case 21, first half)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from indexer.catalog import Catalog

pytestmark = pytest.mark.e2e

BOUNDARY = "e2eboundary"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, key: str, data: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} | ({"Content-Type": content_type} if content_type else {})
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    executable = Path(sys.executable).with_name("moocsearch")
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(executable), "serve", "--port", str(port), "--no-build-if-missing"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_listening(base: str, key: str, process: subprocess.Popen[bytes], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            if _request(base + "/documents", key)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError("serve did not start in time")


def test_an_acknowledged_upload_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    catalog = Catalog(data_dir / "catalog.sqlite3")
    catalog.add_member("tsinghua", "Tsinghua University")
    key = catalog.create_key("tsinghua")[1]
    catalog.close()
    env = {
        **os.environ,
        "MOOCSEARCH_DATA_DIR": str(data_dir),
        "MOOCSEARCH_MODEL": "hash-256",
        "MOOCSEARCH_MULTILINGUAL_MODEL": "",
        "MOOCSEARCH_UPLOAD_MIN_FREE_MB": "0",
        "MOOCSEARCH_BUILD_SCHEDULE": "",
        "MOOCSEARCH_BUILD_SOON_SECONDS": "0",
        "MOOCSEARCH_RATE_LIMIT_PER_SECOND": "0",
    }
    port = _free_port()
    base, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    content = b"Flipped classrooms: learners watch short videos before each seminar."
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nFlipped classrooms\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="flipped.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    process = _start(env, port, log)
    try:
        _wait_listening(base, key, process)
        status, answer = _request(base + "/documents", key, body, f"multipart/form-data; boundary={BOUNDARY}")
        assert status == 201, answer
        document_id = json.loads(answer)["id"]
        process.send_signal(signal.SIGKILL)  # right after the 201: no shutdown, no flush
        process.wait(30)
        process = _start(env, port, log)
        _wait_listening(base, key, process)
        status, shown = _request(f"{base}/documents/{document_id}", key)
        assert status == 200, shown
        assert json.loads(shown)["status"] == "pending" and json.loads(shown)["title"] == "Flipped classrooms"
        assert _request(f"{base}/documents/{document_id}/file", key) == (200, content)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert not [p for p in (data_dir / "originals").rglob("*") if p.name.startswith(".tmp-")]
    assert key not in log.read_text(errors="replace") and key.split("_", 2)[2] not in log.read_text(errors="replace")
