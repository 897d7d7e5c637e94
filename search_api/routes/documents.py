"""Documents: contributions (upload, list, show, edit, delete) and the original file a citation points to.

Every read goes through the caller's visibility: a document the caller may not see answers 404, exactly like
one that does not exist, so no route reveals its existence. Changes need the document's own member or an admin:
another member gets 403 for a document it can see.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import FormData, UploadFile

from indexer.access import MEMBER_ONLY, Viewer
from indexer.catalog import DELETED, FAILED, PENDING, Document, DocumentQuery, KeyHolder
from indexer.extract.model import DOCX, HTML, MARKDOWN, PDF, PPTX, TEXT, ExtractionError
from indexer.extract.sniff import sniff_media_type
from indexer.generation_reader import GenerationReader
from indexer.ingest import IngestError, ingest_bytes
from indexer.metadata import DocumentMetadata, MetadataError, parse_metadata
from search_api.auth import MemberCaller, OptionalCaller, viewer_of
from search_api.deps import ServiceDep, SettingsDep
from search_api.errors import ApiError
from search_api.schemas import DocumentListOut, DocumentOut, DocumentPatch, ErrorOut, UploadOut
from search_api.service import SearchService
from search_api.settings import ApiSettings

logger = logging.getLogger(__name__)
router = APIRouter(tags=["documents"])

DocumentId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="A document id (16 hex digits).")]
PENDING_NOTE = "stored durably; it becomes searchable after the next index build"

# Type families that a name or a declared type may claim: a claim from another family than the bytes' is a lie.
_FAMILY = {PDF: "pdf", DOCX: "docx", PPTX: "pptx", HTML: "text", MARKDOWN: "text", TEXT: "text"}
_SUFFIX_TYPES = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".html": HTML,
    ".htm": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": TEXT,
}
_LIST_FIELDS = ("authors", "tags")

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or an invalid, revoked or disabled one."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such document, or one the caller may not see."},
    422: {"model": ErrorOut, "description": "Malformed document id or parameters."},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_AUTH_ERRORS,
    403: {"model": ErrorOut, "description": "The document belongs to another member."},
    **_NOT_FOUND,
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"model": UploadOut, "description": "These bytes were already in the catalog: nothing new stored."},
    400: {"model": ErrorOut, "description": "Malformed multipart body, too many fields or parts."},
    **_AUTH_ERRORS,
    413: {"model": ErrorOut, "description": "The file or the body is over the limit."},
    415: {
        "model": ErrorOut,
        "description": "Not multipart, or bytes of an unsupported type or of another type "
        "than the name or the declared type claim.",
    },
    422: {"model": ErrorOut, "description": "No file, an empty file, or invalid metadata."},
    507: {"model": ErrorOut, "description": "The server is short of disk space; try again later."},
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PDF, DOCX, PPTX, HTML, "
                            "Markdown or plain text; the type is read from the bytes.",
                        },
                        "metadata": {"type": "string", "description": "Metadata as one JSON object (optional)."},
                        "title": {"type": "string"},
                        "authors": {"type": "string", "description": "Comma-separated, or repeat the field."},
                        "resource_type": {
                            "type": "string",
                            "enum": ["practice_report", "teaching_resource", "syllabus", "slides", "dataset", "other"],
                        },
                        "language": {"type": "string", "description": "ISO 639-1 code.", "examples": ["en"]},
                        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
                        "licence": {"type": "string"},
                        "tags": {"type": "string", "description": "Comma-separated, or repeat the field."},
                        "discipline": {"type": "string"},
                        "level": {"type": "string"},
                        "visibility": {"type": "string", "enum": ["public", "alliance", "member"]},
                        "translation_group": {"type": "string"},
                        "member": {"type": "string", "description": "Admins only; a member's key sets it."},
                    },
                }
            }
        },
    }
}

_served_ids: WeakKeyDictionary[GenerationReader, frozenset[str]] = WeakKeyDictionary()


def _served(service: SearchService) -> tuple[str | None, frozenset[str]]:
    """The generation being served and the ids of the documents it holds."""
    searcher = service.current_searcher
    if searcher is None:
        return None, frozenset()
    reader = searcher.reader
    ids = _served_ids.get(reader)
    if ids is None:
        ids = _served_ids[reader] = frozenset(d.id for d in reader.documents)
    return reader.generation_id, ids


def _visible(viewer: Viewer, document: Document) -> bool:
    """Whether the viewer may know of the document (deleted ones: admins only)."""
    if document.status == DELETED and not viewer.admin:
        return False
    return viewer.can_see(document.metadata.visibility, document.metadata.member)


def _document_out(
    document: Document, served: tuple[str | None, frozenset[str]], service: SearchService, viewer: Viewer
) -> DocumentOut:
    """The document as the viewer may know it: a near-duplicate link to a document it may not see is left out."""
    generation, ids = served
    linked = service.catalog.get_document(document.near_duplicate_of) if document.near_duplicate_of else None
    near_duplicate_of = linked.id if linked is not None and _visible(viewer, linked) else None
    searchable = document.status != DELETED and document.id in ids
    if document.status == DELETED:
        note = "deleted: left out of searches, and out of the index from the next build"
    elif searchable:
        note = f"searchable in generation {generation}"
    elif document.status == FAILED:
        note = f"not searchable: extraction failed ({document.reason})"
    elif near_duplicate_of and document.status != PENDING:
        note = "not shown: an older version of another document (near duplicate)"
    else:
        note = "pending next build"
    m = document.metadata
    return DocumentOut(
        id=document.id,
        filename=document.filename,
        title=document.title,
        status=document.status,  # type: ignore[arg-type]
        reason=document.reason,
        message=document.message,
        media_type=document.media_type,
        language=document.language,
        size_bytes=document.size_bytes,
        sha256=document.sha256,
        pages=document.page_count,
        passages=document.passage_count,
        member=m.member,
        visibility=m.visibility,  # type: ignore[arg-type]
        metadata=m.to_dict(),
        near_duplicate_of=near_duplicate_of,
        generation=generation if searchable else None,
        searchable=searchable,
        note=note,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


def _find(service: SearchService, viewer: Viewer, document_id: str) -> Document:
    """The document if the viewer may see it; 404 alike for a missing and a hidden one."""
    document = service.catalog.get_document(document_id)
    if document is None or not _visible(viewer, document):
        raise ApiError(404, "not_found", f"no document {document_id}")
    return document


def _find_changeable(service: SearchService, caller: KeyHolder, document_id: str) -> Document:
    """The document if the caller may change it: 404 when it cannot see it, 403 when it is another member's."""
    document = _find(service, caller.viewer, document_id)
    if not caller.viewer.can_change(document.metadata.member):
        raise ApiError(403, "forbidden", f"document {document_id} belongs to another member")
    return document


