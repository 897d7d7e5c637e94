"""PDF text with page numbers, through pypdf."""

from __future__ import annotations

import functools
import io
import logging
import re
import unicodedata
from typing import Any

from indexer.extract.model import (
    BROKEN_TEXT_ENCODING,
    ENCRYPTED,
    NO_TEXT,
    PDF,
    UNREADABLE,
    Extraction,
    ExtractionError,
    ExtractionLimits,
    Section,
)
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
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
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


def extract_pdf(data: bytes, limits: ExtractionLimits) -> Extraction:
    """One section per page, numbered from 1, in the order pypdf reads the text."""
    reader = _open(data)
    try:
        page_count = len(reader.pages)
    except Exception as exc:
        raise ExtractionError(UNREADABLE, f"cannot read the page tree: {exc}") from exc
    sections: list[Section] = []
    chars = 0
    truncated = page_count > limits.max_pages
    pages_read = 0
    for number in range(1, min(page_count, limits.max_pages) + 1):
        pages_read = number
        try:
            raw = reader.pages[number - 1].extract_text() or ""
        except Exception as exc:  # one broken page should not lose the others
            logger.warning("page %d: text extraction failed: %s", number, exc)
            raw = ""
        text = _paragraphs(normalise_text(raw))
        if chars + len(text) > limits.max_chars:
            text = text[: max(0, limits.max_chars - chars)]
            truncated = True
        chars += len(text)
        if text:
            sections.append(Section(text=text, page=number))
        if truncated and chars >= limits.max_chars:
            break
    if not sections:
        raise ExtractionError(NO_TEXT, f"no text layer on any of {page_count} page(s)")
    if _only_watermark([s.text for s in sections], pages_read):
        raise ExtractionError(NO_TEXT, f"no text on any of {page_count} page(s) but the stamp {sections[0].text!r}")
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
    return Extraction(PDF, tuple(sections), title=title, page_count=page_count, truncated=truncated, warnings=warnings)
