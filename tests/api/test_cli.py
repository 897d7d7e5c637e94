"""The `moocsearch` command, in process (Typer's runner) and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.catalog import Catalog
from indexer.embedding import HashEmbedder
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.cli import app
from search_api.settings import ApiSettings
from tests.helpers import make_pdf

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


# `moocsearch search` answers as the API does: as an anonymous reader unless given a key.
BUDGET = "Xylophone marmalade budget of the engineering department."
RUBRICS = "Peer assessment rubrics calibrate reviewers in large courses."


@pytest.fixture
def shared(settings: ApiSettings, embedder: HashEmbedder) -> tuple[ApiSettings, dict[str, str], dict[str, str]]:
    """A published generation with a public and a Tsinghua-only document, and keys of two members."""
    indexer = Indexer(settings, embedder)
    ids = {}
    for name, text, visibility in (("public", RUBRICS, "public"), ("tsinghua_only", BUDGET, "member")):
        metadata = DocumentMetadata(member="Tsinghua University", visibility=visibility, language="en", title=name)
        ids[name] = indexer.ingest(text.encode(), f"{name}.txt", metadata).document.id
    indexer.build()
    indexer.close()
    catalog = Catalog(settings.data_dir / "catalog.sqlite3")
    catalog.add_member("tsinghua", "Tsinghua University")
    catalog.add_member("nairobi", "University of Nairobi")
    keys = {member: catalog.create_key(member)[1] for member in ("tsinghua", "nairobi")}
    catalog.close()
    return settings, ids, keys


def _found(data_dir: Path, query: str, env: dict[str, str] | None = None, *options: str) -> list[str]:
    args = ["--data-dir", str(data_dir), "--model", "hash-256", "search", query, "--json", *options]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.stderr
    return [h["document_id"] for h in json.loads(result.stdout)["hits"]]


def test_search_leaves_out_a_document_deleted_since_the_build(shared: tuple) -> None:
    settings, ids, _ = shared
    assert _found(settings.data_dir, RUBRICS)[:1] == [ids["public"]]
    code, _, err = _run(settings.data_dir, "documents", "delete", ids["public"])
    assert code == 0, err
    assert ids["public"] not in _found(settings.data_dir, RUBRICS)


def test_search_shows_a_member_only_document_to_that_member_alone(shared: tuple) -> None:
    settings, ids, keys = shared
    doc = ids["tsinghua_only"]
    assert doc not in _found(settings.data_dir, BUDGET)
    assert doc not in _found(settings.data_dir, BUDGET, None, "--key", keys["nairobi"])
    assert _found(settings.data_dir, BUDGET, None, "--key", keys["tsinghua"])[:1] == [doc]
    assert _found(settings.data_dir, BUDGET, {"MOOCSEARCH_API_KEY": keys["tsinghua"]})[:1] == [doc]


def test_more_like_a_hidden_passage_is_not_found_anonymously(shared: tuple) -> None:
    settings, _, keys = shared
    args = ["--data-dir", str(settings.data_dir), "--model", "hash-256", "search"]
    found = runner.invoke(app, [*args, BUDGET, "--json", "--key", keys["tsinghua"]])
    passage = json.loads(found.stdout)["hits"][0]["passage_id"]
    assert runner.invoke(app, [*args, "--like", passage, "--key", keys["tsinghua"]]).exit_code == 0
    hidden = runner.invoke(app, [*args, "--like", passage])
    assert hidden.exit_code == 1 and f"no passage {passage}" in hidden.stderr


def test_search_with_an_invalid_key_is_a_clear_error(shared: tuple) -> None:
    settings, _, _ = shared
    args = ["--data-dir", str(settings.data_dir), "--model", "hash-256", "search", RUBRICS]
    for key in ("msk_nope_0000", "not a key"):
        result = runner.invoke(app, [*args, "--key", key])
        assert result.exit_code == 2 and "API key is invalid" in result.stderr
    result = runner.invoke(app, args, env={"MOOCSEARCH_API_KEY": "msk_nope_0000"})
    assert result.exit_code == 2 and "API key is invalid" in result.stderr
