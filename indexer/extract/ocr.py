"""Text of PDF pages that have no text layer, read from their pixels: poppler's `pdftoppm` renders a page and
Tesseract reads it. Both are optional system programs; without them nothing is OCR'd."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from indexer.text import join_lines

logger = logging.getLogger(__name__)

DPI = 200
RENDER_TIMEOUT_S = 60
READ_TIMEOUT_S = 120

# Tesseract gives every word a confidence from 0 to 100. Printed text scanned at 200 dpi averages 80-96 over a
# page; handwriting averages 25-45 and most of its "words" are invented. So: a page averaging at least
# PRINTED_MEAN_CONFIDENCE is printed, and keeps every word but the noise under NOISE_CONFIDENCE; on any other page
# only words of at least SURE_CONFIDENCE are kept (the printed headings of a handwritten form), and only when
# they hold at least MIN_SURE_LETTERS letters (a lone letter there is mostly a pen stroke, and is dropped);
# otherwise the page is not legible and gives no text.
PRINTED_MEAN_CONFIDENCE = 60.0
NOISE_CONFIDENCE = 30.0
SURE_CONFIDENCE = 90.0
MIN_SURE_LETTERS = 20


class PageOcr(Protocol):
    """Reads the text of PDF pages from their image."""

    def read_pages(self, data: bytes, pages: Sequence[int]) -> dict[int, str]:
        """The text of each of `pages` (numbered from 1) that could be read well enough; others are left out."""
        ...


@dataclass(frozen=True)
class OcrWord:
    """One word of Tesseract's TSV output: its text, confidence and the paragraph and line it is on."""

    text: str
    confidence: float
    paragraph: tuple[int, int]  # (block, paragraph)
    line: int


def parse_tsv(tsv: str) -> list[OcrWord]:
    """The words of `tesseract ... tsv` output, in reading order."""
    words = []
    for row in tsv.splitlines()[1:]:
        fields = row.split("\t")
        if len(fields) < 12 or fields[0] != "5" or not fields[11].strip():
            continue
        try:
            block, paragraph, line, confidence = int(fields[2]), int(fields[3]), int(fields[4]), float(fields[10])
        except ValueError:
            continue
        words.append(OcrWord(fields[11].strip(), confidence, (block, paragraph), line))
    return words


def legible_text(words: Sequence[OcrWord]) -> str | None:
    """The page's text from its words under the confidence rule above, or None when the page is not legible.

    Lines are kept (one per line), paragraphs are separated by a blank line."""
    if not words:
        return None
    mean = sum(w.confidence for w in words) / len(words)
    if mean >= PRINTED_MEAN_CONFIDENCE:
        kept = [w for w in words if w.confidence >= NOISE_CONFIDENCE]
    else:
        kept = [w for w in words if w.confidence >= SURE_CONFIDENCE and sum(c.isalpha() for c in w.text) >= 2]
        if sum(c.isalpha() for w in kept for c in w.text) < MIN_SURE_LETTERS:
            return None
    if not any(c.isalnum() for w in kept for c in w.text):  # specks and rules read as "|" or "—"
        return None
    paragraphs: list[list[str]] = []
    line: list[str] = []
    where: tuple[tuple[int, int], int] | None = None
    for word in kept:
        if where is None or (word.paragraph, word.line) != where:
            if line:
                paragraphs[-1].append(join_lines(line))
            if where is None or word.paragraph != where[0]:
                paragraphs.append([])
            line, where = [], (word.paragraph, word.line)
        line.append(word.text)
    if line:
        paragraphs[-1].append(join_lines(line))
    text = "\n\n".join("\n".join(lines) for lines in paragraphs if lines)
    return text or None


class TesseractOcr:
    """Renders each page with `pdftoppm` and reads it with `tesseract`, one page at a time, with timeouts."""

    def __init__(self, tesseract: str, pdftoppm: str, languages: str) -> None:
        self.tesseract = tesseract
        self.pdftoppm = pdftoppm
        self.languages = languages
        # Tesseract's OpenMP threads make one page 2-4x slower on a busy many-core machine, not faster.
        self._env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def read_pages(self, data: bytes, pages: Sequence[int]) -> dict[int, str]:
        """The legible text of each page; a page that fails to render or read is logged and left out."""
        texts: dict[int, str] = {}
        with tempfile.TemporaryDirectory(prefix="moocsearch-ocr-") as folder:
            pdf = Path(folder) / "document.pdf"
            pdf.write_bytes(data)
            for page in pages:
                text = self._read_page(pdf, page)
                if text is not None:
                    texts[page] = text
        return texts

    def _read_page(self, pdf: Path, page: int) -> str | None:
        image = pdf.with_name(f"page-{page}")
        try:
            render = ["-r", str(DPI), "-f", str(page), "-l", str(page), "-gray", "-png", "-singlefile"]
            subprocess.run(
                [self.pdftoppm, *render, str(pdf), str(image)],
                check=True,
                capture_output=True,
                timeout=RENDER_TIMEOUT_S,
            )
            result = subprocess.run(
                [self.tesseract, f"{image}.png", "stdout", "-l", self.languages, "tsv"],
                check=True,
                capture_output=True,
                timeout=READ_TIMEOUT_S,
                env=self._env,
            )
        except subprocess.TimeoutExpired:
            logger.warning("page %d: OCR gave up after the timeout", page)
            return None
        except (subprocess.CalledProcessError, OSError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            logger.warning("page %d: OCR failed: %s %s", page, exc, stderr.decode(errors="replace")[-300:])
            return None
        finally:
            Path(f"{image}.png").unlink(missing_ok=True)
        return legible_text(parse_tsv(result.stdout.decode("utf-8", errors="replace")))


@functools.lru_cache(maxsize=8)
def _installed_languages(tesseract: str) -> frozenset[str]:
    try:
        result = subprocess.run([tesseract, "--list-langs"], capture_output=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        logger.warning("cannot list Tesseract's languages: %s", exc)
        return frozenset()
    return frozenset(line.strip() for line in result.stdout.decode(errors="replace").splitlines()[1:] if line.strip())


def find_tesseract(languages: str) -> TesseractOcr | None:
    """Tesseract with those of `languages` ("eng+chi_sim") that are installed; None when `tesseract` or
    `pdftoppm` is not on PATH or none of the languages is installed."""
    tesseract, pdftoppm = shutil.which("tesseract"), shutil.which("pdftoppm")
    if tesseract is None or pdftoppm is None:
        return None
    wanted = [lang for lang in languages.split("+") if lang]
    installed = [lang for lang in wanted if lang in _installed_languages(tesseract)]
    if not installed:
        logger.warning("none of the OCR languages %r is installed for Tesseract; no OCR", languages)
        return None
    if len(installed) < len(wanted):
        logger.warning("OCR languages not installed for Tesseract: %s", sorted(set(wanted) - set(installed)))
    return TesseractOcr(tesseract, pdftoppm, "+".join(installed))
