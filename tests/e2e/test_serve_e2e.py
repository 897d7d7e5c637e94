"""`moocsearch serve` as a real process: first run indexes the bundled corpus, then answers over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port, start_server, stop_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def _health_if_ok(base: str) -> dict | None:
    status, body, _ = _get(base + "/health")
    return json.loads(body) if status == 200 and json.loads(body)["status"] == "ok" else None


def test_serve_indexes_the_bundled_corpus_on_first_run_and_answers_the_readme_query(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MOOCSEARCH_DATA_DIR": str(tmp_path / "data")}
    env.pop("MOOCSEARCH_MODEL", None)  # the README's command: the default, real model
    process = start_server(env, port, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(lambda: _health_if_ok(base), 600, "serve to index the corpus and be ready", process, 0.5)
        manifest = json.loads((Path(__file__).parents[2] / "corpus" / "manifest.json").read_text())
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
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended.
    assert process.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    # A second start reuses the published generation instead of indexing again.
    output = subprocess.run(
        [str(Path(sys.executable).with_name("moocsearch")), "documents", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert {d["status"] for d in json.loads(output.stdout)} == {"indexed"}
