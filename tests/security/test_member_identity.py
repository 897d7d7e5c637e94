"""Issue 11, defect 2: member identity under Unicode.

Attack: members whose names differ only in ways people cannot see ("Großstadt" / "Grossstadt", a long s, the
Kelvin sign) read and edited each other's member-only documents, because ownership compared display names with
`casefold()`; a member registered with a decomposed (NFD) name was locked out of its own documents (their metadata
is NFC); the SQL listing (`COLLATE NOCASE`, ASCII only) and the Python checks disagreed.

Oracle: a document belongs to the member whose key uploaded it, by id. Each caller sees exactly the public and
alliance documents (alliance: any key) and its own member-only ones, and the same set in listings, shows and
searches; it changes only its own.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer import access
from indexer.catalog import AccountError, Catalog
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.cli import app as cli_app
from search_api.settings import ApiSettings
from tests.security.sites import SiteMaker, catalog_with_members

# Pairs of names that read the same to people (and to casefold()), but differ for SQLite's NOCASE.
LOOK_ALIKES = {
    "sharp s": ("Großstadt Institut", "Grossstadt Institut"),
    "long s": ("Univerſity of Baſel", "University of Basel"),
    "Kelvin sign": ("\u212aent State College", "Kent State College"),
}
NFD_NAME = unicodedata.normalize("NFD", "Université de Montréal")


# The canonical form.


@pytest.mark.parametrize("first, second", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alike_names_have_one_canonical_form(first: str, second: str) -> None:
    assert access.name_key(first) == access.name_key(second)


def test_the_canonical_form_folds_what_people_cannot_see_and_keeps_what_they_can() -> None:
    key = access.name_key
    assert key(NFD_NAME) == key("Université de Montréal") == key("UNIVERSITÉ  DE\u00a0MONTRÉAL")
    assert key("Ｔｓｉｎｇｈｕａ") == key("tsinghua")  # fullwidth
    assert key("Tsing\u200bhua") == key("Tsinghua")  # a zero-width space
    assert key("\u0130stanbul") == key(key("\u0130stanbul"))  # idempotent, even where casefold changes length
    assert key("Universite de Montreal") != key("Université de Montréal")  # accents are letters
    assert key("Tsinghua") != key("Tsinghua 2")


# Registration: a name that reads as another member's is refused, clearly.


@pytest.mark.parametrize("first, second", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_look_alike_name_is_refused_at_registration(tmp_path: Path, first: str, second: str) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    try:
        catalog.add_member("first", first)
        with pytest.raises(AccountError, match="reads the same"):
            catalog.add_member("second", second)
        with pytest.raises(AccountError, match="reads the same"):
            catalog.add_member("third", second.upper())
    finally:
        catalog.close()
    result = CliRunner().invoke(
        cli_app, ["--data-dir", str(tmp_path / "cli"), "members", "add", "first", "--name", first]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        cli_app, ["--data-dir", str(tmp_path / "cli"), "members", "add", "second", "--name", second]
    )
    assert result.exit_code == 1 and "reads the same" in result.output


# Access: members whose names read the same (registered before the fix) stay strangers.


@pytest.mark.parametrize("first, second", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alike_members_cannot_read_or_edit_each_others_documents(
    site_of: SiteMaker, first: str, second: str
) -> None:
    site = site_of({"first": first, "second": second})
    docs = {
        "first": site.upload("first", "Quokka budget of the first institute.", visibility="member"),
        "second": site.upload("second", "Quokka salaries of the second institute.", visibility="member"),
    }
    site.build()
    for who, other in (("first", "second"), ("second", "first")):
        mine, theirs = docs[who], docs[other]
        assert site.listed(who) == {mine}
        assert site.shown(who, set(docs.values())) == {mine}
        assert site.found(who, "quokka budget salaries institute") == {mine}
        assert site.client.get(f"/documents/{theirs}/file", headers=site.auth(who)).status_code == 404
        patch = site.client.patch(f"/documents/{theirs}", json={"visibility": "public"}, headers=site.auth(who))
        assert patch.status_code == 404
        assert site.client.delete(f"/documents/{theirs}", headers=site.auth(who)).status_code == 404
    assert site.listed("admin") == set(docs.values())


def test_a_member_with_a_decomposed_name_is_not_locked_out_of_its_own_documents(site_of: SiteMaker) -> None:
    site = site_of({"montreal": NFD_NAME, "other": "Other College"})
    doc = site.upload("montreal", "Kumquat zeppelin minutes of the faculty.", visibility="member")
    site.build()
    assert site.listed("montreal") == {doc}
    assert site.shown("montreal", {doc}) == {doc}
    assert site.found("montreal", "kumquat zeppelin minutes") == {doc}
    patch = site.client.patch(f"/documents/{doc}", json={"title": "Minutes"}, headers=site.auth("montreal"))
    assert patch.status_code == 200, patch.text
    assert site.listed("other") == set() and site.found("other", "kumquat zeppelin minutes") == set()


def test_the_sql_listing_and_the_python_checks_agree(site_of: SiteMaker, settings: ApiSettings) -> None:
    """Documents ingested by the operator name their institution in many spellings; whoever owns them, the
    listing (SQL), the show (Python) and the search (the numpy mask) give every caller the same set."""
    site = site_of({"ecole": "École Normale", "other": "Other College"})
    indexer = Indexer(site.settings, site.embedder)
    ids = set()
    for number, member in enumerate(("ÉCOLE NORMALE", "École\u00a0Normale", "Ecole Normale", "ÉCOLE NORMALE 2")):
        metadata = DocumentMetadata(member=member, visibility="member", title=f"t{number}")
        ids.add(indexer.ingest(f"Marmalade xylophone notes {number}.".encode(), f"{number}.txt", metadata).document.id)
    indexer.close()
    site.build()
    seen = {}
    for who in (None, "ecole", "other", "admin"):
        listed, shown = site.listed(who), site.shown(who, ids)
        assert listed == shown == site.found(who, "marmalade xylophone notes"), who
        seen[who] = listed
    assert seen[None] == seen["other"] == set()
    assert len(seen["ecole"]) == 2  # the two spellings of its own name; "Ecole" and "... 2" are other names
    assert seen["admin"] == ids


def test_an_admin_names_members_by_canonical_name_and_an_unknown_name_is_refused(site_of: SiteMaker) -> None:
    site = site_of({"grossstadt": "Großstadt Institut", "other": "Other College"})
    doc = site.upload("admin", "Rubrics for the Grossstadt seminar.", member="GROSSSTADT INSTITUT", visibility="member")
    shown = site.client.get(f"/documents/{doc}", headers=site.auth("grossstadt"))
    assert shown.status_code == 200 and shown.json()["member"] == "Großstadt Institut"
    refused = site.client.post(
        "/documents",
        files={"file": ("x.txt", b"Typo in the member name.", "text/plain")},
        data={"member": "Grosstadt Institut"},
        headers=site.auth("admin"),
    )
    assert refused.status_code == 422 and "no registered member" in refused.json()["error"]["message"]
    # Giving the document to another member moves it: the first loses it, the second gains it.
    moved = site.client.patch(f"/documents/{doc}", json={"member": "other college"}, headers=site.auth("admin"))
    assert moved.status_code == 200 and moved.json()["member"] == "Other College"
    assert site.shown("grossstadt", {doc}) == set() and site.shown("other", {doc}) == {doc}


# Migration: a catalog at version 1 whose documents name members by display name.


def test_a_version_1_catalog_migrates_to_owners_by_id(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    catalog_with_members(
        path, {"gross": "Großstadt Institut", "grosse": "Grossstadt Institut", "montreal": NFD_NAME, "k": "Kent"}
    )
    names = {
        "a": "Großstadt Institut",  # exactly the first look-alike: its own
        "b": "Grossstadt Institut",  # exactly the second: its own
        "c": "GROSSSTADT INSTITUT",  # both read the same: ambiguous, nobody's (admins only)
        "d": "Université de Montréal",  # NFC spelling of an NFD-registered name: its own
        "e": "KENT",  # one member reads the same: its own
        "f": "University of Toronto",  # the operator's corpus naming an institution that is no member
        "g": None,
    }
    db = sqlite3.connect(path, isolation_level=None)
    for letter, member in names.items():
        metadata = '{"visibility": "member"}' if member is None else f'{{"member": "{member}", "visibility": "member"}}'
        db.execute(
            "INSERT INTO documents (id, sha256, filename, size_bytes, metadata, status, created_at, updated_at) "
            "VALUES (?, ?, 'f.txt', 1, ?, 'indexed', '2025-01-01', '2025-01-01')",
            (letter * 16, letter * 64, metadata),
        )
    db.close()
    catalog = Catalog(path)
    try:
        owners = {letter: catalog.get_document(letter * 16).owner_id for letter in names}  # type: ignore[union-attr]
        assert owners == {"a": "gross", "b": "grosse", "c": None, "d": "montreal", "e": "k", "f": None, "g": None}
        members = {m.id: m for m in catalog.list_members()}
        assert not members["gross"].name_conflict and members["grosse"].name_conflict  # kept, flagged to rename
        assert {m.default_visibility for m in members.values()} == {"member"}
        catalog.set_member("grosse", name="Grossstadt Hochschule")
        assert not catalog.get_member("grosse").name_conflict  # type: ignore[union-attr]
        assert catalog.get_document("b" * 16).metadata.member == "Grossstadt Hochschule"  # type: ignore[union-attr]
        # A member registered later adopts the operator's documents that name it.
        catalog.add_member("toronto", "university of toronto")
        assert catalog.get_document("f" * 16).owner_id == "toronto"  # type: ignore[union-attr]
    finally:
        catalog.close()
