"""The approximate dense index at scale: build time, memory, query latency and recall@10 against exact search.

    .venv/bin/python scripts/benchmark_ann.py [--vectors 1000000] [--threads 2]

Real passage embeddings cannot be made a million at a time here, so the vectors are derived from real ones: the
MiniLM passage vectors of the evaluation embedding cache (`eval-results/cache/embeddings.sqlite3`, filled by
`moocsearch eval`). A held-out share of those real vectors are the queries; every index vector is a random
mix of a real vector and one of its 20 nearest real neighbours, plus Gaussian noise shaped like the real
vectors' covariance, normalised. No query is, or was derived from, an index vector.

The index is built by the production code (`indexer.dense.build_index`, which also measures recall on the
index's own vectors and tunes nprobe), written, read back memory-mapped and searched with `search_dense`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from indexer.dense import AnnOptions, build_index, read_dense_index, recall_at_k, search_dense, write_dense_index

MINILM = "sentence-transformers/all-MiniLM-L6-v2@0.1.0"


def load_real_vectors(cache: Path, model_key: str) -> np.ndarray:
    """Every cached vector of one model, read-only."""
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        blobs = [blob for (blob,) in db.execute("SELECT vector FROM vectors WHERE model = ?", [model_key])]
    finally:
        db.close()
    if not blobs:
        raise SystemExit(f"{cache} holds no vectors of {model_key}; run `moocsearch eval` first")
    return np.stack([np.frombuffer(b, dtype=np.float32) for b in blobs])


def derive_vectors(bases: np.ndarray, count: int, noise: float, seed: int) -> np.ndarray:
    """`count` unit vectors clustered like `bases`: (1-t) base + t neighbour + noise, t ~ U(0, 0.5)."""
    import faiss

    rng = np.random.default_rng(seed)
    _, neighbours = faiss.knn(bases, bases, 21, metric=faiss.METRIC_INNER_PRODUCT)
    centred = bases - bases.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    shape = (singular / np.sqrt(len(bases))).astype(np.float32)[:, None] * axes  # rows: principal axes x std
    out = np.empty((count, bases.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        size = min(100_000, count - start)
        base = rng.integers(len(bases), size=size)
        partner = neighbours[base, rng.integers(1, 21, size=size)]
        t = rng.uniform(0, 0.5, size=(size, 1)).astype(np.float32)
        gaussian = rng.standard_normal((size, len(shape)), dtype=np.float32) @ shape
        chunk = (1 - t) * bases[base] + t * bases[partner] + noise * gaussian
        out[start : start + size] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def rss_anon_mib() -> float:
    """Anonymous (not file-backed) resident memory of this process: what a memory-mapped index does not add."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def single_query_latency(index: Any, queries: np.ndarray, threads: int, allowed: np.ndarray | None = None) -> dict:
    """p50 / p95 milliseconds of one query at a time through `search_dense`, on `threads` threads."""
    import faiss

    faiss.omp_set_num_threads(threads)
    times = []
    for query in queries:
        started = time.perf_counter()
        search_dense(index, query[None, :], 10, allowed)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def exact_single_query_latency(vectors: np.ndarray, queries: np.ndarray, threads: int) -> dict:
    """p50 milliseconds of one exact (brute-force) query at a time over the same vectors."""
    import faiss

    faiss.omp_set_num_threads(threads)
    times = []
    for query in queries:
        started = time.perf_counter()
        faiss.knn(query[None, :], vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 2)}


def filtered_recall(index: Any, vectors: np.ndarray, queries: np.ndarray, share: float, seed: int) -> dict:
    """Recall@10 of a search restricted to a random `share` of the rows, against exact search over those rows."""
    import faiss

    allowed = np.random.default_rng(seed).random(len(vectors)) < share
    subset = np.flatnonzero(allowed)
    _, exact = faiss.knn(queries, vectors[subset], 10, metric=faiss.METRIC_INNER_PRODUCT)
    _, found = search_dense(index, queries, 10, allowed)
    outside = int(np.count_nonzero(~allowed[found[found >= 0]]))
    return {
        "share": share,
        "allowed_rows": len(subset),
        "recall_at_10": round(recall_at_k(found, subset[exact]), 4),
        "rows_outside_filter": outside,
        "latency_1_thread": single_query_latency(index, queries[:100], 1, allowed),
    }


