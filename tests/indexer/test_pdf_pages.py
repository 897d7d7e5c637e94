"""PDF page text quality: running headers, footers and page numbers dropped; empty pages reported; OCR of pages
without a text layer (a deterministic fake here, real Tesseract in the slow tests)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.catalog import Catalog
from indexer.extract import ExtractionError, ExtractionLimits, extract_document
from indexer.extract.model import NO_TEXT
from indexer.extract.ocr import OcrWord, legible_text, parse_tsv
from indexer.extract.pdf import extract_pdf
from indexer.pipeline import Indexer
from search_api.cli import app
from search_api.settings import ApiSettings
from tests.helpers import FONT, make_pdf

NO_OCR = ExtractionLimits(ocr=False)
BODIES = [
    "Learners who calibrate on three graded samples grade their peers more consistently.",
    "Short videos of at most eight minutes keep learners watching to the end.",
    "Weekly quizzes with immediate feedback raised the completion rate by six points.",
    "Forum posts answered within a day kept new learners in the course.",
    "Offline packages let learners in low-bandwidth regions follow the videos.",
    "Rubrics that describe every level of every criterion make grading faster.",
]
ROMAN = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii"]
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None or shutil.which("pdftoppm") is None,
    reason="OCR needs `tesseract` and `pdftoppm` on PATH (apt-get install tesseract-ocr poppler-utils)",
)


def _dash(text: str) -> str:
    """Core PDF fonts have no em dash; the test font has."""
    return text if FONT.exists() else text.replace("—", "-")


def make_report_pdf(bodies: Sequence[str], header: str | None, footer: str | None) -> bytes:
    """A PDF with one body per page and, drawn by fpdf2 on every page, a header and a footer: in both, {n} is the
    page number, {total} the page count, {roman} the page number in Roman numerals; None draws nothing there."""
    from fpdf import FPDF

    def fill(template: str, number: int) -> str:
        return _dash(template.format(n=number, total=len(bodies), roman=ROMAN[number - 1]))

    class Report(FPDF):
        def header(self) -> None:
            if header is not None:
                self.cell(0, 6, fill(header, self.page_no()))
                self.ln(12)

        def footer(self) -> None:
            if footer is not None:
                self.set_y(-15)
                self.cell(0, 6, fill(footer, self.page_no()))

    pdf = Report()
    if FONT.exists():
        pdf.add_font("body", fname=str(FONT))
        pdf.set_font("body", size=11)
    else:
        pdf.set_font("helvetica", size=11)
    for body in bodies:
        pdf.add_page()
        for paragraph in body.split("\n\n"):
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(4)
    return bytes(pdf.output())


def _pages(data: bytes, limits: ExtractionLimits = NO_OCR) -> list[tuple[int | None, str]]:
    return [(s.page, s.text) for s in extract_document(data, "report.pdf", limits).sections]


# --- Running headers, footers and page numbers ----------------------------------------------------------------


def test_running_header_and_footer_with_page_numbers_are_removed() -> None:
    """ "Course report" on top of every page and "Course report — page N" under it are gone; each page's own
    text is extracted exactly."""
    data = make_report_pdf(BODIES[:4], "Course report", "Course report — page {n}")
    assert _pages(data) == [(n, body) for n, body in enumerate(BODIES[:4], start=1)]


@pytest.mark.parametrize(
    "footer",
    ["{n}", "— {n} —", "Page {n} of {total}", "p. {n}", "{roman}", "[{n}]"],
    ids=["bare", "dashes", "page-of", "p", "roman", "brackets"],
)
@pytest.mark.parametrize("page_count", [2, 4])
def test_page_numbers_are_removed_even_from_short_documents(footer: str, page_count: int) -> None:
    """A line that is only the page number goes, in any common form, also where there are too few pages to
    see it repeat."""
    data = make_report_pdf(BODIES[:page_count], None, footer)
    assert _pages(data) == [(n, body) for n, body in enumerate(BODIES[:page_count], start=1)]


def test_journal_page_numbers_that_start_later_are_removed() -> None:
    """An article printed on pp. 117-119 of its journal: the numbers count the pages, 116 ahead."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=11)
    for number, body in enumerate(BODIES[:3], start=117):
        pdf.add_page()
        pdf.multi_cell(0, 6, body)
        pdf.set_y(-15)
        pdf.cell(0, 6, str(number))
    assert _pages(bytes(pdf.output())) == [(n, body) for n, body in enumerate(BODIES[:3], start=1)]


