"""Documents as a caller may know and change them: listing, showing, editing, deleting, and the original file.

Every read goes through the caller's visibility: a document the caller may not see is NotFound, exactly like one
that does not exist, so nothing reveals its existence. Changes need the document's own member or an admin:
another member is Forbidden for a document it can see.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.access import Viewer
from indexer.catalog import DELETED, FAILED, PENDING, Catalog, Document, DocumentQuery, KeyHolder, Member
from indexer.metadata import check_owned, parse_metadata
from search_api.services.errors import Forbidden, InvalidInput, NotFound
from search_api.services.generations import SearchService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentView:
    """A document as a viewer may know it, with where it stands: searchable in the generation served, or why
    not. A near-duplicate link to a document the viewer may not see is left out."""

    document: Document
    near_duplicate_of: str | None
    generation: str | None  # the generation it is searchable in, or None
    searchable: bool
    note: str


@dataclass(frozen=True)
class DocumentPage:
    """A page of a listing, and how many documents the whole listing holds."""

    views: list[DocumentView]
    total: int


@dataclass(frozen=True)
class Original:
    """The stored original of a document, as uploaded."""

    path: Path
    filename: str
    media_type: str | None


def registered_member(catalog: Catalog, name: object) -> Member:
    """The member an admin names (a document given to it becomes its own); InvalidInput for a name no member has,
    so a typo never leaves a document to nobody."""
    member = catalog.member_by_name(str(name))
    if member is None:
        raise InvalidInput(
            f"member: no registered member is named {name!r} (see `moocsearch members list`)", "invalid_metadata"
        )
    return member


def visible(viewer: Viewer, document: Document) -> bool:
    """Whether the viewer may know of the document (deleted ones: admins only)."""
    if document.status == DELETED and not viewer.admin:
        return False
    return viewer.can_see(document.metadata.visibility, document.owner_id)


def view(service: SearchService, viewer: Viewer, document: Document) -> DocumentView:
    """Where the document stands for this viewer, against the generation served now."""
    generation = service.current
    generation_id = generation.generation_id if generation else None
    served = generation.document_ids if generation else frozenset()
    linked = service.catalog.get_document(document.near_duplicate_of) if document.near_duplicate_of else None
    near_duplicate_of = linked.id if linked is not None and visible(viewer, linked) else None
    searchable = document.status != DELETED and document.id in served
    if document.status == DELETED:
        note = "deleted: left out of searches, and out of the index from the next build"
    elif searchable:
        note = f"searchable in generation {generation_id}"
    elif document.status == FAILED:
        note = f"not searchable: extraction failed ({document.reason})"
    elif near_duplicate_of and document.status != PENDING:
        note = "not shown: an older version of another document (near duplicate)"
    else:
        note = "pending next build"
    return DocumentView(document, near_duplicate_of, generation_id if searchable else None, searchable, note)


def find(service: SearchService, viewer: Viewer, document_id: str) -> Document:
    """The document if the viewer may see it; NotFound alike for a missing and a hidden one."""
    document = service.catalog.get_document(document_id)
    if document is None or not visible(viewer, document):
        raise NotFound(f"no document {document_id}")
    return document


def find_changeable(service: SearchService, caller: KeyHolder, document_id: str) -> Document:
    """The document if the caller may change it: NotFound when it cannot see it, Forbidden when it is another
    member's."""
    document = find(service, caller.viewer, document_id)
    if not caller.viewer.can_change(document.owner_id):
        raise Forbidden(f"document {document_id} belongs to another member")
    return document


def list_documents(
    service: SearchService, viewer: Viewer, query: DocumentQuery, limit: int, offset: int
) -> DocumentPage:
    """The documents the viewer may see (anonymous: public ones; a member: public, alliance and its own), oldest
    first, a page at a time."""
    documents, total = service.catalog.query_documents(query, viewer, limit, offset)
    return DocumentPage([view(service, viewer, d) for d in documents], total)


def show_document(service: SearchService, viewer: Viewer, document_id: str) -> DocumentView:
    """One document the viewer may see."""
    return view(service, viewer, find(service, viewer, document_id))


def patch_document(
    service: SearchService, caller: KeyHolder, document_id: str, changes: Mapping[str, Any]
) -> DocumentView:
    """Change metadata fields (its own member or an admin; only an admin gives a document to another member,
    named by a registered member's name, or to none with null). Visibility and owner changes count in searches
    at once; other fields show from the next build."""
    document = find_changeable(service, caller, document_id)
    if "member" in changes and not caller.admin:
        raise Forbidden("only an admin may give a document to another member")
    if changes.get("member") is not None:
        changes = {**changes, "member": registered_member(service.catalog, changes["member"]).name}
    metadata = check_owned(parse_metadata({**document.metadata.to_dict(), **changes}))
    updated = service.catalog.update_metadata(document_id, metadata)
    if updated is None:
        raise NotFound(f"no document {document_id}")
    return view(service, caller.viewer, updated)


def delete_document(service: SearchService, caller: KeyHolder, document_id: str) -> DocumentView:
    """Delete a document (its own member or an admin): gone from search results at once, and from the index at
    the next build. The original stays stored; uploading the same bytes again brings the document back."""
    find_changeable(service, caller, document_id)
    deleted = service.catalog.delete_document(document_id)
    if deleted is None:
        raise NotFound(f"no document {document_id}")
    logger.info("document %s deleted by member %s (key %s)", document_id, caller.member_id, caller.prefix)
    return view(service, caller.viewer, deleted)


def original(service: SearchService, viewer: Viewer, document_id: str) -> Original:
    """The original file of a document the viewer may see; NotFound once deleted, even for an admin."""
    document = find(service, viewer, document_id)
    if document.status == DELETED:
        raise NotFound(f"no document {document_id}")
    return Original(service.store.path_for(document.sha256), document.filename, document.media_type)
