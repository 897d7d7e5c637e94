"""Real education PDFs (shared evaluation set): scans, broken text layers, dense layouts, one batch."""

from __future__ import annotations

import itertools
import json
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.catalog import Document, Passage
from indexer.embedding import HashEmbedder
from indexer.extract import Extraction, ExtractionError, extract_document
from indexer.extract.model import BROKEN_TEXT_ENCODING, NO_TEXT
from indexer.extract.ocr import find_tesseract
from indexer.pipeline import BuildReport, Indexer
from search_api.settings import ApiSettings
from tests.helpers import SHARED_EVAL

pytestmark = pytest.mark.slow

EDU = SHARED_EVAL / "edu_pdfs"
EN_SCAN = "en_carpentries_wrapup_example_SCANNED.pdf"  # a printed table filled in by hand
ZH_SCAN = "zh_ustc_logic_ta_notes_ch1_SCANNED.pdf"  # handwritten notes, a scanner app's stamp as only text
SCANNED = {EN_SCAN, ZH_SCAN}
# With Tesseract installed, the English scan's printed headings are read by OCR; the Chinese handwriting is
# below the confidence rule (indexer/extract/ocr.py) on every page, so that scan has no text either way.
OCR = find_tesseract("eng+chi_sim") is not None
NO_TEXT_SCANS = {ZH_SCAN} if OCR else SCANNED
# Running headers, footers and page numbers of the PDFs (as pypdf reads them), none of which may be indexed.
RUNNING_LINES = {
    "en_wilson2016_software_carpentry_lessons_learned.pdf": r"Page \d+ of 24|Last updated",
    "en_baume2009_writing_learning_outcomes.pdf": r"CorpPlan",
    "en_gormally2014_teaching_feedback.pdf": r"Vol\. 13, Summer 2014",
    "zh_ustc_web_lab1_search_engine_report.pdf": r"程序说明文档",
    "de_thoma_geometrie_topologie_skript.pdf": r"^\d+ \d\.\d\. [A-ZÄÖÜ ]{6,}",
}
# Text layers whose glyphs map to the wrong characters: a broken ToUnicode map (digits and ASCII come out as
# 圱 圲 圮), and Japanese CID glyphs without a ToUnicode map that pypdf reads as code points (มߋͷ...;
# poppler's pdftotext, which knows the Adobe-Japan1 character collection, reads proper Japanese).
MIS_ENCODED = {"zh_ustc_datastruct_bank_simulation_report.pdf", "ja_github_git_cheat_sheet.pdf"}


def _manifest() -> dict[str, dict[str, str]]:
    return {item["file"]: item for item in json.loads((EDU / "manifest.json").read_text(encoding="utf-8"))}


def _squash(text: str) -> str:
    """Text without whitespace, hyphens, controls or invisible characters, in NFC: what both sides share."""
    kept = "".join(
        c for c in text if not c.isspace() and c != "-" and unicodedata.category(c) not in ("Cc", "Cf", "Cs")
    )
    return unicodedata.normalize("NFC", kept)


@dataclass
class Batch:
    """The 22 PDFs ingested into one data directory and built once."""

    indexer: Indexer
    report: BuildReport
    documents: dict[str, Document]  # by file name


@pytest.fixture(scope="module")
def files() -> list[Path]:
    """The PDFs of the evaluation set, as listed by its manifest."""
    if not (EDU / "manifest.json").exists():
        pytest.skip(f"evaluation PDFs not available at {EDU}")
    paths = [EDU / "files" / name for name in sorted(_manifest())]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"evaluation PDFs missing: {missing}")
    return paths