def main() -> None:
    """Derive the vectors, build, read back and measure; print a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000, help="Index size.")
    parser.add_argument("--queries", type=int, default=1000, help="Held-out real vectors used as queries.")
    parser.add_argument("--noise", type=float, default=0.5, help="Noise scale, in units of the real covariance.")
    parser.add_argument("--threads", type=int, default=2, help="Threads for building and batch searches.")
    parser.add_argument("--cache", type=Path, default=Path("eval-results/cache/embeddings.sqlite3"))
    parser.add_argument("--model-key", default=MINILM, help="Cache key (model@version) of the real vectors.")
    parser.add_argument("--nprobe", type=int, default=AnnOptions.nprobe, help="First nprobe the build tries.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    report: dict = {"vectors": args.vectors, "threads": args.threads, "noise": args.noise}
    real = load_real_vectors(args.cache, args.model_key)
    order = np.random.default_rng(args.seed).permutation(len(real))
    queries, bases = real[order[: args.queries]], real[order[args.queries :]]
    report["real_vectors"] = {"model": args.model_key, "bases": len(bases), "queries": len(queries)}

    started = time.perf_counter()
    vectors = derive_vectors(bases, args.vectors, args.noise, args.seed)
    report["derive_seconds"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    exact_scores, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    report["exact_batch_seconds"] = round(time.perf_counter() - started, 2)
    real_scores, _ = faiss.knn(queries, bases, 10, metric=faiss.METRIC_INNER_PRODUCT)
    report["mean_cosine_top1_top10"] = {
        "queries_vs_real_bases": [round(float(real_scores[:, 0].mean()), 3), round(float(real_scores[:, 9].mean()), 3)],
        "queries_vs_derived": [round(float(exact_scores[:, 0].mean()), 3), round(float(exact_scores[:, 9].mean()), 3)],
    }
    print(f"progress: {json.dumps(report)}", file=sys.stderr, flush=True)

    started, cpu_started = time.perf_counter(), time.process_time()
    built = build_index(vectors, AnnOptions(threshold=0, nprobe=args.nprobe))
    report["build_seconds"] = round(time.perf_counter() - started, 1)
    report["build_cpu_seconds"] = round(time.process_time() - cpu_started, 1)  # both threads; independent of load
    report["index"] = built.description
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report["vectors_mib"] = round(vectors.nbytes / 2**20)
    print(f"progress: {json.dumps(report)}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="moocsearch-ann-") as tmp:
        path = Path(tmp) / "dense.faiss"
        write_dense_index(built.index, path)
        del built
        report["index_file_mib"] = round(path.stat().st_size / 2**20)
        anon_before = rss_anon_mib()
        index = read_dense_index(path)
        report["open_anon_rss_mib"] = round(rss_anon_mib() - anon_before)
        _, found = search_dense(index, queries, 10)
        report["held_out_recall_at_10"] = round(recall_at_k(found, exact), 4)
        report["latency_1_thread"] = single_query_latency(index, queries[:300], 1)
        report["latency_2_threads"] = single_query_latency(index, queries[:300], 2)
        report["exact_latency_1_thread"] = exact_single_query_latency(vectors, queries[:30], 1)
        report["exact_latency_2_threads"] = exact_single_query_latency(vectors, queries[:30], 2)
        report["nprobe_sweep"] = sweep(index, queries, exact)
        report["filtered"] = [filtered_recall(index, vectors, queries, share, args.seed) for share in (0.01, 0.0005)]
        del index
    report["script_cpu_seconds"] = round(time.process_time(), 1)
    print(json.dumps(report, indent=2))


def sweep(index: Any, queries: np.ndarray, exact: np.ndarray) -> list[dict]:
    """Held-out recall@10 and single-query latency (1 thread) at other nprobe values than the tuned one."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    tuned, rows = ivf.nprobe, []
    for nprobe in sorted({max(1, tuned // 2), tuned, tuned * 2, tuned * 4}):
        ivf.nprobe = nprobe
        _, found = search_dense(index, queries, 10)
        rows.append({"nprobe": nprobe, "recall_at_10": round(recall_at_k(found, exact), 4)})
        rows[-1].update(single_query_latency(index, queries[:100], 1))
    ivf.nprobe = tuned
    return rows


if __name__ == "__main__":
    main()
