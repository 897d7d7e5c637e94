"""PDF text with page numbers, through pypdf."""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

from indexer.extract.model import (
    BROKEN_TEXT_ENCODING,
    ENCRYPTED,
    NO_TEXT,
    PDF,
    RESOURCE_LIMIT,
    UNREADABLE,
    Extraction,
    ExtractionError,
    ExtractionLimits,
    Section,
)
from indexer.extract.ocr import PageOcr, find_tesseract
from indexer.text import join_lines, normalise_text

logger = logging.getLogger(__name__)


def _paragraphs(page_text: str) -> str:
    """pypdf gives one line per text line; rejoin wrapped lines, keeping blank lines and short last lines
    (a line much shorter than its neighbours usually ends a paragraph or is a heading)."""
    lines = [line.strip() for line in page_text.split("\n")]
    widths = sorted(len(line) for line in lines if line)
    typical = widths[len(widths) * 3 // 4] if widths else 0
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if not line:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(line)
        if (len(line) < 0.6 * typical and line[-1:] in ".:!?。！？：;；)") or len(line) < 0.35 * typical:
            paragraphs.append([])
    return "\n\n".join(join_lines(p) for p in paragraphs if p)


# Running headers and footers are among the first and last lines pypdf reads from a page (producers draw them
# first or last). A line there is one when, with its digits masked ("Page 3 of 12" ~ "page # of #"), it is at
# the edge of at least half of the pages that have text, and at least three pages have text.
_EDGE_LINES = 2
_RUNNING_MIN_PAGES = 3
_RUNNING_MIN_SHARE = 0.5
_DIGITS_RE = re.compile(r"\d+")
_PAGE_NUMBER_RES = (
    re.compile(
        r"(?:(?:page|p\.|pg\.?|seite|s\.|página|pág\.?|pagina|pag\.?|страница|стр\.?)\s*)?[-–—−·•|(\[<\s]*"
        r"(?P<number>\d{1,4}|[mdclxvi]{1,8})(?:\s*(?:/|of|de|di|von|sur|из)\s*\d{1,4})?[-–—−·•|)\]>\s]*",
        re.IGNORECASE,
    ),
    re.compile(r"第\s*(?P<number>\d{1,4})\s*页(?:\s*[,，]?\s*共\s*\d{1,4}\s*页)?"),
)
_NUMBERED_HEAD_RE = re.compile(r"(?P<first>\d{1,4})\s+\S.{0,79}|.{0,79}\S\s+(?P<last>\d{1,4})")
_ROMAN_RE = re.compile(r"(?=.)m{0,3}(?:c[md]|d?c{0,3})(?:x[cl]|l?x{0,3})(?:i[xv]|v?i{0,3})", re.IGNORECASE)
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}


def _page_number(line: str) -> int | None:
    """The number of a line that is only a page number ("7", "— 7 —", "Page 7 of 12", "iv", "第 7 页")."""
    for pattern in _PAGE_NUMBER_RES:
        match = pattern.fullmatch(line)
        if match:
            number = match.group("number")
            if number.isdigit():
                return int(number)
            if _ROMAN_RE.fullmatch(number):
                values = [_ROMAN_VALUES[c] for c in number.lower()]
                return sum(-v if v < w else v for v, w in zip(values, [*values[1:], 0], strict=True))
    return None


def _line_key(line: str) -> str:
    return _DIGITS_RE.sub("#", " ".join(line.casefold().split()))


def _edge_indexes(lines: Sequence[str]) -> list[int]:
    """Positions of the first and last few non-empty lines of a page."""
    filled = [i for i, line in enumerate(lines) if line]
    return sorted(set(filled[:_EDGE_LINES] + filled[-_EDGE_LINES:]))


def running_keys(pages: Sequence[Sequence[str]]) -> set[str]:
    """The masked lines at the top or bottom of at least half of the pages with text: headers and footers.

    Also those on half of the odd or of the even pages, and then on three at least (journals and books
    alternate "Author et al." and the title). Bare page numbers are left to `_page_number_lines`: here they
    could not be told from a column of numbers."""
    keys: set[str] = set()
    for group, least in ((pages, 2), (pages[0::2], _RUNNING_MIN_PAGES), (pages[1::2], _RUNNING_MIN_PAGES)):
        with_text = [lines for lines in group if any(lines)]
        if len(with_text) < _RUNNING_MIN_PAGES:
            continue
        counts = Counter(
            key
            for lines in with_text
            for key in {_line_key(lines[i]) for i in _edge_indexes(lines) if _page_number(lines[i]) is None}
        )
        needed = max(least, math.ceil(_RUNNING_MIN_SHARE * len(with_text)))
        keys |= {key for key, count in counts.items() if count >= needed}
    return keys


