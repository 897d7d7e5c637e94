"""Snippets: marked query terms (stemmed, any script), the best window, HTML safety."""

from __future__ import annotations

from search_api.snippets import make_snippet, query_terms


def test_stemmed_terms_are_marked_and_offsets_point_into_the_text() -> None:
    text = "Instructors assessed the rubrics. Peer assessment scales to large courses."
    snippet = make_snippet(text, query_terms("peer assessment in a large course", {"en"}), "en")
    assert [text[s:e] for s, e in snippet.highlights] == ["assessed", "Peer", "assessment", "large", "courses"]
    assert snippet.html == (
        "Instructors <mark>assessed</mark> the rubrics. <mark>Peer</mark> <mark>assessment</mark> scales to "
        "<mark>large</mark> <mark>courses</mark>."
    )


def test_the_window_is_the_tight_stretch_with_most_distinct_terms() -> None:
    text = "Course context. " * 20 + "We ran peer assessment in a large course. " + "Filler text here. " * 20
    snippet = make_snippet(text, query_terms("peer assessment large course", {"en"}), "en", width=120)
    assert snippet.html.startswith("…") and snippet.html.endswith("…")
    assert "<mark>peer</mark> <mark>assessment</mark> in a <mark>large</mark> <mark>course</mark>" in snippet.html
    assert len(snippet.html.replace("<mark>", "").replace("</mark>", "")) <= 122


def test_chinese_terms_are_segmented_and_marked() -> None:
    snippet = make_snippet("如何组织同伴互评：量表很重要。", query_terms("同伴互评", {"zh"}), "zh")
    assert (
        snippet.html == "如何组织<mark>同伴</mark><mark>互评</mark>：量表很重要。"
        or "<mark>同伴互评</mark>" in snippet.html
    )


def test_text_is_html_escaped_and_no_match_gives_the_opening() -> None:
    snippet = make_snippet("A <b>bold</b> claim & peer review", query_terms("peer", {"en"}), "en")
    assert snippet.html == "A &lt;b&gt;bold&lt;/b&gt; claim &amp; <mark>peer</mark> review"
    plain = make_snippet("x " * 300, query_terms("nothing", {"en"}), "en", width=50)
    assert plain.highlights == () and plain.html.startswith("x x") and plain.html.endswith("…")
