"""Build the bundled moocsearch sample corpus from its Markdown sources.

Reads every ``scripts/corpus_src/*.md`` (front matter + Markdown-like body, see
the source format in ``corpus/README.md``), validates it, renders it into
``corpus/files/<slug>.<ext>`` in its declared format (pdf, docx, pptx, html,
md, txt), writes ``corpus/manifest.json`` and then re-opens every output to
verify it (for PDFs: page count and the text of each page, via pypdf).

Output is deterministic: re-running the script gives byte-identical files.

Fonts (Debian packages), embedded as subsets in the PDFs:
    fonts-dejavu-core     DejaVuSans / DejaVuSans-Bold  (Latin, Cyrillic, Greek)
    fonts-droid-fallback  DroidSansFallbackFull         (Chinese, Japanese, Korean)
    fonts-thai-tlwg       Garuda / Garuda-Bold          (Thai)

Python packages: fpdf2, python-docx, python-pptx, pypdf.

Run from the repository root:
    .venv/bin/python scripts/build_corpus.py
"""

from __future__ import annotations

import html
import json
import re
import sys
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docx
import pptx
from fpdf import FPDF
from fpdf.enums import WrapMode
from pptx.util import Pt
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = ROOT / "scripts" / "corpus_src"
OUT_DIR = ROOT / "corpus"
FILES_DIR = OUT_DIR / "files"
PAGE_MARKER = "<!-- page -->"

FORMATS = ("pdf", "docx", "pptx", "html", "md", "txt")
RESOURCE_TYPES = ("practice_report", "teaching_resource", "syllabus", "slides", "dataset", "other")
LEVELS = ("secondary", "undergraduate", "postgraduate", "professional", "all")
REQUIRED = ("slug", "format", "member", "title", "resource_type", "language", "year", "licence", "tags")
OPTIONAL = ("authors", "discipline", "level", "translation_group")
LIST_KEYS = ("authors", "tags")
SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

FONT_DIR = Path("/usr/share/fonts/truetype")
DEJAVU = (FONT_DIR / "dejavu/DejaVuSans.ttf", FONT_DIR / "dejavu/DejaVuSans-Bold.ttf")
DROID = FONT_DIR / "droid/DroidSansFallbackFull.ttf"
GARUDA = (FONT_DIR / "tlwg/Garuda.ttf", FONT_DIR / "tlwg/Garuda-Bold.ttf")
FONTS_BY_LANGUAGE = {"zh": (DROID, DROID), "ja": (DROID, DROID), "ko": (DROID, DROID), "th": GARUDA}
CHAR_WRAP_LANGUAGES = ("zh", "ja", "ko")
FONT_PACKAGES = "fonts-dejavu-core fonts-droid-fallback fonts-thai-tlwg"

# PDF layout: block kind -> (font size in pt, bold, space after in mm)
PDF_STYLES = {
    "h1": (19.0, True, 5.0),
    "h2": (14.0, True, 2.5),
    "h3": (12.0, True, 1.5),
    "p": (10.5, False, 2.5),
    "li": (10.5, False, 1.2),
}
PDF_SCALES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
PT_TO_MM = 0.3528
LINE_SPACING = 1.4
MARGIN_MM = 20.0
FOOTER_MM = 14.0
BULLET_INDENT_MM = 6.0
HEADING_SPACE_MM = 2.5

Meta = dict[str, Any]


class CorpusError(Exception):
    """A source file is invalid or an output failed verification."""


@dataclass(frozen=True)
class Block:
    kind: str  # h1, h2, h3, p, li
    text: str


@dataclass(frozen=True)
class Doc:
    path: Path
    meta: Meta
    pages: list[list[Block]]

    @property
    def blocks(self) -> list[Block]:
        return [block for page in self.pages for block in page]

    @property
    def filename(self) -> str:
        return f"{self.meta['slug']}.{self.meta['format']}"

    @property
    def date(self) -> datetime:
        return datetime(self.meta["year"], 1, 1, tzinfo=UTC)


