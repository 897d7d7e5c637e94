"""Offline language identification of passages and queries (py3langid, 97 languages)."""

from __future__ import annotations

import functools
from typing import Any

_MIN_LETTERS = 12


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str, min_confidence: float = 0.5) -> str | None:
    """ISO 639-1 code of the text's language, or None when the text is too short or the guess is weak."""
    letters = sum(1 for c in text[:2000] if c.isalpha())
    if letters < _MIN_LETTERS:
        return None
    code, confidence = _identifier().classify(text[:2000])
    return str(code) if confidence >= min_confidence else None
