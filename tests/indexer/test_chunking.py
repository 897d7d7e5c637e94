"""Passage splitting: token limits, no lost text, paragraph boundaries, stable ids."""

from __future__ import annotations

import itertools
import re

from indexer.chunking import split_into_passages
from indexer.embedding import HashEmbedder
from indexer.extract import Extraction, Section
from indexer.passages import cut_passages, embedding_text, passage_id

COUNT = HashEmbedder().count_tokens  # words (and CJK characters + bigrams), no special tokens


def _words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def _non_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_every_passage_fits_the_budget_and_no_text_is_lost() -> None:
    paragraphs = [_words(n, f"p{j}x") + "." for j, n in enumerate([5, 40, 3, 90, 17, 1, 60])]
    text = "\n\n".join(paragraphs)
    spans = split_into_passages(text, COUNT, 32)
    assert all(COUNT(text[s:e]) <= 32 for s, e in spans)
    assert _non_space("".join(text[s:e] for s, e in spans)) == _non_space(text)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "spans overlap or go backwards"


def test_short_paragraphs_are_packed_and_a_new_paragraph_starts_a_passage_once_half_full() -> None:
    first = "Alpha beta gamma delta. " * 4  # 16 tokens
    second = "Epsilon zeta eta theta. " * 2  # 8 tokens
    text = first.strip() + "\n\n" + second.strip()
    spans = split_into_passages(text, COUNT, 20)
    assert [text[s:e] for s, e in spans] == [first.strip(), second.strip()]
    # With room for both, small paragraphs share one passage.
    assert split_into_passages("One two.\n\nThree four.", COUNT, 20) == [(0, len("One two.\n\nThree four."))]


def test_sentences_stay_whole_when_they_fit() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(10)]
    text = " ".join(sentences)
    for start, end in split_into_passages(text, COUNT, 16):
        piece = text[start:end]
        assert piece.startswith("Sentence number") and piece.endswith("words.")


def test_a_sentence_longer_than_the_budget_is_cut_into_word_windows() -> None:
    text = _words(100)
    spans = split_into_passages(text, COUNT, 30)
    assert len(spans) == 4
    assert [COUNT(text[s:e]) for s, e in spans] == [30, 30, 30, 10]


def test_chinese_text_is_split_on_its_own_punctuation() -> None:
    text = "同伴互评需要清晰的评分量表。" * 6 + "\n\n" + "校准环节能提高评分一致性！" * 6
    spans = split_into_passages(text, COUNT, 60)
    assert all(COUNT(text[s:e]) <= 60 for s, e in spans)
    assert all(text[e - 1] in "。！" for s, e in spans)


def test_cut_passages_keeps_page_heading_offsets_and_reserves_room_for_context() -> None:
    extraction = Extraction(
        "application/pdf",
        (
            Section("First page text about rubrics. " * 3, page=1),
            Section("Second page on calibration. " * 20, page=2, heading=("Results",)),
        ),
    )
    passages = cut_passages("doc1", "a" * 64, extraction, COUNT, 40, title="Peer review", default_language="en")
    assert passages[0].page == 1 and passages[-1].page == 2
    assert {p.heading for p in passages if p.page == 2} == {("Results",)}
    for p in passages:
        section = extraction.sections[p.page - 1]
        assert section.text[p.char_start : p.char_end] == p.text
        assert COUNT(embedding_text(p.text, "Peer review", p.heading)) <= 40
    assert [p.ordinal for p in passages] == list(range(len(passages)))


def test_passage_ids_are_stable_and_depend_on_place_and_text() -> None:
    sha = "b" * 64
    assert passage_id(sha, 3, 10, "text") == passage_id(sha, 3, 10, "text")
    assert (
        len(
            {
                passage_id(sha, 3, 10, "text"),
                passage_id(sha, 4, 10, "text"),
                passage_id(sha, 3, 11, "text"),
                passage_id(sha, 3, 10, "texts"),
            }
        )
        == 4
    )


def test_embedding_text_adds_title_and_headings_unless_the_text_starts_with_them() -> None:
    assert embedding_text("Body.", "Title", ("Part", "Sub")) == "Title — Part — Sub\nBody."
    assert embedding_text("Title\n\nBody.", "Title", ()) == "Title\n\nBody."
    assert embedding_text("Body.", None, ()) == "Body."


def test_titles_come_from_properties_unless_placeholders_then_headings_first_lines_or_the_file_name() -> None:
    from indexer.passages import infer_title

    page = Section("Writing Learning Outcomes\n\nA guide for lecturers.", page=1)
    assert infer_title(Extraction("application/pdf", (page,), title="Learning outcomes guide"), "x.pdf") == (
        "Learning outcomes guide"
    )
    junk = Extraction("application/pdf", (page,), title="Microsoft Word - outcomes_v3.docx")
    assert infer_title(junk, "x.pdf") == "Writing Learning Outcomes"
    headed = Extraction("text/markdown", (Section("Intro text.", heading=("Offline access", "Intro")),))
    assert infer_title(headed, "notes.md") == "Offline access"
    long_first_line = Extraction("text/plain", (Section("word " * 60),))
    assert infer_title(long_first_line, "field_notes-2024.txt") == "field notes 2024"


def test_long_context_keeps_its_most_specific_end() -> None:
    from indexer.passages import CONTEXT_MAX_CHARS

    heading = ("Part " + "x" * 200, "Section on calibration")
    embedded = embedding_text("Body.", "A title", heading)
    context, body = embedded.split("\n")
    assert body == "Body." and len(context) == CONTEXT_MAX_CHARS
    assert context.startswith("…") and context.endswith("Section on calibration")
