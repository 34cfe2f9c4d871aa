"""The exposure floor's pieces by hand, and the list figures."""
import numpy as np
import pytest

from rec_lib.scoring.floor import ItemTop, apply_floor, gaps, new_item_scores
from rec_lib.scoring.list_metrics import gini, list_figures


def test_new_item_scores_read_the_tiles_in_turn():
    tiles = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[2.0, 2.0]])]
    loads = [(0, lambda: tiles[0]), (2, lambda: tiles[1])]
    users = np.array([[1.0, 3.0]])
    # new candidates 1 and 2 (one in each tile): [0, 1] . [1, 3] = 3, [2, 2] . [1, 3] = 8
    np.testing.assert_allclose(new_item_scores(users, loads, np.array([1, 2])), [[3.0, 8.0]])


def test_gaps_by_hand():
    new_scores = np.array([[5.0, 1.0], [2.0, 2.0], [0.0, 0.0]])
    kth = np.array([3.0, np.nan, 1.0])  # user 1's list is not full
    got = gaps(new_scores, kth, [None, None, np.array([7])], np.array([4, 7]))
    # user 0: 5 - 3, 1 - 3; user 1: +inf (room left); user 2 has seen candidate 7
    np.testing.assert_array_equal(got, [[2.0, -2.0], [np.inf, np.inf], [-1.0, -np.inf]])
    # with the lists: candidate 4 is in user 0's list: +inf, however its score compares
    lists = np.array([[4, 9], [3, -1], [9, 8]])
    got = gaps(new_scores, kth, [None, None, np.array([7])], np.array([4, 7]), lists)
    np.testing.assert_array_equal(got, [[np.inf, -2.0], [np.inf, np.inf], [-1.0, -np.inf]])


def test_item_top_keeps_the_best_gaps_across_blocks_ties_by_user():
    top = ItemTop.empty(2, 2)
    top = top.add(np.array([[1.0, -1.0], [3.0, -np.inf]]), np.array(["u1", "u2"]))
    top = top.add(np.array([[1.0, 0.5], [0.0, -2.0]]), np.array(["u0", "u3"]))
    # item 0: u2 (3), then u0 and u1 tie at 1: u0 first; item 1: u0 (0.5), then u1 (-1) before u3 (-2)
    assert list(top.user[:, 0]) == ["u2", "u0"] and list(top.gap[:, 0]) == [3.0, 1.0]
    assert list(top.user[:, 1]) == ["u0", "u1"] and list(top.gap[:, 1]) == [0.5, -1.0]
    cand, user, gap = top.rows(np.array([10, 11]))
    assert sorted(zip(cand.tolist(), user.tolist(), gap.tolist())) == [
        (10, "u0", 1.0), (10, "u2", 3.0), (11, "u0", 0.5), (11, "u1", -1.0)]


def test_an_item_seen_by_everyone_keeps_no_offer():
    top = ItemTop.empty(2, 1).add(np.array([[-np.inf], [-np.inf]]), np.array(["u1", "u2"]))
    assert len(top.rows(np.array([3]))[0]) == 0


def test_apply_floor_replaces_the_lowest_entries_that_are_not_floor_items():
    idx = np.array([[0, 1, 2, 3], [0, 1, -1, -1]])
    score = np.array([[9.0, 8.0, 7.0, 6.0], [9.0, 8.0, np.nan, np.nan]])
    new_index = np.array([2, 5, 6])
    new_scores = np.array([[7.0, 5.5, 5.0], [1.0, 2.0, 3.0]])
    # user 0: floor items 2 (in the list already: kept) and 5, 6 -> they replace 3 and 1 (2 is protected);
    # user 1: 6 fills an empty place
    got_idx, got_score, placed = apply_floor(idx, score, [np.array([2, 5, 6]), np.array([6])], new_scores, new_index)
    np.testing.assert_array_equal(got_idx, [[0, 2, 5, 6], [0, 1, 6, -1]])
    np.testing.assert_allclose(got_score, [[9.0, 7.0, 5.5, 5.0], [9.0, 8.0, 3.0, np.nan]])
    assert list(placed) == [2, 1]
    same_idx, _, none = apply_floor(idx, score, [None, np.array([], np.int64)], new_scores, new_index)
    np.testing.assert_array_equal(same_idx, idx)
    assert list(none) == [0, 0]


def test_gini_by_hand():
    assert gini(np.array([1.0, 1.0, 1.0])) == 0.0 and gini(np.zeros(3)) == 0.0
    # [0, 0, 3]: (2 * rank - n - 1) . sorted / (n * total) = (-2 * 0 + 0 * 0 + 2 * 3) / 9 = 2 / 3
    assert gini(np.array([3.0, 0.0, 0.0])) == pytest.approx(2 / 3)


def test_list_figures_by_hand():
    # 4 lists of k = 2 over candidates A (new), B (new), C (old), D (new, nowhere);
    # lists: [A, B], [A, C], [A, B], [B, A] -> A in 4, B in 3, C in 1; firsts A 3, B 1
    got = list_figures(np.array([4, 3, 1, 0]), np.array([3, 1, 0, 0]), np.array([True, True, False, True]),
                       n_lists=4, k=2, min_exposure=3)
    assert got["candidate_coverage"] == 0.75 and got["new_candidate_coverage"] == pytest.approx(2 / 3)
    assert got["top3_first_share"] == 1.0 and got["distinct_first_items"] == 2.0
    # overlap: sum c (c - 1) = 12 + 6 + 0 = 18 over U (U - 1) K = 4 * 3 * 2 = 24 -> 0.75
    assert got["mean_pairwise_overlap"] == pytest.approx(0.75)
    assert got["new_item_share"] == pytest.approx(7 / 8) and got["floor_reached"] == pytest.approx(2 / 3)
    assert "floor_reached" not in list_figures(np.array([1.0]), np.array([1.0]), np.array([True]), 1, 1)
