"""The dense index: FAISS over passage vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

EXACT_INNER_PRODUCT = "flat-ip"


def build_dense_index(vectors: np.ndarray) -> Any:
    """An exact inner-product index. Vectors are L2-normalised by the embedder, so inner product = cosine."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def write_dense_index(index: Any, path: Path) -> None:
    """Write the index file."""
    import faiss

    faiss.write_index(index, str(path))


def read_dense_index(path: Path) -> Any:
    """Open an index file memory-mapped and read-only, so replicas share the page cache."""
    import faiss

    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)


def search_dense(index: Any, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, rows) per query; rows are -1 where the index has fewer than k vectors."""
    k = max(1, min(k, int(index.ntotal))) if index.ntotal else 1
    if index.ntotal == 0:
        n = len(query_vectors)
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    scores, rows = index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)
    return scores, rows
