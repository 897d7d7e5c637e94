"""Documents: contributions (upload, list, show, edit, delete) and the original file a citation points to.

Thin over search_api.services.documents and .contributions, which hold the policy: a document the caller may not
see answers 404, exactly like one that does not exist; another member's document answers 403.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from indexer.catalog import DocumentQuery
from indexer.extract.model import HTML
from indexer.metadata import CHOICES, YEARS, DocumentMetadata
from search_api.auth import MemberCaller, OptionalCaller, viewer_of
from search_api.deps import ServiceDep, SettingsDep
from search_api.errors import ApiError
from search_api.schemas import DocumentListOut, DocumentOut, DocumentPatch, ErrorOut, UploadOut
from search_api.services import contributions, documents
from search_api.services.documents import DocumentView

router = APIRouter(tags=["documents"])

DocumentId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="A document id (16 hex digits).")]

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
    429: {
        "model": ErrorOut,
        "description": "`quota_exceeded`: the member has its most pending documents or bytes waiting for the next "
        "build; upload again after it (or `rate_limited`: too many requests).",
    },
    507: {"model": ErrorOut, "description": "The server is short of disk space; try again later."},
}
# What the form's metadata fields say beyond their type, enum and bounds (which come from the metadata model).
_FIELD_NOTES: dict[str, dict[str, Any]] = {
    "language": {"description": "ISO 639-1 code.", "examples": ["en"]},
    "member": {"description": "Admins only; a member's key sets it."},
}


def _form_field(field: dataclasses.Field[Any], kind: Any) -> dict[str, Any]:
    """One metadata field as a form field: a list is comma-separated text or a repeated field."""
    if field.name == "year":
        schema: dict[str, Any] = {"type": "integer", "minimum": YEARS[0], "maximum": YEARS[1]}
    elif typing.get_origin(kind) is tuple:
        schema = {"type": "string", "description": "Comma-separated, or repeat the field."}
    else:
        schema = {"type": "string"}
    if field.name in CHOICES:
        schema["enum"] = list(CHOICES[field.name])
    return schema | _FIELD_NOTES.get(field.name, {})


def _upload_body() -> dict[str, Any]:
    """The multipart upload's OpenAPI request body, derived from DocumentMetadata's fields."""
    kinds = typing.get_type_hints(DocumentMetadata)
    fields = {f.name: _form_field(f, kinds[f.name]) for f in dataclasses.fields(DocumentMetadata)}
    file = {
        "type": "string",
        "format": "binary",
        "description": "PDF, DOCX, PPTX, HTML, Markdown or plain text; the type is read from the bytes.",
    }
    properties = {
        "file": file,
        "metadata": {"type": "string", "description": "Metadata as one JSON object (optional)."},
        **fields,
    }
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _document_out(view: DocumentView) -> DocumentOut:
    document, m = view.document, view.document.metadata
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
        near_duplicate_of=view.near_duplicate_of,
        generation=view.generation,
        searchable=view.searchable,
        note=view.note,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


@router.post(
    "/documents",
    status_code=201,
    response_model=UploadOut,
    responses=_UPLOAD_ERRORS,
    openapi_extra=_upload_body(),
)
async def upload_document(
    request: Request, response: Response, service: ServiceDep, settings: SettingsDep, caller: MemberCaller
) -> UploadOut:
    """Contribute a document (multipart: `file` plus metadata fields or a JSON `metadata` part).

    Answers 201 only once the original is stored durably (fsynced, catalog row committed); the document becomes
    searchable after the next index build. Known bytes answer 200 with `duplicate_of` and store nothing.
    """
    contributions.check_disk(settings)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "send the upload as multipart/form-data")
    form = await request.form(max_files=1, max_fields=settings.upload_max_fields, max_part_size=64 * 1024)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "file: a file part named `file` is required")
        fields = {key: form.getlist(key) for key in dict.fromkeys(form.keys()) if key != "file"}
        metadata = contributions.upload_metadata(contributions.form_metadata(fields), caller, service.catalog)
        contributions.check_size(settings, upload.size)
        data = await upload.read()
        filename, declared = upload.filename or "unnamed", upload.content_type
    finally:
        await form.close()  # the spooled temporary file goes now, whatever happened
    done = await run_in_threadpool(contributions.contribute, service, caller, data, filename, declared, metadata)
    document, seen = done.document, done.seen or done.created
    if not done.created:
        response.status_code = 200
    return UploadOut(
        id=document.id if seen else None,
        status=document.status if seen else "duplicate",
        filename=document.filename if seen else filename,
        media_type=done.media_type,
        size_bytes=document.size_bytes,
        sha256=document.sha256,
        duplicate_of=document.id if seen and not done.created else None,
        visibility=document.metadata.visibility if seen else None,  # type: ignore[arg-type]
        note=done.note,
    )


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
    page = documents.list_documents(service, viewer_of(caller), query, limit, offset)
    return DocumentListOut(
        documents=[_document_out(v) for v in page.views], total=page.total, limit=limit, offset=offset
    )


@router.get("/documents/{document_id}", response_model=DocumentOut, responses={**_AUTH_ERRORS, **_NOT_FOUND})
def show_document(service: ServiceDep, caller: OptionalCaller, document_id: DocumentId) -> DocumentOut:
    """One document: metadata, status and reason, passage count, and the generation it is searchable in."""
    return _document_out(documents.show_document(service, viewer_of(caller), document_id))


@router.patch("/documents/{document_id}", response_model=DocumentOut, responses=_CHANGE_ERRORS)
def patch_document(
    service: ServiceDep, caller: MemberCaller, document_id: DocumentId, body: DocumentPatch
) -> DocumentOut:
    """Change a document's metadata (its own member or an admin). Visibility changes count in searches at once;
    other fields show from the next build."""
    changes = body.model_dump(exclude_unset=True)
    return _document_out(documents.patch_document(service, caller, document_id, changes))


@router.delete("/documents/{document_id}", response_model=DocumentOut, responses=_CHANGE_ERRORS)
def delete_document(service: ServiceDep, caller: MemberCaller, document_id: DocumentId) -> DocumentOut:
    """Delete a document (its own member or an admin): gone from search results at once, and from the index at
    the next build. The original stays stored; uploading the same bytes again brings the document back."""
    return _document_out(documents.delete_document(service, caller, document_id))


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
    file = documents.original(service, viewer_of(caller), document_id)
    headers = {"Content-Disposition": f"inline; filename*=UTF-8''{quote(file.filename)}"}
    headers["X-Content-Type-Options"] = "nosniff"
    if file.media_type in (HTML, None):
        headers["Content-Security-Policy"] = "sandbox"  # a contributed page runs no script on this origin
    return FileResponse(file.path, media_type=file.media_type or "application/octet-stream", headers=headers)
