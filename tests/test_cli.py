"""The `moocsearch` command, in process (Typer's runner) and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search_api.cli import app
from tests.conftest import make_pdf

runner = CliRunner()


def _run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "--model", "hash-256", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "peer.pdf").write_bytes(make_pdf(["Cohort and context.", "Calibrated peer review of design work."]))
    (folder / "offline.md").write_text("# Offline access\n\nDownload packages for low bandwidth regions.\n")
    (folder / ".hidden.txt").write_text("never ingested")
    return folder


def test_ingest_build_search_and_list_with_json_output(tmp_path: Path, docs: Path) -> None:
    data = tmp_path / "data"
    code, out, _ = _run(
        data,
        "ingest",
        str(docs),
        "--member",
        "Cornell University",
        "--language",
        "en",
        "--tag",
        "peer review",
        "--json",
    )
    assert code == 0
    stored = json.loads(out)
    assert sorted(Path(r["file"]).name for r in stored) == ["offline.md", "peer.pdf"]
    assert {r["status"] for r in stored} == {"stored"}

    code, out, _ = _run(data, "index", "build", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["documents_indexed"] == 2 and report["failures"] == [] and report["generation_id"]

    code, out, _ = _run(data, "search", "calibrated peer review", "--k", "1", "--json")
    assert code == 0
    [hit] = json.loads(out)["hits"]
    assert hit["text"] == "Calibrated peer review of design work."
    assert (hit["page"], hit["member"]) == (2, "Cornell University")
    assert hit["link"].endswith("#page=2")

    code, out, _ = _run(data, "documents", "list", "--json")
    listed = {d["filename"]: d for d in json.loads(out)}
    assert listed["offline.md"]["status"] == "indexed" and listed["offline.md"]["title"] == "Offline access"
    assert listed["peer.pdf"]["metadata"]["tags"] == ["peer review"]


def test_human_output_cites_title_page_and_link(tmp_path: Path, docs: Path) -> None:
    data = tmp_path / "data"
    _run(data, "ingest", str(docs))
    _, out, _ = _run(data, "index", "build")
    assert "2 documents" in out and "0 failed" in out
    code, out, _ = _run(data, "search", "low bandwidth download")
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith(" 1. [") and "Offline access" in first


def test_duplicates_are_reported_and_missing_files_refused(tmp_path: Path, docs: Path) -> None:
    data = tmp_path / "data"
    _run(data, "ingest", str(docs / "peer.pdf"))
    code, out, _ = _run(data, "ingest", str(docs / "peer.pdf"), "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "duplicate"
    code, _, err = _run(data, "ingest", str(docs / "missing.pdf"))
    assert code == 2 and "missing.pdf" in err


def test_usage_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _run(data, "ingest")[0] == 2
    code, _, err = _run(data, "ingest", str(tmp_path), "--resource-type", "poem")
    assert code == 2 and "resource_type" in err
    code, _, err = _run(data, "search", "anything")
    assert code == 1 and "index build" in err
    result = runner.invoke(app, ["--data-dir", str(data), "--model", "no-such-model", "index", "build"])
    assert result.exit_code == 2 and "unknown model" in result.stderr


def test_manifest_metadata_is_applied(tmp_path: Path, docs: Path) -> None:
    manifest = docs / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "documents": [
                    {
                        "file": "offline.md",
                        "member": "University of Nairobi",
                        "resource_type": "teaching_resource",
                        "year": 2023,
                    }
                ]
            }
        )
    )
    data = tmp_path / "data"
    code, out, _ = _run(data, "ingest", str(docs), "--json")
    assert code == 0 and [Path(r["file"]).name for r in json.loads(out)] == ["offline.md"]
    _, out, _ = _run(data, "documents", "list", "--json")
    [document] = json.loads(out)
    assert document["metadata"]["member"] == "University of Nairobi" and document["metadata"]["year"] == 2023


@pytest.mark.e2e
def test_the_installed_console_script_runs_in_a_real_process(tmp_path: Path, docs: Path) -> None:
    executable = Path(sys.executable).with_name("moocsearch")
    env = {**os.environ, "MOOCSEARCH_DATA_DIR": str(tmp_path / "data"), "MOOCSEARCH_MODEL": "hash-256"}
    subprocess.run([str(executable), "ingest", str(docs)], check=True, env=env, capture_output=True, timeout=120)
    subprocess.run([str(executable), "index", "build"], check=True, env=env, capture_output=True, timeout=120)
    done = subprocess.run(
        [str(executable), "search", "download packages", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["hits"][0]["title"] == "Offline access"


def test_documents_show_gives_status_reason_and_provenance(tmp_path: Path, docs: Path) -> None:
    data = tmp_path / "data"
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    _run(data, "ingest", str(docs))
    _run(data, "index", "build")
    _, out, _ = _run(data, "documents", "list", "--json")
    by_name = {d["filename"]: d for d in json.loads(out)}
    code, out, _ = _run(data, "documents", "show", by_name["broken.pdf"]["id"], "--json")
    shown = json.loads(out)
    assert code == 0 and (shown["status"], shown["reason"]) == ("failed", "unreadable")
    assert shown["extract_seconds"] is not None and shown["message"]
    code, out, _ = _run(data, "documents", "show", by_name["peer.pdf"]["id"], "--json")
    assert json.loads(out)["passage_pages"] == [1, 2]
    code, out, _ = _run(data, "documents", "show", by_name["peer.pdf"]["id"])
    assert "indexed" in out and "[p. 2] Calibrated peer review" in out
    code, _, err = _run(data, "documents", "show", "0000000000000000")
    assert code == 1 and "no document" in err
    code, _, err = _run(data, "documents", "list", "--status", "lost")
    assert code == 2 and "unknown status" in err


def test_a_missing_config_file_is_a_clear_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["documents", "list"], env={"MOOCSEARCH_CONFIG": str(tmp_path / "nope.toml")})
    assert result.exit_code == 2 and "nope.toml" in result.stderr
