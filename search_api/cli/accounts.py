"""`moocsearch members` and `moocsearch keys`: who may contribute, and the API keys they use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated

import typer

from indexer.access import DEFAULT_MEMBER_VISIBILITY, key_prefix
from indexer.catalog import Catalog, Member
from search_api.cli.common import JsonOpt, app, emit, fail, reported, settings

members_app = typer.Typer(help="Member institutions of the alliance.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of members and operators (shown once, stored hashed).", no_args_is_help=True)
app.add_typer(members_app, name="members")
app.add_typer(keys_app, name="keys")


_DEFAULT_VISIBILITY_HELP = (
    "Visibility of the member's uploads that do not say: member (the default: only its keys and admins), "
    "alliance (any key) or public."
)


def _member_dict(member: Member) -> dict[str, object]:
    return asdict(member) | {"name_conflict": member.name_conflict}


@contextmanager
def _catalog() -> Iterator[Catalog]:
    """The catalog of the configured data directory; account errors become CLI errors (exit 1)."""
    catalog = Catalog(settings().data_dir / "catalog.sqlite3")
    try:
        with reported():
            yield catalog
    finally:
        catalog.close()


@members_app.command("add")
def members_add(
    member_id: Annotated[str, typer.Argument(help="Short id, e.g. tsinghua (lowercase letters, digits, - or _).")],
    name: Annotated[
        str, typer.Option(help="Display name, as documents name their member, e.g. 'Tsinghua University'.")
    ],
    default_visibility: Annotated[str, typer.Option(help=_DEFAULT_VISIBILITY_HELP)] = DEFAULT_MEMBER_VISIBILITY,
    as_json: JsonOpt = False,
) -> None:
    """Register a member institution (its name must differ from every other's, ignoring case, look-alike letters
    and spacing). Documents already ingested that name it become its own."""
    with _catalog() as catalog:
        member = catalog.add_member(member_id, name, default_visibility)
    if as_json:
        emit(_member_dict(member))
    else:
        typer.echo(f"added member {member.id} ({member.name}); uploads default to {member.default_visibility}")


@members_app.command("set")
def members_set(
    member_id: Annotated[str, typer.Argument(help="The member's id.")],
    name: Annotated[str | None, typer.Option(help="A new display name (its documents show it).")] = None,
    default_visibility: Annotated[str | None, typer.Option(help=_DEFAULT_VISIBILITY_HELP)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a member or change its uploads' default visibility (documents stay its own: ownership is by id)."""
    if name is None and default_visibility is None:
        fail("nothing to change: give --name or --default-visibility", code=2)
    with _catalog() as catalog:
        member = catalog.set_member(member_id, name, default_visibility)
    if as_json:
        emit(_member_dict(member))
    else:
        typer.echo(f"member {member.id} ({member.name}); uploads default to {member.default_visibility}")


@members_app.command("list")
def members_list(as_json: JsonOpt = False) -> None:
    """Members, with the number of keys in use."""
    with _catalog() as catalog:
        members = catalog.list_members()
        active = {m.id: sum(k.revoked_at is None for k in catalog.list_keys(m.id)) for m in members}
    if as_json:
        emit([_member_dict(m) | {"active_keys": active[m.id]} for m in members])
        return
    for m in members:
        state = "disabled" if m.disabled else "active"
        conflict = "  NAME CONFLICT: reads as another member's name; rename with `members set`" * m.name_conflict
        typer.echo(f"{m.id:20} {state:9} {active[m.id]:3} key(s) {m.default_visibility:9} {m.name}{conflict}")
    typer.echo(f"{len(members)} member(s)")


def _set_disabled(member_id: str, disabled: bool, as_json: bool) -> None:
    with _catalog() as catalog:
        member = catalog.set_member_disabled(member_id, disabled)
    if as_json:
        emit(_member_dict(member))
    else:
        typer.echo(f"member {member.id} {'disabled: its keys stop working now' if disabled else 'enabled'}")


@members_app.command("disable")
def members_disable(
    member_id: Annotated[str, typer.Argument(help="The member's id.")], as_json: JsonOpt = False
) -> None:
    """Disable a member: its keys stop working at once (its documents stay)."""
    _set_disabled(member_id, True, as_json)


@members_app.command("enable")
def members_enable(
    member_id: Annotated[str, typer.Argument(help="The member's id.")], as_json: JsonOpt = False
) -> None:
    """Enable a disabled member again; its keys that were not revoked work again."""
    _set_disabled(member_id, False, as_json)


@keys_app.command("create")
def keys_create(
    member: Annotated[str | None, typer.Option(help="The member id the key speaks for.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An operator key: admin routes, every document.")] = False,
    label: Annotated[str | None, typer.Option(help="A note for people, e.g. who holds the key.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once: only its hash is stored, so it cannot be shown again."""
    if member is None and not admin:
        fail("name the member the key is for (--member ID), or make an operator key with --admin", code=2)
    with _catalog() as catalog:
        key, token = catalog.create_key(member, admin=admin, label=label)
    if as_json:
        emit(asdict(key) | {"key": token})
        return
    typer.echo(token)
    owner = f"member {key.member_id}" if key.member_id else "the operators"
    typer.echo(
        f"key {key.prefix} for {owner}{' (admin)' if key.admin else ''}: store it now, it is not shown again",
        err=True,
    )


@keys_app.command("list")
def keys_list(
    member: Annotated[str | None, typer.Option(help="Only this member's keys.")] = None, as_json: JsonOpt = False
) -> None:
    """Keys by prefix (never the secret), with their member and state."""
    with _catalog() as catalog:
        keys = catalog.list_keys(member)
    if as_json:
        emit([asdict(k) for k in keys])
        return
    for k in keys:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        role = "admin" if k.admin else "member"
        typer.echo(f"{k.prefix}  {role:6} {k.member_id or '-':20} {state:32} {k.label or ''}")
    typer.echo(f"{len(keys)} key(s)")


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (see `keys list`), or the whole key.")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: it stops working at once."""
    with _catalog() as catalog:
        key = catalog.revoke_key(key_prefix(prefix) or prefix)
    emit(asdict(key)) if as_json else typer.echo(f"revoked key {key.prefix} ({key.revoked_at})")
