"""The one entry point: bytes in, an Extraction (or an ExtractionError with a reason) out."""

from __future__ import annotations

from collections.abc import Callable

from indexer.extract.markup import extract_html, extract_markdown, extract_text
from indexer.extract.model import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PPTX,
    TEXT,
    Extraction,
    ExtractionLimits,
)
from indexer.extract.office import extract_docx, extract_pptx
from indexer.extract.pdf import extract_pdf
from indexer.extract.sniff import sniff_media_type

_EXTRACTORS: dict[str, Callable[[bytes, ExtractionLimits], Extraction]] = {
    PDF: extract_pdf,
    DOCX: extract_docx,
    PPTX: extract_pptx,
    HTML: extract_html,
    MARKDOWN: extract_markdown,
    TEXT: extract_text,
}


def extract_document(data: bytes, filename: str = "", limits: ExtractionLimits | None = None) -> Extraction:
    """Sniff the type of `data` and extract its text; raises ExtractionError with a reason code."""
    media_type = sniff_media_type(data, filename)
    return _EXTRACTORS[media_type](data, limits or ExtractionLimits())