def test_alternating_running_heads_of_odd_and_even_pages_are_removed() -> None:
    """Journals put the authors on even pages and the short title on odd ones: each is on half the pages."""
    bodies = BODIES + BODIES[:2]
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for number, body in enumerate(bodies, start=1):
        pdf.add_page()
        pdf.cell(0, 6, "M. Evans et al." if number % 2 == 0 else "Providing Feedback on Teaching")
        pdf.ln(12)
        pdf.multi_cell(0, 6, body)
    assert _pages(bytes(pdf.output())) == [(n, body) for n, body in enumerate(bodies, start=1)]


def test_latex_running_heads_with_the_page_number_are_removed() -> None:
    """ "6 Introduzione" (page number, chapter title) heading every page goes, whatever the chapter."""
    chapters = ["Introduzione", "Introduzione", "Specifiche Tecniche", "Specifiche Tecniche", "Conclusioni"]
    data = make_report_pdf(BODIES[:5], None, None)
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for number, (chapter, body) in enumerate(zip(chapters, BODIES[:5], strict=True), start=1):
        pdf.add_page()
        pdf.cell(0, 6, f"{number} {chapter}")
        pdf.ln(12)
        pdf.multi_cell(0, 6, body)
    assert _pages(bytes(pdf.output())) == _pages(data)


def test_lines_on_one_page_or_under_half_of_them_are_kept() -> None:
    """A heading on top of one page, and a line on top of two pages of six, are content: they stay."""
    bodies = list(BODIES)
    bodies[0] = f"Exercise sheet\n\n{BODIES[0]}"
    bodies[1] = f"Key terms\n\n{BODIES[1]}"
    bodies[4] = f"Key terms\n\n{BODIES[4]}"
    assert _pages(make_report_pdf(bodies, None, None)) == [(n, b) for n, b in enumerate(bodies, start=1)]


def test_numbers_that_do_not_count_the_pages_are_kept() -> None:
    """The last line of a table on each page is a number, but not the page's: it stays."""
    cells = ["42", "17", "8", "99"]
    data = make_report_pdf([f"{body}\n\n{cell}" for body, cell in zip(BODIES[:4], cells, strict=True)], None, None)
    assert _pages(data) == [(n, f"{b} {c}") for n, (b, c) in enumerate(zip(BODIES[:4], cells, strict=True), start=1)]


def test_a_footer_on_two_pages_is_kept() -> None:
    """Two pages are too few to tell a running footer from content: nothing but bare page numbers goes."""
    data = make_report_pdf(BODIES[:2], None, "Course report — page {n}")
    assert _pages(data) == [(n, f"{body} {_dash(f'Course report — page {n}')}") for n, body in enumerate(BODIES[:2], 1)]


# --- Empty pages and OCR through a fake ---------------------------------------------------------------------


@dataclass
class FakeOcr:
    """Reads the given text for the given pages, and nothing for the others; records what it was asked."""

    texts: dict[int, str]
    asked: list[list[int]] = field(default_factory=list)

    def read_pages(self, data: bytes, pages: Sequence[int]) -> dict[int, str]:
        self.asked.append(list(pages))
        return {page: self.texts[page] for page in pages if page in self.texts}


def test_pages_without_text_are_reported_empty() -> None:
    """Without OCR, pages with no text layer are listed; the others keep their numbers."""
    extraction = extract_document(make_pdf([BODIES[0], "", BODIES[2], ""]), limits=NO_OCR)
    assert [s.page for s in extraction.sections] == [1, 3]
    assert extraction.empty_pages == (2, 4)
    assert extraction.ocr_pages == ()


def test_a_page_with_only_its_header_and_footer_is_empty() -> None:
    """A scanned page inside a report still carries the report's header and footer: it has no text of its own."""
    bodies = [BODIES[0], "", BODIES[2], BODIES[3]]
    extraction = extract_document(make_report_pdf(bodies, "Course report", "Course report — page {n}"), limits=NO_OCR)
    assert [(s.page, s.text) for s in extraction.sections] == [(1, BODIES[0]), (3, BODIES[2]), (4, BODIES[3])]
    assert extraction.empty_pages == (2,)


