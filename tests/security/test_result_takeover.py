"""Issue 11, defect 5: taking over another member's result.

Attacks: (1) a member uploads a one-word edit of another member's public report; near-duplicate clusters showed
the newest copy, so the copy became the result shown, and once the copy was made member-only the original was
hidden from everyone until the next build. (2) A free-text `translation_group` let a foreign document lead
another member's group, the member's own documents shown only as its "also in" links.

Oracle: each member's public document is a hit for anonymous callers, whatever another member uploads or
changes, and no hit of one member stands for (near duplicates) or links (also in) another member's documents.
"""

from __future__ import annotations

from tests.security.sites import Site, SiteMaker

MEMBERS = {"alpha": "Alpha University", "beta": "Beta College"}
REPORT = " ".join(
    f"In week {i} the cohort of {1000 + i} learners reviewed {3 + i % 4} design submissions each using the "
    f"calibrated rubric number {i}, and instructors audited a sample of {50 + i} reviews."
    for i in range(30)
)
QUERY = "calibrated rubric design submissions reviews"


def _owners(site: Site, hit: dict[str, object]) -> set[str]:
    """The members of a hit's document and of every document it stands for or links."""
    linked = [str(hit["document_id"]), *map(str, hit["near_duplicates"])]  # type: ignore[call-overload]
    linked += [str(t["document_id"]) for t in hit["also_in"]]  # type: ignore[index, attr-defined]
    shown = [site.client.get(f"/documents/{d}", headers=site.auth("admin")).json() for d in linked]
    return {str(d["member"]) for d in shown}


def test_a_near_copy_by_another_member_neither_displaces_nor_hides_the_original(site_of: SiteMaker) -> None:
    site = site_of(MEMBERS)
    original = site.upload("alpha", REPORT, visibility="public", language="en")
    site.build()
    copy = site.upload("beta", REPORT.replace("audited", "checked", 1), visibility="public", language="en")
    site.build()
    hits = site.hits(None, QUERY, group="document")
    assert {h["document_id"] for h in hits} >= {original, copy}, "each member's document stays a result"
    assert all(len(_owners(site, h)) == 1 for h in hits), "no hit stands for another member's document"

    # The copy's owner makes it member-only: the original stays found by everyone, before any new build.
    patched = site.client.patch(f"/documents/{copy}", json={"visibility": "member"}, headers=site.auth("beta"))
    assert patched.status_code == 200, patched.text
    assert original in site.found(None, QUERY)
    assert original in site.found("alpha", QUERY)
    assert copy not in site.found(None, QUERY) and copy not in site.found("alpha", QUERY)


def test_a_foreign_document_cannot_lead_or_join_another_members_translation_group(site_of: SiteMaker) -> None:
    site = site_of(MEMBERS)
    english = site.upload(
        "alpha", "Peer review handbook for large online courses.", language="en", translation_group="peer-review",
        visibility="public",
    )  # fmt: skip
    spanish = site.upload(
        "alpha", "Manual de revisión entre pares para cursos en línea.", language="es",
        translation_group="peer-review", visibility="public",
    )  # fmt: skip
    foreign = site.upload(
        "beta", "Peer review handbook peer review handbook for large online courses, our edition.", language="en",
        translation_group="peer-review", visibility="public",
    )  # fmt: skip
    site.build()
    hits = site.hits(None, "peer review handbook online courses", group="document")
    by_id = {str(h["document_id"]): h for h in hits}
    assert english in by_id, "the member's own document leads its group"
    assert [t["document_id"] for t in by_id[english]["also_in"]] == [spanish]  # type: ignore[union-attr, index]
    assert foreign in by_id and by_id[foreign]["also_in"] == []
    assert all(len(_owners(site, h)) == 1 for h in hits)
