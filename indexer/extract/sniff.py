"""Decide a document's type from its bytes; the file name only tells Markdown from plain text.

A name or a declared type can still lie about the bytes: `claimed_type_conflict` says when one claims another
family (a `.pdf` that is a DOCX), so a contribution is refused instead of being stored under a false type.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath

from indexer.extract.model import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PPTX,
    TEXT,
    UNSUPPORTED_TYPE,
    ExtractionError,
)

_HTML_START_RE = re.compile(
    rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)[\s>]", re.I | re.S
)
_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_ESCAPED_BYTE_RE = re.compile("[\udc80-\udcff]")

# Type families that a name or a declared type may claim: a claim from another family than the bytes' is a lie.
# Markup and text are one family: an HTML page saved as .txt is still text.
_FAMILY = {PDF: "pdf", DOCX: "docx", PPTX: "pptx", HTML: "text", MARKDOWN: "text", TEXT: "text"}
_SUFFIX_TYPES = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".html": HTML,
    ".htm": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": TEXT,
}
SUPPORTED_HINT = "send PDF, DOCX, PPTX, HTML, Markdown or text"


def _zip_type(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "word/document.xml" in names:
        return DOCX
    if "ppt/presentation.xml" in names:
        return PPTX
    return None


def decode_text(data: bytes) -> str | None:
    """Decode bytes that look like text (BOM, then UTF-8, then UTF-16 by BOM); None for binary data."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16", errors="surrogatepass")  # lone surrogates: normalise_text drops them
        except UnicodeDecodeError:
            return None
    sample = data[:65536]
    if b"\x00" in sample:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # UTF-8 with a few invalid bytes (a lone surrogate, a cut sequence) stays UTF-8: the invalid bytes become lone
    # surrogates, which normalise_text drops. Legacy single-byte text has (almost) no valid multi-byte sequences.
    text = data.decode("utf-8", errors="surrogateescape")
    invalid = len(_ESCAPED_BYTE_RE.findall(text))
    if len(text) - len(text.encode("ascii", errors="ignore")) - invalid >= invalid:
        return text
    # Legacy single-byte text: accept when it is mostly printable.
    printable = sum(1 for b in sample if b >= 0x20 or b in b"\n\r\t")
    if sample and printable / len(sample) > 0.95:
        return data.decode("cp1252", errors="replace")
    return None


def sniff_media_type(data: bytes, filename: str = "") -> str:
    """Return one of MEDIA_TYPES for the bytes, or raise ExtractionError(unsupported_type)."""
    head = data[:1024]
    if head.lstrip(b"\x00\t\n\r ").startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        media_type = _zip_type(data)
        if media_type:
            return media_type
        raise ExtractionError(UNSUPPORTED_TYPE, "a ZIP archive that is neither DOCX nor PPTX")
    stripped = head
    for bom in _BOMS:
        stripped = stripped.removeprefix(bom)
    if _HTML_START_RE.match(stripped):
        return HTML
    if decode_text(data) is not None:
        return MARKDOWN if filename.lower().endswith(_MARKDOWN_SUFFIXES) else TEXT
    raise ExtractionError(UNSUPPORTED_TYPE, "binary data of a type that is not supported")


def claimed_type_conflict(media_type: str, filename: str, declared: str | None) -> str | None:
    """Why the file name or the declared type (a Content-Type) contradicts the bytes' `media_type`, or None.

    Only claims of a known type count: an unknown suffix or type claims nothing."""
    claims = {
        "file name": _SUFFIX_TYPES.get(PurePosixPath(filename.replace("\\", "/")).suffix.lower()),
        "declared type": (declared or "").split(";")[0].strip().lower(),
    }
    for source, claimed in claims.items():
        if claimed in _FAMILY and _FAMILY[claimed] != _FAMILY[media_type]:
            return f"the {source} says {claimed} but the bytes are {media_type}"
    return None


def sniff_claimed_type(data: bytes, filename: str, declared: str | None) -> str:
    """The type of contributed bytes; ExtractionError(unsupported_type) for an unsupported type, or for one that
    the name or the declared type contradicts."""
    try:
        media_type = sniff_media_type(data, filename)
    except ExtractionError as exc:
        raise ExtractionError(exc.reason, f"{exc.message}; {SUPPORTED_HINT}") from None
    conflict = claimed_type_conflict(media_type, filename, declared)
    if conflict is not None:
        raise ExtractionError(UNSUPPORTED_TYPE, conflict)
    return media_type
