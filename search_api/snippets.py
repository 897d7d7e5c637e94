"""Snippets: the part of a passage that best matches the query, with the matched terms marked."""

from __future__ import annotations

import html
from dataclasses import dataclass

from indexer.lexical import term_spans, tokenize

SNIPPET_CHARS = 280


@dataclass(frozen=True)
class Snippet:
    """An HTML-safe excerpt with <mark> around matched terms, and the matched spans in the full passage."""

    html: str
    highlights: tuple[tuple[int, int], ...]


def query_terms(query: str, languages: set[str | None]) -> set[str]:
    """The query's index terms as each of the given languages would stem them."""
    return {term for language in languages for term in tokenize(query, language)}


def make_snippet(text: str, terms: set[str], language: str | None, width: int = SNIPPET_CHARS) -> Snippet:
    """Mark every term of `text` that is in `terms`; cut the `width`-character window with the most marks."""
    matched = [(start, end, term) for start, end, term in term_spans(text, language) if term in terms]
    merged: list[tuple[int, int]] = []
    for start, end, _ in sorted(matched):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    window_start = _best_window(matched, len(text), width)
    if window_start > 0:
        space = text.find(" ", window_start, window_start + 20)
        first_mark = next((start for start, _ in merged if start >= window_start), len(text))
        window_start = space + 1 if 0 < space < first_mark else window_start
    window_end = min(len(text), window_start + width)
    if window_end < len(text):
        cut = text.rfind(" ", window_start + width // 2, window_end)
        window_end = cut if cut > 0 else window_end
    parts = ["…" if window_start > 0 else ""]
    position = window_start
    for start, end in merged:
        if start < window_start or end > window_end:
            continue
        parts += [html.escape(text[position:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        position = end
    parts += [html.escape(text[position:window_end]), "…" if window_end < len(text) else ""]
    return Snippet("".join(parts).strip(), tuple(merged))


def _best_window(matched: list[tuple[int, int, str]], length: int, width: int) -> int:
    """Start of a window centred on the tightest stretch of text that holds the most distinct query terms."""
    if length <= width or not matched:
        return 0
    matched = sorted(matched)
    best = (0, 0, 0)  # distinct terms, -stretch length, start of the stretch
    best_stretch = (0, 0)
    for i, (start, _, _) in enumerate(matched):
        seen: set[str] = set()
        for _, end, term in matched[i:]:
            if end - start > width:
                break
            if term not in seen:
                seen.add(term)
                score = (len(seen), start - end, -start)
                if score > best:
                    best, best_stretch = score, (start, end)
    centre = (best_stretch[0] + best_stretch[1]) // 2
    return max(0, min(centre - width // 2, length - width))
