"""The k-shot protocol and the rankers on examples worked out by hand."""
import math

import numpy as np
import pandas as pd
import pytest

from rec_lib.evaluation.metrics import paired_interval, top_k
from rec_lib.evaluation.rankers import (
    AttributeProfileRanker,
    ContentKnnRanker,
    FactorRanker,
    ModelInputs,
    ModelRanker,
    PopularRanker,
    Ranker,
    TowerRanker,
    evaluate,
    held_out,
    pace,
    pair_matrix,
    revealed,
)
from rec_lib.training import few_shot
from rec_lib.training.blend import Blend, BlendWeights
from rec_lib.training.sides import ItemSides, UserSides

DAY = 86400.0
T0 = pd.Timestamp("2026-10-20")


def ts(days: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=days)


def number_arrivals(pairs: pd.DataFrame) -> pd.DataFrame:
    """pairs with `arrival` (each item's users in order of first_ts, then user_id), as the
    evaluation's window_pairs numbers them (tests/spark/test_evaluation_set.py checks that one)."""
    out = pairs.sort_values(["item_id", "first_ts", "user_id"], kind="stable").reset_index(drop=True)
    out["arrival"] = out.groupby("item_id", sort=False).cumcount().astype(np.int64)
    return out


def test_revealed_and_held_out_split_each_items_users_at_k():
    pairs = pd.DataFrame({"user_id": ["u3", "u1", "u2", "u1"], "item_id": ["A", "A", "A", "B"],
                          "arrival": [0, 1, 2, 0]})
    assert list(revealed(pairs, 2).user_id) == ["u3", "u1", "u1"]
    assert list(held_out(pairs, 2).user_id) == ["u2"]


def test_pace_counts_users_and_days_since_launch():
    items = np.array(["A", "B", "C"])
    launch = np.array([T0.timestamp(), np.nan, np.nan])
    shown = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "item_id": ["A", "A", "B"],
                          "first_ts": [ts(1), ts(3), ts(2)]})
    counts, exposure = pace(shown, items, launch)
    np.testing.assert_array_equal(counts, [2, 1, 0])
    # A: launched at T0, latest user at day 3; B: no launch date, one user: at least an hour; C: none
    assert exposure[0] == pytest.approx(3.0) and exposure[1] == pytest.approx(1 / 24) and math.isnan(exposure[2])


def test_top_k_excludes_and_breaks_ties_by_the_tiebreak_order():
    scores = np.array([[1.0, 3.0, 3.0, 9.0]])
    exclude = np.array([[False, False, False, True]])
    tiebreak = np.array([0, 2, 1, 3])  # item 2 comes before item 1 when they tie
    np.testing.assert_array_equal(top_k(scores, 4, exclude, tiebreak), [[2, 1, 0, 3]])
    np.testing.assert_array_equal(top_k(scores, 2, exclude, tiebreak), [[2, 1]])


def test_pair_matrix_ignores_unknown_users_and_items():
    pairs = pd.DataFrame({"user_id": ["a", "b", "zz", "a"], "item_id": ["X", "Y", "X", "Q"]})
    got = pair_matrix(pairs, np.array(["a", "b"]), np.array(["X", "Y"]))
    np.testing.assert_array_equal(got, [[True, False], [False, True]])


def test_popular_ranks_by_users_per_day():
    items = np.array(["A", "B"])
    ranker = PopularRanker(items, np.array([T0.timestamp(), T0.timestamp()]))
    ranker.prepare(0, pd.DataFrame({"user_id": [], "item_id": [], "first_ts": []}))
    np.testing.assert_array_equal(ranker.scores(np.array(["u"])), [[0.0, 0.0]])
    shown = pd.DataFrame({"user_id": ["u1", "u2", "u1", "u3"], "item_id": ["A", "A", "B", "B"],
                          "first_ts": [ts(1), ts(4), ts(0.5), ts(1)], "arrival": [0, 1, 0, 1]})
    ranker.prepare(2, shown)
    # A: 2 users in 4 days; B: 2 users in 1 day
    np.testing.assert_allclose(ranker.scores(np.array(["u"])), [[0.5, 2.0]])


def test_content_knn_scores_cosine_to_the_history_profile():
    ranker = ContentKnnRanker({"u1": np.array([1.0, 1.0])}, np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]))
    got = ranker.scores(np.array(["u1", "nobody"]))
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(got, [[s, s, -s], [0, 0, 0]])


