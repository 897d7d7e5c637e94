"""Offline language identification of passages and queries (py3langid, 97 languages)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

_MIN_LETTERS = 12


@functools.cache
def _identifier(languages: frozenset[str] | None = None) -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages:
        identifier.set_languages(sorted(languages))
    return identifier


def detect_language(
    text: str,
    min_confidence: float = 0.5,
    candidates: Iterable[str] | None = None,
    min_letters: int = _MIN_LETTERS,
) -> str | None:
    """ISO 639-1 code of the text's language, or None when the text is too short or the guess is weak.

    `candidates` restricts the guess to known languages (say, those of the corpus), which makes guesses for
    short texts such as queries far more reliable.
    """
    sample = text[:2000]
    if sum(1 for c in sample if c.isalpha()) < min_letters:
        return None
    known = frozenset(candidates) if candidates is not None else None
    supported = _identifier().nb_classes
    if known is not None:
        known = frozenset(code for code in known if code in supported)
    code, confidence = _identifier(known or None).classify(sample)
    return str(code) if confidence >= min_confidence else None


def guess_query_language(query: str, corpus_languages: Iterable[str]) -> str | None:
    """The most likely language of a short query among the corpus's languages (and English)."""
    return detect_language(query, min_confidence=0.0, candidates={*corpus_languages, "en"}, min_letters=2)
