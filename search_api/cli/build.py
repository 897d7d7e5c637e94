"""`moocsearch index build`: publish a new generation."""

from __future__ import annotations

import errno
import json
import sys
from typing import Annotated, Any

import typer

from indexer.catalog import BUILD_REJECTED, BUILD_UNCHANGED, TRIGGER_CLI, TRIGGERS, Catalog
from indexer.diskspace import InsufficientSpaceError
from indexer.embedding import UnknownModelError
from indexer.faults import fault_point
from indexer.generation import (
    GenerationError,
    generations_root,
    list_generations,
    published_generation_id,
    read_manifest,
)
from indexer.pipeline import BuildAlreadyRunning, BuildReport, Indexer
from indexer.quality import QualityGateError
from search_api.cli.common import EXIT_NO_SPACE, EXIT_REJECTED, JsonOpt, emit, fail, index_app, settings
from search_api.operations.indexers import open_indexer
from search_api.ranking.reranking import RerankerError
from search_api.settings import ApiSettings


def print_build_report(report: BuildReport) -> None:
    """Counts, rates and failures of a build, for people."""
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")
    if report.outcome == BUILD_REJECTED and report.quality is not None:
        print_rejection(report.quality)
        return
    embed_seconds = report.seconds.get("embed", 0.0)
    rate = report.vectors_embedded / embed_seconds if embed_seconds and report.vectors_embedded else 0.0
    done = "nothing changed: still serving" if report.outcome == BUILD_UNCHANGED else "published"
    typer.echo(
        f"{done} {report.generation_id}: {report.documents_indexed} documents, {report.passages} passages "
        f"({report.passages_embedded} embedded now, {report.vectors_embedded} vectors at {rate:.1f}/s), "
        f"{report.documents_extracted} extracted, {len(report.failures)} failed, {report.seconds.get('total', 0):.1f}s"
    )
    if report.outcome != BUILD_UNCHANGED:
        typer.echo(
            f"  build {report.build_id} ({report.trigger}): {report.documents_added} documents added, "
            f"{report.documents_changed} changed, {report.documents_deleted} deleted since the last generation"
        )
    for failure in report.failures:
        typer.echo(f"  failed {failure.document_id} {failure.filename}: {failure.reason}: {failure.message}")
    if report.documents_deferred:
        members = ", ".join(f"{d.member or '(operator)'} {d.documents}" for d in report.deferred)
        typer.echo(
            f"  deferred {report.documents_deferred} pending documents to the next build (the extraction budget "
            f"was spent): {members}"
        )


def settings_from_stdin() -> ApiSettings:
    """The settings a parent process (the service's build runner) wrote as JSON to our standard input."""
    try:
        return ApiSettings(**json.loads(sys.stdin.read()))
    except Exception as exc:
        fail(f"invalid settings on standard input: {exc}", code=2)


def print_rejection(quality: dict[str, Any]) -> None:
    """Which golden queries a rejected generation failed."""
    typer.echo(
        f"rejected {quality['generation_id']} (kept unpublished; the published generation keeps serving): "
        f"{quality['passing']}/{quality['checked']} golden queries found their document in the top "
        f"{quality['top_n']}, {quality['min_pass_rate']:.0%} required"
    )
    for failure in quality["failures"]:
        typer.echo(f"  failed {failure['query']!r}: expected {failure['expected']}, found {failure['found']}")


def run_build(
    config: ApiSettings,
    full: bool = False,
    progress: bool = True,
    trigger: str = TRIGGER_CLI,
    build_id: int | None = None,
) -> BuildReport:
    """Build a generation and publish it if it passes the quality gate, mapping known errors to CLI exits.

    The one build path: `moocsearch index build` from a shell, cron or a systemd timer, and every build the
    service starts (a child process running this command with `--build-id` of the record it queued)."""
    try:
        indexer = open_indexer(config)
    except (UnknownModelError, RerankerError) as exc:
        fail(str(exc), code=2)
    try:
        return indexer.build(full=full, progress=progress, trigger=trigger, build_id=build_id)
    except BuildAlreadyRunning as exc:
        fail(str(exc), code=3)
    except QualityGateError as exc:
        fail(str(exc), code=2)
    except InsufficientSpaceError as exc:
        fail(str(exc), code=EXIT_NO_SPACE)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        fail(
            f"the disk filled up during the build ({exc}); the partial generation was removed and the published "
            "one keeps serving",
            code=EXIT_NO_SPACE,
        )
    finally:
        indexer.close()


@index_app.command("build")
def index_build(
    full: Annotated[bool, typer.Option("--full", help="Extract and embed everything again.")] = False,
    as_json: JsonOpt = False,
    trigger: Annotated[
        str, typer.Option(help=f"What started the build, for its record: one of {', '.join(TRIGGERS)}.")
    ] = TRIGGER_CLI,
    build_id: Annotated[int | None, typer.Option(hidden=True, help="Run the build record queued by `serve`.")] = None,
    settings_stdin: Annotated[
        bool, typer.Option("--settings-stdin", hidden=True, help="Read the settings as JSON from standard input.")
    ] = False,
) -> None:
    """Extract pending documents, embed new passages and publish a new index generation."""
    if trigger not in TRIGGERS:
        fail(f"--trigger must be one of {', '.join(TRIGGERS)}, not {trigger!r}", code=2)
    config = settings_from_stdin() if settings_stdin else settings()
    report = run_build(
        config, full=full, progress=not as_json and not settings_stdin, trigger=trigger, build_id=build_id
    )
    emit(report.to_dict()) if as_json else print_build_report(report)
    fault_point("exit")  # recorded and unlocked, not yet exited: a test holds the process here
    if report.outcome == BUILD_REJECTED:
        raise typer.Exit(EXIT_REJECTED)


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


@index_app.command("builds")
def index_builds(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many records.")] = 20,
    offset: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="Records to skip (newest first).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Build records, newest first: trigger, outcome, documents added/changed/deleted/failed, seconds."""
    catalog = Catalog(settings().data_dir / "catalog.sqlite3")
    try:
        records = [record.to_dict() for record in catalog.list_builds(limit=limit, offset=offset)]
    finally:
        catalog.close()
    if as_json:
        emit(records)
        return
    if not records:
        typer.echo("no builds yet; run `moocsearch index build`")
        return
    typer.echo(
        f"{'id':>5}  {'started (UTC)':19}  {'trigger':8}  {'outcome':15}  {'seconds':>7}  "
        f"{'added':>5} {'chgd':>5} {'del':>5} {'fail':>5} {'embedded':>8}  generation"
    )
    for row in records:
        total = row["seconds"].get("total")
        typer.echo(
            f"{row['id']:>5}  {row['started_at'][:19].replace('T', ' '):19}  {row['trigger']:8}  "
            f"{row['outcome']:15}  {f'{total:.1f}' if total is not None else '-':>7}  {row['documents_added']:>5} "
            f"{row['documents_changed']:>5} {row['documents_deleted']:>5} {row['documents_failed']:>5} "
            f"{row['passages_embedded']:>8}  {row['generation_id'] or '-'}"
        )
        if row["message"]:
            typer.echo(f"{'':>7}{row['message']}")
        if row["documents_deferred"]:
            typer.echo(f"{'':>7}deferred {row['documents_deferred']} pending documents to the next build")
