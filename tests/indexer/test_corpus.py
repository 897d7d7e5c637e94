"""The bundled corpus: its manifest, and extraction checked against the Markdown sources it was built from."""

from __future__ import annotations

import io
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.extract import extract_document, sniff_media_type
from indexer.extract.model import DOCX, EXTENSIONS, HTML, MARKDOWN, PDF, PPTX, TEXT
from indexer.metadata import read_manifest
from indexer.pipeline import Indexer
from tests.helpers import CORPUS, REPO

MANIFEST = CORPUS / "manifest.json"
SOURCES = REPO / "scripts" / "corpus_src"
PAGE_MARKER = "<!-- page -->"
MEDIA_TYPE_BY_SUFFIX = {suffix: media_type for media_type, suffix in EXTENSIONS.items()}

pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason="the bundled corpus is not built")


@dataclass(frozen=True)
class Source:
    """One Markdown source: front matter and the body's blocks, per PDF page."""

    slug: str
    format: str
    title: str
    language: str
    pages: list[list[tuple[str, str]]]  # (kind: h/li/p, text) per page; one page for non-PDF formats

    @property
    def file(self) -> Path:
        return CORPUS / "files" / f"{self.slug}.{self.format}"


def _blocks(text: str) -> list[tuple[str, str]]:
    """Headings, list items and paragraphs (wrapped source lines joined with a space)."""
    blocks: list[tuple[str, str]] = []
    paragraph: list[str] = []
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        heading = re.match(r"#{1,6} (.+)", line)
        if paragraph and (heading or line.startswith("- ") or not line):
            blocks.append(("p", " ".join(paragraph)))
            paragraph = []
        if heading:
            blocks.append(("h", heading.group(1).strip()))
        elif line.startswith("- "):
            blocks.append(("li", line[2:].strip()))
        elif line:
            paragraph.append(line)
    return blocks


def _load_source(path: Path) -> Source:
    text = path.read_text(encoding="utf-8")
    head, body = text.removeprefix("---\n").split("\n---\n", 1)
    meta = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    meta = {key.strip(): value.strip() for key, value in meta.items()}
    return Source(
        slug=meta["slug"],
        format=meta["format"],
        title=meta["title"],
        language=meta["language"],
        pages=[_blocks(page) for page in body.split(PAGE_MARKER)],
    )