# Upload.


def _check_disk(settings: ApiSettings) -> None:
    """507 when the data directory's disk has less free space than the configured reserve."""
    free = shutil.disk_usage(settings.data_dir).free
    if free < settings.upload_min_free_mb * 1024 * 1024:
        raise ApiError(507, "insufficient_storage", "the server is short of disk space and accepts no uploads for now")


def _form_metadata(form: FormData) -> dict[str, Any]:
    """Metadata fields of the form: an optional JSON `metadata` part, overridden by plain fields."""
    raw: dict[str, Any] = {}
    for key in dict.fromkeys(form.keys()):
        if key == "file":
            continue
        values = form.getlist(key)
        if not all(isinstance(v, str) for v in values):
            raise ApiError(422, "invalid_metadata", f"{key}: expected a text field, got a file")
        if key == "metadata":
            try:
                parsed = json.loads(str(values[-1]))
            except json.JSONDecodeError as exc:
                raise ApiError(422, "invalid_metadata", f"metadata: not valid JSON ({exc.msg})") from None
            if not isinstance(parsed, dict):
                raise ApiError(422, "invalid_metadata", "metadata: expected a JSON object")
            raw = {**parsed, **raw}
        elif key in _LIST_FIELDS and len(values) > 1:
            raw[key] = list(values)
        else:
            raw[key] = values[-1]
    return raw


