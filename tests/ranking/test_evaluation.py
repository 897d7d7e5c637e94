"""Evaluation metrics against hand-computed values, and the BEIR loader and runner on a tiny dataset."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.embedding import HashEmbedder
from search_api.operations.evaluation import (
    DatasetError,
    evaluate,
    load_beir,
    mrr_at,
    ndcg_at,
    recall_at,
    score_rankings,
)
from search_api.settings import ApiSettings


def test_metrics_match_hand_computed_values() -> None:
    relevant = {"a": 1, "c": 2}
    ranking = ["b", "a", "c"]
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranking, relevant, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(["a", "c"], {"a": 1, "c": 1}, 10) == 1.0
    assert ndcg_at(["x", "y"], relevant, 10) == 0.0
    assert recall_at(ranking, relevant, 2) == 0.5 and recall_at(ranking, relevant, 100) == 1.0
    assert mrr_at(ranking, relevant, 10) == 0.5 and mrr_at(["x"], relevant, 10) == 0.0
    scores = score_rankings({"q1": ["a"], "q2": ["x"]}, {"q1": {"a": 1}, "q2": {"b": 1}})
    assert scores == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    topics = [
        "rubrics calibration grading",
        "videos before class flipped",
        "offline download bandwidth",
        "captions transcripts accessibility",
        "simulation virtual laboratory",
    ]
    _write_jsonl(
        folder / "corpus.en.jsonl",
        [{"_id": f"d{i}", "title": "", "text": f"Report about {t}."} for i, t in enumerate(topics)],
    )
    _write_jsonl(
        folder / "corpus.es.jsonl",
        [{"_id": f"d{i}", "title": "", "text": f"Informe sobre {t} es."} for i, t in enumerate(topics)],
    )
    _write_jsonl(folder / "queries.en.jsonl", [{"_id": f"q{i}", "text": t} for i, t in enumerate(topics)])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(5))
    )
    return folder


def test_pooled_corpora_make_every_language_version_relevant(beir: Path) -> None:
    data = load_beir(beir, query_language="en", corpus_languages=["en", "es"])
    assert len(data.corpus) == 10 and data.corpus[0].doc_id == "en-d0" and data.corpus[5].doc_id == "es-d0"
    assert data.qrels["q0"] == {"en-d0": 1, "es-d0": 1}
    single = load_beir(beir, query_language="en", corpus_languages=["es"])
    assert single.qrels["q0"] == {"d0": 1} and single.corpus[0].doc_id == "d0"


def test_the_one_language_variant_keeps_each_paragraph_in_one_language(beir: Path, tmp_path: Path) -> None:
    script = Path(__file__).parents[2] / "scripts" / "xquad_one_language.py"
    output = tmp_path / "one-language"
    done = subprocess.run(
        [sys.executable, str(script), str(beir), str(output), "--languages", "en,es"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "3 paragraphs in en, 2 paragraphs in es" in done.stdout
    data = load_beir(output, query_language="en")
    # Paragraph i in languages[i % 2], each once; a question's one relevant passage is that copy.
    assert [d.doc_id for d in data.corpus] == ["en-d0", "es-d1", "en-d2", "es-d3", "en-d4"]
    assert data.corpus[1].text == "Informe sobre videos before class flipped es."
    assert data.qrels == {f"q{i}": {f"{'en' if i % 2 == 0 else 'es'}-d{i}": 1} for i in range(5)}
    missing = subprocess.run(
        [sys.executable, str(script), str(beir), str(tmp_path / "x"), "--languages", "en,fr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "corpus.fr.jsonl" in missing.stderr


def test_missing_files_are_clear_errors(beir: Path) -> None:
    with pytest.raises(DatasetError, match="choose languages among: en, es"):
        load_beir(beir, query_language="en")
    with pytest.raises(DatasetError, match=r"corpus\.fr\.jsonl"):
        load_beir(beir, query_language="en", corpus_languages=["fr"])


def test_evaluate_runs_the_production_pipeline_and_scores_exact_matches_perfectly(
    beir: Path, settings: ApiSettings
) -> None:
    data = load_beir(beir, query_language="en", corpus_languages=["en"])
    result = evaluate(data, settings, HashEmbedder(256))
    assert (result["documents"], result["queries"]) == (5, 5)
    assert result["ndcg@10"] == 1.0 and result["mrr@10"] == 1.0 and result["recall@100"] == 1.0
    assert not settings.data_dir.exists(), "evaluation must not touch the configured data directory"