def parse_front_matter(text: str, name: str) -> tuple[Meta, str]:
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        raise CorpusError(f"{name}: missing '---' front matter block")
    head, body = text[4:].split("\n---\n", 1)
    meta: Meta = {"authors": []}
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or key not in REQUIRED + OPTIONAL:
            raise CorpusError(f"{name}: bad front matter line {line!r}")
        if key in LIST_KEYS:
            meta[key] = [item.strip() for item in value.split(",") if item.strip()]
        elif key == "year":
            if not value.isdigit():
                raise CorpusError(f"{name}: year must be an integer, got {value!r}")
            meta[key] = int(value)
        elif value:
            meta[key] = value
    return meta, body


def parse_page(text: str) -> list[Block]:
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("p", " ".join(paragraph)))
            paragraph.clear()

    for raw in text.splitlines():
        line = raw.strip()
        heading = re.match(r"(#{1,3}) (.+)", line)
        if heading or line.startswith("- ") or not line:
            flush()
        if heading:
            blocks.append(Block(f"h{len(heading.group(1))}", heading.group(2).strip()))
        elif line.startswith("- "):
            blocks.append(Block("li", line[2:].strip()))
        elif line:
            paragraph.append(line)
    flush()
    return blocks


def validate(meta: Meta, body: str, path: Path) -> None:
    name = path.name
    problems = [f"missing required key '{key}'" for key in REQUIRED if not meta.get(key)]
    enums = {"format": FORMATS, "resource_type": RESOURCE_TYPES, "level": LEVELS}
    problems += [
        f"{key} {meta[key]!r} not one of {', '.join(allowed)}"
        for key, allowed in enums.items()
        if key in meta and meta[key] not in allowed
    ]
    if meta.get("slug") != path.stem or not SLUG_RE.fullmatch(path.stem):
        problems.append(f"slug {meta.get('slug')!r} must equal the file stem (a-z, 0-9, '-')")
    if not re.fullmatch(r"[a-z]{2}", str(meta.get("language", ""))):
        problems.append("language must be an ISO 639-1 code")
    if any(tag != tag.lower() for tag in meta.get("tags", [])):
        problems.append("tags must be lowercase")
    if not body.lstrip().startswith(f"# {meta.get('title')}\n"):
        problems.append("body must start with '# ' + the title")
    markers = body.count(PAGE_MARKER)
    if re.search(r"[<>&]", body.replace(PAGE_MARKER, "")):
        problems.append("characters <, > and & are not allowed in the text")
    if meta.get("format") == "pdf" and markers < 2:
        problems.append(f"pdf needs at least 3 pages, found {markers + 1}")
    if meta.get("format") != "pdf" and markers:
        problems.append("page markers are only allowed in pdf sources")
    if problems:
        raise CorpusError(f"{name}: " + "; ".join(problems))


def load_doc(path: Path) -> Doc:
    meta, body = parse_front_matter(path.read_text(encoding="utf-8"), path.name)
    validate(meta, body, path)
    pages = [parse_page(chunk) for chunk in body.split(PAGE_MARKER)]
    if any(not page for page in pages):
        raise CorpusError(f"{path.name}: empty page")
    return Doc(path, meta, pages)