def _model(users, tower, text, prior, weights, temperature, settings, launch_ts=None):
    """ModelInputs of hand-made sides: users {id: (tower, text)}, items' tower/text/prior rows."""
    ids = sorted(users)
    sides = UserSides(np.array([users[u][0] for u in ids], float), np.array([users[u][1] for u in ids], float),
                      np.zeros((len(ids), 0)))
    n = len(tower)
    content = ItemSides(np.array(tower, float), np.array(text, float), np.zeros((n, 0)), np.array(prior, float),
                        np.full(n, "content", dtype=object))
    blend = Blend.single(BlendWeights(weights, True))
    return ModelInputs(users=sides, user_row={u: i for i, u in enumerate(ids)}, content=content,
                       launch_ts=np.full(n, np.nan) if launch_ts is None else launch_ts, rate_offset=0.0, weights=blend,
                       temperature=temperature, settings=settings)


def test_model_ranker_adapts_new_items_from_their_first_users():
    settings = few_shot.FewShotSettings("blend", prior_strength=3.0, pace=True, pace_prior_strength=2.0)
    inputs = _model({"u1": ([1.0, 0.0], []), "u2": ([0.0, 1.0], [])}, [[1.0, 0.0], [0.0, 1.0]], [[], []],
                    [0.0, 0.5], {"tower": 1.0, "text": 0.0, "attributes": 0.0, "prior": 1.0}, 0.5, settings,
                    launch_ts=np.array([T0.timestamp(), T0.timestamp()]))
    ranker = ModelRanker(inputs, np.array(["A", "B"]))
    ranker.prepare(0, pd.DataFrame({"user_id": [], "item_id": [], "first_ts": [], "arrival": []}))
    # k = 0: content alone; u1 . A = 1 -> 1 / 0.5 + 0 = 2; u1 . B = 0 -> 0 + 0.5
    np.testing.assert_allclose(ranker.scores(np.array(["u1"])), [[2.0, 0.5]])
    ranker.prepare(1, pd.DataFrame({"user_id": ["u2"], "item_id": ["A"], "first_ts": [ts(0.5)], "arrival": [0]}))
    # A after u2: unit(3 * [1, 0] + [0, 1]) = [3, 1] / sqrt(10); pace: r0 = exp(prior 0 + offset 0) = 1, a = 2,
    # k = 1 in half a day: prior 0 + log((2 + 1) / (2 + 0.5)) = log(1.2)
    a = np.array([3.0, 1.0]) / math.sqrt(10)
    np.testing.assert_allclose(ranker.sides.tower[0], a)
    assert ranker.sides.prior[0] == pytest.approx(math.log(1.2)) and list(ranker.sides.k) == [1, 0]
    np.testing.assert_allclose(ranker.scores(np.array(["u2"])), [[a[1] / 0.5 + math.log(1.2), 1 / 0.5 + 0.5]])


def test_factor_ranker_cannot_score_unseen_items():
    fit = lambda k, shown: ({"u1": np.array([1.0, 2.0])}, {"B": np.array([3.0, 1.0])})
    ranker = FactorRanker(np.array(["A", "B"]), fit)
    ranker.prepare(1, pd.DataFrame())
    np.testing.assert_array_equal(ranker.scorable(), [False, True])
    np.testing.assert_array_equal(ranker.scores(np.array(["u1", "u9"])), [[-np.inf, 5.0], [-np.inf, 0.0]])


class Fixed(Ranker):
    name = "fixed"

    def __init__(self, table):
        self.table, self.n_items = table, 3

    def scores(self, users):
        return np.stack([self.table[u] for u in users])


class Blind(Fixed):
    name = "blind"

    def scorable(self):
        return np.zeros(3, dtype=bool)


