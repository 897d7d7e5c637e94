"""From an extraction to passages with provenance, and from passages to the text the model embeds."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable

from indexer.catalog import Passage
from indexer.chunking import split_into_passages
from indexer.extract import Extraction
from indexer.language import detect_language

CHUNKER_VERSION = 1


def passage_id(document_sha256: str, page: int | None, char_start: int, text: str) -> str:
    """A stable id: the same text at the same place of the same bytes gets the same id in every build."""
    key = f"{document_sha256}:{page}:{char_start}:{text}".encode()
    return hashlib.sha256(key).hexdigest()[:24]


def cut_passages(
    document_id: str,
    document_sha256: str,
    extraction: Extraction,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    title: str | None = None,
    default_language: str | None = None,
) -> list[Passage]:
    """Split every section into passages that fit `max_tokens` together with their context (title, headings);
    each passage knows its page and heading."""
    passages: list[Passage] = []
    specials = count_tokens("")
    for section in extraction.sections:
        context_tokens = count_tokens(embedding_text("", title, section.heading)) - specials
        budget = max(max_tokens - context_tokens, max_tokens // 2)
        for start, end in split_into_passages(section.text, count_tokens, budget):
            text = section.text[start:end]
            passages.append(
                Passage(
                    id=passage_id(document_sha256, section.page, start, text),
                    document_id=document_id,
                    ordinal=len(passages),
                    text=text,
                    page=section.page,
                    heading=section.heading,
                    char_start=start,
                    char_end=end,
                    language=detect_language(text) or default_language,
                )
            )
    return passages


def dominant_language(passages: list[Passage]) -> str | None:
    """The language most of a document's text is in, weighted by length."""
    weights: Counter[str] = Counter()
    for passage in passages:
        if passage.language:
            weights[passage.language] += len(passage.text)
    return weights.most_common(1)[0][0] if weights else None


CONTEXT_MAX_CHARS = 160


def embedding_text(text: str, title: str | None, heading: tuple[str, ...]) -> str:
    """What the models embed (and BM25 indexes) for a passage: its context (title, headings), then its text.

    The title and headings say what a passage is about when its own sentences do not; parts the text already
    starts with are not repeated, and the context keeps its most specific end within CONTEXT_MAX_CHARS, so
    deep heading paths cannot crowd the passage out of the model's window.
    """
    parts = list(dict.fromkeys(part for part in (title, *heading) if part and not text.startswith(part)))
    if not parts:
        return text
    context = " — ".join(parts)
    if len(context) > CONTEXT_MAX_CHARS:
        context = "…" + context[-(CONTEXT_MAX_CHARS - 1) :].lstrip()
    return context + "\n" + text


_JUNK_TITLE_RE = re.compile(
    r"^(microsoft (word|powerpoint) - |untitled|document\d*$|presentation\d*$|slide \d+$)"
    r"|\.(docx?|pptx?|pdf|tex|dvi|odt|rtf)$",
    re.IGNORECASE,
)


def usable_title(candidate: str | None) -> str | None:
    """A title from file properties, unless it is a placeholder such as 'Microsoft Word - x.docx' or 'Untitled'."""
    if not candidate:
        return None
    text = " ".join(candidate.split())
    if sum(c.isalpha() for c in text) < 3 or len(text) > 300 or _JUNK_TITLE_RE.search(text):
        return None
    return text


def infer_title(extraction: Extraction, filename: str) -> str:
    """The best title available: file properties, the first heading, a short first line, then the file name."""
    title = usable_title(extraction.title)
    if title:
        return title
    for section in extraction.sections:
        if section.heading:
            return section.heading[0]
        first_line = section.text.split("\n", 1)[0].strip()
        if 3 <= len(first_line) <= 150 and usable_title(first_line):
            return first_line
        break
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or filename
