"""A cache of passage vectors keyed by (model, sha256 of the embedded text): rebuilds embed only what changed."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexer.faults import fault_point
from indexer.permissions import create_private_file


def text_key(text: str) -> str:
    """The cache key of an embedded text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors stored as float32 blobs; losing this file costs time, never correctness."""

    def __init__(self, path: Path, model_key: str, dimension: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(path)
        self.model_key = model_key
        self.dimension = dimension
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, text_sha TEXT NOT NULL, "
            "vector BLOB NOT NULL, PRIMARY KEY (model, text_sha))"
        )

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys`."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT text_sha, vector FROM vectors WHERE model = ? AND text_sha IN ({marks})",
                [self.model_key, *chunk],
            )
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape == (self.dimension,):
                    found[key] = vector
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors in one transaction."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR REPLACE INTO vectors (model, text_sha, vector) VALUES (?, ?, ?)",
            [(self.model_key, key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()],
        )
        self._db.execute("COMMIT")

    def embed(
        self,
        texts: Sequence[str],
        embed_batch: Callable[[Sequence[str]], np.ndarray],
        batch_size: int = 256,
        on_progress: Callable[[int], None] | None = None,
        refresh: bool = False,
    ) -> tuple[np.ndarray, set[str]]:
        """Vectors for all texts, computing only the missing ones (all of them with `refresh`);
        returns (vectors, the `text_key`s of the texts embedded now).

        Each batch of `batch_size` is committed as soon as it is embedded: a build killed mid-way keeps the
        batches done, and the next build embeds only the rest."""
        keys = [text_key(t) for t in texts]
        cached = {} if refresh else self.get_many(list(dict.fromkeys(keys)))
        missing = list(dict.fromkeys(k for k in keys if k not in cached))
        by_key = {k: t for k, t in zip(keys, texts, strict=True)}
        if on_progress is not None and len(texts) - len(missing):
            on_progress(sum(1 for k in keys if k in cached))
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            vectors = embed_batch([by_key[k] for k in batch])
            fresh = dict(zip(batch, vectors, strict=True))
            self.put_many(fresh)
            fault_point("embed")
            cached.update(fresh)
            if on_progress is not None:
                on_progress(sum(1 for k in keys if k in fresh))
        matrix = np.stack([cached[k] for k in keys]) if keys else np.zeros((0, self.dimension), np.float32)
        return np.ascontiguousarray(matrix, dtype=np.float32), set(missing)
