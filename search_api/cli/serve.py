"""`moocsearch serve` (the bundled corpus is indexed on first run) and `moocsearch eval`."""

from __future__ import annotations

import json
import re
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from indexer.embedding import UnknownModelError
from indexer.generation_reader import open_published
from indexer.metadata import MetadataError, read_manifest
from indexer.pipeline import BuildAlreadyRunning, Indexer
from search_api.cli.build import print_build_report
from search_api.cli.common import JsonOpt, app, emit, fail, settings
from search_api.cli.documents import ingest_entries
from search_api.factory import load_query_models
from search_api.logging_setup import configure_logging
from search_api.operations.evaluation import DatasetError, evaluate, load_beir
from search_api.operations.indexers import open_indexer
from search_api.ranking.reranking import RerankerError
from search_api.settings import ApiSettings


def bootstrap(config: ApiSettings, indexer: Indexer) -> None:
    """On first run: ingest the bundled corpus into an empty catalog, then build and publish."""
    if not indexer.catalog.list_documents(limit=1):
        manifest = config.corpus_dir / "manifest.json"
        typer.echo(f"First run: ingesting the bundled corpus from {manifest}")
        try:
            entries = read_manifest(manifest)
        except MetadataError as exc:
            fail(str(exc))
        ingest_entries(indexer, entries, as_json=False)
    typer.echo("Building the index (the first build embeds every passage; later builds reuse the cache)")
    print_build_report(indexer.build(progress=True))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    build_if_missing: Annotated[bool, typer.Option(help="Index the bundled corpus when nothing is published.")] = True,
) -> None:
    """Serve the search API and web page; the first run indexes the bundled corpus."""
    from search_api.app import create_app
    from search_api.server import STARTUP_FAILURE, run_server

    config = settings()
    config = config.model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    configure_logging(config.log_format, config.log_level)
    try:
        models = load_query_models(config)  # once: the first-run build's quality gate and the service share them
    except (UnknownModelError, RerankerError) as exc:
        fail(str(exc), code=2)
    reader = open_published(config.data_dir)
    if reader is None and build_if_missing:
        with closing(open_indexer(config, models)) as indexer:
            try:
                bootstrap(config, indexer)
            except BuildAlreadyRunning as exc:
                fail(str(exc), code=3)
    elif reader is not None:
        reader.close()
    typer.echo(f"Serving on http://{config.host}:{config.port}  (API docs at /docs)")
    # Our handlers (JSON or text, with request ids) take uvicorn's logs too; its access log is replaced by ours.
    # The connection limits (header deadline, keep-alive, concurrency, backlog) are in `server_config`.
    if not run_server(create_app(config, models, schedule_builds=True), config):
        raise typer.Exit(STARTUP_FAILURE)  # e.g. the port is taken: uvicorn logged why; the exit `uvicorn.run` gives


@app.command("eval")
def eval_command(
    dataset: Annotated[Path, typer.Argument(help="A BEIR-format folder (corpus, queries, qrels).")],
    queries: Annotated[str | None, typer.Option(help="Query language, for queries.<lang>.jsonl.")] = None,
    corpus: Annotated[str | None, typer.Option(help="Corpus language(s), comma-separated: pooled.")] = None,
    split: Annotated[str, typer.Option(help="Qrels split.")] = "test",
    max_queries: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N queries.")] = None,
    output: Annotated[Path | None, typer.Option(help="JSON file to write (default eval-results/<name>.json).")] = None,
    cache_dir: Annotated[
        Path, typer.Option(help="Embedding cache kept between runs (same texts, same model: no re-embedding).")
    ] = Path("eval-results/cache"),
    as_json: JsonOpt = False,
) -> None:
    """Index a BEIR dataset with the production pipeline and report nDCG@10, Recall@100 and MRR@10."""
    config = settings().model_copy(update={"cache_dir": cache_dir})
    languages = [c.strip() for c in corpus.split(",") if c.strip()] if corpus else []
    try:
        data = load_beir(dataset, split=split, query_language=queries, corpus_languages=languages)
        models = load_query_models(config)  # the reranker too: eval scores the ranking `serve` answers with
    except (DatasetError, UnknownModelError, RerankerError, OSError, ValueError) as exc:
        fail(str(exc), code=2)
    total = min(len(data.qrels), max_queries or len(data.qrels))
    with tqdm(total=total, desc="queries", unit="q", disable=as_json) as bar:
        result = evaluate(
            data, config, models, max_queries=max_queries, progress=not as_json, on_query=lambda *_: bar.update(1)
        )
    output = output or Path("eval-results") / (re.sub(r"[^\w.+-]+", "_", data.name) + ".json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if as_json:
        emit(result)
        return
    typer.echo(
        f"{result['dataset']} with {result['model']}: {result['documents']} documents, "
        f"{result['passages']} passages, {result['queries']} queries"
    )
    typer.echo(
        f"  nDCG@10 {result['ndcg@10']:.4f}  Recall@100 {result['recall@100']:.4f}  MRR@10 {result['mrr@10']:.4f}"
    )
    typer.echo(f"  indexing {result['index_seconds']}s, {result['query_ms_mean']} ms/query; written to {output}")
