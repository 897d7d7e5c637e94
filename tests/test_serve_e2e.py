"""`moocsearch serve` as a real process: first run indexes the bundled corpus, then answers over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def _wait_ready(base: str, process: subprocess.Popen[bytes], seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            status, body, _ = _get(base + "/health")
            if status == 200 and json.loads(body)["status"] == "ok":
                return json.loads(body)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError("serve did not become ready in time")


def test_serve_indexes_the_bundled_corpus_on_first_run_and_answers_the_readme_query(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MOOCSEARCH_DATA_DIR": str(tmp_path / "data")}
    env.pop("MOOCSEARCH_MODEL", None)  # the README's command: the default, real model
    executable = Path(sys.executable).with_name("moocsearch")
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(executable), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_ready(base, process, 600)
        manifest = json.loads((Path(__file__).parent.parent / "corpus" / "manifest.json").read_text())
        assert health["documents"] == len(manifest["documents"])
        query = urllib.parse.urlencode({"q": "how to run peer assessment in a large course", "k": 5})
        status, body, _ = _get(f"{base}/search?{query}")
        assert status == 200
        hits = json.loads(body)["hits"]
        assert "peer assessment" in hits[0]["tags"], hits[0]
        assert health["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        status, content, headers = _get(base + hits[0]["link"].split("#")[0])
        assert status == 200 and len(content) > 0 and headers["content-type"]
        status, body, _ = _get(f"{base}/search?q=")
        assert status == 422 and json.loads(body)["error"]["code"] == "invalid_query"
    finally:
        stop_server(process)
        log.close()
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended.
    assert process.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    # A second start reuses the published generation instead of indexing again.
    output = subprocess.run(
        [str(executable), "documents", "list", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert {d["status"] for d in json.loads(output.stdout)} == {"indexed"}