def _numbered_head(line: str) -> int | None:
    """The page number of a running head that starts or ends with it ("6 Introduzione", "2.2 Web Server 9")."""
    match = _NUMBERED_HEAD_RE.fullmatch(line)
    if match is None:
        return None
    return int(match.group("first") or match.group("last"))


def _page_number_lines(pages: Sequence[Sequence[str]]) -> set[tuple[int, int]]:
    """(page index, line index) of the page numbers at the pages' edges.

    Page numbers count the pages: each is at the same offset from the page's own number (0, or 116 for a
    journal article starting at p. 117), the offset most pages agree on. A bare number at a page's edge is one
    when its offset is 0, or that offset on two pages; the first or last line of a page that starts or ends
    with the number and is otherwise short (a LaTeX running head, "6 Introduzione") when it is that offset on
    three pages. Other numbers (table cells, formulas, the line numbers of a code listing) stay."""
    found = []
    for index, lines in enumerate(pages):
        edges = _edge_indexes(lines)
        for i in edges:
            number = _page_number(lines[i])
            if number is not None:
                found.append((index, i, number - (index + 1), 2))
            elif i in (edges[0], edges[-1]) and (number := _numbered_head(lines[i])) is not None:
                found.append((index, i, number - (index + 1), _RUNNING_MIN_PAGES))
    if not found:
        return set()
    pages_by_offset: dict[int, set[int]] = {}
    for index, _i, offset, _least in found:
        pages_by_offset.setdefault(offset, set()).add(index)
    usual = max(pages_by_offset, key=lambda offset: (len(pages_by_offset[offset]), offset == 0, -abs(offset)))
    return {
        (index, i)
        for index, i, offset, least in found
        if (offset == 0 and least == 2) or (offset == usual and len(pages_by_offset[offset]) >= least)
    }


def drop_running_lines(pages: Sequence[Sequence[str]], keys: set[str]) -> list[list[str]]:
    """Each page's lines without the running headers and footers in `keys` and the page numbers at its edges."""
    numbers = _page_number_lines(pages)
    cleaned = []
    for index, lines in enumerate(pages):
        edges = set(_edge_indexes(lines))
        cleaned.append(
            [
                line
                for i, line in enumerate(lines)
                if i not in edges or ((index, i) not in numbers and _line_key(line) not in keys)
            ]
        )
    return cleaned


# A page text this short that is the same on every page is a scanner app's watermark, not content.
_WATERMARK_MAX_CHARS = 60
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
_WORD_RE = re.compile(r"[^\W\d_]+")
_CJK_SCRIPTS = {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "FULLWIDTH", "HALFWIDTH", "IDEOGRAPHIC", "BOPOMOFO"}
# Letters that mix with any script: Latin (code, names), Greek and other maths alphabets, modifier letters.
_NEUTRAL_SCRIPTS = {"LATIN", "GREEK", "MATHEMATICAL", "MODIFIER", "BLACK-LETTER", "DOUBLE-STRUCK", "SCRIPT"}
_SAMPLE_CHARS = 200_000


@functools.lru_cache(maxsize=65536)
def _common_ideograph(char: str) -> bool:
    """An ideograph of the first (frequent) level of GB 2312, Big5 or JIS X 0208: about 99.9% of the
    ideographs in ordinary simplified Chinese, traditional Chinese and Japanese text."""
    for charset, low, high in (("gb2312", 0xB0A1, 0xD7FE), ("big5", 0xA440, 0xC67E), ("shift_jis", 0x889F, 0x9872)):
        try:
            code = int.from_bytes(char.encode(charset), "big")
        except UnicodeEncodeError:
            continue
        if low <= code <= high:
            return True
    return False


def _script(char: str) -> str:
    first = unicodedata.name(char, "").split(" ", 1)[0].split("-", 1)[0]
    return "CJK" if first in _CJK_SCRIPTS else first