def test_pages_without_text_are_read_by_ocr() -> None:
    """Only the pages without text go to OCR; its text is that page's section, and the page is an OCR page."""
    ocr = FakeOcr({2: "Text read from the scan\nof the second page."})
    extraction = extract_pdf(make_pdf([BODIES[0], "", BODIES[2]]), ExtractionLimits(), ocr)
    assert ocr.asked == [[2]]
    assert [(s.page, s.text) for s in extraction.sections] == [
        (1, BODIES[0]),
        (2, "Text read from the scan of the second page."),
        (3, BODIES[2]),
    ]
    assert (extraction.ocr_pages, extraction.empty_pages) == ((2,), ())


def test_a_page_ocr_cannot_read_stays_empty_and_ocr_can_be_turned_off() -> None:
    """OCR with nothing legible leaves the page empty; with OCR off it is not even asked."""
    data = make_pdf([BODIES[0], "", BODIES[2]])
    illegible = FakeOcr({})
    extraction = extract_pdf(data, ExtractionLimits(), illegible)
    assert (illegible.asked, extraction.empty_pages, extraction.ocr_pages) == ([[2]], (2,), ())
    unused = FakeOcr({2: "never read"})
    assert extract_pdf(data, NO_OCR, unused).empty_pages == (2,)
    assert unused.asked == []


def test_scanner_stamp_pages_are_ocr_d_and_the_stamp_is_dropped_from_the_ocr_text() -> None:
    """Pages whose only text is a scanner app's stamp are OCR'd; the stamp, which OCR also sees, is not text."""
    stamp = "Scanned with PocketScanner"
    ocr = FakeOcr({n: f"{stamp}\n\n{body}" for n, body in enumerate(BODIES[:3], start=1)})
    extraction = extract_pdf(make_pdf([stamp] * 3), ExtractionLimits(), ocr)
    assert ocr.asked == [[1, 2, 3]]
    assert [(s.page, s.text) for s in extraction.sections] == [(n, b) for n, b in enumerate(BODIES[:3], start=1)]
    assert extraction.ocr_pages == (1, 2, 3)
    with pytest.raises(ExtractionError) as caught:
        extract_pdf(make_pdf([stamp] * 3), ExtractionLimits(), FakeOcr({1: stamp, 2: stamp}))
    assert caught.value.reason == NO_TEXT
    assert stamp in caught.value.message and "OCR found no legible text" in caught.value.message


def test_ocr_stops_at_the_character_budget() -> None:
    """Pages after the budget is spent are not OCR'd: their text would be cut anyway."""
    ocr = FakeOcr({})
    limits = ExtractionLimits(max_chars=len(BODIES[0]) + 10)
    extraction = extract_pdf(make_pdf([BODIES[0], "", BODIES[2], ""]), limits, ocr)
    assert ocr.asked == [[2]]
    assert extraction.truncated


# --- The OCR confidence rule ----------------------------------------------------------------------------------

TSV = (
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
    "1\t1\t0\t0\t0\t0\t0\t0\t1700\t2200\t-1\t\n"
    "5\t1\t1\t1\t1\t1\t10\t10\t90\t30\t96.5\tPeer\n"
    "5\t1\t1\t1\t1\t2\t110\t10\t90\t30\t95.1\tassessment\n"
    "5\t1\t1\t1\t2\t1\t10\t50\t90\t30\t91.0\tworks.\n"
    "5\t1\t2\t1\t1\t1\t10\t90\t90\t30\t12.0\t~~\n"
    "5\t1\t2\t1\t1\t2\t10\t90\t90\t30\t88.0\tRubrics\n"
    "5\t1\t3\t1\t1\t1\t10\t130\t90\t30\t93.0\t银行\n"
    "5\t1\t3\t1\t1\t2\t10\t130\t90\t30\t92.0\t模拟\n"
)


def test_tsv_words_keep_their_line_and_paragraph() -> None:
    """Word rows only, with confidence, (block, paragraph) and line."""
    words = parse_tsv(TSV)
    assert [(w.text, w.confidence, w.paragraph, w.line) for w in words[:3]] == [
        ("Peer", 96.5, (1, 1), 1),
        ("assessment", 95.1, (1, 1), 1),
        ("works.", 91.0, (1, 1), 2),
    ]
    assert len(words) == 7


