"""Cutting section text into passages that fit the model's token window, on paragraph and sentence boundaries."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

# A sentence ends at . ! ? (and their CJK forms) followed by a space or the end, or at a line break.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？；])|\n")
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
_WORD_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\s\u3040-\u30ff\u3400-\u9fff]+")

Span = tuple[int, int]


def _spans(text: str, pattern: re.Pattern[str], start: int, end: int) -> Iterator[Span]:
    """Non-blank pieces of text[start:end] between matches of `pattern`, trimmed of whitespace."""
    position = start
    for match in pattern.finditer(text, start, end):
        yield from _trim(text, position, match.start())
        position = match.end()
    yield from _trim(text, position, end)


def _trim(text: str, start: int, end: int) -> Iterator[Span]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield (start, end)


class _Units:
    """Sentences (or, for over-long sentences, word windows) with their token counts and paragraph starts."""

    def __init__(self, text: str, count_tokens: Callable[[str], int], budget: int) -> None:
        self.text = text
        self.count = count_tokens
        self.specials = count_tokens("")
        self.budget = budget
        self.items: list[tuple[int, int, int, bool]] = []  # start, end, tokens, starts a paragraph

    def tokens(self, start: int, end: int) -> int:
        return self.count(self.text[start:end]) - self.specials

    def build(self) -> list[tuple[int, int, int, bool]]:
        for p_start, p_end in _spans(self.text, _PARAGRAPH_RE, 0, len(self.text)):
            first = True
            for s_start, s_end in _spans(self.text, _SENTENCE_END_RE, p_start, p_end):
                tokens = self.tokens(s_start, s_end)
                if tokens <= self.budget:
                    self.items.append((s_start, s_end, tokens, first))
                else:
                    self._split_long(s_start, s_end, first)
                first = False
        return self.items

    def _split_long(self, start: int, end: int, first: int | bool) -> None:
        """Word windows for a sentence longer than the budget (token counts are additive over words)."""
        window_start, window_tokens, window_end = None, 0, start
        for match in _WORD_RE.finditer(self.text, start, end):
            tokens = max(self.tokens(match.start(), match.end()), 1)
            if window_start is not None and window_tokens + tokens > self.budget:
                self.items.append((window_start, window_end, window_tokens, bool(first)))
                first, window_start, window_tokens = False, None, 0
            if window_start is None:
                window_start = match.start()
            window_tokens += tokens
            window_end = match.end()
        if window_start is not None:
            self.items.append((window_start, window_end, window_tokens, bool(first)))


def split_into_passages(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[Span]:
    """Character spans of `text`, each at most `max_tokens` model tokens (special tokens included).

    Sentences are packed greedily; a new passage starts at a paragraph boundary once the current one is more
    than half full, so passages follow the author's structure where the budget allows.
    """
    specials = count_tokens("")
    budget = max(max_tokens - specials, 1)
    passages: list[Span] = []
    current: list[int] = []  # start, end, tokens of the passage being packed
    for start, end, tokens, new_paragraph in _Units(text, count_tokens, budget).build():
        if current and (current[2] + tokens > budget or (new_paragraph and current[2] > budget // 2)):
            passages.append((current[0], current[1]))
            current = []
        if current:
            # Text between units (a space or a newline) costs no tokens.
            current[1], current[2] = end, current[2] + tokens
        else:
            current = [start, end, tokens]
    if current:
        passages.append((current[0], current[1]))
    return passages