def looks_mis_encoded(text: str) -> bool:
    """True when the text looks like glyphs mapped to the wrong characters (a broken or missing ToUnicode map).

    Three signals, each far from what real text in any language shows: many rare ideographs (digits and
    ASCII that come out as 圱 圲 圮), many characters that no text uses (unassigned code points, U+FFFD),
    or many words that mix two non-Latin scripts (character ids read as code points: มߋͷ).
    """
    sample = text[:_SAMPLE_CHARS]
    ideographs = _HAN_RE.findall(sample)
    rare = sum(1 for c in ideographs if not _common_ideograph(c))
    if rare >= 20 and rare >= 0.1 * len(ideographs):
        return True
    letters = sum(1 for c in sample if c.isalpha())
    unassigned = sum(1 for c in sample if c == "\ufffd" or unicodedata.category(c) == "Cn")
    if unassigned >= 20 and unassigned >= 0.02 * (letters + unassigned):
        return True
    words = _WORD_RE.findall(sample)
    mixed = sum(1 for w in words if len({_script(c) for c in w if c.isalpha()} - _NEUTRAL_SCRIPTS) >= 2)
    return mixed >= 10 and mixed >= 0.05 * len(words)


def _only_watermark(texts: list[str], pages_read: int) -> bool:
    """True when every page read carries the same short text and nothing else: the stamp of a scanner app
    (such as "由 扫描全能王 扫描创建") on pages that are only images."""
    return (
        pages_read >= 2 and len(texts) == pages_read and len(set(texts)) == 1 and len(texts[0]) <= _WATERMARK_MAX_CHARS
    )


def _open(data: bytes) -> Any:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
    except LimitReachedError as exc:
        raise ExtractionError(RESOURCE_LIMIT, f"the PDF is over a parser limit: {exc}") from exc
    except (PdfReadError, ValueError, TypeError, KeyError, OSError, RecursionError) as exc:
        raise ExtractionError(UNREADABLE, f"not a readable PDF: {exc}") from exc
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except Exception as exc:  # pypdf raises DependencyError and others for unsupported crypto
            raise ExtractionError(ENCRYPTED, f"encrypted PDF that cannot be opened: {exc}") from exc
        if not ok:
            raise ExtractionError(ENCRYPTED, "the PDF is protected by a password")
    return reader


def _read_pages(reader: Any, page_count: int, limits: ExtractionLimits) -> list[list[str]]:
    """The normalised lines of each page from the first, up to max_pages, or until twice max_chars are read
    (headers are found over every page read, and they never make up half of a document's text)."""
    from pypdf.errors import LimitReachedError

    pages: list[list[str]] = []
    chars = 0
    for number in range(1, min(page_count, limits.max_pages) + 1):
        try:
            raw = reader.pages[number - 1].extract_text() or ""
        except LimitReachedError as exc:  # pypdf's cap on a decompression bomb: the whole document is hostile
            raise ExtractionError(RESOURCE_LIMIT, f"page {number} is over a parser limit: {exc}") from exc
        except MemoryError:  # over the sandbox's memory limit: resource_limit, not a broken page
            raise
        except Exception as exc:  # one broken page should not lose the others
            logger.warning("page %d: text extraction failed: %s", number, exc)
            raw = ""
        text = normalise_text(raw)
        pages.append(text.split("\n") if text else [])
        chars += len(text)
        if chars >= 2 * limits.max_chars:
            break
    return pages


def _ocr_pages(
    data: bytes, pages: Sequence[Sequence[str]], limits: ExtractionLimits, ocr: PageOcr | None
) -> dict[int, str] | None:
    """OCR text of the pages without text, by page number; None when no OCR was tried."""
    if not limits.ocr:
        return None
    wanted, chars = [], 0
    for number, lines in enumerate(pages, start=1):
        if chars >= limits.max_chars:  # pages past the character budget would be cut anyway
            break
        if any(lines):
            chars += sum(len(line) for line in lines)
        else:
            wanted.append(number)
    wanted = wanted[: limits.ocr_max_pages]
    engine = (ocr or find_tesseract(limits.ocr_languages)) if wanted else None
    if engine is None:
        return None
    started = time.perf_counter()
    texts = {number: text for number, text in engine.read_pages(data, wanted).items() if number in wanted}
    logger.info(
        "OCR: %d of %d page(s) without text read in %.1f s", len(texts), len(wanted), time.perf_counter() - started
    )
    return texts


_MAX_OUTLINE_ENTRIES = 5000


