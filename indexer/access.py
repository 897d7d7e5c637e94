"""Who may see what: members, API keys and the visibility rule shared by the catalog, the CLI and the API.

A member is an institution of the alliance with a short id (`tsinghua`) and a display name
(`Tsinghua University`). Documents name their member institution by display name in their `member`
metadata field (as the bundled corpus does), so a document belongs to the member whose name matches it,
compared case-insensitively; uploads through the API set that field from the key.

An API key is `msk_<prefix>_<secret>`: the prefix (8 hex digits) identifies the key without revealing it
(it is the key's id in listings and logs); the catalog keeps only the sha256 of the whole key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PUBLIC, ALLIANCE, MEMBER_ONLY = "public", "alliance", "member"
KEY_PREFIX = "msk_"
_KEY_RE = re.compile(r"^msk_([0-9a-f]{8})_[A-Za-z0-9_-]{32,64}$")
MEMBER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")


@dataclass(frozen=True)
class Viewer:
    """Whose eyes a read is for: anonymous (no member, not admin), a member (by display name), or an admin."""

    member: str | None = None
    admin: bool = False

    @property
    def is_member(self) -> bool:
        """Whether the viewer holds a key of the alliance (member or admin)."""
        return self.admin or self.member is not None

    def owns(self, document_member: str | None) -> bool:
        """Whether a document naming `document_member` as its institution belongs to this viewer."""
        return (
            self.member is not None
            and document_member is not None
            and self.member.casefold() == document_member.casefold()
        )

    def can_see(self, visibility: str, document_member: str | None) -> bool:
        """The visibility rule: public for everyone, alliance for any key, member for that member (and admins)."""
        if self.admin or visibility == PUBLIC:
            return True
        if visibility == ALLIANCE:
            return self.is_member
        return self.owns(document_member)

    def can_change(self, document_member: str | None) -> bool:
        """Whether the viewer may edit or delete a document: its own member, or an admin."""
        return self.admin or self.owns(document_member)


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