def test_a_printed_page_keeps_its_words_but_noise() -> None:
    """A page read with high mean confidence keeps all its lines and paragraphs; only the noise goes, and
    Chinese words join without spaces."""
    assert legible_text(parse_tsv(TSV)) == "Peer assessment\nworks.\n\nRubrics\n\n银行模拟"


def _words(confidences: Sequence[float], text: str = "word") -> list[OcrWord]:
    return [OcrWord(f"{text}{i}", c, (1, 1), i // 5) for i, c in enumerate(confidences)]


def test_handwriting_is_not_legible() -> None:
    """Low mean confidence and few sure words (phone scans of handwriting): no text at all."""
    assert legible_text(_words([30, 25, 40, 91, 20, 35] * 10, text="x")) is None
    assert legible_text([]) is None
    assert legible_text([OcrWord("|", 95, (1, 1), 1), OcrWord("—", 91, (1, 1), 1)]) is None


def test_a_mostly_handwritten_form_keeps_only_its_sure_words() -> None:
    """Low mean confidence, but printed headings read with confidence >= 90: only those, and not lone letters."""
    words = [
        *_words([30] * 40),
        OcrWord("Concepts", 93, (2, 1), 1),
        OcrWord("Theory", 96, (2, 1), 1),
        OcrWord("Carpentries", 92, (2, 1), 2),
        OcrWord("J", 91, (3, 1), 1),
    ]
    assert legible_text(words) == "Concepts Theory\nCarpentries"


# --- Catalog and CLI ------------------------------------------------------------------------------------------


def test_empty_and_ocr_pages_are_stored_with_the_document(tmp_path: Path) -> None:
    """The pipeline records the empty pages (and OCR pages) of an indexed PDF in the catalog."""
    from indexer.embedding import HashEmbedder

    settings = ApiSettings(data_dir=tmp_path / "data", model="hash-256", passage_max_tokens=64, ocr=False)
    indexer = Indexer(settings, HashEmbedder(256))
    document = indexer.ingest(make_pdf([BODIES[0], "", BODIES[2]]), "gaps.pdf").document
    indexer.build()
    stored = indexer.catalog.get_document(document.id)
    indexer.close()
    assert stored is not None and stored.status == "indexed"
    assert (stored.empty_pages, stored.ocr_pages) == ((2,), ())


def test_documents_show_gives_empty_and_ocr_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`documents show --json` has both lists."""
    monkeypatch.setenv("MOOCSEARCH_OCR", "false")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "gaps.pdf").write_bytes(make_pdf([BODIES[0], "", BODIES[2]]))
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "--model", "hash-256"]
    assert runner.invoke(app, [*base, "ingest", str(tmp_path / "docs")]).exit_code == 0
    assert runner.invoke(app, [*base, "index", "build"]).exit_code == 0
    listed = json.loads(runner.invoke(app, [*base, "documents", "list", "--json"]).stdout)
    shown = json.loads(runner.invoke(app, [*base, "documents", "show", listed[0]["id"], "--json"]).stdout)
    assert (shown["empty_pages"], shown["ocr_pages"]) == ([2], [])


def test_a_catalog_made_before_the_page_columns_is_migrated(tmp_path: Path) -> None:
    """An old catalog without warnings, empty_pages and ocr_pages gets them, empty, and keeps its rows."""
    path = tmp_path / "catalog.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE documents (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, filename TEXT NOT NULL, "
        "media_type TEXT, size_bytes INTEGER NOT NULL, metadata TEXT NOT NULL, title TEXT, language TEXT, "
        "status TEXT NOT NULL, reason TEXT, message TEXT, page_count INTEGER, "
        "passage_count INTEGER NOT NULL DEFAULT 0, truncated INTEGER NOT NULL DEFAULT 0, chunker TEXT, "
        "extract_seconds REAL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO documents (id, sha256, filename, size_bytes, metadata, status, created_at, updated_at) "
        "VALUES ('abc', 'abc123', 'old.pdf', 10, '{}', 'pending', 't', 't')"
    )
    db.commit()
    db.close()
    catalog = Catalog(path)
    document = catalog.get_document("abc")
    catalog.close()
    assert document is not None and document.filename == "old.pdf"
    assert (document.warnings, document.empty_pages, document.ocr_pages) == ((), (), ())


# --- Real OCR (Tesseract) -------------------------------------------------------------------------------------

SCANNED_TEXT = "Peer assessment works best when learners first calibrate their judgement on graded samples."


def make_scanned_pdf(pages: Sequence[tuple[str, str]]) -> bytes:
    """A PDF from (kind, text) pages: kind "text" writes a text layer, "scan" only an image of the text
    (rendered at 200 dpi, as a flatbed scanner would)."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for kind, text in pages:
        pdf.add_page()
        if kind == "text":
            pdf.multi_cell(0, 6, text)
            continue
        image = Image.new("L", (1654, 2339), 255)
        font = ImageFont.truetype(str(FONT), 44) if FONT.exists() else ImageFont.load_default(44)
        ImageDraw.Draw(image).multiline_text((150, 200), "\n".join(textwrap.wrap(text, 50)), font=font, spacing=20)
        pdf.image(image, x=0, y=0, w=pdf.w, h=pdf.h)
    return bytes(pdf.output())


@pytest.mark.slow
@needs_tesseract
def test_a_scanned_page_is_read_by_tesseract_and_stored_as_ocr(tmp_path: Path) -> None:
    """A scan between two text pages: Tesseract reads its sentence exactly; the pipeline records the OCR page
    and a passage on it."""
    from indexer.embedding import HashEmbedder

    data = make_scanned_pdf([("text", BODIES[0]), ("scan", SCANNED_TEXT), ("text", BODIES[2])])
    extraction = extract_document(data, "scan.pdf")
    assert [(s.page, s.text) for s in extraction.sections] == [(1, BODIES[0]), (2, SCANNED_TEXT), (3, BODIES[2])]
    assert (extraction.ocr_pages, extraction.empty_pages) == ((2,), ())

    indexer = Indexer(ApiSettings(data_dir=tmp_path / "data", model="hash-256"), HashEmbedder(256))
    document = indexer.ingest(data, "scan.pdf").document
    indexer.build()
    stored = indexer.catalog.get_document(document.id)
    passages = indexer.catalog.passages_of(document.id)
    indexer.close()
    assert stored is not None and stored.ocr_pages == (2,)
    assert any(p.page == 2 and "calibrate their judgement" in p.text for p in passages)


@pytest.mark.slow
@needs_tesseract
def test_blank_pages_and_stamps_stay_without_text_under_real_ocr() -> None:
    """Tesseract finds nothing on a blank page; a stamp-only scan (whose stamp OCR reads too) is still no_text."""
    extraction = extract_document(make_pdf([BODIES[0], "", BODIES[2]]))
    assert (extraction.empty_pages, extraction.ocr_pages) == ((2,), ())
    with pytest.raises(ExtractionError) as caught:
        extract_document(make_pdf(["Scanned with PocketScanner"] * 4))
    assert caught.value.reason == NO_TEXT


@pytest.mark.slow
@needs_tesseract
def test_ocr_languages_that_are_not_installed_are_skipped() -> None:
    """Asking for a language pack that is missing still reads with the installed ones."""
    data = make_scanned_pdf([("scan", SCANNED_TEXT)])
    extraction = extract_document(data, limits=ExtractionLimits(ocr_languages="eng+xx_missing"))
    assert [s.text for s in extraction.sections] == [SCANNED_TEXT]


def test_ocr_stops_at_ocr_max_pages_and_reports_the_rest_as_empty() -> None:
    from indexer.extract.model import ExtractionLimits
    from indexer.extract.pdf import extract_pdf

    class CountingOcr:
        def __init__(self) -> None:
            self.asked: list[int] = []

        def read_pages(self, data: bytes, pages: list[int]) -> dict[int, str]:
            self.asked = list(pages)
            return {n: f"Scanned page number {n} about rubrics." for n in pages}

    data = make_pdf(["Printed first page about peer review.", "", "", "", ""])
    engine = CountingOcr()
    extraction = extract_pdf(data, ExtractionLimits(ocr=True, ocr_max_pages=2), ocr=engine)
    assert engine.asked == [2, 3]
    assert extraction.ocr_pages == (2, 3) and extraction.empty_pages == (4, 5)