def test_evaluate_with_the_same_test_pairs_at_every_k_by_hand():
    # items A, B, C with two users each; with ks [0, 1] the first is revealed at k = 1, the second is tested
    pairs = number_arrivals(pd.DataFrame({
        "user_id": ["u1", "u2", "u3", "u1", "u2", "u3"], "item_id": ["A", "A", "B", "B", "C", "C"],
        "first_ts": [ts(1), ts(2), ts(1), ts(2), ts(1), ts(2)]}))
    fixed = Fixed({"u1": np.array([3.0, 2.0, 1.0]), "u2": np.array([1.0, 2.0, 3.0]), "u3": np.array([3.0, 2.0, 1.0])})
    results = evaluate(pairs, np.array(["A", "B", "C"]), [fixed, Blind({})], [0, 1], top=1,
                       users=np.array(["u1", "u2", "u3"]), seed=0, block=2)
    got = {(r.k, r.method): r.metrics for r in results}
    # test pairs: (u2, A), (u1, B), (u3, C). k = 0: tops u1 -> A, u2 -> C, u3 -> A: no hit
    assert got[(0, "fixed")]["recall@1"] == 0.0 and got[(0, "fixed")]["coverage@1"] == pytest.approx(2 / 3)
    # k = 1: u1 may not get A (revealed), u2 not C, u3 not B: tops u1 -> B (hit), u2 -> B, u3 -> A
    k1 = got[(1, "fixed")]
    assert (k1["recall@1"], k1["ndcg@1"], k1["hit_rate@1"], k1["mrr@1"]) == pytest.approx((1 / 3,) * 4)
    assert k1["coverage@1"] == pytest.approx(2 / 3) and k1["mean_popularity@1"] == 2.0 and k1["users"] == 3.0
    assert k1["scorable_items"] == 1.0
    # a ranker that can score nothing has only its scorable share
    assert got[(1, "blind")] == {"scorable_items": 0.0}


class Named(Fixed):
    def __init__(self, name, table):
        super().__init__(table)
        self.name = name


def test_evaluate_gives_each_baseline_the_interval_of_the_model_minus_it():
    # the pairs above; test pairs (u2, A), (u1, B), (u3, C), top 1
    pairs = number_arrivals(pd.DataFrame({
        "user_id": ["u1", "u2", "u3", "u1", "u2", "u3"], "item_id": ["A", "A", "B", "B", "C", "C"],
        "first_ts": [ts(1), ts(2), ts(1), ts(2), ts(1), ts(2)]}))
    model = Named("model", {"u1": np.array([3.0, 2.0, 1.0]), "u2": np.array([1.0, 2.0, 3.0]),
                            "u3": np.array([3.0, 2.0, 1.0])})
    # A first for everyone (C where A is excluded)
    other = Named("other", {u: np.array([3.0, 1.0, 2.0]) for u in ("u1", "u2", "u3")})
    results = evaluate(pairs, np.array(["A", "B", "C"]), [model, other], [0, 1], top=1,
                       users=np.array(["u1", "u2", "u3"]), seed=0)
    got = {(r.k, r.method): r.metrics for r in results}

    def interval(k, metric):
        return got[(k, "other")][f"{metric}@1_diff_low"], got[(k, "other")][f"{metric}@1_diff_high"]

    # k = 0: the model hits nobody, `other` hits u2: per-user differences (0, -1, 0), users in sorted order,
    # resampled with the stream [seed, k, 1]
    assert interval(0, "recall") == paired_interval(np.zeros(3), np.array([0.0, 1.0, 0.0]), [0, 0, 1])[1:]
    # k = 1: the model hits u1 (B); `other` gives u1 C (A is revealed to u1), u2 A (a hit), u3 A:
    # differences (1, -1, 0), the same for ndcg at K = 1
    by_hand = paired_interval(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), [0, 1, 1])
    assert by_hand[0] == 0.0 and by_hand[1] < 0 < by_hand[2]
    assert interval(1, "recall") == interval(1, "ndcg") == by_hand[1:]
    assert "recall@1_diff_low" not in got[(1, "model")]


def test_model_ranker_adds_the_text_term():
    settings = few_shot.FewShotSettings("none", prior_strength=3.0, pace=False, pace_prior_strength=2.0)
    inputs = _model({"u1": ([1.0, 0.0], [0.0, 1.0, 0.0])}, [[1.0, 0.0], [0.0, 1.0]],
                    [[0.0, 0.6, 0.8], [1.0, 0.0, 0.0]], [0.0, 0.0],
                    {"tower": 1.0, "text": 5.0, "attributes": 0.0, "prior": 1.0}, 1.0, settings)
    ranker = ModelRanker(inputs, np.array(["A", "B"]))
    # A: <u, v> 1 + 5 * 0.6 = 4; B: 0 + 5 * 0; a user the model does not know scores 0 everywhere
    np.testing.assert_allclose(ranker.scores(np.array(["u1", "u9"])), [[4.0, 0.0], [0.0, 0.0]])