def _upload_metadata(raw: dict[str, Any], caller: KeyHolder) -> DocumentMetadata:
    """Validated metadata; a member's key decides the `member` field, an admin's may set it."""
    given = raw.get("member")
    if not caller.admin and given is not None and str(given).casefold() != (caller.member_name or "").casefold():
        raise ApiError(422, "invalid_metadata", "member: set from your API key; leave it out")
    if caller.member_name is not None and (not caller.admin or given is None):
        raw = {**raw, "member": caller.member_name}
    try:
        metadata = parse_metadata(raw)
    except MetadataError as exc:
        raise ApiError(422, "invalid_metadata", str(exc)) from None
    if metadata.visibility == MEMBER_ONLY and metadata.member is None:
        raise ApiError(422, "invalid_metadata", "visibility: 'member' needs the document's member")
    return metadata


def _sniff(data: bytes, filename: str, declared: str | None) -> str:
    """The type of the bytes; 415 for an unsupported type or one the name or the declared type contradicts."""
    try:
        media_type = sniff_media_type(data, filename)
    except ExtractionError as exc:
        raise ApiError(
            415, "unsupported_media_type", f"{exc.message}; send PDF, DOCX, PPTX, HTML, Markdown or text"
        ) from None
    claims = {
        "file name": _SUFFIX_TYPES.get(PurePosixPath(filename.replace("\\", "/")).suffix.lower()),
        "declared type": (declared or "").split(";")[0].strip().lower(),
    }
    for source, claimed in claims.items():
        if claimed in _FAMILY and _FAMILY[claimed] != _FAMILY[media_type]:
            raise ApiError(415, "unsupported_media_type", f"the {source} says {claimed} but the bytes are {media_type}")
    return media_type


@router.post(
    "/documents",
    status_code=201,
    response_model=UploadOut,
    responses=_UPLOAD_ERRORS,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_document(
    request: Request, response: Response, service: ServiceDep, settings: SettingsDep, caller: MemberCaller
) -> UploadOut:
    """Contribute a document (multipart: `file` plus metadata fields or a JSON `metadata` part).

    Answers 201 only once the original is stored durably (fsynced, catalog row committed); the document becomes
    searchable after the next index build. Known bytes answer 200 with `duplicate_of` and store nothing.
    """
    _check_disk(settings)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "send the upload as multipart/form-data")
    form = await request.form(max_files=1, max_fields=settings.upload_max_fields, max_part_size=64 * 1024)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "file: a file part named `file` is required")
        metadata = _upload_metadata(_form_metadata(form), caller)
        if upload.size is not None and upload.size > settings.max_file_bytes:
            raise ApiError(413, "too_large", f"the file is over the limit of {settings.max_file_bytes} bytes")
        data = await upload.read()
        filename, declared = upload.filename or "unnamed", upload.content_type
    finally:
        await form.close()  # the spooled temporary file goes now, whatever happened
    if not data:
        raise ApiError(422, "empty_file", "the file is empty")
    media_type = _sniff(data, filename, declared)
    try:
        result = await run_in_threadpool(
            ingest_bytes, service.store, service.catalog, data, filename, metadata, settings.max_file_bytes
        )
    except IngestError as exc:
        raise ApiError(413 if exc.code == "too_large" else 422, exc.code, exc.message) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ApiError(507, "insufficient_storage", "the server ran out of disk space storing the file") from None
        raise
    document = result.document
    outcome = "stored" if result.created else "duplicate"
    logger.info("upload by member %s (key %s): %s %s", caller.member_id, caller.prefix, document.id, outcome)
    if result.created:
        return UploadOut(
            id=document.id,
            status=document.status,
            filename=document.filename,
            media_type=media_type,
            size_bytes=document.size_bytes,
            sha256=document.sha256,
            duplicate_of=None,
            note=PENDING_NOTE,
        )
    response.status_code = 200
    seen = _visible(caller.viewer, document)
    return UploadOut(
        id=document.id if seen else None,
        status=document.status if seen else "duplicate",
        filename=document.filename if seen else filename,
        media_type=media_type,
        size_bytes=document.size_bytes,
        sha256=document.sha256,
        duplicate_of=document.id if seen else None,
        note=f"duplicate of {document.id}: these bytes are already stored; nothing new was stored"
        if seen
        else "duplicate: these bytes are already stored, in a document you cannot see; nothing new was stored",
    )


# Reading and changing.


