"""Grouping paragraphs into sections under the heading path in force, within the character limit."""

from __future__ import annotations

from indexer.extract.model import ExtractionLimits, Section
from indexer.text import normalise_text


class SectionBuilder:
    """Collects paragraphs under the heading path in force, starting a section at each heading."""

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self.sections: list[Section] = []
        self.heading: tuple[str, ...] = ()
        self.paragraphs: list[str] = []
        self.chars = 0
        self.truncated = False

    def flush(self, page: int | None = None) -> None:
        text = "\n\n".join(self.paragraphs)
        if text:
            self.sections.append(Section(text=text, page=page, heading=self.heading))
        self.paragraphs = []

    def add(self, text: str) -> None:
        text = normalise_text(text)
        if not text or self.truncated:
            return
        if self.chars + len(text) > self.limits.max_chars:
            text = text[: self.limits.max_chars - self.chars]
            self.truncated = True
            if not text:
                return
        self.chars += len(text)
        self.paragraphs.append(text)

    def start_heading(self, level: int, title: str) -> None:
        self.flush()
        title = normalise_text(title)
        self.heading = (*self.heading[: max(level - 1, 0)], title) if title else self.heading
        self.add(title)