def outline_headings(reader: Any, page_count: int) -> list[tuple[str, ...]]:
    """For every page, the heading path of the last bookmark (outline entry) that starts on or before it.

    Bookmarks are the only reliable headings a PDF has; broken or cyclic outlines give no headings.
    """
    entries: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: Any, path: tuple[str, ...], depth: int) -> None:
        previous: tuple[str, ...] = path
        for item in items:
            if len(entries) >= _MAX_OUTLINE_ENTRIES or depth > 8:
                return
            if isinstance(item, list):
                walk(item, previous, depth + 1)
                continue
            title = normalise_text(str(getattr(item, "title", "") or ""))
            page = reader.get_destination_page_number(item)
            if title and page is not None and 0 <= page < page_count:
                previous = (*path, title)
                entries.append((page, previous))

    try:
        walk(reader.outline, (), 0)
    except Exception as exc:  # malformed outlines are common; headings are a bonus
        logger.info("outline ignored: %s", exc)
        return [() for _ in range(page_count)]
    headings: list[tuple[str, ...]] = []
    current: tuple[str, ...] = ()
    by_page = sorted(entries, key=lambda entry: entry[0])  # stable: outline order within a page
    position = 0
    for page in range(page_count):
        while position < len(by_page) and by_page[position][0] <= page:
            current = by_page[position][1]
            position += 1
        headings.append(current)
    return headings


def extract_pdf(data: bytes, limits: ExtractionLimits, ocr: PageOcr | None = None) -> Extraction:
    """One section per page, numbered from 1, in the order pypdf reads the text, without running headers,
    footers and page numbers. Pages without text are OCR'd when the limits allow it and `ocr` (by default
    Tesseract, if installed) is there; the others are listed as empty."""
    reader = _open(data)
    try:
        page_count = len(reader.pages)
    except Exception as exc:
        raise ExtractionError(UNREADABLE, f"cannot read the page tree: {exc}") from exc
    pages = _read_pages(reader, page_count, limits)
    page_texts = [_paragraphs("\n".join(lines)) for lines in pages]
    stamp = page_texts[0] if _only_watermark([t for t in page_texts if t], len(pages)) else None
    keys = running_keys(pages)
    if stamp is not None:
        keys |= {_line_key(line) for line in pages[0] if line}
        cleaned: list[list[str]] = [[] for _ in pages]
    else:
        cleaned = drop_running_lines(pages, keys)
    ocr_texts = _ocr_pages(data, cleaned, limits, ocr)
    if ocr_texts:
        # The OCR'd pages lose their own running lines, and the stamp or headers their text layer showed.
        read = [normalise_text(ocr_texts[n]).split("\n") if n in ocr_texts else [] for n in range(1, len(pages) + 1)]
        for number, lines in enumerate(drop_running_lines(read, keys | running_keys(read)), start=1):
            if number in ocr_texts:
                cleaned[number - 1] = lines
    headings = outline_headings(reader, len(cleaned))
    sections: list[Section] = []
    empty_pages: list[int] = []
    chars = 0
    truncated = len(pages) < page_count
    for number, lines in enumerate(cleaned, start=1):
        text = _paragraphs("\n".join(lines))
        if not text:
            empty_pages.append(number)
            continue
        if chars + len(text) > limits.max_chars:
            text = text[: max(0, limits.max_chars - chars)]
            truncated = True
        chars += len(text)
        if text:
            sections.append(Section(text=text, page=number, heading=headings[number - 1]))
        if truncated and chars >= limits.max_chars:
            break
    if not sections:
        tried = "; OCR found no legible text" if ocr_texts is not None else ""
        if stamp is not None:
            raise ExtractionError(NO_TEXT, f"no text on any of {page_count} page(s) but the stamp {stamp!r}{tried}")
        if any(page_texts):
            raise ExtractionError(
                NO_TEXT, f"no text on any of {page_count} page(s) but headers and page numbers{tried}"
            )
        raise ExtractionError(NO_TEXT, f"no text layer on any of {page_count} page(s){tried}")
    text = "\n".join(s.text for s in sections)
    warnings = (BROKEN_TEXT_ENCODING,) if looks_mis_encoded(text) else ()
    if warnings:
        logger.warning("the text layer looks mis-encoded (broken ToUnicode map?): %r", text[:80])
    title = None
    try:
        if reader.metadata and reader.metadata.title:
            title = normalise_text(str(reader.metadata.title)) or None
    except Exception:  # broken Info dictionaries are common and never fatal
        title = None
    ocr_pages = tuple(s.page for s in sections if ocr_texts and s.page in ocr_texts)
    return Extraction(
        PDF,
        tuple(sections),
        title=title,
        page_count=page_count,
        truncated=truncated,
        warnings=warnings,
        empty_pages=tuple(empty_pages),
        ocr_pages=ocr_pages,
    )
