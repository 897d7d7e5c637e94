"""The dense index: FAISS over passage vectors.

Up to `AnnOptions.threshold` vectors the index is exact (flat inner product). Above it, an inverted-file
index with 8-bit scalar quantisation (IVF-SQ8): a quarter of the memory, and it builds over a million
vectors with several times less CPU than HNSW (docs/BENCHMARKS.md). Its recall@10 against exact search is
measured at build time and recorded in the manifest; `nprobe` is raised until recall reaches the floor, and
the build falls back to exact search if it never does. Both kinds are read memory-mapped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

EXACT_INNER_PRODUCT = "flat-ip"
IVF_SQ8 = "ivf-sq8"
RECALL_K = 10
# Guards building an IVF index's id map, which readers share between threads (see `stored_vector`).
_DIRECT_MAP_LOCK = threading.Lock()


@dataclass(frozen=True)
class AnnOptions:
    """When and how a dense index is approximate. Defaults suit real use (exact search up to 200k vectors)."""

    threshold: int = 200_000
    nlist: int = 0
    nprobe: int = 16
    recall_floor: float = 0.95
    recall_queries: int = 1000
    seed: int = 1234


@dataclass(frozen=True)
class BuiltIndex:
    """A FAISS index and what the manifest says about it: type, parameters, measured recall."""

    index: Any
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def index_type(self) -> str:
        """`flat-ip` or `ivf-sq8`."""
        return str(self.description["type"])


def build_dense_index(vectors: np.ndarray) -> Any:
    """An exact inner-product index. Vectors are L2-normalised by the embedder, so inner product = cosine."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def build_index(vectors: np.ndarray, options: AnnOptions) -> BuiltIndex:
    """The index `options` call for at this size: exact up to the threshold, else IVF-SQ8 with measured recall
    (or exact after all, when no `nprobe` reaches the recall floor)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) <= options.threshold:
        return BuiltIndex(build_dense_index(vectors), {"type": EXACT_INNER_PRODUCT})
    started = time.perf_counter()
    nlist = options.nlist or default_nlist(len(vectors))
    index = train_ivf_sq8(vectors, nlist, options.seed)
    index.add(vectors)
    built_seconds = time.perf_counter() - started
    rows, exact_rows = self_query_ground_truth(vectors, options.recall_queries, options.seed)
    nprobe, recall = _tune_nprobe(index, vectors[rows], rows, exact_rows, options)
    description: dict[str, Any] = {
        "type": IVF_SQ8,
        "nlist": nlist,
        "nprobe": nprobe,
        f"recall_at_{RECALL_K}": round(recall, 4),
        "recall_queries": len(rows),
        "build_seconds": round(built_seconds, 1),
    }
    if recall < options.recall_floor:
        logger.warning(
            "IVF-SQ8 recall@%d is %.3f at nprobe %d, below the floor %.2f: using exact search",
            RECALL_K,
            recall,
            nprobe,
            options.recall_floor,
        )
        return BuiltIndex(build_dense_index(vectors), {"type": EXACT_INNER_PRODUCT, "rejected": description})
    index.nprobe = nprobe  # stored in the index file: readers search with it
    logger.info(
        "IVF-SQ8 over %d vectors: nlist %d, nprobe %d, recall@%d %.3f", len(vectors), nlist, nprobe, RECALL_K, recall
    )
    return BuiltIndex(index, description)


def default_nlist(n: int) -> int:
    """Inverted lists for `n` vectors: about 2 sqrt(n) (a million vectors: 2,000 lists of 500), with at least 39
    vectors per list to train on. Fewer, longer lists than FAISS's usual 4-16 sqrt(n) train several times faster
    on two cores; a query scans longer lists, which still takes about half a millisecond over a million vectors
    (docs/BENCHMARKS.md)."""
    return max(1, min(int(2 * math.sqrt(n)), n // 39))


def train_ivf_sq8(vectors: np.ndarray, nlist: int, seed: int) -> Any:
    """An empty IVF-SQ8 inner-product index trained on a sample of `vectors`: 64 per list and 10 k-means
    iterations bound the training time at any corpus size; the recall measured afterwards checks that the
    centroids are good enough."""
    import faiss

    dimension = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = seed
    index.cp.niter = 10
    sample = min(len(vectors), 64 * nlist)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), sample, replace=False))
    index.train(vectors[rows])
    return index


def self_query_ground_truth(vectors: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a sample of the index's own vectors, used as queries, and each one's exact top 10 among the
    other vectors."""
    import faiss

    rows = np.random.default_rng(seed + 1).choice(len(vectors), min(count, len(vectors)), replace=False)
    _, exact = faiss.knn(vectors[rows], vectors, RECALL_K + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return rows, _without_self(exact, rows)


def _without_self(found: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Drop each query's own row from its neighbours (it would inflate recall), keeping the first 10 others."""
    out = np.full((len(found), RECALL_K), -1, dtype=np.int64)
    for i, (neighbours, own) in enumerate(zip(found, rows, strict=True)):
        others = neighbours[neighbours != own][:RECALL_K]
        out[i, : len(others)] = others
    return out


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact neighbours that the approximate search also returned."""
    shares = []
    for found, truth in zip(approximate, exact, strict=True):
        truth_set = {int(r) for r in truth if r >= 0}
        if truth_set:
            shares.append(len(truth_set & {int(r) for r in found if r >= 0}) / len(truth_set))
    return float(np.mean(shares)) if shares else 1.0


def _tune_nprobe(
    index: Any, queries: np.ndarray, rows: np.ndarray, exact_rows: np.ndarray, options: AnnOptions
) -> tuple[int, float]:
    """The smallest `nprobe` from the configured one, doubling, whose recall@10 reaches the floor (or `nlist`,
    with its recall, when none does). `rows` are the queries' own rows, left out of both top 10s."""
    import faiss

    nprobe = min(options.nprobe, index.nlist)
    while True:
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        _, found = index.search(queries, RECALL_K + 1, params=params)
        recall = recall_at_k(_without_self(found, rows), exact_rows)
        if recall >= options.recall_floor or nprobe >= index.nlist:
            return nprobe, recall
        nprobe = min(nprobe * 2, index.nlist)


def write_dense_index(index: Any, path: Path) -> None:
    """Write the index file."""
    import faiss

    faiss.write_index(index, str(path))


def read_dense_index(path: Path) -> Any:
    """Open an index file memory-mapped and read-only (flat vectors and IVF lists alike), so replicas share
    the page cache and opening a large index costs no copy."""
    import faiss

    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def search_dense(
    index: Any, query_vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, rows) per query; rows are -1 where fewer than k vectors qualify.

    `allowed` (a boolean mask over rows) restricts the search inside FAISS, so a filter that matches few
    passages still gets its k best, not what is left of an unfiltered top k. An IVF index probes more lists
    the narrower the filter (as many allowed vectors as an unfiltered search sees), and every list when that
    still leaves a page short.
    """
    import faiss

    if allowed is not None and len(allowed) != index.ntotal:
        raise ValueError(f"a mask of {len(allowed)} rows for an index of {index.ntotal}")
    n = len(query_vectors)
    qualifying = int(index.ntotal) if allowed is None else int(np.count_nonzero(allowed))
    if qualifying == 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    k = max(1, min(k, int(index.ntotal)))
    queries = np.ascontiguousarray(query_vectors, dtype=np.float32)
    # The selector points into `bitmap`, which therefore lives until the searches below are done.
    bitmap = None if allowed is None else np.packbits(allowed.astype(bool), bitorder="little")
    selector = None if bitmap is None else faiss.IDSelectorBitmap(index.ntotal, faiss.swig_ptr(bitmap))
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        params = faiss.SearchParameters()
        params.sel = selector
        return index.search(queries, k, params=params)
    ivf_params = faiss.SearchParametersIVF()
    ivf_params.sel = selector
    ivf_params.nprobe = min(ivf.nlist, math.ceil(ivf.nprobe * index.ntotal / qualifying))
    scores, rows = index.search(queries, k, params=ivf_params)
    if ivf_params.nprobe < ivf.nlist and ((rows >= 0).sum(axis=1) < min(k, qualifying)).any():
        ivf_params.nprobe = ivf.nlist
        scores, rows = index.search(queries, k, params=ivf_params)
    return scores, rows


def stored_vector(index: Any, row: int) -> np.ndarray:
    """The vector `index` holds for `row`, as a (1, d) float32 query ("more like this" searches with it).

    Exact for a flat index; an IVF-SQ8 index gives back its 8-bit quantised copy of what was added.
    """
    import faiss

    try:
        vector = index.reconstruct(row)
    except RuntimeError:
        # IVF indexes reconstruct by id only once they keep a map from ids to their lists; built once, lazily.
        with _DIRECT_MAP_LOCK:
            ivf = faiss.extract_index_ivf(index)
            if ivf.direct_map.no():
                ivf.make_direct_map()
        vector = index.reconstruct(row)
    return np.asarray(vector, dtype=np.float32).reshape(1, -1)
