"""Who may see what: members, API keys and the visibility rule shared by the catalog, the CLI and the API.

A member is an institution of the alliance with a short id (`tsinghua`) and a display name
(`Tsinghua University`). A document belongs to a member by id (the catalog's `documents.owner_id`), never by
comparing names: its `member` metadata field is the display name shown to people. Names still identify members
where people type them (an operator's `ingest --member`, an admin's upload or PATCH naming a member, the bundled
corpus naming institutions), so every name has one canonical form (`name_key`) and no two members share one:
"Großstadt" and "Grossstadt", a long s (ſ) and an s, the Kelvin sign and a K, composed and decomposed accents are
the same name.

An API key is `msk_<prefix>_<secret>`: the prefix (8 hex digits) identifies the key without revealing it
(it is the key's id in listings and logs); the catalog keeps only the sha256 of the whole key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

from indexer.text import normalise_text

PUBLIC, ALLIANCE, MEMBER_ONLY = "public", "alliance", "member"
KEY_PREFIX = "msk_"
_KEY_RE = re.compile(r"^msk_([0-9a-f]{8})_[A-Za-z0-9_-]{32,64}$")
MEMBER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")
MAX_NAME = 200
# What a member's upload is when it does not say: seen by that member (and admins) only, until it chooses to
# share it. A forgotten field must never publish to the world (README, "Visibility").
DEFAULT_MEMBER_VISIBILITY = MEMBER_ONLY


def display_name(name: str) -> str:
    """A name as stored and shown: the clean-up of every metadata text (NFC, no controls or bidi marks), single
    spaces."""
    return " ".join(normalise_text(name).split())


def name_key(name: str) -> str:
    """The canonical form of a member name, equal for names people cannot tell apart: NFKC (ſ -> s, the Kelvin
    sign -> K, fullwidth -> ASCII, composed accents), case-folded (ß -> ss), NFKC again (case folding can leave
    text that NFKC changes), without control or format characters (zero-width spaces, bidi marks), whitespace
    collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    kept = "".join(c for c in folded if unicodedata.category(c) not in ("Cc", "Cf"))
    return " ".join(kept.split())


@dataclass(frozen=True)
class Viewer:
    """Whose eyes a read is for: anonymous (no member, not admin), a member (by id; its display name only for
    messages), or an admin."""

    member_id: str | None = None
    admin: bool = False
    member_name: str | None = None

    @property
    def is_member(self) -> bool:
        """Whether the viewer holds a key of the alliance (member or admin)."""
        return self.admin or self.member_id is not None

    def owns(self, owner_id: str | None) -> bool:
        """Whether a document owned by member `owner_id` (None: by no member) belongs to this viewer."""
        return self.member_id is not None and owner_id == self.member_id

    def can_see(self, visibility: str, owner_id: str | None) -> bool:
        """The visibility rule: public for everyone, alliance for any key, member for its owner (and admins); a
        member-only document without an owner is seen by admins only."""
        if self.admin or visibility == PUBLIC:
            return True
        if visibility == ALLIANCE:
            return self.is_member
        return self.owns(owner_id)

    def can_change(self, owner_id: str | None) -> bool:
        """Whether the viewer may edit or delete a document: its owner, or an admin (the only ones who may change
        a document without an owner, such as the operator's corpus)."""
        return self.admin or self.owns(owner_id)


ANONYMOUS = Viewer()


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: the secret is shown once and never stored; the catalog keeps `digest`."""

    token: str
    prefix: str
    digest: str


def hash_key(token: str) -> str:
    """The stored form of a key: sha256 of the whole token (keys are random, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_key() -> NewKey:
    """A random key with 256 bits of secret."""
    prefix = secrets.token_hex(4)
    token = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(token=token, prefix=prefix, digest=hash_key(token))


def key_prefix(token: str) -> str | None:
    """The non-secret id of a well-formed key, or None for anything else."""
    match = _KEY_RE.match(token)
    return match.group(1) if match else None


def digests_match(token: str, digest: str) -> bool:
    """Compare a presented key with a stored digest in constant time."""
    return hmac.compare_digest(hash_key(token).encode("ascii"), digest.encode("ascii"))