SOURCES_BY_FORMAT: dict[str, list[Source]] = {}
for _path in sorted(SOURCES.glob("*.md")):
    _source = _load_source(_path)
    SOURCES_BY_FORMAT.setdefault(_source.format, []).append(_source)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _squash(text: str) -> str:
    """Text without whitespace, controls or invisible format characters, in NFC: what both sides share."""
    kept = "".join(c for c in text if not c.isspace() and unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    return unicodedata.normalize("NFC", kept)


def _sources(fmt: str) -> list[Source]:
    return SOURCES_BY_FORMAT.get(fmt, [])


# --- Manifest -----------------------------------------------------------------------------------------------


def test_manifest_entries_exist_parse_and_cover_languages_and_formats() -> None:
    """Every entry's file exists, its metadata validates, and the corpus is large and varied enough."""
    entries = read_manifest(MANIFEST)
    assert len(entries) >= 40
    for entry in entries:
        assert entry.path.is_file(), entry.path
        assert entry.path.parent == (CORPUS / "files").resolve()
        assert entry.metadata.title, entry.path.name
        assert entry.metadata.language, entry.path.name
    languages = Counter(entry.metadata.language for entry in entries)
    assert len(languages) >= 6, languages
    formats = {entry.path.suffix for entry in entries}
    assert formats >= {".pdf", ".docx", ".pptx", ".html", ".md", ".txt"}
    assert len({entry.path for entry in entries}) == len(entries), "a file is listed twice"


def test_manifest_matches_the_sources() -> None:
    """One manifest entry per source, with the source's title and language."""
    entries = {entry.path.name: entry.metadata for entry in read_manifest(MANIFEST)}
    sources = {s.file.name: s for group in SOURCES_BY_FORMAT.values() for s in group}
    assert set(entries) == set(sources)
    for name, source in sources.items():
        assert (entries[name].title, entries[name].language) == (source.title, source.language), name


def test_every_file_is_sniffed_as_its_format() -> None:
    """The bytes of every corpus file sniff to the type its extension names."""
    for entry in read_manifest(MANIFEST):
        expected = MEDIA_TYPE_BY_SUFFIX[entry.path.suffix]
        assert sniff_media_type(entry.path.read_bytes(), entry.path.name) == expected, entry.path.name


@pytest.mark.parametrize("source", [s for group in SOURCES_BY_FORMAT.values() for s in group], ids=lambda s: s.slug)
def test_extracted_title(source: Source) -> None:
    """The title a document carries (PDF/Office properties, first line, <title>) is the source's title."""
    extraction = extract_document(source.file.read_bytes(), source.file.name)
    assert extraction.title is not None
    if source.format == "html":
        assert extraction.title.startswith(source.title)  # "<title> | <member>"
    else:
        assert extraction.title == source.title
    assert not extraction.truncated
    assert extraction.warnings == ()


# --- PDF pages ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", _sources("pdf"), ids=lambda s: s.slug)
def test_pdf_pages_match_source_pages(source: Source) -> None:
    """Page n of the PDF holds every block of source page n, and the page's longest paragraph only there."""
    from pypdf import PdfReader

    data = source.file.read_bytes()
    assert len(PdfReader(io.BytesIO(data)).pages) == len(source.pages)
    extraction = extract_document(data, source.file.name)
    assert extraction.media_type == PDF
    assert extraction.page_count == len(source.pages)
    by_page = {section.page: _collapse(section.text) for section in extraction.sections}
    assert sorted(by_page) == list(range(1, len(source.pages) + 1))
    for number, blocks in enumerate(source.pages, start=1):
        for kind, text in blocks:
            assert _collapse(text) in by_page[number], f"page {number}: {kind} {text[:60]!r}"
        distinctive = max((text for kind, text in blocks if kind == "p"), key=len)
        elsewhere = [n for n, page_text in by_page.items() if n != number and _collapse(distinctive) in page_text]
        assert not elsewhere, f"page {number}'s paragraph also on {elsewhere}"


@pytest.mark.parametrize("source", _sources("pdf"), ids=lambda s: s.slug)
def test_pdf_running_footer_is_not_extracted(source: Source) -> None:
    """Every page ends with the running footer "Member — Title — n" (pypdf's last line of the page); no page's
    extracted text holds it."""
    from pypdf import PdfReader

    data = source.file.read_bytes()
    footers = [(page.extract_text() or "").strip().split("\n")[-1] for page in PdfReader(io.BytesIO(data)).pages]
    for number, footer in enumerate(footers, start=1):
        assert re.fullmatch(rf".+ — .+ — {number}", footer), f"page {number}: {footer!r}"
    extraction = extract_document(data, source.file.name)
    for section in extraction.sections:
        for footer in footers:
            assert _collapse(footer.rsplit(" — ", 1)[0]) + " —" not in _collapse(section.text), f"p.{section.page}"


# --- PPTX slides --------------------------------------------------------------------------------------------


def _slides(source: Source) -> list[tuple[str, list[str]]]:
    """(slide title, speaker notes) per slide: the title slide first, then one slide per `## ` heading."""
    slides: list[tuple[str, list[str]]] = [(source.title, [])]
    for kind, text in source.pages[0][1:]:
        if kind == "h":
            slides.append((text, []))
        elif kind == "p" and text.startswith("Notes:"):
            slides[-1][1].append(text.removeprefix("Notes:").strip())
    return slides


@pytest.mark.parametrize("source", _sources("pptx"), ids=lambda s: s.slug)
def test_pptx_slides_match_source_headings(source: Source) -> None:
    """Slide n's section is headed by the n-th source slide title (title slide = 1) and holds its notes."""
    extraction = extract_document(source.file.read_bytes(), source.file.name)
    assert extraction.media_type == PPTX
    slides = _slides(source)
    assert extraction.page_count == len(slides)
    sections = {section.page: section for section in extraction.sections}
    assert sorted(sections) == list(range(1, len(slides) + 1))
    for number, (title, notes) in enumerate(slides, start=1):
        assert sections[number].heading == (title,), f"slide {number}"
        assert sections[number].text.startswith(title)
        for note in notes:
            assert _collapse(note) in _collapse(sections[number].text), f"slide {number} notes"


# --- Unpaged formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source", [s for fmt in ("docx", "html", "md", "txt") for s in _sources(fmt)], ids=lambda s: s.slug
)
def test_unpaged_formats_hold_every_source_block(source: Source) -> None:
    """DOCX, HTML, Markdown and text: every heading, list item and paragraph of the source is extracted,
    in order, with no page number."""
    extraction = extract_document(source.file.read_bytes(), source.file.name)
    assert extraction.media_type == {"docx": DOCX, "html": HTML, "md": MARKDOWN, "txt": TEXT}[source.format]
    assert all(section.page is None for section in extraction.sections)
    text = _collapse("\n".join(section.text for section in extraction.sections))
    position = 0
    for kind, block in source.pages[0]:
        found = text.find(_collapse(block), position)
        assert found >= 0, f"{kind} {block[:60]!r} missing or out of order"
        position = found
    if source.format in ("docx", "html", "md"):
        headings = {section.heading[-1] for section in extraction.sections if section.heading}
        source_headings = {block for kind, block in source.pages[0] if kind == "h"}
        assert source_headings <= headings | {source.title}


