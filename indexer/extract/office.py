"""DOCX (headings, lists, tables) and PPTX (one section per slide, with notes) through python-docx/-pptx."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Any
from xml.etree.ElementTree import ParseError

from indexer.extract.model import (
    DOCX,
    NO_TEXT,
    PPTX,
    RESOURCE_LIMIT,
    UNREADABLE,
    Extraction,
    ExtractionError,
    ExtractionLimits,
)
from indexer.extract.sections import SectionBuilder
from indexer.text import normalise_text

_HEADING_STYLE_RE = re.compile(r"^heading\s*(\d)$", re.I)
# A DOCTYPE has no place in an Office package: it is how entity expansion (billion laughs) and external entities
# get into an XML parser. Scanned for in every encoding lxml reads without a declaration.
_DOCTYPE = tuple("<!doctype".encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))
_DOCTYPE_OVERLAP = max(len(pattern) for pattern in _DOCTYPE) - 1
_SCAN_CHUNK = 1 << 20
_CONTENT_TYPES = "[Content_Types].xml"


def check_archive(data: bytes, limits: ExtractionLimits) -> None:
    """Refuse a package before python-docx/-pptx read it: a zip bomb (by its declared sizes, member count and
    ratio) or an XML part with a DOCTYPE. Members are only ever read into memory, never extracted to disk, so
    names such as `../../x` cannot write anywhere."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            expanded = sum(info.file_size for info in infos)
            if (
                len(infos) > limits.archive_max_members
                or expanded > limits.archive_max_expanded_bytes
                or expanded > limits.archive_max_ratio * max(len(data), 1)
            ):
                raise ExtractionError(
                    RESOURCE_LIMIT, f"archive expands to {expanded} bytes in {len(infos)} members (a zip bomb?)"
                )
            # zipfile never returns more than a member's declared size, so these reads stay within the limits.
            content_types = _content_types(archive)
            for info in infos:
                if _parsed_as_xml(info.filename, content_types) and _has_doctype(archive, info):
                    raise ExtractionError(UNREADABLE, f"XML with a DOCTYPE is refused ({info.filename})")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ExtractionError(UNREADABLE, f"not a readable ZIP container: {exc}") from exc


def _has_doctype(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Whether a member holds `<!DOCTYPE`, read a chunk at a time."""
    tail = b""
    with archive.open(info) as member:
        while chunk := member.read(_SCAN_CHUNK):
            window = (tail + chunk).lower()
            if any(pattern in window for pattern in _DOCTYPE):
                return True
            tail = window[-_DOCTYPE_OVERLAP:]
    return False


def _content_types(archive: zipfile.ZipFile) -> dict[str, str]:
    """The package's content types: `.ext` for a default by extension, `/part/name` for an override (lower case)."""
    from defusedxml.ElementTree import fromstring

    try:
        info = archive.getinfo(_CONTENT_TYPES)
    except KeyError:
        return {}
    if _has_doctype(archive, info):
        raise ExtractionError(UNREADABLE, f"XML with a DOCTYPE is refused ({_CONTENT_TYPES})")
    try:
        root = fromstring(archive.read(info))
    except (ParseError, ValueError):  # python-docx/-pptx refuse the package later, with their own message
        return {}
    types = {}
    for element in root:
        kind, content_type = element.tag.rsplit("}", 1)[-1], element.get("ContentType", "")
        if kind == "Default":
            types["." + element.get("Extension", "").lower()] = content_type
        elif kind == "Override":
            types[element.get("PartName", "").lower()] = content_type
    return types


def _parsed_as_xml(name: str, content_types: dict[str, str]) -> bool:
    """Whether python-docx/-pptx may parse a member as XML: relationships and the content types always, a part
    whose content type is XML (not an image: an SVG is kept as bytes), and a part of unknown type."""
    if name == _CONTENT_TYPES or name.lower().endswith(".rels"):
        return True
    part = "/" + name.lower()
    extension = "." + part.rsplit(".", 1)[-1] if "." in part else ""
    content_type = content_types.get(part) or content_types.get(extension)
    if content_type is None:
        return True
    return content_type.endswith("xml") and not content_type.startswith("image/")


def extract_docx(data: bytes, limits: ExtractionLimits) -> Extraction:
    """Sections split at headings; list items and table rows become paragraphs."""
    check_archive(data, limits)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except MemoryError:  # over the sandbox's memory limit: resource_limit, not a broken file
        raise
    except Exception as exc:  # python-docx raises many types for broken packages
        raise ExtractionError(UNREADABLE, f"not a readable DOCX: {exc}") from exc
    builder = SectionBuilder(limits)
    title = normalise_text(document.core_properties.title or "") or None
    shift = 0  # a Title paragraph is level 1 of the heading path; headings then sit one level below it
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                # A merged cell is listed once per grid column it spans (the same <w:tc>); equal texts in
                # different cells are different values and all stay.
                cells = list({id(c._tc): c for c in row.cells}.values())
                builder.add(" | ".join(text for text in (normalise_text(c.text) for c in cells) if text))
            continue
        style = (block.style.name if block.style is not None else "") or ""
        match = _HEADING_STYLE_RE.match(style)
        if style.lower() == "title":
            title = title or normalise_text(block.text) or None
            builder.start_heading(1, block.text)
            shift = 1
        elif match:
            builder.start_heading(int(match.group(1)) + shift, block.text)
        else:
            prefix = "- " if "list" in style.lower() else ""
            builder.add(prefix + block.text if block.text.strip() else "")
    builder.flush()
    if not builder.sections:
        raise ExtractionError(NO_TEXT, "the document has no text")
    return Extraction(DOCX, tuple(builder.sections), title=title, truncated=builder.truncated)


def _shapes(shapes: Iterable[Any]) -> Iterator[Any]:
    """The shapes of a slide in order, with the members of groups in place of the group."""
    for shape in shapes:
        if hasattr(shape, "shapes"):  # a group shape: its text boxes are inside it
            yield from _shapes(shape.shapes)
        else:
            yield shape


def extract_pptx(data: bytes, limits: ExtractionLimits) -> Extraction:
    """One section per slide (page = slide number), headed by the slide title, with speaker notes last."""
    check_archive(data, limits)
    import pptx

    try:
        presentation = pptx.Presentation(io.BytesIO(data))
    except MemoryError:
        raise
    except Exception as exc:
        raise ExtractionError(UNREADABLE, f"not a readable PPTX: {exc}") from exc
    builder = SectionBuilder(limits)
    slides = list(presentation.slides)
    for number, slide in enumerate(slides, start=1):
        title_shape = slide.shapes.title
        slide_title = normalise_text(title_shape.text_frame.text) if title_shape is not None else ""
        builder.heading = (slide_title,) if slide_title else ()
        for shape in _shapes(slide.shapes):
            if shape.has_text_frame:
                for paragraph in shape.text_frame.paragraphs:
                    builder.add("".join(run.text for run in paragraph.runs))
            if getattr(shape, "has_table", False):
                for row in shape.table.rows:
                    builder.add(" | ".join(normalise_text(c.text) for c in row.cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            builder.add(slide.notes_slide.notes_text_frame.text)
        builder.flush(page=number)
    if not builder.sections:
        raise ExtractionError(NO_TEXT, "the presentation has no text")
    title = normalise_text(presentation.core_properties.title or "") or None
    if not title and builder.sections:
        title = builder.sections[0].heading[0] if builder.sections[0].heading else None
    return Extraction(PPTX, tuple(builder.sections), title=title, page_count=len(slides), truncated=builder.truncated)