@router.get("/documents", response_model=DocumentListOut, responses={**_AUTH_ERRORS, 422: _NOT_FOUND[422]})
def list_documents(
    service: ServiceDep,
    caller: OptionalCaller,
    member: Annotated[str | None, Query(description="Member institution.")] = None,
    status: Annotated[str | None, Query(pattern="^(pending|indexed|failed|deleted)$")] = None,
    resource_type: Annotated[str | None, Query(description="practice_report, teaching_resource, ...")] = None,
    media_type: Annotated[str | None, Query(description="The type read from the bytes, e.g. application/pdf.")] = None,
    language: Annotated[str | None, Query(pattern="^[a-z]{2,3}$", description="ISO 639-1 code.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DocumentListOut:
    """The documents the caller may see (anonymous: public ones; a member: public, alliance and its own),
    oldest first, a page at a time."""
    query = DocumentQuery(
        member=member, status=status, resource_type=resource_type, media_type=media_type, language=language
    )
    documents, total = service.catalog.query_documents(query, viewer_of(caller), limit, offset)
    served = _served(service)
    return DocumentListOut(
        documents=[_document_out(d, served, service, viewer_of(caller)) for d in documents],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/documents/{document_id}", response_model=DocumentOut, responses={**_AUTH_ERRORS, **_NOT_FOUND})
def show_document(service: ServiceDep, caller: OptionalCaller, document_id: DocumentId) -> DocumentOut:
    """One document: metadata, status and reason, passage count, and the generation it is searchable in."""
    viewer = viewer_of(caller)
    return _document_out(_find(service, viewer, document_id), _served(service), service, viewer)


@router.patch("/documents/{document_id}", response_model=DocumentOut, responses=_CHANGE_ERRORS)
def patch_document(
    service: ServiceDep, caller: MemberCaller, document_id: DocumentId, body: DocumentPatch
) -> DocumentOut:
    """Change a document's metadata (its own member or an admin). Visibility changes count in searches at once;
    other fields show from the next build."""
    document = _find_changeable(service, caller, document_id)
    changes = body.model_dump(exclude_unset=True)
    if "member" in changes and not caller.admin:
        raise ApiError(403, "forbidden", "only an admin may give a document to another member")
    try:
        metadata = parse_metadata({**document.metadata.to_dict(), **changes})
    except MetadataError as exc:
        raise ApiError(422, "invalid_metadata", str(exc)) from None
    if metadata.visibility == MEMBER_ONLY and metadata.member is None:
        raise ApiError(422, "invalid_metadata", "visibility: 'member' needs the document's member")
    updated = service.catalog.update_metadata(document_id, metadata)
    if updated is None:
        raise ApiError(404, "not_found", f"no document {document_id}")
    return _document_out(updated, _served(service), service, caller.viewer)


@router.delete("/documents/{document_id}", response_model=DocumentOut, responses=_CHANGE_ERRORS)
def delete_document(service: ServiceDep, caller: MemberCaller, document_id: DocumentId) -> DocumentOut:
    """Delete a document (its own member or an admin): gone from search results at once, and from the index at
    the next build. The original stays stored; uploading the same bytes again brings the document back."""
    _find_changeable(service, caller, document_id)
    deleted = service.catalog.delete_document(document_id)
    if deleted is None:
        raise ApiError(404, "not_found", f"no document {document_id}")
    logger.info("document %s deleted by member %s (key %s)", document_id, caller.member_id, caller.prefix)
    return _document_out(deleted, _served(service), service, caller.viewer)


@router.get(
    "/documents/{document_id}/file",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The original bytes."},
        **_AUTH_ERRORS,
        **_NOT_FOUND,
    },
    response_class=Response,
)
def document_file(service: ServiceDep, caller: OptionalCaller, document_id: DocumentId) -> FileResponse:
    """The original as uploaded, shown inline (PDF viewers honour `#page=N` in the link)."""
    document = _find(service, viewer_of(caller), document_id)
    if document.status == DELETED:
        raise ApiError(404, "not_found", f"no document {document_id}")
    headers = {"Content-Disposition": f"inline; filename*=UTF-8''{quote(document.filename)}"}
    headers["X-Content-Type-Options"] = "nosniff"
    if document.media_type in (HTML, None):
        headers["Content-Security-Policy"] = "sandbox"  # a contributed page runs no script on this origin
    return FileResponse(
        service.store.path_for(document.sha256),
        media_type=document.media_type or "application/octet-stream",
        headers=headers,
    )
