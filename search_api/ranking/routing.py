"""Which rows each encoder of a generation ranks for a query, by the languages of the query and the rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EncoderLanguages:
    """What routing knows of an encoder: the languages it was trained for (None: any), and whether, being
    multilingual, it also retrieves well within one language (e5 does, USE does not)."""

    languages: frozenset[str] | None
    same_language_retrieval: bool = False

    @property
    def multilingual(self) -> bool:
        """Trained for several languages (or any), as opposed to one for a single language."""
        return is_multilingual(self.languages)


def is_multilingual(languages: frozenset[str] | None) -> bool:
    """An encoder trained for several languages (or any), as opposed to one for a single language."""
    return languages is None or len(languages) > 1


def route(
    encoders: Sequence[EncoderLanguages], row_language: np.ndarray, query_language: str | None
) -> list[np.ndarray | None]:
    """Which rows each encoder ranks for a query in `query_language`: a boolean mask per encoder (None: all rows).

    A monolingual encoder (MiniLM: English) ranks the passages written in the query's language when that is
    its language; every other row, notably every cross-language pair, is ranked by the multilingual
    encoders. Multilingual encoders that are also strong retrievers within one language (e5, not USE) rank
    the query's language too. Each row is thus ranked by the encoders suited to its language pair.
    `row_language` holds each row's language code ("" where unknown).
    """
    if len(encoders) == 1:
        return [None]
    covered = np.zeros(len(row_language), dtype=bool)
    masks: list[np.ndarray | None] = []
    for encoder in encoders:
        if encoder.multilingual:
            masks.append(None)  # filled in below
        elif query_language in (encoder.languages or ()):
            # Passages of unknown language are taken to be in the query's language.
            mask = (row_language == query_language) | (row_language == "")
            covered |= mask
            masks.append(mask)
        else:
            masks.append(np.zeros(len(row_language), dtype=bool))
    rest = ~covered
    if all(mask is not None for mask in masks):  # no multilingual encoder: the primary ranks the rest
        first = masks[0]
        masks[0] = rest if first is None else first | rest
        return masks
    # A multilingual encoder that also retrieves well within one language ranks every row.
    return [
        (None if encoder.same_language_retrieval else rest) if mask is None else mask
        for encoder, mask in zip(encoders, masks, strict=True)
    ]


def in_language(row_language: np.ndarray, rows: np.ndarray, language: str | None) -> np.ndarray:
    """Which of `rows` are in `language` (passages of unknown language count as in the query's)."""
    found = row_language[rows] if len(rows) else np.zeros(0, dtype=str)
    return (found == (language or "")) | (found == "")
