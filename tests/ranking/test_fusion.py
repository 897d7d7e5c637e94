"""Reciprocal rank fusion and the lexical tokenizer against hand-computed oracles."""

from __future__ import annotations

import pytest

from indexer.lexical import LexicalIndex, tokenize
from search_api.ranking.fusion import allocate_by_group, reciprocal_rank_fusion
from search_api.ranking.types import Ranking


def test_rrf_adds_weighted_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([Ranking(1.0, (7, 3, 5)), Ranking(2.0, (3, 9))], k=10))
    assert fused[3] == pytest.approx(1 / 12 + 2 / 11)
    assert fused[7] == pytest.approx(1 / 11)
    assert fused[9] == pytest.approx(2 / 12)
    assert fused[5] == pytest.approx(1 / 13)
    assert [row for row, _ in reciprocal_rank_fusion([Ranking(1.0, (7, 3, 5)), Ranking(2.0, (3, 9))], k=10)] == [
        3,
        9,
        7,
        5,
    ]


def test_a_single_list_keeps_its_order_and_empty_lists_add_nothing() -> None:
    assert [row for row, _ in reciprocal_rank_fusion([Ranking(1.0, (4, 2, 8)), Ranking(1.0, ())])] == [4, 2, 8]


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


def test_coverage_is_the_share_of_query_idf_a_row_contains() -> None:
    import math

    index = LexicalIndex.build([("rubrics calibration", "en"), ("rubrics", "en"), ("video", "en"), ("video", "en")])
    _, rows, coverage = index.search_with_coverage("rubrics calibration zebra", "en", 10)
    idf = {t: math.log(1 + (4 - df + 0.5) / (df + 0.5)) for t, df in {"rubric": 2, "calibr": 1, "zebra": 0}.items()}
    mass = sum(idf.values())
    assert rows.tolist() == [0, 1]
    assert coverage.tolist() == pytest.approx([(idf["rubric"] + idf["calibr"]) / mass, idf["rubric"] / mass])


def test_per_position_weights_scale_each_contribution() -> None:
    fused = dict(reciprocal_rank_fusion([Ranking((0.5, 1.0), (1, 2)), Ranking(1.0, (2,))], k=10))
    assert fused == pytest.approx({1: 0.5 / 11, 2: 1.0 / 12 + 1.0 / 11})


def test_languages_take_the_places_the_allocation_gives_them() -> None:
    # Rows 0-2 English (group "en"), 10-11 Chinese. Fused by all evidence, English rows lead.
    fused = [(0, 0.9), (1, 0.8), (2, 0.7), (10, 0.3), (11, 0.2)]
    # The multilingual ranking puts a Chinese row second and fourth.
    allocation = [(1, 0.5), (11, 0.4), (2, 0.3), (10, 0.2)]

    def group(row: int) -> str:
        return "zh" if row >= 10 else "en"

    # Places: en, zh, en, zh -> filled by each language's fused order; row 2 and nothing else follow.
    assert allocate_by_group(fused, allocation, group) == [(0, 0.5), (10, 0.4), (1, 0.3), (11, 0.2), (2, 0.2)]


def test_an_allocation_without_a_language_leaves_its_rows_in_fused_order_after_it() -> None:
    fused = [(0, 0.9), (10, 0.8), (1, 0.05)]
    allocation = [(1, 0.5)]
    # One English place (taken by the best English row), then the rest by fused order, scores capped.
    assert allocate_by_group(fused, allocation, lambda row: row >= 10) == [(0, 0.5), (10, 0.5), (1, 0.05)]
