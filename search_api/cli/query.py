"""`moocsearch search`: ranked, cited passages in the terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from indexer.embedding import UnknownModelError, load_embedders
from indexer.generation_reader import open_published
from search_api.cli.common import JsonOpt, app, emit, fail, settings
from search_api.searcher import ModelMismatchError, Searcher


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in any language.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="Number of hits.")] = 5,
    group: Annotated[bool, typer.Option("--per-document", help="Best passage per document.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ranked passages with citations from the published generation."""
    config = settings()
    if not query.strip():
        fail("the query is empty", code=2)
    reader = open_published(config.data_dir)
    if reader is None:
        fail(f"nothing is published in {config.data_dir}; run `moocsearch index build` first")
    try:
        searcher = Searcher(
            reader,
            load_embedders(config.model, config.multilingual_model, config.embed_batch_size),
            config.dense_weight,
            config.lexical_weight,
        )
    except (ModelMismatchError, UnknownModelError) as exc:
        fail(str(exc), code=2)
    result = searcher.search(query, k=k, per_document=group)
    hits: list[dict[str, Any]] = [
        {
            "rank": h.rank,
            "score": round(h.score, 4),
            "title": h.passage.title,
            "member": h.passage.metadata.get("member"),
            "language": h.passage.language,
            "page": h.passage.page,
            "heading": list(h.passage.heading),
            "document_id": h.passage.document_id,
            "link": h.link,
            "text": h.passage.text,
        }
        for h in result.hits
    ]
    if as_json:
        emit({"query": query, "generation": result.generation_id, "hits": hits})
        return
    for h in hits:
        where = f"p. {h['page']}" if h["page"] else " > ".join(h["heading"]) or "-"
        typer.echo(
            f"{h['rank']:2}. [{h['score']:.3f}] {h['title']} — {h['member'] or 'unknown member'} "
            f"({h['language']}, {where})"
        )
        snippet = " ".join(h["text"].split())
        typer.echo(f"    {snippet[:240]}{'…' if len(snippet) > 240 else ''}")
        typer.echo(f"    {h['link']}")
    if not hits:
        typer.echo("no results")
