"""The quality gate: golden queries a new generation must answer before it is published."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.embedding import HashEmbedder
from indexer.generation import generations_root, list_generations, published_generation_id
from indexer.generation_reader import open_published
from indexer.pipeline import Indexer
from indexer.quality import QualityGateError, load_golden_queries
from search_api.cli import app
from search_api.cli.build import print_build_report
from search_api.factory import QueryModels
from search_api.operations.gate import generation_search
from search_api.searcher import Searcher
from search_api.settings import ApiSettings

DOCS = {
    "biology.md": "# Plants\n\nPhotosynthesis: chlorophyll in green leaves turns sunlight into sugar.\n",
    "astronomy.md": "# Sky\n\nTelescopes show distant galaxies and the orbits of stars.\n",
    "cooking.md": "# Kitchen\n\nBread needs flour, water, yeast and a hot oven.\n",
}
PASSING = [
    {"query": "chlorophyll in green leaves", "documents": ["biology.md"]},
    {"query": "telescopes and galaxies", "documents": ["astronomy.md"]},
    {"query": "a document this deployment does not hold", "documents": ["not-in-the-catalog.pdf"]},
]
# Its words are the biology document's: with top 1 it can never find the astronomy document. (The gate judges
# among the documents its queries name, so the words are those of one of them.)
IMPOSSIBLE = {"query": "photosynthesis chlorophyll sunlight sugar", "documents": ["astronomy.md"]}


def _golden(path: Path, queries: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"queries": queries}), encoding="utf-8")
    return path


@pytest.fixture
def gated(settings: ApiSettings, tmp_path: Path) -> Indexer:
    """An indexer with the three documents ingested, gating on PASSING with top 1 and a threshold of 1.0."""
    config = settings.model_copy(
        update={"golden_queries": _golden(tmp_path / "golden.json", PASSING), "quality_top_n": 1}
    )
    config = config.model_copy(update={"quality_min_pass_rate": 1.0})
    embedder = HashEmbedder(256)
    indexer = Indexer(config, embedder, [], quality_search=generation_search(config, QueryModels((embedder,))))
    for name, text in DOCS.items():
        indexer.ingest(text.encode(), name)
    yield indexer
    indexer.close()


def _last_build_outcome(data_dir: Path) -> tuple[str, str | None]:
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    try:
        row = db.execute("SELECT outcome, generation_id FROM builds ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return row[0], row[1]


def test_a_build_that_answers_its_golden_queries_is_published(gated: Indexer) -> None:
    report = gated.build()
    assert report.outcome == "published"
    assert published_generation_id(generations_root(gated.data_dir)) == report.generation_id
    assert report.quality is not None
    assert (report.quality["checked"], report.quality["passing"], report.quality["failures"]) == (2, 2, [])
    assert report.quality["skipped"] == ["a document this deployment does not hold"]
    assert _last_build_outcome(gated.data_dir) == ("published", report.generation_id)


def test_a_regression_keeps_the_build_unpublished_and_the_old_generation_serving(gated: Indexer) -> None:
    first = gated.build()
    _golden(gated.settings.golden_queries, [*PASSING, IMPOSSIBLE])
    gated.ingest(b"# Rocks\n\nGranite and basalt are igneous rocks.\n", "geology.md")

    rejected = gated.build()

    root = generations_root(gated.data_dir)
    assert rejected.outcome == "rejected" and rejected.generation_id is None
    assert rejected.quality is not None
    assert (rejected.quality["checked"], rejected.quality["passing"]) == (3, 2)
    assert rejected.quality["failures"] == [
        {"query": IMPOSSIBLE["query"], "expected": ["astronomy.md"], "found": ["biology.md"]}
    ]
    assert published_generation_id(root) == first.generation_id
    assert _last_build_outcome(gated.data_dir) == ("rejected", None)
    # The rejected generation is complete and kept for inspection, but never served.
    assert list_generations(root) == sorted([first.generation_id, rejected.quality["generation_id"]])
    reader = open_published(gated.data_dir)
    assert reader is not None
    hits = Searcher(reader, gated.embedders).search("granite basalt igneous", k=5).hits
    assert all(h.passage.filename != "geology.md" for h in hits)
    reader.close()

    # The regression fixed, the next build publishes and removes the rejected leftover.
    _golden(gated.settings.golden_queries, PASSING)
    fixed = gated.build()
    assert fixed.outcome == "published"
    assert list_generations(root) == sorted([first.generation_id, fixed.generation_id])


def test_golden_queries_of_deleted_documents_are_skipped_not_failed(gated: Indexer) -> None:
    astronomy = next(d for d in gated.catalog.list_documents() if d.filename == "astronomy.md")
    gated.catalog.delete_document(astronomy.id)
    report = gated.build()
    assert report.outcome == "published" and report.quality is not None
    assert (report.quality["checked"], report.quality["passing"]) == (1, 1)
    assert "telescopes and galaxies" in report.quality["skipped"]


def test_a_gate_that_could_check_no_query_says_so(gated: Indexer, capsys: pytest.CaptureFixture[str]) -> None:
    _golden(gated.settings.golden_queries, [PASSING[2]])  # names no document of this catalog
    report = gated.build()
    assert report.outcome == "published" and report.quality is not None
    assert (report.quality["checked"], report.quality["skipped"]) == (0, [PASSING[2]["query"]])
    assert report.warnings == [report.quality["warning"]] and "checked no golden query" in report.warnings[0]
    record = gated.catalog.get_build(report.build_id or 0)
    assert record is not None and record.report["warnings"] == report.warnings
    assert record.to_dict()["quality"]["warning"] == report.warnings[0]
    print_build_report(report)
    assert "warning: the quality gate checked no golden query" in capsys.readouterr().out


def test_a_gate_that_checked_queries_has_no_warning(gated: Indexer) -> None:
    report = gated.build()
    assert report.warnings == [] and report.quality is not None and report.quality["warning"] is None


def test_the_gate_can_be_switched_off(gated: Indexer) -> None:
    _golden(gated.settings.golden_queries, [IMPOSSIBLE])
    gated.settings = gated.settings.model_copy(update={"quality_gate": False})
    report = gated.build()
    assert report.outcome == "published" and report.quality is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read golden queries"),
        ('{"queries": [{"query": "x"}]}', "query 1 needs 'documents'"),
        ('{"queries": [{"query": " ", "documents": ["a.pdf"]}]}', "query 1 has no 'query' text"),
        ("[]", "expected an object with a 'queries' list"),
    ],
)
def test_malformed_golden_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "golden.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(QualityGateError, match=message):
        load_golden_queries(path)
    with pytest.raises(QualityGateError, match="does not exist"):
        load_golden_queries(tmp_path / "missing.json")


def test_the_shipped_golden_file_names_bundled_documents() -> None:
    from search_api.settings import BUNDLED_CORPUS

    golden = load_golden_queries(BUNDLED_CORPUS / "golden_queries.json")
    manifest = json.loads((BUNDLED_CORPUS / "manifest.json").read_text(encoding="utf-8"))
    files = {Path(d["file"]).name for d in manifest["documents"]}
    assert 10 <= len(golden) <= 20
    assert all(set(g.documents) <= files for g in golden)


def test_cli_build_rejected_by_the_gate_exits_4_and_names_the_failed_query(tmp_path: Path) -> None:
    runner = CliRunner()
    data, docs = tmp_path / "data", tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    env = {
        "MOOCSEARCH_GOLDEN_QUERIES": str(_golden(tmp_path / "golden.json", [*PASSING, IMPOSSIBLE])),
        "MOOCSEARCH_QUALITY_TOP_N": "1",
        "MOOCSEARCH_QUALITY_MIN_PASS_RATE": "1.0",
    }
    base = ["--data-dir", str(data), "--model", "hash-256"]
    assert runner.invoke(app, [*base, "ingest", str(docs)], env=env).exit_code == 0
    result = runner.invoke(app, [*base, "index", "build"], env=env)
    assert result.exit_code == 4, result.output
    assert "rejected" in result.stdout and f"'{IMPOSSIBLE['query']}'" in result.stdout
    assert published_generation_id(generations_root(data)) is None
    result = runner.invoke(app, [*base, "index", "build", "--json"], env={**env, "MOOCSEARCH_QUALITY_GATE": "false"})
    assert result.exit_code == 0 and json.loads(result.stdout)["outcome"] == "published"
