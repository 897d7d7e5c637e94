"""Documents: the original file, opened where a citation points."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, Response

from indexer.catalog import DELETED
from search_api.deps import ServiceDep
from search_api.errors import ApiError
from search_api.schemas import ErrorOut

router = APIRouter(tags=["documents"])


@router.get(
    "/documents/{document_id}/file",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The original bytes."},
        404: {"model": ErrorOut, "description": "No such document."},
    },
    response_class=Response,
)
def document_file(service: ServiceDep, document_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]) -> FileResponse:
    """The original as uploaded, shown inline (PDF viewers honour `#page=N` in the link)."""
    document = service.catalog.get_document(document_id)
    if document is None or document.status == DELETED:
        raise ApiError(404, "not_found", f"no document {document_id}")
    disposition = f"inline; filename*=UTF-8''{quote(document.filename)}"
    return FileResponse(
        service.store.path_for(document.sha256),
        media_type=document.media_type or "application/octet-stream",
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )
