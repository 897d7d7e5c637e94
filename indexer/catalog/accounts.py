"""Members of the alliance and their API keys (stored as digests, found by a non-secret prefix)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from indexer.access import (
    DEFAULT_MEMBER_VISIBILITY,
    MAX_NAME,
    MEMBER_ID_RE,
    NewKey,
    Viewer,
    digests_match,
    display_name,
    key_prefix,
    name_key,
    new_key,
)
from indexer.catalog.database import Database, utc_now
from indexer.metadata import VISIBILITIES


@dataclass(frozen=True)
class Member:
    """An institution of the alliance: a short id for commands, the display name its documents carry, and the
    visibility of its uploads that do not say. `name_key` is None only for a member whose name collided with an
    older member's when names got canonical forms (catalog migration 2): it should be renamed."""

    id: str
    name: str
    disabled: bool
    created_at: str
    updated_at: str
    name_key: str | None
    default_visibility: str

    @property
    def name_conflict(self) -> bool:
        """Whether another member holds this member's canonical name (rename one of them)."""
        return self.name_key is None


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: its non-secret prefix and what it may do; never the secret or its digest."""

    prefix: str
    member_id: str | None
    member_name: str | None
    admin: bool
    label: str | None
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class KeyHolder:
    """Who a valid key speaks for."""

    prefix: str
    member_id: str | None
    member_name: str | None
    admin: bool
    default_visibility: str | None = None  # its member's, for uploads that do not say

    @property
    def viewer(self) -> Viewer:
        """What this key may read."""
        return Viewer(member_id=self.member_id, admin=self.admin, member_name=self.member_name)


class AccountError(ValueError):
    """A members/keys request that cannot be done (unknown member, name taken, bad id)."""


_KEY_SELECT = (
    "SELECT k.prefix, k.member_id, m.name AS member_name, k.admin, k.label, k.created_at, k.revoked_at "
    "FROM api_keys k LEFT JOIN members m ON m.id = k.member_id"
)


def resolve_owner(db: Database, name: str | None) -> str | None:
    """The id of the member a document's `member` name designates: the member with exactly that display name,
    else the one with its canonical name; None for no name or a name no member has (the operator's corpus)."""
    if name is None:
        return None
    rows = db.query("SELECT id FROM members WHERE name = ? COLLATE BINARY", (display_name(name),))
    if len(rows) != 1:  # two members registered before names were canonical may share a display name
        rows = db.query("SELECT id FROM members WHERE name_key = ?", (name_key(name),))
    return str(rows[0][0]) if rows else None


def _adopt(member_id: str, key: str, now: str) -> tuple[str, tuple[str, ...]]:
    """The statement giving a member the documents without an owner that name it (ingested by the operator
    before the member was registered, or under its new name)."""
    return (
        "UPDATE documents SET owner_id = ?, updated_at = ? "
        "WHERE owner_id IS NULL AND name_key(json_extract(metadata, '$.member')) = ?",
        (member_id, now, key),
    )


def _checked_name(name: str) -> str:
    name = display_name(name)
    if not name_key(name):
        raise AccountError("the member's name is empty")
    if len(name) > MAX_NAME:
        raise AccountError(f"the member's name is longer than {MAX_NAME} characters")
    return name


def _checked_visibility(visibility: str) -> str:
    if visibility not in VISIBILITIES:
        raise AccountError(f"default visibility {visibility!r}: use one of {', '.join(VISIBILITIES)}")
    return visibility


def _member(row: sqlite3.Row) -> Member:
    return Member(**{**dict(row), "disabled": bool(row["disabled"])})


def _api_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(**{**dict(row), "admin": bool(row["admin"])})


class Accounts:
    """The members and api_keys tables: who may upload and read what."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_member(self, member_id: str, name: str, default_visibility: str = DEFAULT_MEMBER_VISIBILITY) -> Member:
        """Register an institution; its id and its canonical name (`name_key`) must be new. Documents without an
        owner that name it become its own."""
        name, visibility = _checked_name(name), _checked_visibility(default_visibility)
        if not MEMBER_ID_RE.match(member_id):
            raise AccountError(f"member id {member_id!r}: use 2-63 lowercase letters, digits, '-' or '_'")
        with self._db.lock:
            if self.get_member(member_id) is not None:
                raise AccountError(f"member {member_id!r} already exists")
            self._check_name_free(name, member_id)
            now = utc_now()
            self._db.write(
                [
                    (
                        "INSERT INTO members (id, name, name_key, default_visibility, disabled, created_at, "
                        "updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                        (member_id, name, name_key(name), visibility, now, now),
                    ),
                    _adopt(member_id, name_key(name), now),
                ]
            )
            member = self.get_member(member_id)
            assert member is not None
            return member

    def _check_name_free(self, name: str, member_id: str) -> None:
        """AccountError when another member's name has the same canonical form (or the same spelling)."""
        rows = self._db.query(
            "SELECT id, name FROM members WHERE (name_key = ? OR name = ?) AND id != ?",
            (name_key(name), name, member_id),
        )
        if rows:
            raise AccountError(
                f"member {rows[0][0]!r} is already named {rows[0][1]!r}, which reads the same as {name!r} "
                "(names are compared ignoring case, accents' encoding, look-alike letters and spacing)"
            )

    def set_member(self, member_id: str, name: str | None = None, default_visibility: str | None = None) -> Member:
        """Rename a member (its documents show the new name; ownership is by id and does not change) or change
        the visibility of its uploads that do not say."""
        with self._db.lock:
            member = self.get_member(member_id)
            if member is None:
                raise AccountError(f"no member {member_id!r}")
            now = utc_now()
            statements: list[tuple[str, tuple[object, ...]]] = []
            if default_visibility is not None:
                statements.append(
                    (
                        "UPDATE members SET default_visibility = ?, updated_at = ? WHERE id = ?",
                        (_checked_visibility(default_visibility), now, member_id),
                    )
                )
            if name is not None:
                name = _checked_name(name)
                self._check_name_free(name, member_id)
                statements += [
                    (
                        "UPDATE members SET name = ?, name_key = ?, updated_at = ? WHERE id = ?",
                        (name, name_key(name), now, member_id),
                    ),
                    (
                        "UPDATE documents SET metadata = json_set(metadata, '$.member', ?), updated_at = ? "
                        "WHERE owner_id = ?",
                        (name, now, member_id),
                    ),
                    _adopt(member_id, name_key(name), now),
                ]
            if statements:
                self._db.write(statements)
            updated = self.get_member(member_id)
            assert updated is not None
            return updated

    def member_by_name(self, name: str) -> Member | None:
        """The member a name designates (its exact display name, else its canonical name), if any."""
        member_id = resolve_owner(self._db, name)
        return None if member_id is None else self.get_member(member_id)

    def get_member(self, member_id: str) -> Member | None:
        """One member by id."""
        rows = self._db.query("SELECT * FROM members WHERE id = ?", (member_id,))
        return _member(rows[0]) if rows else None

    def list_members(self) -> list[Member]:
        """Every member, by id."""
        return [_member(row) for row in self._db.query("SELECT * FROM members ORDER BY id")]

    def set_member_disabled(self, member_id: str, disabled: bool) -> Member:
        """Disable (or enable again) a member: a disabled member's keys stop working at once."""
        with self._db.lock:
            if self.get_member(member_id) is None:
                raise AccountError(f"no member {member_id!r}")
            self._db.write(
                [
                    (
                        "UPDATE members SET disabled = ?, updated_at = ? WHERE id = ?",
                        (int(disabled), utc_now(), member_id),
                    )
                ]
            )
            member = self.get_member(member_id)
            assert member is not None
            return member

    def create_key(self, member_id: str | None, admin: bool = False, label: str | None = None) -> tuple[ApiKey, str]:
        """Make a key for a member (or, with `admin`, for the operators); returns it and its secret, which is
        not stored and cannot be shown again."""
        if member_id is None and not admin:
            raise AccountError("a key belongs to a member unless it is an admin key")
        with self._db.lock:
            if member_id is not None and self.get_member(member_id) is None:
                raise AccountError(f"no member {member_id!r}")
            key: NewKey = new_key()
            while self._db.query("SELECT 1 FROM api_keys WHERE prefix = ?", (key.prefix,)):
                key = new_key()
            self._db.write(
                [
                    (
                        "INSERT INTO api_keys (prefix, digest, member_id, admin, label, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (key.prefix, key.digest, member_id, int(admin), label, utc_now()),
                    )
                ]
            )
            return self._key(key.prefix), key.token

    def _key(self, prefix: str) -> ApiKey:
        return _api_key(self._db.query(f"{_KEY_SELECT} WHERE k.prefix = ?", (prefix,))[0])

    def list_keys(self, member_id: str | None = None) -> list[ApiKey]:
        """Keys (all, or one member's), oldest first, without secrets."""
        where, params = ("WHERE k.member_id = ?", (member_id,)) if member_id else ("", ())
        rows = self._db.query(f"{_KEY_SELECT} {where} ORDER BY k.created_at, k.rowid", params)
        return [_api_key(row) for row in rows]

    def revoke_key(self, prefix: str) -> ApiKey:
        """Revoke a key by its prefix; it stops working at once. Revoking twice keeps the first time."""
        with self._db.lock:
            if not self._db.query("SELECT 1 FROM api_keys WHERE prefix = ?", (prefix,)):
                raise AccountError(f"no key {prefix!r}")
            self._db.write(
                [
                    (
                        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE prefix = ?",
                        (utc_now(), prefix),
                    )
                ]
            )
            return self._key(prefix)

    def authenticate(self, token: str) -> KeyHolder | None:
        """Who a presented key speaks for, or None for a malformed, unknown, revoked or disabled-member key.

        The key is found by its non-secret prefix and its digest compared in constant time."""
        prefix = key_prefix(token)
        if prefix is None:
            return None
        rows = self._db.query(
            "SELECT k.digest, k.member_id, m.name, k.admin, k.revoked_at, m.disabled, m.default_visibility "
            "FROM api_keys k LEFT JOIN members m ON m.id = k.member_id WHERE k.prefix = ?",
            (prefix,),
        )
        if not rows:
            return None
        digest, member_id, member_name, admin, revoked_at, disabled, default_visibility = rows[0]
        if not digests_match(token, digest) or revoked_at is not None or disabled:
            return None
        return KeyHolder(prefix, member_id, member_name, bool(admin), default_visibility)