# --- The whole corpus through the pipeline ------------------------------------------------------------------


def _pdf_page_texts(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [_squash(page.extract_text() or "") for page in PdfReader(path).pages]


def _pptx_slide_texts(path: Path) -> list[str]:
    import pptx

    texts = []
    for slide in pptx.Presentation(str(path)).slides:
        parts = [shape.text_frame.text for shape in slide.shapes if shape.has_text_frame]
        if slide.has_notes_slide:
            parts.append(slide.notes_slide.notes_text_frame.text)
        texts.append(_squash("\n".join(parts)))
    return texts


def test_whole_corpus_is_indexed_with_correct_pages(indexer: Indexer) -> None:
    """Ingest and build the corpus: every document indexed, and every passage on the page its text is on."""
    entries = read_manifest(MANIFEST)
    ids = {}
    for entry in entries:
        result = indexer.ingest(entry.path.read_bytes(), entry.path.name, entry.metadata)
        assert result.created, f"{entry.path.name} duplicates {result.duplicate_of}"
        ids[result.document.id] = entry
    report = indexer.build()
    assert report.failures == []
    assert report.documents_indexed == len(entries)
    assert report.generation_id is not None
    assert indexer.catalog.count_by_status() == {"indexed": len(entries)}

    for document_id, entry in ids.items():
        document = indexer.catalog.get_document(document_id)
        assert document is not None
        assert document.status == "indexed"
        assert document.title == entry.metadata.title
        passages = indexer.catalog.passages_of(document_id)
        assert passages and document.passage_count == len(passages), entry.path.name
        suffix = entry.path.suffix
        if suffix == ".pdf":
            oracle = _pdf_page_texts(entry.path)
        elif suffix == ".pptx":
            oracle = _pptx_slide_texts(entry.path)
        else:
            assert all(p.page is None for p in passages), entry.path.name
            continue
        assert document.page_count == len(oracle)
        for passage in passages:
            assert passage.page is not None and 1 <= passage.page <= len(oracle), entry.path.name
            assert _squash(passage.text) in oracle[passage.page - 1], (
                f"{entry.path.name} p.{passage.page}: {passage.text[:60]!r}"
            )
        pages_with_text = {n for n, text in enumerate(oracle, start=1) if text}
        assert {p.page for p in passages} == pages_with_text, entry.path.name
