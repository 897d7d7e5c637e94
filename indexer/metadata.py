"""Document metadata of the alliance: the fields, their validation and the manifest file format."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from indexer.text import normalise_text

RESOURCE_TYPES = ("practice_report", "teaching_resource", "syllabus", "slides", "dataset", "other")
VISIBILITIES = ("public", "alliance", "member")
MEMBER_VISIBILITY = VISIBILITIES[2]
# The closed vocabularies and the bounds of the fields: validation here, and forms and schemas derived from them.
CHOICES: Mapping[str, tuple[str, ...]] = {"resource_type": RESOURCE_TYPES, "visibility": VISIBILITIES}
YEARS = (1900, 2100)
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
_MAX_TEXT = 500


class MetadataError(ValueError):
    """Metadata that does not follow the schema; the message names the field."""

    code = "invalid_metadata"


@dataclass(frozen=True)
class DocumentMetadata:
    """What a member says about a document; every field is optional except where a deployment requires it."""

    title: str | None = None
    member: str | None = None
    authors: tuple[str, ...] = ()
    resource_type: str = "other"
    language: str | None = None
    year: int | None = None
    licence: str | None = None
    tags: tuple[str, ...] = ()
    discipline: str | None = None
    level: str | None = None
    visibility: str = "public"
    translation_group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with lists for the tuple fields."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise MetadataError(f"{name}: expected text, got {type(value).__name__}")
    # The same clean-up as extracted text: no controls, bidi marks or lone surrogates (which SQLite and JSON
    # encoders refuse), NFC.
    text = " ".join(normalise_text(str(value)).split())
    if len(text) > _MAX_TEXT:
        raise MetadataError(f"{name}: longer than {_MAX_TEXT} characters")
    return text or None


def _text_list(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise MetadataError(f"{name}: expected a list or comma-separated text")
    out = [t for t in (_text(name, item) for item in items) if t]
    return tuple(dict.fromkeys(out))


def _year(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        year = int(value)
    except (TypeError, ValueError, OverflowError):
        raise MetadataError(f"year: expected a whole number, got {value!r}") from None
    if not YEARS[0] <= year <= YEARS[1]:
        raise MetadataError(f"year: {year} is outside {YEARS[0]}-{YEARS[1]}")
    return year


def _choice(name: str, value: Any, allowed: tuple[str, ...], default: str) -> str:
    text = _text(name, value)
    if text is None:
        return default
    text = text.lower().replace("-", "_").replace(" ", "_")
    if text not in allowed:
        raise MetadataError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return text


def _language(value: Any) -> str | None:
    text = _text("language", value)
    if text is None:
        return None
    code = text.lower().split("-")[0].split("_")[0]
    if not _LANGUAGE_RE.match(code):
        raise MetadataError(f"language: {value!r} is not an ISO 639 code such as en, zh or es")
    return code


def parse_metadata(raw: Mapping[str, Any]) -> DocumentMetadata:
    """Validate a mapping of metadata fields; unknown fields are an error, so typos do not pass silently."""
    known = {f.name for f in fields(DocumentMetadata)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise MetadataError(f"unknown field(s): {', '.join(unknown)}")
    return DocumentMetadata(
        title=_text("title", raw.get("title")),
        member=_text("member", raw.get("member")),
        authors=_text_list("authors", raw.get("authors")),
        resource_type=_choice("resource_type", raw.get("resource_type"), CHOICES["resource_type"], "other"),
        language=_language(raw.get("language")),
        year=_year(raw.get("year")),
        licence=_text("licence", raw.get("licence")),
        tags=tuple(dict.fromkeys(t.lower() for t in _text_list("tags", raw.get("tags")))),
        discipline=_text("discipline", raw.get("discipline")),
        level=_text("level", raw.get("level")),
        visibility=_choice("visibility", raw.get("visibility"), CHOICES["visibility"], "public"),
        translation_group=_text("translation_group", raw.get("translation_group")),
    )


def check_owned(metadata: DocumentMetadata) -> DocumentMetadata:
    """The metadata of a contribution, which must name its member when only that member may see it (otherwise
    nobody but an admin ever could); MetadataError if not."""
    if metadata.visibility == MEMBER_VISIBILITY and metadata.member is None:
        raise MetadataError("visibility: 'member' needs the document's member")
    return metadata


@dataclass(frozen=True)
class ManifestEntry:
    """One file named by a metadata manifest, resolved against the manifest's folder."""

    path: Path
    metadata: DocumentMetadata = field(default_factory=DocumentMetadata)


def read_manifest(manifest_path: Path) -> list[ManifestEntry]:
    """Read a manifest (`{"documents": [{"file": ..., <metadata fields>}]}`); errors name the entry."""
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{manifest_path}: cannot read manifest: {exc}") from exc
    documents = data.get("documents") if isinstance(data, dict) else None
    if not isinstance(documents, list):
        raise MetadataError(f"{manifest_path}: expected an object with a 'documents' list")
    entries = []
    for number, item in enumerate(documents, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            raise MetadataError(f"{manifest_path}: entry {number} has no 'file'")
        raw = {k: v for k, v in item.items() if k != "file"}
        try:
            metadata = parse_metadata(raw)
        except MetadataError as exc:
            raise MetadataError(f"{manifest_path}: entry {number} ({item['file']}): {exc}") from exc
        entries.append(ManifestEntry(path=(manifest_path.parent / item["file"]).resolve(), metadata=metadata))
    return entries
