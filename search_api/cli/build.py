"""`moocsearch index build`: publish a new generation."""

from __future__ import annotations

from typing import Annotated

import typer

from indexer.embedding import UnknownModelError, load_embedders
from indexer.generation import (
    GenerationError,
    generations_root,
    list_generations,
    published_generation_id,
    read_manifest,
)
from indexer.pipeline import BuildAlreadyRunning, BuildReport, Indexer
from search_api.cli.common import JsonOpt, emit, fail, index_app, settings
from search_api.settings import ApiSettings


def print_build_report(report: BuildReport) -> None:
    """Counts, rates and failures of a build, for people."""
    embed_seconds = report.seconds.get("embed", 0.0)
    rate = report.passages_embedded / embed_seconds if embed_seconds and report.passages_embedded else 0.0
    typer.echo(
        f"published {report.generation_id}: {report.documents_indexed} documents, {report.passages} passages "
        f"({report.passages_embedded} embedded now at {rate:.1f}/s), {report.documents_extracted} extracted, "
        f"{len(report.failures)} failed, {report.seconds.get('total', 0):.1f}s"
    )
    for failure in report.failures:
        typer.echo(f"  failed {failure.document_id} {failure.filename}: {failure.reason}: {failure.message}")


def run_build(config: ApiSettings, full: bool = False, progress: bool = True) -> BuildReport:
    """Build and publish a generation, mapping known errors to CLI exits."""
    try:
        primary, *extra = load_embedders(config.model, config.multilingual_model, config.embed_batch_size)
        indexer = Indexer(config, primary, extra)
    except UnknownModelError as exc:
        fail(str(exc), code=2)
    try:
        return indexer.build(full=full, progress=progress)
    except BuildAlreadyRunning as exc:
        fail(str(exc), code=3)
    finally:
        indexer.close()


@index_app.command("build")
def index_build(
    full: Annotated[bool, typer.Option("--full", help="Extract and embed everything again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Extract pending documents, embed new passages and publish a new index generation."""
    report = run_build(settings(), full=full, progress=not as_json)
    emit(report.to_dict()) if as_json else print_build_report(report)


@index_app.command("list")
def index_list(as_json: JsonOpt = False) -> None:
    """Generations on disk, newest first; the published one is marked."""
    root = generations_root(settings().data_dir)
    published = published_generation_id(root)
    rows = []
    for generation_id in reversed(list_generations(root)):
        try:
            manifest = read_manifest(root / generation_id)
        except GenerationError as exc:
            rows.append({"generation": generation_id, "published": generation_id == published, "error": str(exc)})
            continue
        rows.append(
            {
                "generation": generation_id,
                "published": generation_id == published,
                "created_at": manifest.created_at,
                "documents": manifest.document_count,
                "passages": manifest.passage_count,
                "model": manifest.model_id,
                "index_type": manifest.index_type,
            }
        )
    if as_json:
        emit(rows)
        return
    for row in rows:
        mark = "*" if row["published"] else " "
        details = row.get("error") or (
            f"{row['created_at']}  {row['documents']} documents, {row['passages']} passages, {row['model']}"
        )
        typer.echo(f"{mark} {row['generation']}  {details}")
    if not rows:
        typer.echo("no generations yet; run `moocsearch index build`")


@index_app.command("rollback")
def index_rollback(
    generation: Annotated[str, typer.Argument(help="The generation to serve again (see `index list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Publish an earlier generation again; running services switch to it at their next reload."""
    indexer = Indexer(settings())
    try:
        manifest = indexer.rollback(generation)
    except GenerationError as exc:
        fail(str(exc))
    except BuildAlreadyRunning as exc:
        fail(str(exc), code=3)
    finally:
        indexer.close()
    if as_json:
        emit({"published": manifest.generation_id})
    else:
        typer.echo(f"published {manifest.generation_id} ({manifest.passage_count} passages)")
