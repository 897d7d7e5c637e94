"""`moocsearch search`: ranked, cited passages in the terminal."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from indexer.generation import generations_root, published_generation_id
from search_api.cli.common import JsonOpt, app, emit, exit_code, fail, reported, settings
from search_api.factory import load_query_models
from search_api.searcher import Hit, SearchResult, document_link
from search_api.services.callers import authenticate, viewer_of
from search_api.services.generations import SearchService
from search_api.services.search import search as search_as
from search_api.services.search import similar


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="What to look for, in any language.")] = None,
    like: Annotated[
        str | None, typer.Option("--like", metavar="PASSAGE_ID", help="More like this passage (a hit's passage_id).")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="Number of hits.")] = 5,
    group: Annotated[bool, typer.Option("--per-document", help="Best passage per document.")] = False,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar="MOOCSEARCH_API_KEY",
            help="Search as this API key's member or admin (default: anonymously, public documents only).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ranked passages with citations from the published generation, for a query or like a passage.

    Answers as the API would: documents deleted since the build, and those the reader may not see, are left out."""
    config = settings()
    if (query is None) == (like is None):
        fail("give either a query or --like PASSAGE_ID", code=2)
    if query is not None and not query.strip():
        fail("the query is empty", code=2)
    if published_generation_id(generations_root(config.data_dir)) is None:
        fail(f"nothing is published in {config.data_dir}; run `moocsearch index build` first")
    with reported():
        service = SearchService(config, load_query_models(config))
        try:
            result = _ask(service, key, query, like, k, group)
        finally:
            service.close()
    hits = [_hit_dict(h) for h in result.hits]
    if as_json:
        asked = {"query": query} if like is None else {"like": like}
        emit({**asked, "generation": result.generation_id, "hits": hits})
        return
    for h in hits:
        where = f"p. {h['page']}" if h["page"] else " > ".join(h["heading"]) or "-"
        typer.echo(
            f"{h['rank']:2}. [{h['score']:.3f}] {h['title']} — {h['member'] or 'unknown member'} "
            f"({h['language']}, {where})"
        )
        snippet = " ".join(h["text"].split())
        typer.echo(f"    {snippet[:240]}{'…' if len(snippet) > 240 else ''}")
        typer.echo(f"    {h['link']}  (passage {h['passage_id']})")
        if h["also_in"]:
            typer.echo(f"    also in: {', '.join(str(t['language']) for t in h['also_in'])}")
    if not hits:
        typer.echo("no results")


def _ask(
    service: SearchService, key: str | None, query: str | None, like: str | None, k: int, per_document: bool
) -> SearchResult:
    """The service's answer, as the key's holder or an anonymous reader sees it."""
    service.load_published()
    if service.current is None:
        fail(service.problem or "the published generation could not be opened", exit_code(service.refusal))
    key = (key or "").strip()
    viewer = viewer_of(authenticate(service.catalog, key) if key else None)
    if like is not None:
        return similar(service, viewer, like.strip(), k=k, per_document=per_document).result
    return search_as(service, viewer, query or "", k=k, per_document=per_document).result


def _hit_dict(hit: Hit) -> dict[str, Any]:
    """A hit as the command prints it."""
    p = hit.passage
    return {
        "rank": hit.rank,
        "score": round(hit.score, 4),
        "passage_id": p.passage_id,
        "title": p.title,
        "member": p.metadata.get("member"),
        "language": p.language,
        "page": p.page,
        "heading": list(p.heading),
        "document_id": p.document_id,
        "link": hit.link,
        "text": p.text,
        "also_in": [
            {"document_id": d.id, "language": d.language, "title": d.title, "link": document_link(d.id)}
            for d in hit.also_in
        ],
    }
