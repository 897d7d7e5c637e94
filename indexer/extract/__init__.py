"""Text extraction: sniff the type from the bytes, then hand the bytes to the extractor for that type."""

from indexer.extract.dispatch import extract_document
from indexer.extract.model import (
    MEDIA_TYPES,
    Extraction,
    ExtractionError,
    ExtractionLimits,
    Section,
)
from indexer.extract.sniff import sniff_media_type

__all__ = [
    "MEDIA_TYPES",
    "Extraction",
    "ExtractionError",
    "ExtractionLimits",
    "Section",
    "extract_document",
    "sniff_media_type",
]
