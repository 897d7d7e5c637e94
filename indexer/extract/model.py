"""What extraction produces: sections of normalised text with their page and heading path."""

from __future__ import annotations

from dataclasses import dataclass

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
MEDIA_TYPES = (PDF, DOCX, PPTX, HTML, MARKDOWN, TEXT)
EXTENSIONS = {PDF: ".pdf", DOCX: ".docx", PPTX: ".pptx", HTML: ".html", MARKDOWN: ".md", TEXT: ".txt"}

# Reasons a document is not indexed; stored in the catalog and shown to members.
UNSUPPORTED_TYPE = "unsupported_type"
UNREADABLE = "unreadable"
ENCRYPTED = "encrypted"
NO_TEXT = "no_text"
TOO_LARGE = "too_large"
TIMEOUT = "timeout"  # the parser ran past the wall-clock or CPU-time limit and its process was stopped
RESOURCE_LIMIT = "resource_limit"  # a decompression bomb, or more memory than the extraction may use

# Warnings about a document that was extracted but whose text may be poor; stored with the document.
BROKEN_TEXT_ENCODING = "broken_text_encoding"  # the text layer maps glyphs to the wrong characters


class ExtractionError(Exception):
    """A document that cannot be turned into text; `reason` is a stable code, the message is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ExtractionLimits:
    """Where extraction stops reading (a document cut short is marked truncated), and whether it may OCR."""

    max_pages: int = 2000
    max_chars: int = 5_000_000
    ocr: bool = True  # read pages without a text layer by OCR, where Tesseract is installed
    ocr_languages: str = "eng+chi_sim"  # Tesseract language packs, joined by "+"
    ocr_max_pages: int = 15  # OCR costs seconds a page: the rest of a long scan stays reported as empty pages
    # A DOCX/PPTX package is refused before any part is read when its declared sizes say it is a zip bomb.
    archive_max_members: int = 10_000
    archive_max_ratio: int = 200  # expanded bytes per byte of the file
    archive_max_expanded_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class Section:
    """A run of text with one provenance: a page or slide (None for unpaged formats) and a heading path.

    Passage offsets are character offsets into `text`; for PDFs a section is exactly one page's text.
    """

    text: str
    page: int | None = None
    heading: tuple[str, ...] = ()


@dataclass(frozen=True)
class Extraction:
    """The text of one document, in reading order."""

    media_type: str
    sections: tuple[Section, ...]
    title: str | None = None
    page_count: int | None = None
    truncated: bool = False
    warnings: tuple[str, ...] = ()
    empty_pages: tuple[int, ...] = ()  # pages read that gave no text: no text layer, and no legible OCR
    ocr_pages: tuple[int, ...] = ()  # pages whose text was read from their image by OCR

    @property
    def char_count(self) -> int:
        """Characters of text over all sections."""
        return sum(len(s.text) for s in self.sections)
