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


def columns(idx, lo, hi):
    return np.where((idx >= 0)[..., None], V[np.maximum(idx, 0), lo:hi], 0.0).astype(np.float32)


def test_each_kind_wins_where_its_part_lifts_the_item_most():
    ex = explanations()
    # centre: tower (0.4, 0), text (0, 0.4), attributes (0.12, 0.16, 0); prior and pace means 0.3
    np.testing.assert_allclose(ex.centre, [.4, 0, 0, .4, .12, .16, 0], atol=1e-6)
    user = np.array([[1, 0, 0, 1, .6, .8, 0]], np.float32)
    idx = np.array([[0, 1, 2, 3, 4]])
    history = reasons.padded_history([np.array([0, 1])])
    got = reasons.explain(user, idx, columns, ex, history, lambda part, rows: HISTORY[part][rows],
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
    # the same reasons where the widest block's part comes from the lists' scores (as in a scoring task)
    score = (user @ V.T + PRIOR + PACE).astype(np.float32)
    from_score = reasons.explain(user, idx, columns, ex, history, lambda part, rows: HISTORY[part][rows],
                                 lambda rows: np.array(["h0", "h1"], dtype=object)[rows], score=score)
    assert from_score.kind.tolist() == got.kind.tolist() and from_score.item_id.tolist() == got.item_id.tolist()
    np.testing.assert_allclose(from_score.share, got.share, atol=1e-6)


def test_a_user_without_history_is_told_because_you_liked_only_where_nothing_else_lifts_the_item():
    ex = explanations()
    # no history; the text and attribute profiles are zero (they come from the history), the tower is not
    user = np.array([[1, 0, 0, 0, 0, 0, 0]], np.float32)
    idx = np.array([[0, 3, -1]])  # a list of two, padded
    history = reasons.padded_history([None])
    got = reasons.explain(user, idx, columns, ex, history, lambda part, rows: pytest.fail("no history to read"),
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
    score = users.astype(np.float64) @ vectors.T.astype(np.float64) + prior + pace  # [4, 9]
    read = []

    def listed(lo, hi):
        read.append((lo, hi))
        return vectors[idx][:, :, lo:hi]

    contrib = reasons.contributions(users, listed, idx, ex)
    np.testing.assert_allclose(sum(contrib.values()), score - score.mean(axis=1, keepdims=True), atol=1e-5)
    # with the lists' scores the widest block (attributes, 3 columns) is what the score leaves: never read
    read.clear()
    from_score = reasons.contributions(users, listed, idx, ex, score=score.astype(np.float32))
    assert read == [(0, 2), (2, 4)]
    for name in contrib:
        np.testing.assert_allclose(from_score[name], contrib[name], atol=1e-5)


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


def test_a_wide_part_is_compared_in_its_principal_directions_which_keep_the_closest_item():
    rng = np.random.default_rng(5)
    width = reasons.REASON_DIMS + 6  # a text part too wide to compare whole
    basis = np.linalg.qr(rng.normal(size=(width, 3)))[0]  # every item's text lies in these 3 directions
    coords = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]], np.float64)
    texts = (coords @ basis.T).astype(np.float32)
    parts = (("tower", 2), ("text", width))
    vectors = np.concatenate([np.zeros((5, 2), np.float32), texts], axis=1)
    ex = reasons.build(parts, vectors, np.zeros(5), np.zeros(5), np.zeros(5), np.ones(5), np.ones(5), [None] * 5)
    proj = ex.projections["text"]
    assert set(ex.projections) == {"text"} and proj.shape == (width, reasons.REASON_DIMS)  # the tower is 2 wide
    # orthonormal directions, as many as the 5 candidates' unit rows give (the rest of the columns 0)
    np.testing.assert_allclose(proj.T @ proj, np.diag([1.0] * 5 + [0.0] * (reasons.REASON_DIMS - 5)), atol=1e-5)
    assert ex.similar_bounds() == {"tower": (0, 2), "text": (2, 2 + reasons.REASON_DIMS)}
    # the items' inner products survive the projection (their 3 directions are among the kept ones)
    projected = reasons.similar_blocks(vectors, ex.similar_layout())[:, 2:]
    np.testing.assert_allclose(projected @ projected.T, texts @ texts.T, atol=1e-5)
    # a user who liked items 0 and 2 (history rows 0, 1), shown item 3 (1, 1, 0) and item 4 (0, 1, 1):
    # cosines with item 0 (1, 0, 0): 1/sqrt(2) and 0; with item 2 (0, 0, 1): 0 and 1/sqrt(2)
    history_rows = reasons.similar_blocks(vectors[[0, 2]], ex.similar_layout(), unit=True)
    user = np.concatenate([[0, 0], texts[3] + texts[4]]).astype(np.float32)[None]
    got = reasons.explain(user, np.array([[3, 4]]), lambda idx, lo, hi: vectors[idx, lo:hi], ex, np.array([[0, 1]]),
                          lambda part, rows: history_rows[rows][..., slice(*ex.similar_bounds()[part])],
                          lambda rows: np.array(["liked0", "liked2"], dtype=object)[rows])
    assert got.kind.tolist() == [["similar_to", "similar_to"]] and got.item_id.tolist() == [["liked0", "liked2"]]
    back = reasons.Explanations.from_arrays(ex.arrays())
    np.testing.assert_array_equal(back.projections["text"], proj)


def test_a_part_no_wider_than_the_reason_dims_is_compared_whole():
    vectors = np.random.default_rng(0).normal(size=(4, reasons.REASON_DIMS)).astype(np.float32)
    assert reasons.projection(vectors) is None
    ex = reasons.build((("text", reasons.REASON_DIMS),), vectors, np.zeros(4), np.zeros(4), np.zeros(4), np.ones(4),
                       np.ones(4), [None] * 4)
    np.testing.assert_array_equal(reasons.similar_blocks(vectors, ex.similar_layout()), vectors)

