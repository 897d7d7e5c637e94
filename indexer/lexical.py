"""The lexical index: BM25 (bm25s) over language-aware tokens.

Words of space-separated scripts are lower-cased, stop words dropped and stemmed with the Snowball stemmer of
the text's language; Chinese is segmented with jieba; Japanese and Thai runs, which have neither spaces nor a
segmenter here, become overlapping character bigrams.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BM25_K1 = 0.9
BM25_B = 0.4

_SNOWBALL = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
    "en": "english", "es": "spanish", "eu": "basque", "fi": "finnish", "fr": "french", "hi": "hindi",
    "hu": "hungarian", "id": "indonesian", "it": "italian", "lt": "lithuanian", "nl": "dutch", "no": "norwegian",
    "pl": "polish", "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish",
    "ta": "tamil", "tr": "turkish",
}  # fmt: skip
_STOPWORD_LISTS = {
    "en": "STOPWORDS_EN_PLUS", "de": "STOPWORDS_GERMAN", "es": "STOPWORDS_SPANISH", "fr": "STOPWORDS_FRENCH",
    "it": "STOPWORDS_ITALIAN", "nl": "STOPWORDS_DUTCH", "pt": "STOPWORDS_PORTUGUESE", "ru": "STOPWORDS_RUSSIAN",
    "sv": "STOPWORDS_SWEDISH", "da": "STOPWORDS_DANISH", "no": "STOPWORDS_NORWEGIAN", "tr": "STOPWORDS_TURKISH",
}  # fmt: skip
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA = r"\u3040-\u30ff"
_THAI = r"\u0e00-\u0e7f"
_RUN_RE = re.compile(f"([{_HAN}]+)|([{_KANA}{_HAN}]*[{_KANA}][{_KANA}{_HAN}]*)|([{_THAI}]+)|(\\w+)", re.UNICODE)


@functools.cache
def _stemmer(language: str) -> Any:
    import Stemmer

    return Stemmer.Stemmer(_SNOWBALL[language])


@functools.cache
def _stopwords(language: str) -> frozenset[str]:
    import bm25s.stopwords

    name = _STOPWORD_LISTS.get(language)
    return frozenset(getattr(bm25s.stopwords, name)) if name else frozenset()


@functools.cache
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def _bigrams(run: str, start: int) -> list[tuple[int, int, str]]:
    if len(run) < 2:
        return [(start, start + len(run), run)]
    return [(start + i, start + i + 2, run[i : i + 2]) for i in range(len(run) - 1)]


def term_spans(text: str, language: str | None = None) -> list[tuple[int, int, str]]:
    """Index terms of `text` with their character spans in it: (start, end, term).

    `language` (ISO 639-1) picks the stemmer and stop words for words of spaced scripts.
    """
    stop = _stopwords(language) if language else frozenset()
    stemmer = _stemmer(language) if language in _SNOWBALL else None
    spans: list[tuple[int, int, str]] = []
    for match in _RUN_RE.finditer(text):
        run = unicodedata.normalize("NFKC", match.group()).lower()
        start = match.start()
        if match.group(1):
            pieces = _jieba().tokenize(match.group(1), mode="search")
            spans.extend((start + b, start + e, w) for w, b, e in pieces if w.strip())
        elif match.group(2) or match.group(3):
            spans.extend(_bigrams(run, start) if len(run) == len(match.group()) else [(start, match.end(), run)])
        elif (run not in stop and not run.isdigit()) or (len(run) <= 4 and run.isdigit()):
            spans.append((start, match.end(), stemmer.stemWord(run) if stemmer else run))
    return spans


def tokenize(text: str, language: str | None = None) -> list[str]:
    """Index terms of `text` (see term_spans), in order."""
    return [term for _, _, term in term_spans(text, language)]


class LexicalIndex:
    """BM25 over passages; rows are the same as the dense index's."""

    def __init__(self, retriever: Any, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, passages: Sequence[tuple[str, str | None]]) -> LexicalIndex:
        """Index (text, language) pairs in row order."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        corpus = [tokenize(text, language) or ["\u2205"] for text, language in passages]
        if corpus:
            retriever.index(corpus, show_progress=False)
        return cls(retriever, len(corpus))

    def save(self, folder: Path) -> None:
        """Write the index files into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.size:
            self._retriever.save(str(folder), show_progress=False)
        (folder / "size").write_text(str(self.size))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Open saved index files, memory-mapped."""
        import bm25s

        size = int((folder / "size").read_text())
        retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False) if size else None
        return cls(retriever, size)

    def search(
        self, query: str, language: str | None, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) for a query, only rows with a positive score (and in `allowed`, if given)."""
        scores, rows, _ = self.search_with_coverage(query, language, k, allowed)
        return scores, rows

    def search_with_coverage(
        self, query: str, language: str | None, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k (scores, rows, coverage): coverage is the share of the query's IDF mass each row contains.

        Query terms the corpus lacks count with the highest IDF, so a Chinese question over English passages,
        or a match on one common word, covers little of the query however the matched rows rank.
        """
        empty = np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
        terms = list(dict.fromkeys(tokenize(query, language)))
        if not terms or not self.size or self._retriever is None:
            return empty
        vocabulary = self._retriever.vocab_dict
        known = [t for t in terms if t in vocabulary]
        if not known:
            return empty
        mask = None if allowed is None else allowed.astype(np.float32)
        found, scores = self._retriever.retrieve(
            [known], k=min(k, self.size), show_progress=False, n_threads=1, weight_mask=mask
        )
        keep = scores[0] > 0
        rows = found[0][keep].astype(np.int64)
        return scores[0][keep].astype(np.float32), rows, self._coverage(terms, rows)

    def _coverage(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        matrix = self._retriever.scores
        indptr, indices, total = matrix["indptr"], matrix["indices"], float(self.size)
        vocabulary = self._retriever.vocab_dict
        matched = np.zeros(len(rows), dtype=np.float64)
        mass = 0.0
        for term in terms:
            term_id = vocabulary.get(term)
            frequency = 0 if term_id is None else int(indptr[term_id + 1] - indptr[term_id])
            idf = float(np.log(1.0 + (total - frequency + 0.5) / (frequency + 0.5)))
            mass += idf
            if frequency:
                matched += idf * np.isin(rows, indices[indptr[term_id] : indptr[term_id + 1]])
        return (matched / mass).astype(np.float32) if mass else np.zeros(len(rows), np.float32)
