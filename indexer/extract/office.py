"""DOCX (headings, lists, tables) and PPTX (one section per slide, with notes) through python-docx/-pptx."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from indexer.extract.model import (
    DOCX,
    NO_TEXT,
    PPTX,
    UNREADABLE,
    Extraction,
    ExtractionError,
    ExtractionLimits,
)
from indexer.extract.sections import SectionBuilder
from indexer.text import normalise_text

_HEADING_STYLE_RE = re.compile(r"^heading\s*(\d)$", re.I)
_MAX_MEMBERS = 10_000
_MAX_EXPANDED_BYTES = 512 * 1024 * 1024
_MAX_RATIO = 200


def check_archive(data: bytes) -> None:
    """Refuse archives whose declared sizes make them a zip bomb, before any member is read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(UNREADABLE, f"not a readable ZIP container: {exc}") from exc
    expanded = sum(info.file_size for info in infos)
    if len(infos) > _MAX_MEMBERS or expanded > _MAX_EXPANDED_BYTES or expanded > _MAX_RATIO * max(len(data), 1):
        raise ExtractionError("resource_limit", f"archive expands to {expanded} bytes in {len(infos)} members")


def extract_docx(data: bytes, limits: ExtractionLimits) -> Extraction:
    """Sections split at headings; list items and table rows become paragraphs."""
    check_archive(data)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
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
    check_archive(data)
    import pptx

    try:
        presentation = pptx.Presentation(io.BytesIO(data))
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
