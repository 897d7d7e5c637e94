"""Contributing a document: its metadata from a form, the checks on the bytes, and storing it durably.

A contribution is acknowledged only once the original is stored (fsynced, catalog row committed); it becomes
searchable after the next index build. Known bytes store nothing and say so, without naming a document the
contributor may not see.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.access import PUBLIC, name_key
from indexer.catalog import Catalog, Document, KeyHolder
from indexer.extract.sniff import sniff_claimed_type
from indexer.ingest import ingest_bytes
from indexer.metadata import DocumentMetadata, check_owned, parse_metadata
from search_api.services.documents import registered_member, visible
from search_api.services.errors import InvalidInput, NoSpace, TooLarge
from search_api.services.generations import SearchService
from search_api.services.quotas import pending_quota
from search_api.settings import ApiSettings

logger = logging.getLogger(__name__)

PENDING_NOTE = "stored durably; it becomes searchable after the next index build"
# Who will see a new document, said in the upload's answer (the visibility may have been left to the default).
VISIBILITY_NOTES = {
    "public": "visibility public: anyone may find it",
    "alliance": "visibility alliance: every member of the alliance may find it",
    "member": "visibility member: only your member and the operators may find it",
}
_LIST_FIELDS = ("authors", "tags")


@dataclass(frozen=True)
class Contribution:
    """What an upload did: stored a new document, or found the bytes already stored (`created` False). A
    duplicate the contributor may not see is not named (`seen` False)."""

    document: Document
    created: bool
    seen: bool
    media_type: str
    filename: str  # as sent

    @property
    def note(self) -> str:
        """What happened, for people."""
        if self.created:
            return f"{PENDING_NOTE}; {VISIBILITY_NOTES[self.document.metadata.visibility]}"
        if self.seen:
            return f"duplicate of {self.document.id}: these bytes are already stored; nothing new was stored"
        return "duplicate: these bytes are already stored, in a document you cannot see; nothing new was stored"


def check_disk(settings: ApiSettings) -> None:
    """NoSpace when the data directory's disk has less free space than the reserve (`upload_min_free_mb`)."""
    free = shutil.disk_usage(settings.data_dir).free
    if free < settings.upload_min_free_mb * 1024 * 1024:
        raise NoSpace("the server is short of disk space and accepts no uploads for now")


def check_size(settings: ApiSettings, size: int | None) -> None:
    """TooLarge for a file known to be over `max_file_bytes`, before its bytes are read."""
    if size is not None and size > settings.max_file_bytes:
        raise TooLarge(f"the file is over the limit of {settings.max_file_bytes} bytes")


def form_metadata(form: Mapping[str, Sequence[object]]) -> dict[str, Any]:
    """Metadata fields of a form (each name with its values, the file left out): an optional JSON `metadata`
    field, overridden by plain fields; `authors` and `tags` may repeat."""
    raw: dict[str, Any] = {}
    for key, values in form.items():
        if not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"{key}: expected a text field, got a file", "invalid_metadata")
        if key == "metadata":
            try:
                parsed = json.loads(str(values[-1]))
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"metadata: not valid JSON ({exc.msg})", "invalid_metadata") from None
            if not isinstance(parsed, dict):
                raise InvalidInput("metadata: expected a JSON object", "invalid_metadata")
            raw = {**parsed, **raw}
        elif key in _LIST_FIELDS and len(values) > 1:
            raw[key] = list(values)
        else:
            raw[key] = values[-1]
    return raw


def upload_metadata(raw: Mapping[str, Any], caller: KeyHolder, catalog: Catalog) -> DocumentMetadata:
    """Validated metadata; a member's key decides the `member` field (its display name, so the document is its
    own), an admin's may name a registered member. Without a `visibility`, the member's default visibility
    (`member` unless the operator changed it; `public` for an admin key of no member, like `moocsearch ingest`)."""
    given = raw.get("member") if str(raw.get("member") or "").strip() else None
    name, default = caller.member_name, caller.default_visibility
    if given is not None and caller.admin:
        member = registered_member(catalog, given)
        name, default = member.name, member.default_visibility
    elif given is not None and name_key(str(given)) != name_key(caller.member_name or ""):
        raise InvalidInput("member: set from your API key; leave it out", "invalid_metadata")
    raw = {**raw, "member": name}
    if not str(raw.get("visibility") or "").strip():
        raw["visibility"] = default or PUBLIC
    return check_owned(parse_metadata(raw))


def contribute(
    service: SearchService,
    caller: KeyHolder,
    data: bytes,
    filename: str,
    declared_type: str | None,
    metadata: DocumentMetadata,
) -> Contribution:
    """Store the bytes with their metadata, once they are known to be of a supported type that the name and the
    declared type do not contradict. Blocks on the disk: call it off the event loop."""
    if not data:
        raise InvalidInput("the file is empty", "empty_file")
    media_type = sniff_claimed_type(data, filename, declared_type)
    settings = service.settings
    owner = None if caller.admin else caller.member_id  # an admin's upload belongs to the member it names
    quota = pending_quota(settings, caller)
    result = ingest_bytes(
        service.store, service.catalog, data, filename, metadata, settings.max_file_bytes, owner, quota
    )
    document = result.document
    outcome = "stored" if result.created else "duplicate"
    logger.info("upload by member %s (key %s): %s %s", caller.member_id, caller.prefix, document.id, outcome)
    return Contribution(document, result.created, visible(caller.viewer, document), media_type, filename)
