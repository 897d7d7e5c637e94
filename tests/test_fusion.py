"""Reciprocal rank fusion and the lexical tokenizer against hand-computed oracles."""

from __future__ import annotations

import pytest

from indexer.lexical import LexicalIndex, tokenize
from search_api.fusion import reciprocal_rank_fusion


def test_rrf_adds_weighted_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([(1.0, [7, 3, 5]), (2.0, [3, 9])], k=10))
    assert fused[3] == pytest.approx(1 / 12 + 2 / 11)
    assert fused[7] == pytest.approx(1 / 11)
    assert fused[9] == pytest.approx(2 / 12)
    assert fused[5] == pytest.approx(1 / 13)
    assert [row for row, _ in reciprocal_rank_fusion([(1.0, [7, 3, 5]), (2.0, [3, 9])], k=10)] == [3, 9, 7, 5]


def test_a_single_list_keeps_its_order_and_empty_lists_add_nothing() -> None:
    assert [row for row, _ in reciprocal_rank_fusion([(1.0, [4, 2, 8]), (1.0, [])])] == [4, 2, 8]


def test_tokenizer_stems_by_language_and_segments_unspaced_scripts() -> None:
    assert tokenize("Assessing the assessments", "en") == ["assess", "assess"]
    assert tokenize("Evaluaciones de los pares", "es") == ["evalu", "par"]
    assert tokenize("оценивание курсов", "ru") == ["оцениван", "курс"]
    assert {"同伴", "互评"} <= set(tokenize("同伴互评", "zh"))
    assert tokenize("ピアレビュー", "ja") == ["ピア", "アレ", "レビ", "ビュ", "ュー"]
    assert tokenize("in 2024 we had 12345678 learners", "en") == ["2024", "learner"]


def test_bm25_ranks_the_passage_with_the_rare_term_first() -> None:
    index = LexicalIndex.build(
        [("peer review of design work", "en"), ("calibration of peer graders", "en"), ("offline video", "en")]
    )
    scores, rows = index.search("calibrating peer graders", "en", 10)
    assert rows.tolist() == [1, 0] and scores[0] > scores[1] > 0
    assert index.search("nothing matches", "en", 10)[1].tolist() == []
