"""Ranking metrics on hand-worked examples."""
import math

import numpy as np

from rec_lib.metrics import recall_at_k, top_k


def test_top_k_orders_breaks_ties_by_index_and_excludes():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    np.testing.assert_array_equal(top_k(scores, 3), [[1, 3, 2], [0, 1, 2]])
    exclude = np.array([[False, True, False, False], [True, False, False, False]])
    np.testing.assert_array_equal(top_k(scores, 2, exclude), [[3, 2], [1, 2]])


def test_recall_at_k():
    recommended = np.array([[1, 3, 2], [0, 1, 2], [5, 6, 7]])
    # user 0: 1 of {1, 4} in the top 2 -> 1/2; user 1: {2} not in the top 2 -> 0; user 2: nothing relevant, skipped
    assert recall_at_k(recommended, [{1, 4}, {2}, set()], 2) == 0.25
    # top 3: user 0 still 1/2, user 1 finds 2 -> 1
    assert recall_at_k(recommended, [{1, 4}, {2}, set()], 3) == 0.75
    assert math.isnan(recall_at_k(recommended, [set(), set(), set()], 3))