def test_the_tower_ranker_is_the_model_with_every_other_part_at_zero():
    settings = few_shot.FewShotSettings("blend", prior_strength=3.0, pace=True, pace_prior_strength=2.0)
    inputs = _model({"u1": ([1.0, 0.0], [0.0, 1.0, 0.0]), "u2": ([0.0, 1.0], [1.0, 0.0, 0.0])},
                    [[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.6, 0.8], [1.0, 0.0, 0.0]], [0.0, 3.0],
                    {"tower": 1.0, "text": 5.0, "attributes": 0.0, "prior": 1.0}, 0.5, settings,
                    launch_ts=np.array([T0.timestamp(), T0.timestamp()]))
    tower = TowerRanker(inputs, np.array(["A", "B"]))
    assert tower.name == "tower" and inputs.weights.at(0)["text"] == 5.0  # the model's own blend is untouched
    # <u, v> / 0.5 alone: the text (5 * 0.6 for u1 . A) and B's prior 3 are left out
    np.testing.assert_allclose(tower.scores(np.array(["u1", "u2"])), [[2.0, 0.0], [0.0, 2.0]])
    # its first user moves the tower vector as served: A after u2 = [3, 1] / sqrt(10); the pace does not count
    tower.prepare(1, pd.DataFrame({"user_id": ["u2"], "item_id": ["A"], "first_ts": [ts(0.5)], "arrival": [0]}))
    a = np.array([3.0, 1.0]) / math.sqrt(10)
    np.testing.assert_allclose(tower.scores(np.array(["u1"])), [[a[0] / 0.5, 0.0]])


def test_model_ranker_blends_the_text_side_with_the_revealed_users_profiles():
    settings = few_shot.FewShotSettings("blend", prior_strength=3.0, pace=False, pace_prior_strength=2.0,
                                        text_prior_strength=3.0)
    inputs = _model({"u1": ([1.0, 0.0], [0.0, 1.0])}, [[1.0, 0.0]], [[1.0, 0.0]], [0.0],
                    {"tower": 1.0, "text": 2.0, "attributes": 0.0, "prior": 1.0}, 1.0, settings)
    ranker = ModelRanker(inputs, np.array(["A"]))
    ranker.prepare(1, pd.DataFrame({"user_id": ["u1"], "item_id": ["A"], "first_ts": [ts(1)], "arrival": [0]}))
    # tower: unit(3 * [1, 0] + [1, 0]) = [1, 0]; text side: unit(3 * [1, 0] + [0, 1]) = [3, 1] / sqrt 10;
    # u1: 1 + 2 * 1 / sqrt 10
    np.testing.assert_allclose(ranker.sides.text[0], np.array([3.0, 1.0]) / math.sqrt(10))
    np.testing.assert_allclose(ranker.scores(np.array(["u1"])), [[1.0 + 2.0 / math.sqrt(10)]])
    # the content is kept for the next k
    ranker.prepare(0, pd.DataFrame({"user_id": [], "item_id": [], "first_ts": [], "arrival": []}))
    np.testing.assert_allclose(ranker.sides.text[0], [1.0, 0.0])


def test_attribute_profile_is_the_history_share_dotted_with_the_item():
    # slots: 1 = colour=red, 2 = colour=blue, 3 = material=wool, 4 = material=silk (weights: a field sums to 1)
    ids = np.array([[1, 3, 0], [2, 3, 4], [1, 4, 0], [2, 0, 0]])
    weights = np.array([[1.0, 1.0, 0.0], [1.0, 0.5, 0.5], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # u's history: items 0 (red, wool) and 1 (blue, wool|silk): shares red 1/2, blue 1/2, wool 3/4, silk 1/4
    ranker = AttributeProfileRanker({"u": np.array([0, 1])}, ids, weights, item_rows=np.array([2, 3]))
    # item 2 (red, silk): 1/2 + 1/4 = 0.75; item 3 (blue): 1/2; nobody: 0
    np.testing.assert_allclose(ranker.scores(np.array(["u", "x"])), [[0.75, 0.5], [0.0, 0.0]])


