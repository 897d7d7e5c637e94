"""Shared fixtures: isolated data directories, the deterministic fake embedder, documents made in the test."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from indexer.embedding import HashEmbedder
from indexer.pipeline import Indexer
from search_api.settings import ApiSettings

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
SHARED_EVAL = Path(os.environ.get("MOOCSEARCH_SHARED_EVAL", REPO.parent / "shared" / "eval"))
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture(autouse=True)
def _fake_models_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast suite runs on the fake embedder alone: no multilingual encoder unless a test is slow."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("MOOCSEARCH_MULTILINGUAL_MODEL", "")


@pytest.fixture
def settings(tmp_path: Path) -> ApiSettings:
    """Settings for a fresh data directory, with the fake embedder."""
    return ApiSettings(data_dir=tmp_path / "data", model="hash-256", multilingual_model=None, passage_max_tokens=64)


@pytest.fixture
def embedder() -> HashEmbedder:
    """The deterministic hashed bag-of-words embedder."""
    return HashEmbedder(256)


@pytest.fixture
def indexer(settings: ApiSettings, embedder: HashEmbedder) -> Indexer:
    """An indexer on a fresh data directory."""
    idx = Indexer(settings, embedder)
    yield idx
    idx.close()


def make_pdf(pages: Sequence[str], title: str | None = None) -> bytes:
    """A real PDF with one text page per entry (fpdf2; a Unicode TTF when available)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    if FONT.exists():
        pdf.add_font("body", fname=str(FONT))
        pdf.set_font("body", size=11)
    else:
        pdf.set_font("helvetica", size=11)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        for paragraph in text.split("\n\n"):
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(4)
    return bytes(pdf.output())


def make_docx(blocks: Sequence[tuple[str, str]], title: str | None = None) -> bytes:
    """A DOCX from (kind, text) blocks: kind is 'h1'..'h3', 'p', 'li' or 'table' (cells split by '|')."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for kind, text in blocks:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        elif kind == "li":
            document.add_paragraph(text, style="List Bullet")
        elif kind == "table":
            cells = text.split("|")
            table = document.add_table(rows=1, cols=len(cells))
            for cell, value in zip(table.rows[0].cells, cells, strict=True):
                cell.text = value
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx(slides: Sequence[tuple[str, Sequence[str], str]]) -> bytes:
    """A PPTX from (title, bullets, notes) per slide."""
    import pptx

    presentation = pptx.Presentation()
    layout = presentation.slide_layouts[1]
    for title, bullets, notes in slides:
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        for i, bullet in enumerate(bullets):
            paragraph = body.paragraphs[0] if i == 0 else body.add_paragraph()
            paragraph.text = bullet
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def lexical_coverage_oracle(reader: Any, query: str, language: str | None, rows: Sequence[int]) -> list[float]:
    """Brute force: the share of the query's IDF mass each row's indexed text contains."""
    import math

    from indexer.lexical import tokenize
    from indexer.passages import embedding_text

    records = reader.passages(range(reader.manifest.passage_count))
    row_terms = {
        row: set(tokenize(embedding_text(r.text, r.title, r.heading), r.language or r.document_language))
        for row, r in records.items()
    }
    terms = list(dict.fromkeys(tokenize(query, language)))
    total = len(row_terms)
    idf = {t: math.log(1 + (total - (df := sum(t in s for s in row_terms.values())) + 0.5) / (df + 0.5)) for t in terms}
    mass = sum(idf.values())
    return [sum(idf[t] for t in terms if t in row_terms[row]) / mass for row in rows]


def language_places_oracle(
    fused: dict[int, float], multilingual: Sequence[tuple[float, Sequence[int]]], languages: Any, query_language: str
) -> list[tuple[int, float]]:
    """Brute force of the searcher's language places: the multilingual encoders' own weighted RRF (over every
    row) decides, place by place, which language takes it; that language's best remaining row by `fused`
    (all evidence) fills it, with the multilingual score of the place. Rows never placed follow by `fused`."""
    places: dict[int, float] = {}
    for weight, ranking in multilingual:
        for rank, row in enumerate(ranking, start=1):
            places[row] = places.get(row, 0.0) + weight / (60 + rank)

    def group(row: int) -> str:
        return "" if languages[row] in ("", query_language) else str(languages[row])

    by_fused = [row for row, _ in sorted(fused.items(), key=lambda item: -item[1])]
    result: list[tuple[int, float]] = []
    for place_row, score in sorted(places.items(), key=lambda item: -item[1]):
        remaining = [r for r in by_fused if group(r) == group(place_row) and r not in {p for p, _ in result}]
        if remaining:
            result.append((remaining[0], score))
    for row in by_fused:
        if row not in {p for p, _ in result}:
            result.append((row, min(result[-1][1], fused[row]) if result else fused[row]))
    return result


def free_port() -> int:
    """A local TCP port nobody listens on now, for a real server started by a test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_server(process: subprocess.Popen[Any]) -> None:
    """Ask a server process to shut down (SIGTERM); kill it if it has not ended within 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def start_server(env: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`moocsearch serve --port PORT ARGS...` as a real process with `env`, its output appended to `log`."""
    executable = Path(sys.executable).with_name("moocsearch")
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(executable), "serve", "--port", str(port), *args], env=env, stdout=output, stderr=subprocess.STDOUT
        )


T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    seconds: float,
    what: str,
    process: subprocess.Popen[Any] | None = None,
    interval: float = 0.2,
) -> T:
    """Call `check` until it returns something truthy, and return that. A refused or timed-out connection
    counts as not yet; fails when `process` (the server being waited on) exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} while waiting for {what}")
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            result = None
        if result:
            return result  # type: ignore[return-value]
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
