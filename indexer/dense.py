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


def search_dense(
    index: Any, query_vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, rows) per query; rows are -1 where fewer than k vectors qualify.

    `allowed` (a boolean mask over rows) restricts the search inside FAISS, so a filter that matches few
    passages still gets its k best, not what is left of an unfiltered top k.
    """
    import faiss

    n = len(query_vectors)
    if index.ntotal == 0 or (allowed is not None and not allowed.any()):
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    k = max(1, min(k, int(index.ntotal)))
    queries = np.ascontiguousarray(query_vectors, dtype=np.float32)
    if allowed is None:
        scores, rows = index.search(queries, k)
        return scores, rows
    bitmap = np.packbits(allowed.astype(bool), bitorder="little")
    selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
    params = faiss.SearchParameters()
    params.sel = selector
    scores, rows = index.search(queries, k, params=params)
    return scores, rows