@pytest.fixture(scope="module")
def batch(files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    """Ingest every PDF, then one build (the fake embedder, as in the `indexer` fixture)."""
    settings = ApiSettings(data_dir=tmp_path_factory.mktemp("edu") / "data", model="hash-256", passage_max_tokens=64)
    indexer = Indexer(settings, HashEmbedder(256))
    ids = {path.name: indexer.ingest(path.read_bytes(), path.name).document.id for path in files}
    report = indexer.build()
    documents = {}
    for name, document_id in ids.items():
        document = indexer.catalog.get_document(document_id)
        assert document is not None
        documents[name] = document
    yield Batch(indexer, report, documents)
    indexer.close()


def test_manifest_lists_22_pdfs(files: list[Path]) -> None:
    """The evaluation set is complete: 22 PDFs including the two scans."""
    assert len(files) == 22
    assert {p.name for p in files} >= SCANNED | MIS_ENCODED


def test_scans_and_mis_encoded_text_layers_fail_with_a_reason_and_the_batch_goes_on(batch: Batch) -> None:
    """The scans end 'failed' with 'no_text' (without OCR both, with OCR the handwritten Chinese one, whose only
    text is a scanner app's stamp); the two PDFs whose text layer maps glyphs to wrong characters are flagged
    'broken_text_encoding' instead of being indexed as noise; the other 18 (19 with OCR) are indexed."""
    expected = {name: ("failed", NO_TEXT) for name in NO_TEXT_SCANS}
    expected |= {name: ("failed", BROKEN_TEXT_ENCODING) for name in MIS_ENCODED}
    failed = {name: (d.status, d.reason) for name, d in batch.documents.items() if d.status != "indexed"}
    assert failed == expected
    assert {(f.filename, f.reason) for f in batch.report.failures} == {(n, r) for n, (_, r) in expected.items()}
    assert batch.report.documents_extracted == 22
    assert batch.report.documents_indexed == 22 - len(expected)
    assert batch.report.generation_id is not None
    for name, document in batch.documents.items():
        if name not in expected:
            assert document.passage_count > 0, name
    for name in MIS_ENCODED:
        assert batch.documents[name].warnings == (BROKEN_TEXT_ENCODING,)


def test_page_counts_match_the_manifest(batch: Batch) -> None:
    """Every indexed PDF records the page count the evaluation manifest gives."""
    manifest = _manifest()
    for name, document in batch.documents.items():
        if name not in NO_TEXT_SCANS:
            assert document.page_count == int(manifest[name]["pages"]), name
    assert len([d for d in batch.documents.values() if d.page_count]) == 22 - len(NO_TEXT_SCANS)


def _without_edge_lines(page_text: str) -> list[str]:
    """The page's text, squashed, with each subset of its first two and last two lines left out: the lines where
    running headers, footers and page numbers are, which extraction may drop."""
    lines = page_text.split("\n")
    filled = [i for i, line in enumerate(lines) if line.strip()]
    edges = sorted(set(filled[:2] + filled[-2:]))
    return [
        _squash("\n".join(line for i, line in enumerate(lines) if i not in dropped))
        for size in range(len(edges) + 1)
        for dropped in itertools.combinations(edges, size)
    ]


def test_every_passage_is_on_the_page_its_text_is_on(batch: Batch) -> None:
    """Each passage's text is in pypdf's own extraction of the page the passage names (less some of the page's
    first and last lines: running headers and footers); pages with text but no passage hold only such lines and
    are reported empty; OCR pages are checked by the OCR test."""
    from pypdf import PdfReader

    checked = 0
    for name, document in batch.documents.items():
        if document.status != "indexed":
            continue
        texts = [page.extract_text() or "" for page in PdfReader(EDU / "files" / name).pages]
        variants = [_without_edge_lines(text) for text in texts]
        passages: list[Passage] = batch.indexer.catalog.passages_of(document.id)
        for passage in passages:
            assert passage.page is not None and 1 <= passage.page <= len(texts), name
            if passage.page in document.ocr_pages:
                continue
            squashed = _squash(passage.text)
            assert any(squashed in variant for variant in variants[passage.page - 1]), f"{name} p.{passage.page}"
            checked += 1
        with_text = {n for n, text in enumerate(texts, start=1) if _squash(text)}
        assert {p.page for p in passages} == (with_text - set(document.empty_pages)) | set(document.ocr_pages), name
        for number in with_text & set(document.empty_pages):
            assert len([line for line in texts[number - 1].split("\n") if line.strip()]) <= 4, f"{name} p.{number}"
    assert checked > 1000


def test_running_headers_footers_and_page_numbers_are_not_indexed(batch: Batch) -> None:
    """Journal footers ("Page 3 of 24"), print stamps, alternating running heads and LaTeX heads with the page
    number are on (nearly) every page of these PDFs, and in none of their passages."""
    for name, pattern in RUNNING_LINES.items():
        document = batch.documents[name]
        assert document.status == "indexed", name
        for passage in batch.indexer.catalog.passages_of(document.id):
            assert not re.search(pattern, passage.text, re.MULTILINE), f"{name} p.{passage.page}: {passage.text[:80]!r}"


@pytest.mark.skipif(not OCR, reason="no Tesseract (with eng and chi_sim) and pdftoppm on PATH: nothing is OCR'd")
def test_english_scan_is_indexed_from_ocr(batch: Batch) -> None:
    """The scanned handout's printed table headings are read by OCR (its handwriting is below the confidence
    rule and is left out); the Chinese handwriting is not legible on any page."""
    document = batch.documents[EN_SCAN]
    assert (document.status, document.ocr_pages, document.empty_pages) == ("indexed", (1,), ())
    text = " ".join(p.text for p in batch.indexer.catalog.passages_of(document.id))
    for words in ("Concepts/ Theory", "Tools/Practices", "How are these ideas/tools used in the Carpentries?"):
        assert words in text
    assert batch.documents[ZH_SCAN].status == "failed"


@pytest.fixture(scope="module")
def extractions(files: list[Path]) -> dict[str, tuple[Extraction | ExtractionError, float]]:
    """extract_document on every PDF, with its outcome and the seconds it took."""
    out: dict[str, tuple[Extraction | ExtractionError, float]] = {}
    for path in files:
        data = path.read_bytes()
        started = time.perf_counter()
        try:
            result: Extraction | ExtractionError = extract_document(data, path.name)
        except ExtractionError as exc:
            result = exc
        out[path.name] = (result, time.perf_counter() - started)
    return out


def test_broken_text_encoding_is_flagged_only_where_the_text_is_garbage(
    extractions: dict[str, tuple[Extraction | ExtractionError, float]],
) -> None:
    """The broken-ToUnicode Chinese report (and the Japanese sheet pypdf cannot map) get the warning;
    no other PDF does."""
    flagged = set()
    for name, (result, _seconds) in extractions.items():
        if isinstance(result, ExtractionError):
            assert name in NO_TEXT_SCANS and result.reason == NO_TEXT
            continue
        assert set(result.warnings) <= {BROKEN_TEXT_ENCODING}
        if result.warnings:
            flagged.add(name)
    assert flagged == MIS_ENCODED


def test_chinese_scan_stamp_is_reported(extractions: dict[str, tuple[Extraction | ExtractionError, float]]) -> None:
    """The Chinese scan's only text is the CamScanner stamp; the error says so (and that OCR found nothing)."""
    error = extractions[ZH_SCAN][0]
    assert isinstance(error, ExtractionError)
    assert error.reason == NO_TEXT
    assert "由 扫描全能王 扫描创建" in error.message
    assert ("OCR found no legible text" in error.message) == OCR


def test_extraction_throughput(extractions: dict[str, tuple[Extraction | ExtractionError, float]]) -> None:
    """Pages per second of extract_document over the whole set (printed; run with -s to see it)."""
    manifest = _manifest()
    pages = sum(int(manifest[name]["pages"]) for name in extractions)
    seconds = sum(elapsed for _result, elapsed in extractions.values())
    slowest = max(extractions, key=lambda name: extractions[name][1])
    print(
        f"\nedu PDFs: {len(extractions)} files, {pages} pages in {seconds:.2f} s = {pages / seconds:.1f} pages/s"
        f" (slowest: {slowest}, {manifest[slowest]['pages']} pages in {extractions[slowest][1]:.2f} s)"
    )
    read = sum(r.page_count or 0 for r, _elapsed in extractions.values() if not isinstance(r, ExtractionError))
    assert read == sum(int(manifest[name]["pages"]) for name in extractions if name not in NO_TEXT_SCANS)
