"""Retrieval evaluation on BEIR-format data through the production pipeline (ingest, build, search).

A BEIR folder holds `corpus.jsonl` (or `corpus.<lang>.jsonl`), `queries.jsonl` (or `queries.<lang>.jsonl`) and
`qrels/<split>.tsv`. Corpora in several languages are pooled: a document id is relevant in every language.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.embedding import Embedder
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.factory import QueryModels, load_query_models, open_searcher
from search_api.operations.indexers import open_indexer
from search_api.settings import ApiSettings


class DatasetError(ValueError):
    """A folder that is not BEIR-format data, or a language it does not have."""


@dataclass(frozen=True)
class BeirDocument:
    """One corpus entry; `doc_id` is the id the qrels use."""

    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class BeirData:
    """A corpus, its queries and the judgements of the chosen split."""

    name: str
    corpus: list[BeirDocument]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _files(folder: Path, kind: str, languages: Sequence[str]) -> list[Path]:
    if languages:
        return [folder / f"{kind}.{lang}.jsonl" for lang in languages]
    plain = folder / f"{kind}.jsonl"
    if plain.is_file():
        return [plain]
    found = sorted(folder.glob(f"{kind}.*.jsonl"))
    raise DatasetError(
        f"{folder} has no {kind}.jsonl; choose languages among: " + ", ".join(p.name.split(".")[1] for p in found)
    )


def load_beir(
    folder: Path, split: str = "test", query_language: str | None = None, corpus_languages: Sequence[str] = ()
) -> BeirData:
    """Read a BEIR folder; with languages, `queries.<lang>.jsonl` and the pooled `corpus.<lang>.jsonl` files."""
    pooled = len(corpus_languages) > 1
    corpus = [
        BeirDocument(
            f"{path.name.split('.')[1]}-{row['_id']}" if pooled else str(row["_id"]),
            str(row.get("title") or ""),
            str(row.get("text") or ""),
        )
        for path in _files(folder, "corpus", corpus_languages)
        for row in _read_jsonl(path)
    ]
    queries = {
        str(row["_id"]): str(row["text"])
        for path in _files(folder, "queries", [query_language] if query_language else [])
        for row in _read_jsonl(path)
    }
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise DatasetError(f"{qrels_path} does not exist")
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in qrels_path.read_text(encoding="utf-8").splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        if int(score) > 0 and query_id in queries:
            # In a pooled corpus the same paragraph in every language is relevant.
            for relevant_id in [f"{lang}-{doc_id}" for lang in corpus_languages] if pooled else [doc_id]:
                qrels[query_id][relevant_id] = int(score)
    langs = f"{query_language or ''}->{'+'.join(corpus_languages)}" if corpus_languages else ""
    return BeirData(f"{folder.name}{':' + langs if langs else ''}", corpus, queries, dict(qrels))


def ndcg_at(ranking: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """nDCG@k with linear gains, as BEIR (pytrec_eval) computes it."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    return len(set(ranking[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def mrr_at(ranking: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top k."""
    return next((1.0 / (i + 1) for i, doc in enumerate(ranking[:k]) if doc in relevant), 0.0)


def score_rankings(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries."""
    judged = [q for q in qrels if q in rankings]
    if not judged:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    return {
        "ndcg@10": round(sum(ndcg_at(rankings[q], qrels[q], 10) for q in judged) / len(judged), 4),
        "recall@100": round(sum(recall_at(rankings[q], qrels[q], 100) for q in judged) / len(judged), 4),
        "mrr@10": round(sum(mrr_at(rankings[q], qrels[q], 10) for q in judged) / len(judged), 4),
    }


def ingest_document(indexer: Indexer, doc: BeirDocument) -> str:
    """Ingest one corpus entry as a text document (title, blank line, text); returns its catalog id."""
    body = f"{doc.title}\n\n{doc.text}" if doc.title else doc.text
    metadata = DocumentMetadata(title=doc.title[:500] or None)
    return indexer.ingest(body.encode("utf-8"), f"{doc.doc_id}.txt", metadata).document.id


def ingest_corpus(indexer: Indexer, data: BeirData) -> dict[str, list[str]]:
    """Ingest every corpus entry; returns catalog id -> the BEIR ids with those bytes."""
    beir_ids: dict[str, list[str]] = defaultdict(list)
    for doc in data.corpus:
        beir_ids[ingest_document(indexer, doc)].append(doc.doc_id)
    return beir_ids


def evaluate(
    data: BeirData,
    settings: ApiSettings,
    models: QueryModels | Embedder | Sequence[Embedder],
    max_queries: int | None = None,
    progress: bool = False,
    on_query: Callable[[str, list[str]], None] | None = None,
) -> dict[str, Any]:
    """Index `data` into a fresh data directory and score every judged query's per-document ranking.

    `models` are the query models (encoders given alone get the configured reranker, as `serve` would);
    `on_query` hears each query's id and ranking (BEIR ids, best first) as soon as it is ranked."""
    if not isinstance(models, QueryModels):
        encoders = list(models) if isinstance(models, Sequence) else [models]
        models = load_query_models(settings, encoders)  # before indexing: a bad reranker fails in seconds
    with tempfile.TemporaryDirectory(prefix="moocsearch-eval-") as tmp:
        scratch = settings.model_copy(update={"data_dir": Path(tmp)})
        with closing(open_indexer(scratch, models, gate=False)) as indexer:
            started = time.perf_counter()
            beir_ids = ingest_corpus(indexer, data)
            indexer.build(progress=progress)
            index_seconds = time.perf_counter() - started
        reader = open_published(Path(tmp))
        assert reader is not None
        # The same searcher as `serve` with these settings, reranker included.
        searcher = open_searcher(reader, settings, models)
        query_ids = [q for q in data.qrels if q in data.queries][:max_queries]
        rankings: dict[str, list[str]] = {}
        started = time.perf_counter()
        for query_id in query_ids:
            result = searcher.search(data.queries[query_id], k=100, per_document=True)
            ranking = [b for hit in result.hits for b in beir_ids[hit.passage.document_id]]
            rankings[query_id] = list(dict.fromkeys(ranking))
            if on_query is not None:
                on_query(query_id, rankings[query_id])
        query_seconds = time.perf_counter() - started
        passages = reader.manifest.passage_count
        reader.close()
    return {
        "dataset": data.name,
        "model": "+".join(m.model_id for m in models.encoders),
        "weights": {"dense": settings.dense_weight, "lexical": settings.lexical_weight},
        "documents": len(data.corpus),
        "passages": passages,
        "queries": len(query_ids),
        **score_rankings(rankings, data.qrels),
        "index_seconds": round(index_seconds, 1),
        "query_ms_mean": round(1000 * query_seconds / max(len(query_ids), 1), 2),
    }
