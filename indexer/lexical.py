"""The lexical index: BM25 over language-aware tokens (scored at query time, see `indexer.bm25`).

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

from indexer.bm25 import Postings, Statistics, score_terms, top_k

logger = logging.getLogger(__name__)

BM25_K1 = 0.9
BM25_B = 0.4
LEXICAL_ENGINE = "bm25-postings"  # the manifest's name for it (formats 1-2: "bm25s")

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
    """BM25 over passages; rows are the same as the dense index's.

    Scores are computed at query time from postings (see `indexer.bm25`), with N, document frequencies and the
    average length taken over the rows the caller may see (`visible`), never over hidden or deleted ones.
    """

    def __init__(self, postings: Postings | None, size: int) -> None:
        self._postings = postings
        self.size = size

    @property
    def precomputed(self) -> bool:
        """Whether this is an older generation's bm25s index, whose length normalisation counts every row."""
        return self._postings is not None and self._postings.precomputed

    @classmethod
    def build(cls, passages: Sequence[tuple[str, str | None]]) -> LexicalIndex:
        """Index (text, language) pairs in row order (a row without terms holds one placeholder, as bm25s did)."""
        corpus = [tokenize(text, language) or ["\u2205"] for text, language in passages]
        return cls(Postings.of(corpus) if corpus else None, len(corpus))

    def save(self, folder: Path) -> None:
        """Write the index files into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        if self._postings is not None:
            self._postings.save(folder)
        (folder / "size").write_text(str(self.size))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Open saved index files, memory-mapped (format 3 postings, or an older generation's bm25s index)."""
        size = int((folder / "size").read_text())
        index = cls(Postings.load(folder, size) if size else None, size)
        if index.precomputed:
            logger.warning(
                "%s holds bm25s's precomputed scores (generation format 1-2): IDF is taken from the rows each caller "
                "may see, but length normalisation still counts every row until the next build rewrites it",
                folder,
            )
        return index

    def search(
        self,
        query: str,
        language: str | None,
        k: int,
        allowed: np.ndarray | None = None,
        visible: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) for a query, only rows with a positive score (and in `allowed`, if given)."""
        scores, rows, _ = self.search_with_coverage(query, language, k, allowed, visible)
        return scores, rows

    def search_with_coverage(
        self,
        query: str,
        language: str | None,
        k: int,
        allowed: np.ndarray | None = None,
        visible: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k (scores, rows, coverage): coverage is the share of the query's IDF mass each row contains.

        Statistics come from the `visible` rows (a boolean mask; None: every row), the rows a caller may see,
        whatever else `allowed` (their subset a search may return) narrows: a term only hidden rows hold counts
        as one the corpus lacks, and the ranking is bm25s's over the visible rows alone. Query terms the
        corpus lacks count with the highest IDF, so a Chinese question over English passages, or a match on one
        common word, covers little of the query however the matched rows rank.
        """
        empty = np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
        terms = list(dict.fromkeys(tokenize(query, language)))
        if not terms or self._postings is None:
            return empty
        statistics = self._postings.statistics(visible)
        if not statistics.rows:
            return empty
        rows, scores = score_terms(self._postings, terms, statistics, BM25_K1, BM25_B)
        if allowed is not None:
            keep = allowed[rows]
            rows, scores = rows[keep], scores[keep]
        # The best are picked among the visible rows alone (an array of their scores in row order), so where
        # hidden rows lie cannot reorder ties.
        shown = None if statistics.visible is None else np.flatnonzero(statistics.visible)
        candidates = np.zeros(statistics.rows, dtype=np.float32)
        candidates[rows if shown is None else np.searchsorted(shown, rows)] = scores
        best = top_k(candidates, k)
        best = best[candidates[best] > 0]
        rows = best if shown is None else shown[best]
        return candidates[best], rows.astype(np.int64), self._coverage(terms, rows, statistics)

    def _coverage(self, terms: list[str], rows: np.ndarray, statistics: Statistics) -> np.ndarray:
        assert self._postings is not None
        matched = np.zeros(len(rows), dtype=np.float64)
        mass = 0.0
        for term in terms:
            holding, _ = self._postings.column(term, statistics)
            frequency = len(holding)
            # numpy's log, as this weight has always used (math.log, bm25s's, may differ in the last bit).
            weight = float(np.log(1.0 + (statistics.rows - frequency + 0.5) / (frequency + 0.5)))
            mass += weight
            if len(holding):
                matched += weight * np.isin(rows, holding)
        return (matched / mass).astype(np.float32) if mass else np.zeros(len(rows), np.float32)
