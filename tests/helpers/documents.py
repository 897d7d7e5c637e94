"""Documents made in the test: PDF, DOCX and PPTX files with known text on known pages."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


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
