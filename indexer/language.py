"""Offline language identification of passages and queries (py3langid, 97 languages)."""

from __future__ import annotations

import functools
import re
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


_KANA_RE = re.compile(r"[\u3040-\u30ff]")
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_HANGUL_RE = re.compile(r"[\uac00-\ud7af]")
_THAI_RE = re.compile(r"[\u0e00-\u0e7f]")


def guess_query_language(query: str, corpus_languages: Iterable[str]) -> str | None:
    """The most likely language of a short query.

    Scripts that belong to one language decide at once (Han without kana is Chinese, kana Japanese, Hangul
    Korean, Thai Thai). Otherwise a confident guess among all languages stands, since a query may be in a
    language the corpus lacks; a weak one, typical of two or three words ('peer review' reads as Afrikaans),
    is replaced by the best guess among the corpus's languages and English.
    """
    for pattern, code in ((_KANA_RE, "ja"), (_HANGUL_RE, "ko"), (_THAI_RE, "th"), (_HAN_RE, "zh")):
        if pattern.search(query):
            return code
    if sum(1 for c in query if c.isalpha()) < 2:
        return None
    code, confidence = _identifier(None).classify(query[:2000])
    if confidence >= 0.5:
        return str(code)
    return detect_language(query, min_confidence=0.0, candidates={*corpus_languages, "en"}, min_letters=2)
