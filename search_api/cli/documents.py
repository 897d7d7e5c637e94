"""`moocsearch ingest` and `moocsearch documents`: putting documents in and looking at them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from indexer.catalog import DELETED, FAILED, INDEXED, PENDING, Document
from indexer.ingest import IngestError, entries_for_paths
from indexer.metadata import ManifestEntry, MetadataError, check_owned, parse_metadata, read_manifest
from indexer.pipeline import Indexer
from search_api.cli.common import JsonOpt, app, documents_app, emit, fail, reported, settings

STATUSES = (PENDING, INDEXED, FAILED, DELETED)


def _manifest_entries(paths: list[Path], manifest: Path | None, metadata: dict[str, Any]) -> list[ManifestEntry]:
    base = check_owned(parse_metadata(metadata))  # `--visibility member` needs `--member`
    entries: list[ManifestEntry] = read_manifest(manifest) if manifest else []
    for path in paths:
        if not path.exists():
            raise MetadataError(f"{path}: no such file or folder")
        if path.is_dir() and (path / "manifest.json").is_file() and manifest is None:
            entries += read_manifest(path / "manifest.json")
        else:
            entries += entries_for_paths([path], base)
    return entries


def ingest_entries(indexer: Indexer, entries: list[ManifestEntry], as_json: bool) -> int:
    """Store every entry; returns the number refused. One bad file never stops the others."""
    results: list[dict[str, Any]] = []
    refused = 0
    for entry in entries:
        try:
            result = indexer.ingest(entry.path.read_bytes(), entry.path.name, entry.metadata)
        except (OSError, IngestError) as exc:
            refused += 1
            code = exc.code if isinstance(exc, IngestError) else "unreadable"
            results.append({"file": str(entry.path), "status": "refused", "code": code, "message": str(exc)})
            continue
        status = "stored" if result.created else "duplicate"
        results.append(
            {
                "file": str(entry.path),
                "status": status,
                "document_id": result.document.id,
                "duplicate_of": result.duplicate_of,
                "visibility": result.document.metadata.visibility,
            }
        )
    if as_json:
        emit(results)
    else:
        for r in results:
            detail = r.get("message") if r["status"] == "refused" else f"{r['document_id']} {r['visibility']:8}"
            typer.echo(f"{r['status']:9} {detail}  {r['file']}")
        stored = sum(r["status"] == "stored" for r in results)
        typer.echo(
            f"{stored} stored, {len(results) - stored - refused} duplicate(s), {refused} refused. "
            "Run `moocsearch index build` to make them searchable."
        )
    return refused


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (a folder with a manifest.json is read through it).")
    ] = None,
    manifest: Annotated[Path | None, typer.Option(help="A metadata manifest naming the files.")] = None,
    member: Annotated[str | None, typer.Option(help="Member institution.")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    resource_type: Annotated[
        str | None, typer.Option(help="practice_report, teaching_resource, syllabus, slides, dataset or other.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code.")] = None,
    year: Annotated[int | None, typer.Option()] = None,
    licence: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    visibility: Annotated[
        str | None,
        typer.Option(
            help="Who may find them: public (the default for the operator's ingest), alliance (any key) or member "
            "(only --member's keys and admins)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store documents with their metadata; they become searchable at the next build.

    Without --visibility (or a manifest's `visibility`), documents are public: this command is the operator's,
    publishing the alliance's corpus. Members' uploads through the API default to their member's visibility."""
    if not paths and manifest is None:
        fail("name files or folders to ingest, or --manifest", code=2)
    raw = {
        "member": member,
        "title": title,
        "resource_type": resource_type,
        "language": language,
        "year": year,
        "licence": licence,
        "tags": tag,
        "visibility": visibility,
    }
    with reported():  # invalid metadata: exit 2
        entries = _manifest_entries(paths or [], manifest, {k: v for k, v in raw.items() if v is not None})
    indexer = Indexer(settings())
    try:
        refused = ingest_entries(indexer, entries, as_json)
    finally:
        indexer.close()
    if refused:
        raise typer.Exit(1)


def _document_dict(d: Document) -> dict[str, Any]:
    return {
        "id": d.id,
        "filename": d.filename,
        "title": d.title,
        "status": d.status,
        "reason": d.reason,
        "message": d.message,
        "media_type": d.media_type,
        "language": d.language,
        "pages": d.page_count,
        "passages": d.passage_count,
        "truncated": d.truncated,
        "warnings": list(d.warnings),
        "empty_pages": list(d.empty_pages),
        "ocr_pages": list(d.ocr_pages),
        "extract_seconds": d.extract_seconds,
        "size_bytes": d.size_bytes,
        "sha256": d.sha256,
        "metadata": d.metadata.to_dict(),
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


@documents_app.command("list")
def documents_list(
    status: Annotated[str | None, typer.Option(help="pending, indexed, failed or deleted.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Documents with their status."""
    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}: use one of {', '.join(STATUSES)}", code=2)
    indexer = Indexer(settings())
    documents = indexer.catalog.list_documents(status=status, limit=-1)
    indexer.close()
    if as_json:
        emit([_document_dict(d) for d in documents])
        return
    for d in documents:
        reason = f" ({d.reason})" if d.reason else ""
        typer.echo(
            f"{d.id}  {d.status + reason:24} {d.language or '--':3} {d.passage_count:5}p  "
            f"{(d.title or d.filename)[:70]}"
        )
    typer.echo(f"{len(documents)} document(s)")


@documents_app.command("show")
def documents_show(
    document_id: Annotated[str, typer.Argument(help="The document id (see `documents list`).")],
    as_json: JsonOpt = False,
) -> None:
    """One document: metadata, status and reason, extraction details and its first passages."""
    indexer = Indexer(settings())
    document = indexer.catalog.get_document(document_id)
    passages = indexer.catalog.passages_of(document_id) if document else []
    indexer.close()
    if document is None:
        fail(f"no document {document_id}")
    details = _document_dict(document)
    if as_json:
        emit(details | {"passage_pages": sorted({p.page for p in passages if p.page is not None})})
        return
    for key, value in details.items():
        if key != "metadata" and value not in (None, [], ""):
            typer.echo(f"{key:16} {value}")
    for key, value in document.metadata.to_dict().items():
        if value not in (None, [], ""):
            typer.echo(f"{key:16} {', '.join(value) if isinstance(value, list) else value}")
    for p in passages[:3]:
        where = f"p. {p.page}" if p.page else " > ".join(p.heading) or "-"
        typer.echo(f"  [{where}] {' '.join(p.text.split())[:160]}")


@documents_app.command("delete")
def documents_delete(
    document_id: Annotated[str, typer.Argument(help="The document id (see `documents list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Delete a document: running services leave it out of results at once, the next build out of the index."""
    indexer = Indexer(settings())
    try:
        document = indexer.catalog.delete_document(document_id)
    finally:
        indexer.close()
    if document is None:
        fail(f"no document {document_id}")
    if as_json:
        emit(_document_dict(document))
    else:
        typer.echo(
            f"deleted {document.id} ({document.title or document.filename}); gone from the index at the next build"
        )
