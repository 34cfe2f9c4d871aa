"""Reasons of recommendations (rec_lib.scoring.reasons) on hand-made candidates: each kind where it
must win, the history item that similar_to names, the attribute token, the shares worked by hand."""
import numpy as np
import pytest

from rec_lib.scoring import reasons

# blocks: tower (2), text (2), attributes (3); d = 7
PARTS = (("tower", 2), ("text", 2), ("attributes", 3))
V = np.array([  # the candidates' rows (already weighted, as item_embeddings holds them)
    [2, 0, 0, 0, 0, 0, 0],  # c0: the tower's
    [0, 0, 0, 2, 0, 0, 0],  # c1: the text's
    [0, 0, 0, 0, .6, .8, 0],  # c2: the attributes' (tokens brand=cucina at slot 0, colour=red at slot 1)
    [0, 0, 0, 0, 0, 0, 0],  # c3: fast first users (pace)
    [0, 0, 0, 0, 0, 0, 0],  # c4: a high launch prior
], np.float32)
PRIOR = np.array([0, 0, .5, 0, 1.0])  # mean 0.3
PACE = np.array([0, 0, 0, 1.5, 0])  # mean 0.3
TOKENS = [None, [], [("brand=cucina", 0, 0.6), ("colour=red", 1, 0.8)], None, None]
# the history file: h0 and h1, blocks of tower and text, unit rows (h1's tower (1, .1) / |(1, .1)|)
HISTORY = {"tower": np.array([[0, 1], [1 / np.hypot(1, .1), .1 / np.hypot(1, .1)]], np.float32),
           "text": np.array([[0, 1], [1, 0]], np.float32)}


def explanations():
    return reasons.build(PARTS, V, PRIOR, PACE, users=np.array([0, 0, 0, 12, 3]),
                         pace_days=np.array([np.nan, 1, 1, 2.0, 4.25]), per_day=np.array([1, 1, 1, 1, 3.1]),
                         tokens=TOKENS)


def gather(idx):
    return np.where((idx >= 0)[..., None], V[np.maximum(idx, 0)], 0.0).astype(np.float32)


def test_each_kind_wins_where_its_part_lifts_the_item_most():
    ex = explanations()
    # centre: tower (0.4, 0), text (0, 0.4), attributes (0.12, 0.16, 0); prior and pace means 0.3
    np.testing.assert_allclose(ex.centre, [.4, 0, 0, .4, .12, .16, 0], atol=1e-6)
    user = np.array([[1, 0, 0, 1, .6, .8, 0]], np.float32)
    idx = np.array([[0, 1, 2, 3, 4]])
    history = reasons.padded_history([np.array([0, 1])])
    got = reasons.explain(user, idx, gather, ex, history, lambda part, rows: HISTORY[part][rows],
                          lambda rows: np.array(["h0", "h1"], dtype=object)[rows])
    # c0: tower (1,0).((2,0)-(.4,0)) = 1.6; text (0,1).(0-(0,.4)) = -.4; attributes -(.6*.12+.8*.16) = -.2;
    #     prior -.3; pace -.3 -> similar_to, share 1.6 / 1.6; closest in tower terms: h1 (1,.1) (h0 (0,1) is orthogonal)
    # c1: text (0,1).((0,2)-(0,.4)) = 1.6 -> similar_to; closest in text terms: h0 (0,1)
    # c2: attributes .6*(.6-.12) + .8*(.8-.16) = .8, prior .5-.3 = .2 -> attribute, share .8 / 1.0;
    #     tokens: brand .6*.6 = .36, colour .8*.8 = .64 -> colour=red
    # c3: pace 1.5-.3 = 1.2 -> trending (users=12 in 2.0 days); c4: prior 1-.3 = .7 -> popular_launch
    assert got.kind.tolist() == [["similar_to", "similar_to", "attribute", "trending", "popular_launch"]]
    assert got.item_id.tolist() == [["h1", "h0", None, None, None]]
    assert got.detail.tolist() == [["part=tower", "part=text", "colour=red", "users=12,days=2.0",
                                    "expected_users_per_day=3.10"]]
    np.testing.assert_allclose(got.share, [[1.0, 1.0, 0.8, 1.0, 1.0]], atol=1e-6)


def test_a_user_without_history_is_told_because_you_liked_only_where_nothing_else_lifts_the_item():
    ex = explanations()
    # no history; the text and attribute profiles are zero (they come from the history), the tower is not
    user = np.array([[1, 0, 0, 0, 0, 0, 0]], np.float32)
    idx = np.array([[0, 3, -1]])  # a list of two, padded
    history = reasons.padded_history([None])
    got = reasons.explain(user, idx, gather, ex, history, lambda part, rows: pytest.fail("no history to read"),
                          lambda rows: pytest.fail("no history to name"))
    # c0: tower 1.6 (masked: no history), text 0, attributes 0, prior -.3, pace -.3: nothing else lifts it,
    #     so the tower names it, with no item; c3: pace 1.2 > 0 wins over the masked tower (-.4 anyway)
    assert got.kind.tolist() == [["similar_to", "trending", None]]
    assert got.item_id.tolist() == [[None, None, None]] and got.detail.tolist()[0][:2] == ["part=tower", "users=12,days=2.0"]
    assert got.share[0, 0] == pytest.approx(1.0) and np.isnan(got.share[0, 2])


def test_contributions_add_up_to_the_score_above_the_average_candidate():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(9, 7)).astype(np.float32)
    prior, pace = rng.normal(size=9), rng.normal(size=9)
    ex = reasons.build(PARTS, vectors, prior, pace, np.zeros(9), np.ones(9), np.ones(9), [None] * 9)
    users = rng.normal(size=(4, 7)).astype(np.float32)
    idx = np.tile(np.arange(9), (4, 1))
    contrib = reasons.contributions(users, vectors[idx], idx, ex)
    score = users.astype(np.float64) @ vectors.T.astype(np.float64) + prior + pace  # [4, 9]
    np.testing.assert_allclose(sum(contrib.values()), score - score.mean(axis=1, keepdims=True), atol=1e-5)


def test_padded_history_keeps_each_users_order():
    assert reasons.padded_history([np.array([4, 2]), None, np.array([7])]).tolist() == [[4, 2], [-1, -1], [7, -1]]
    assert reasons.padded_history([None, None]).shape == (2, 0)


def test_explanations_survive_the_file_the_executors_read(tmp_path):
    ex = explanations()
    np.savez(tmp_path / "explain.npz", **ex.arrays())
    with np.load(tmp_path / "explain.npz") as data:
        back = reasons.Explanations.from_arrays(data)
    assert back.parts == PARTS and back.bounds() == {"tower": (0, 2), "text": (2, 4), "attributes": (4, 7)}
    assert back.token_text.tolist() == ["brand=cucina", "colour=red"] and back.token_start.tolist() == [0, 0, 0, 2, 2, 2]
    assert back.trending.tolist()[3:] == ["users=12,days=2.0", "users=3,days=4.2"]  # 4.25 rounds half to even
    assert reasons.reason_line({"reason_share_similar_to": .61, "reason_share_fallback": .04}) == \
        "similar_to 61%, fallback 4%"
