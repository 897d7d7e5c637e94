"""Members of the alliance and their API keys (stored as digests, found by a non-secret prefix)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from indexer.access import MEMBER_ID_RE, NewKey, Viewer, digests_match, key_prefix, new_key
from indexer.catalog.database import Database, utc_now


@dataclass(frozen=True)
class Member:
    """An institution of the alliance: a short id for commands, the display name its documents carry."""

    id: str
    name: str
    disabled: bool
    created_at: str
    updated_at: str


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

    @property
    def viewer(self) -> Viewer:
        """What this key may read."""
        return Viewer(member=self.member_name, admin=self.admin)


class AccountError(ValueError):
    """A members/keys request that cannot be done (unknown member, name taken, bad id)."""


_KEY_SELECT = (
    "SELECT k.prefix, k.member_id, m.name AS member_name, k.admin, k.label, k.created_at, k.revoked_at "
    "FROM api_keys k LEFT JOIN members m ON m.id = k.member_id"
)


def _member(row: sqlite3.Row) -> Member:
    return Member(**{**dict(row), "disabled": bool(row["disabled"])})


def _api_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(**{**dict(row), "admin": bool(row["admin"])})


class Accounts:
    """The members and api_keys tables: who may upload and read what."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_member(self, member_id: str, name: str) -> Member:
        """Register an institution; its id and (case-insensitively) its name must be new."""
        name = " ".join(name.split())
        if not MEMBER_ID_RE.match(member_id):
            raise AccountError(f"member id {member_id!r}: use 2-63 lowercase letters, digits, '-' or '_'")
        if not name:
            raise AccountError("the member's name is empty")
        with self._db.lock:
            if self.get_member(member_id) is not None:
                raise AccountError(f"member {member_id!r} already exists")
            if self._db.query("SELECT 1 FROM members WHERE name = ?", (name,)):
                raise AccountError(f"another member is already named {name!r}")
            now = utc_now()
            self._db.write(
                [
                    (
                        "INSERT INTO members (id, name, disabled, created_at, updated_at) VALUES (?, ?, 0, ?, ?)",
                        (member_id, name, now, now),
                    )
                ]
            )
            member = self.get_member(member_id)
            assert member is not None
            return member

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
            "SELECT k.digest, k.member_id, m.name, k.admin, k.revoked_at, m.disabled "
            "FROM api_keys k LEFT JOIN members m ON m.id = k.member_id WHERE k.prefix = ?",
            (prefix,),
        )
        if not rows:
            return None
        digest, member_id, member_name, admin, revoked_at, disabled = rows[0]
        if not digests_match(token, digest) or revoked_at is not None or disabled:
            return None
        return KeyHolder(prefix=prefix, member_id=member_id, member_name=member_name, admin=bool(admin))
