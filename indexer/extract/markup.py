"""HTML (main content only), Markdown (ATX headings) and plain text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from indexer.extract.model import (
    HTML,
    MARKDOWN,
    NO_TEXT,
    TEXT,
    UNREADABLE,
    Extraction,
    ExtractionError,
    ExtractionLimits,
    Section,
)
from indexer.extract.sections import SectionBuilder
from indexer.extract.sniff import decode_text
from indexer.text import normalise_text

_SKIP_TAGS = {"script", "style", "nav", "footer", "header", "aside", "noscript", "template", "form", "svg"}
_BLOCK_TAGS = {
    "p",
    "div",
    "li",
    "tr",
    "td",
    "th",
    "br",
    "section",
    "article",
    "main",
    "blockquote",
    "pre",
    "dd",
    "dt",
    "figcaption",
    "caption",
    "table",
    "ul",
    "ol",
}
_HEADING_RE = re.compile(r"^h([1-6])$")
_VOID_TAGS = {"br", "img", "hr", "meta", "link", "input", "source", "wbr", "area", "base", "col", "embed"}


class _HtmlText(HTMLParser):
    """Collects (kind, level, text) blocks, ignoring boilerplate tags and, when present, all but <main>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, int, str]] = []
        self.main_blocks: list[tuple[str, int, str]] | None = None
        # Skipping and <main> are tracked by tag name: unclosed <p>/<li> (valid HTML) must not unbalance them.
        self.skip_tag: str | None = None
        self.skip_depth = 0
        self.main_depth = 0
        self.buffer: list[str] = []
        self.heading_level = 0
        self.title = ""
        self.in_title = False

    def _flush(self) -> None:
        text = " ".join("".join(self.buffer).split())
        self.buffer = []
        if not text:
            return
        block = ("h", self.heading_level, text) if self.heading_level else ("p", 0, text)
        self.blocks.append(block)
        if self.main_depth and self.main_blocks is not None:
            self.main_blocks.append(block)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            if tag == "br" and not self.skip_tag:
                self.buffer.append(" ")
            return
        if self.skip_tag:
            self.skip_depth += tag == self.skip_tag
            return
        if tag == "title":
            self.in_title = not self.title  # the first <title> only (an <svg> has its own, skipped above)
            return
        if tag in _SKIP_TAGS:
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag in ("main", "article"):
            self._flush()
            if self.main_blocks is None:
                self.main_blocks = []
            self.main_depth += 1
        match = _HEADING_RE.match(tag)
        if match or tag in _BLOCK_TAGS:
            # Inline tags (<a>, <em>, <span>...) do not end a block: only block-level tags and headings do.
            self._flush()
            self.heading_level = int(match.group(1)) if match else 0

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_TAGS:
            return
        if self.skip_tag:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if not self.skip_depth:
                    self.skip_tag = None
            return
        if tag == "title":
            self.in_title = False
            return
        if _HEADING_RE.match(tag) or tag in _BLOCK_TAGS:
            self._flush()
            self.heading_level = 0
        if tag in ("main", "article") and self.main_depth:
            self._flush()
            self.main_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        elif not self.skip_tag:
            self.buffer.append(data)


def _build(
    media_type: str, blocks: list[tuple[str, int, str]], limits: ExtractionLimits, title: str | None
) -> Extraction:
    builder = SectionBuilder(limits)
    for kind, level, text in blocks:
        if kind == "h":
            builder.start_heading(level, text)
            title = title or normalise_title(text)
        else:
            builder.add(text)
    builder.flush()
    if not builder.sections:
        raise ExtractionError(NO_TEXT, "the document has no text")
    return Extraction(media_type, tuple(builder.sections), title=title, truncated=builder.truncated)


def normalise_title(text: str) -> str | None:
    """A title candidate without surrounding whitespace, or None when blank."""
    return " ".join(text.split()) or None


def _decode(data: bytes) -> str:
    text = decode_text(data)
    if text is None:
        raise ExtractionError(UNREADABLE, "the file is not text in a known encoding")
    return text


def extract_html(data: bytes, limits: ExtractionLimits) -> Extraction:
    """Headings and paragraphs of the page's <main>/<article> (the whole body when there is none)."""
    parser = _HtmlText()
    parser.feed(_decode(data))
    parser.close()
    parser._flush()
    blocks = parser.main_blocks if parser.main_blocks else parser.blocks
    return _build(HTML, blocks, limits, normalise_title(parser.title))


# The closing #s of an ATX heading need a space before them: "# Learn C#" keeps its "#".
_MD_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_MD_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# `_` emphasis only at word boundaries: my_var_name is a name, not emphasis (CommonMark).
_MD_EMPHASIS_RE = re.compile(r"(\*\*|\*|`)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\3(?!\w)")


def _markdown_inline(text: str) -> str:
    return _MD_EMPHASIS_RE.sub(lambda m: m.group(2) or m.group(4), _MD_LINK_RE.sub(r"\1", text))


def extract_markdown(data: bytes, limits: ExtractionLimits) -> Extraction:
    """ATX headings (`#`..`######`) set the heading path; paragraphs are blocks between blank lines."""
    blocks: list[tuple[str, int, str]] = []
    paragraph: list[str] = []
    in_fence = False
    for line in _decode(data).splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else _MD_HEADING_RE.match(line)
        if match or not line.strip():
            if paragraph:
                blocks.append(("p", 0, "\n".join(paragraph)))
                paragraph = []
            if match:
                blocks.append(("h", len(match.group(1)), _markdown_inline(match.group(2))))
            continue
        paragraph.append(line if in_fence else _markdown_inline(line))
    if paragraph:
        blocks.append(("p", 0, "\n".join(paragraph)))
    return _build(MARKDOWN, blocks, limits, None)


def extract_text(data: bytes, limits: ExtractionLimits) -> Extraction:
    """One unpaged section; the first line is taken as the title when it is short."""
    text = normalise_text(_decode(data))
    if not text:
        raise ExtractionError(NO_TEXT, "the file is empty")
    truncated = len(text) > limits.max_chars
    text = text[: limits.max_chars]
    first_line = text.split("\n", 1)[0]
    title = first_line if len(first_line) <= 200 else None
    return Extraction(TEXT, (Section(text=text),), title=title, truncated=truncated)
