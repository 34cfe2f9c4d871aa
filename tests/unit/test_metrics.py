"""Ranking metrics on hand-worked examples."""
import math

import numpy as np
import pytest

from rec_lib.evaluation.metrics import MetricAccumulator, paired_interval, per_user_metrics, recall_at_k, top_k


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


# user 0: relevant {0, 3}; user 1: relevant {2}; user 2: nothing relevant (not judged)
RECOMMENDED = np.array([[2, 0, 1, 3], [1, 3, 0, 2], [0, 1, 2, 3]])
RELEVANT = np.array([[True, False, False, True], [False, False, True, False], [False, False, False, False]])


def test_per_user_metrics_by_hand():
    m = per_user_metrics(RECOMMENDED, RELEVANT, 3)
    # user 0, top 3 = [2, 0, 1]: one hit at rank 2 of 2 relevant
    assert m["recall"][0] == 0.5
    assert m["ndcg"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))  # 0.386853
    assert (m["hit_rate"][0], m["mrr"][0]) == (1.0, 0.5)
    # user 1, top 3 = [1, 3, 0]: no hit
    assert [m[name][1] for name in ("recall", "ndcg", "hit_rate", "mrr")] == [0.0, 0.0, 0.0, 0.0]
    assert all(math.isnan(m[name][2]) for name in m)
    # K = 4: user 1 finds item 2 at rank 4; the ideal list for one relevant item is 1
    m4 = per_user_metrics(RECOMMENDED, RELEVANT, 4)
    assert (m4["ndcg"][1], m4["mrr"][1]) == (pytest.approx(1 / math.log2(5)), 0.25)
    # user 0 with both hits in the top 4 (ranks 2 and 4) against the ideal ranks 1 and 2
    assert m4["ndcg"][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))


def test_accumulator_over_blocks_equals_all_at_once():
    popularity = np.array([10.0, 20.0, 30.0, 40.0])
    whole = MetricAccumulator(4, 3, popularity)
    whole.add(RECOMMENDED, RELEVANT)
    blocks = MetricAccumulator(4, 3, popularity)
    blocks.add(RECOMMENDED[:2], RELEVANT[:2])
    blocks.add(RECOMMENDED[2:], RELEVANT[2:])
    expected = {
        "recall@3": 0.25, "ndcg@3": pytest.approx(0.193426, rel=1e-5), "hit_rate@3": 0.5, "mrr@3": 0.25,
        # the top-3 lists show items {2, 0, 1} + {1, 3, 0} + {0, 1, 2}: all 4
        "coverage@3": 1.0,
        # (30 + 10 + 20) + (20 + 40 + 10) + (10 + 20 + 30) over 9 places
        "mean_popularity@3": pytest.approx(190 / 9), "users": 2.0,
    }
    assert whole.result() == expected
    assert blocks.result() == expected


def test_accumulator_keeps_the_judged_users_values_block_by_block_when_asked():
    acc = MetricAccumulator(4, 3, keep_users=True)
    acc.add(RECOMMENDED[:2], RELEVANT[:2])
    acc.add(RECOMMENDED[2:], RELEVANT[2:])
    # users 0 and 1 are judged (user 2 has nothing relevant): recall 1/2 and 0 at K = 3 (by hand above)
    np.testing.assert_allclose(acc.per_user("recall"), [0.5, 0.0])
    assert acc.per_user("ndcg").mean() == pytest.approx(acc.result()["ndcg@3"])
    with pytest.raises(ValueError, match="keep_users"):
        MetricAccumulator(4, 3).per_user("recall")


def test_paired_interval_of_equal_differences_is_that_difference():
    assert paired_interval(np.array([0.5, 0.7, 0.9]), np.array([0.25, 0.45, 0.65]), seed=1) == \
        pytest.approx((0.25, 0.25, 0.25))


def test_paired_interval_of_two_users_by_hand():
    # differences 1 and 0: a resample of two users has mean 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so
    # the 2.5% and 97.5% quantiles of 1000 resample means are 0 and 1; the mean difference is 1/2
    assert paired_interval(np.array([1.0, 0.0]), np.array([0.0, 0.0]), seed=3) == (0.5, 0.0, 1.0)


def test_paired_interval_of_many_users_is_the_normal_interval():
    # 10,000 differences with standard deviation s: the 95% interval is about mean +- 1.96 s / 100
    rng = np.random.default_rng(0)
    first = rng.normal(0.3, 1.0, 10_000)
    second = first - rng.normal(0.1, 1.0, 10_000)
    mean, low, high = paired_interval(first, second, seed=5)
    diff = first - second
    half = 1.96 * diff.std() / 100
    assert mean == pytest.approx(diff.mean())
    assert (low, high) == pytest.approx((diff.mean() - half, diff.mean() + half), abs=0.002)
    # paired: the users' shared part (sd 1) cancels, so the interval is as narrow as the difference's own spread
    assert high - low < 0.05


def test_paired_interval_needs_two_vectors_of_one_length():
    with pytest.raises(ValueError, match="one length"):
        paired_interval(np.zeros(3), np.zeros(2), seed=0)
    assert all(math.isnan(v) for v in paired_interval(np.zeros(0), np.zeros(0), seed=0))


def test_accumulator_without_judged_users_gives_nan():
    acc = MetricAccumulator(4, 2)
    acc.add(RECOMMENDED[2:], RELEVANT[2:])
    out = acc.result()
    assert math.isnan(out["recall@2"]) and out["coverage@2"] == 0.5 and out["users"] == 0.0


def test_chance_recall_is_the_mean_of_min_1_k_over_unseen_and_matches_random_orders():
    from tests.helpers import chance_recall_at_k

    # 5 items, k=2. u0 saw item 0: 4 unseen, a random top 2 holds each relevant item with chance 2/4.
    # u1 saw items 0-3: its one unseen item is always in the top 2 (1.0). u2 has nothing relevant: not judged.
    seen = np.zeros((3, 5), bool)
    seen[0, 0] = True
    seen[1, :4] = True
    relevant = [{1, 2}, {4}, set()]
    assert chance_recall_at_k(seen, relevant, 2) == pytest.approx((0.5 + 1.0) / 2)
    # the same figure from random orders: u0's hits are hypergeometric (0, 1, 2 with 1/6, 4/6, 1/6:
    # recall sd 0.29), so 4,000 copies of each user put the mean within 0.0023 (sd) of 0.75
    copies = 4000
    scores = np.random.default_rng(7).random((3 * copies, 5))
    drawn = recall_at_k(top_k(scores, 2, np.tile(seen, (copies, 1))), relevant * copies, 2)
    assert drawn == pytest.approx(0.75, abs=0.01)
