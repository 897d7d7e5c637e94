"""Issue 11, defect 6 (default visibility): uploads and CLI ingests were `public` unless told otherwise, so a member
who forgot the field published to the world, and nothing said so.

Oracle: a member's upload that does not say is visible as its member's default visibility (`member` unless the
operator set another), and the answer says which; the operator's `moocsearch ingest` is public unless
`--visibility` says otherwise, and says so per file.
"""

from __future__ import annotations

import json
from pathlib import Path

from httpx import Response
from typer.testing import CliRunner

from indexer.catalog import Catalog
from search_api.cli import app as cli_app
from tests.security.sites import Site, SiteMaker

MEMBERS = {"alpha": "Alpha University", "beta": "Beta College"}


def _post(site: Site, who: str, text: bytes, **fields: str) -> Response:
    return site.client.post(
        "/documents", files={"file": ("r.txt", text, "text/plain")}, data=fields, headers=site.auth(who)
    )


def test_a_members_upload_that_does_not_say_is_member_only_and_the_answer_says_so(site_of: SiteMaker) -> None:
    site = site_of(MEMBERS)
    response = _post(site, "alpha", b"Draft budget of the department, not for publication.")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["visibility"] == "member" and "visibility member" in body["note"]
    doc = body["id"]
    assert site.client.get(f"/documents/{doc}").status_code == 404
    assert site.client.get(f"/documents/{doc}", headers=site.auth("beta")).status_code == 404
    assert site.client.get(f"/documents/{doc}", headers=site.auth("alpha")).json()["visibility"] == "member"
    site.build()
    assert site.found(None, "draft budget department") == set()
    assert site.found("alpha", "draft budget department") == {doc}
    # Saying so still works.
    public = _post(site, "alpha", b"Open syllabus of the course.", visibility="public")
    assert public.json()["visibility"] == "public" and "anyone" in public.json()["note"]


def test_the_default_is_per_member_and_set_by_the_operator(site_of: SiteMaker) -> None:
    site = site_of(MEMBERS)
    catalog = Catalog(site.settings.data_dir / "catalog.sqlite3")
    try:
        assert catalog.set_member("beta", default_visibility="alliance").default_visibility == "alliance"
    finally:
        catalog.close()
    assert _post(site, "beta", b"Shared with the alliance.").json()["visibility"] == "alliance"
    assert _post(site, "alpha", b"Kept to alpha.").json()["visibility"] == "member"
    # An admin's upload naming a member takes that member's default; one naming none is the operator's: public.
    named = _post(site, "admin", b"Uploaded for beta by the operators.", member="beta college")
    assert named.json()["visibility"] == "alliance"
    assert _post(site, "admin", b"The operators' own page.").json()["visibility"] == "public"


def test_members_commands_set_the_default_visibility(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    added = runner.invoke(cli_app, [*base, "members", "add", "alpha", "--name", "Alpha University", "--json"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["default_visibility"] == "member"
    changed = runner.invoke(cli_app, [*base, "members", "set", "alpha", "--default-visibility", "alliance"])
    assert changed.exit_code == 0 and "alliance" in changed.stdout
    bad = runner.invoke(cli_app, [*base, "members", "set", "alpha", "--default-visibility", "everyone"])
    assert bad.exit_code == 1 and "default visibility" in bad.output
    added = runner.invoke(
        cli_app, [*base, "members", "add", "beta", "--name", "Beta", "--default-visibility", "public"]
    )
    assert added.exit_code == 0 and "public" in added.stdout
    assert "alliance" in runner.invoke(cli_app, [*base, "members", "list"]).stdout


def test_cli_ingest_takes_visibility_and_says_it(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    (tmp_path / "a.txt").write_text("Operator corpus page.")
    (tmp_path / "b.txt").write_text("Alliance-only page.")
    plain = runner.invoke(cli_app, [*base, "ingest", str(tmp_path / "a.txt"), "--json"])
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)[0]["visibility"] == "public"  # the operator's ingest: public, and says so
    told = runner.invoke(cli_app, [*base, "ingest", str(tmp_path / "b.txt"), "--visibility", "alliance"])
    assert told.exit_code == 0, told.output
    assert "alliance" in told.stdout
    catalog = Catalog(tmp_path / "data" / "catalog.sqlite3")
    try:
        assert {d.filename: d.metadata.visibility for d in catalog.list_documents()} == {
            "a.txt": "public",
            "b.txt": "alliance",
        }
    finally:
        catalog.close()