def check_groups(docs: list[Doc]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for doc in docs:
        group = doc.meta.get("translation_group")
        key = (str(group), doc.meta["language"])
        if group and key in seen:
            raise CorpusError(
                f"{doc.path.name}: translation_group {group!r} already has a '{key[1]}' document ({seen[key]})"
            )
        seen[key] = doc.path.name


class CorpusPDF(FPDF):
    footer_text = ""
    body_align = "J"  # justified, except for scripts without spaces between words
    wrap_mode = WrapMode.WORD

    def footer(self) -> None:
        self.set_y(-FOOTER_MM + 4)
        self.set_font("body", size=7.5)
        self.set_text_color(120)
        self.cell(0, 4, f"{self.footer_text} — {self.page_no()}", align="C")
        self.set_text_color(0)


def pdf_fonts(pdf: FPDF, doc: Doc) -> None:
    regular, bold = FONTS_BY_LANGUAGE.get(doc.meta["language"], DEJAVU)
    absent = [str(font) for font in (regular, bold, *DEJAVU) if not font.exists()]
    if absent:
        raise CorpusError(f"{doc.path.name}: font files missing: {', '.join(absent)} (install {FONT_PACKAGES})")
    pdf.add_font("body", "", str(regular))
    pdf.add_font("body", "B", str(bold))
    if regular != DEJAVU[0]:
        pdf.add_font("dejavu", "", str(DEJAVU[0]))
        pdf.add_font("dejavu", "B", str(DEJAVU[1]))
        pdf.set_fallback_fonts(["dejavu"])
    covered = {codepoint for font in pdf.fonts.values() for codepoint in getattr(font, "cmap", {})}
    missing = sorted({ch for b in doc.blocks for ch in b.text if ord(ch) not in covered})
    if missing:
        raise CorpusError(f"{doc.path.name}: no font covers {''.join(missing)!r}")


def pdf_block(pdf: CorpusPDF, block: Block, scale: float, dry: bool) -> float:
    size, bold, gap = PDF_STYLES[block.kind]
    pdf.set_font("body", "B" if bold else "", size * scale)
    line_h = size * scale * PT_TO_MM * LINE_SPACING
    indent = BULLET_INDENT_MM if block.kind == "li" else 0.0
    width = pdf.epw - indent
    space_before = HEADING_SPACE_MM * scale if bold else 0.0
    if dry:
        lines = pdf.multi_cell(width, line_h, block.text, wrapmode=pdf.wrap_mode, dry_run=True, output="LINES")
        assert isinstance(lines, list)
        return space_before + len(lines) * line_h + gap * scale
    if pdf.get_y() > pdf.t_margin + 1:
        pdf.ln(space_before)
    # fpdf2 2.8.9 can lose track of the active font when a text call starts with a fallback-font
    # glyph (e.g. the bullet in a Chinese document): force it to re-emit the font for each call.
    pdf.current_font_is_set_on_page = False
    if indent:
        pdf.set_x(pdf.l_margin + indent / 2)
        pdf.cell(indent / 2, line_h, "•")
        pdf.current_font_is_set_on_page = False
    align = pdf.body_align if block.kind in ("p", "li") else "L"
    pdf.multi_cell(width, line_h, block.text, align=align, wrapmode=pdf.wrap_mode, new_x="LMARGIN")
    pdf.ln(gap * scale)
    return 0.0


def render_pdf(doc: Doc, out: Path) -> None:
    pdf = CorpusPDF(format="A4")
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(False)
    pdf_fonts(pdf, doc)
    pdf.footer_text = f"{doc.meta['member']} — {doc.meta['title']}"
    pdf.set_title(doc.meta["title"])
    pdf.set_author(", ".join(doc.meta["authors"]))
    pdf.set_subject(f"{doc.meta['member']}, {doc.meta['resource_type']}")
    pdf.set_keywords(", ".join(doc.meta["tags"]))
    pdf.set_lang(doc.meta["language"])
    pdf.set_creator("moocsearch scripts/build_corpus.py")
    pdf.set_creation_date(doc.date)
    if doc.meta["language"] in FONTS_BY_LANGUAGE:
        pdf.body_align = "L"
    if doc.meta["language"] in CHAR_WRAP_LANGUAGES:
        pdf.wrap_mode = WrapMode.CHAR
    available = pdf.h - MARGIN_MM - FOOTER_MM
    for number, page in enumerate(doc.pages, 1):
        pdf.add_page()
        scale = next(
            (s for s in PDF_SCALES if MARGIN_MM + sum(pdf_block(pdf, b, s, True) for b in page) <= available),
            None,
        )
        if scale is None:
            raise CorpusError(f"{doc.path.name}: page {number} does not fit on one PDF page")
        for block in page:
            pdf_block(pdf, block, scale, False)
    pdf.output(str(out))


def normalise_zip(path: Path, date: datetime) -> None:
    """Rewrite an OOXML package with fixed timestamps so that output is reproducible."""
    with zipfile.ZipFile(path) as source:
        entries = [(info.filename, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(date.year, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data)


def set_core_properties(props: object, doc: Doc) -> None:
    values = {
        "title": doc.meta["title"],
        "author": "; ".join(doc.meta["authors"]),
        "language": doc.meta["language"],
        "keywords": ", ".join(doc.meta["tags"]),
        "subject": doc.meta["resource_type"],
        "category": doc.meta["member"],
        "last_modified_by": "moocsearch",
        "created": doc.date,
        "modified": doc.date,
        "revision": 1,
    }
    for key, value in values.items():
        setattr(props, key, value)


def render_docx(doc: Doc, out: Path) -> None:
    document = docx.Document()
    set_core_properties(document.core_properties, doc)
    styles = {"h1": "Heading 1", "h2": "Heading 2", "h3": "Heading 3", "li": "List Bullet"}
    blocks = doc.blocks
    document.add_heading(blocks[0].text, 0)
    for block in blocks[1:]:
        document.add_paragraph(block.text, styles.get(block.kind))
    document.save(str(out))
    normalise_zip(out, doc.date)


def slide_sections(doc: Doc) -> list[tuple[str, list[Block], str]]:
    """Split the body into (slide title, body blocks, speaker notes); the first one is the title slide."""
    sections: list[tuple[str, list[Block], list[str]]] = [(doc.meta["title"], [], [])]
    for block in doc.blocks[1:]:
        if block.kind == "h2":
            sections.append((block.text, [], []))
        elif block.kind == "p" and block.text.startswith("Notes:"):
            sections[-1][2].append(block.text.removeprefix("Notes:").strip())
        else:
            sections[-1][1].append(block)
    return [(title, body, "\n".join(notes)) for title, body, notes in sections]


def fill_slide(slide: Any, title: str, body: list[Block], notes: str) -> None:
    slide.shapes.title.text = title
    frame = slide.placeholders[1].text_frame
    size = Pt(20 if sum(len(block.text) for block in body) < 400 else 16)
    for index, block in enumerate(body):
        paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
        paragraph.text = block.text
        paragraph.font.size = size
        paragraph.level = 1 if block.kind == "li" and body[0].kind != "li" else 0
    if notes:
        slide.notes_slide.notes_text_frame.text = notes


def render_pptx(doc: Doc, out: Path) -> None:
    deck = pptx.Presentation()
    set_core_properties(deck.core_properties, doc)
    (title, intro, notes), *slides = slide_sections(doc)
    credit = Block("p", f"{', '.join(doc.meta['authors'])} — {doc.meta['member']}")
    fill_slide(deck.slides.add_slide(deck.slide_layouts[0]), title, [*intro, credit], notes)
    for section in slides:
        fill_slide(deck.slides.add_slide(deck.slide_layouts[1]), *section)
    deck.save(str(out))
    normalise_zip(out, doc.date)


def html_body(doc: Doc) -> str:
    lines: list[str] = []
    in_list = False
    for block in doc.blocks:
        if (block.kind == "li") != in_list:
            lines.append("</ul>" if in_list else "<ul>")
            in_list = not in_list
        indent = "  " if in_list else ""
        lines.append(f"{indent}<{block.kind}>{html.escape(block.text)}</{block.kind}>")
    if in_list:
        lines.append("</ul>")
    return "\n".join(lines)


def render_html(doc: Doc, out: Path) -> None:
    esc = html.escape
    member = esc(doc.meta["member"])
    page = f"""<!DOCTYPE html>
<html lang="{doc.meta["language"]}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="author" content="{esc(", ".join(doc.meta["authors"]))}">
<meta name="keywords" content="{esc(", ".join(doc.meta["tags"]))}">
<title>{esc(doc.meta["title"])} | {member}</title>
</head>
<body>
<header>
<nav aria-label="Main"><a href="/">{member}</a> <a href="/open-learning/">Open learning</a>
<a href="/resources/">Teaching resources</a> <a href="/contact/">Contact</a></nav>
</header>
<main>
<article>
{html_body(doc)}
</article>
</main>
<footer>
<p>© {doc.meta["year"]} {member}. Shared under {esc(doc.meta["licence"])}.
<a href="/privacy/">Privacy</a> <a href="/accessibility/">Accessibility</a></p>
</footer>
</body>
</html>
"""
    out.write_text(page, encoding="utf-8")


def render_md(doc: Doc, out: Path) -> None:
    body = doc.path.read_text(encoding="utf-8").split("\n---\n", 1)[1]
    out.write_text(body.strip() + "\n", encoding="utf-8")


def display_width(text: str) -> int:
    """Columns a monospace terminal uses: wide CJK characters take two, combining marks none."""
    return sum(
        2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.category(ch) == "Mn" else 1 for ch in text
    )


def render_txt(doc: Doc, out: Path) -> None:
    lines: list[str] = []
    for block in doc.blocks:
        if block.kind == "h1":
            lines += [block.text, "=" * display_width(block.text), ""]
        elif block.kind == "li":
            lines.append(f"- {block.text}")
        else:
            if lines and lines[-1].startswith("- "):
                lines.append("")
            lines += [block.text, ""]
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


RENDERERS = {
    "pdf": render_pdf,
    "docx": render_docx,
    "pptx": render_pptx,
    "html": render_html,
    "md": render_md,
    "txt": render_txt,
}


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def verify_pdf(doc: Doc, out: Path) -> str:
    reader = PdfReader(out)
    if len(reader.pages) != len(doc.pages):
        raise CorpusError(f"{out.name}: {len(reader.pages)} PDF pages, {len(doc.pages)} source pages")
    for number, (page, blocks) in enumerate(zip(reader.pages, doc.pages, strict=True), 1):
        extracted = squash(page.extract_text()).replace("•", "")
        source = squash("".join(block.text for block in blocks))
        if source not in extracted:
            start = next((i for i, (a, b) in enumerate(zip(source, extracted, strict=False)) if a != b), 0)
            raise CorpusError(f"{out.name}: page {number} text differs near {source[start : start + 30]!r}")
    return f"{len(doc.pages)} pages, full text verified"


def verify(doc: Doc, out: Path) -> str:
    fmt = doc.meta["format"]
    if fmt == "pdf":
        return verify_pdf(doc, out)
    if fmt == "docx":
        paragraphs = docx.Document(str(out)).paragraphs
        ok, detail = paragraphs[0].text == doc.meta["title"], f"{len(paragraphs)} paragraphs"
    elif fmt == "pptx":
        slides = len(pptx.Presentation(str(out)).slides)
        ok, detail = slides == len(slide_sections(doc)), f"{slides} slides"
    else:
        text = out.read_text(encoding="utf-8")
        ok, detail = squash(doc.meta["title"]) in squash(text), f"{len(text)} characters"
    if not ok:
        raise CorpusError(f"{out.name}: verification failed ({detail})")
    return detail


def manifest_entry(doc: Doc) -> dict[str, object]:
    keys = (
        "title",
        "authors",
        "member",
        "resource_type",
        "language",
        "year",
        "licence",
        "tags",
        "discipline",
        "level",
        "translation_group",
    )
    entry: dict[str, object] = {"file": f"files/{doc.filename}"}
    entry.update({key: doc.meta[key] for key in keys if doc.meta.get(key)})
    return entry


def build(docs: list[Doc]) -> None:
    FILES_DIR.mkdir(parents=True, exist_ok=True)
    expected = {doc.filename for doc in docs}
    for stale in FILES_DIR.iterdir():
        if stale.name not in expected:
            stale.unlink()
    for doc in docs:
        out = FILES_DIR / doc.filename
        RENDERERS[doc.meta["format"]](doc, out)
        print(f"ok  {doc.meta['language']}  {doc.meta['format']:4}  files/{doc.filename}: {verify(doc, out)}")
    entries = sorted((manifest_entry(doc) for doc in docs), key=lambda e: str(e["file"]))
    text = json.dumps({"documents": entries}, ensure_ascii=False, indent=2)
    (OUT_DIR / "manifest.json").write_text(text + "\n", encoding="utf-8")


def main() -> int:
    try:
        docs = [load_doc(path) for path in sorted(SRC_DIR.glob("*.md"))]
        if not docs:
            raise CorpusError(f"no sources in {SRC_DIR}")
        check_groups(docs)
        build(docs)
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    languages = Counter(doc.meta["language"] for doc in docs)
    formats = Counter(doc.meta["format"] for doc in docs)
    print(
        f"{len(docs)} documents; languages: {dict(sorted(languages.items()))}; formats: {dict(sorted(formats.items()))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
