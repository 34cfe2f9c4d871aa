"""Top-K selection against brute force, with ties, seen items, caps, quotas and tiles."""
import sys
import weakref

import numpy as np
import pytest

from rec_lib.core.errors import EnvironmentSetupError
from rec_lib.scoring import kernel as scoring
from rec_lib.scoring.kernel import (
    Rules,
    augment_candidates,
    augment_users,
    fallback_pick,
    greedy_pick,
    merge_partial,
    merge_top,
    partial_top_augmented,
    top_k_block,
    top_k_tiles,
)
from rec_lib.scoring.lists import Candidates, fallback_frame, fallback_lists


def brute_force(U, C, b, seen, rules, category, is_new):
    """Sort every candidate by (score desc, index asc) in plain Python, then apply the rules."""
    out = []
    for u in range(len(U)):
        scored = [(-(float(np.float32(U[u].astype(np.float32) @ C[c].astype(np.float32))) + b[c]), c)
                  for c in range(len(C)) if c not in set(seen[u])]
        order = [c for _, c in sorted(scored)]
        out.append(greedy_pick(np.array(order), category, is_new, rules))
    return out


def random_case(seed, n_users=30, n_cand=40, dim=4):
    rng = np.random.default_rng(seed)
    # coarse values make exact ties common
    U = rng.integers(-2, 3, size=(n_users, dim)).astype(np.float32)
    C = rng.integers(-2, 3, size=(n_cand, dim)).astype(np.float32)
    b = rng.integers(0, 2, size=n_cand).astype(np.float64)
    seen = [rng.choice(n_cand, size=rng.integers(0, 6), replace=False) for _ in range(n_users)]
    category = rng.integers(0, 4, size=n_cand)
    is_new = rng.random(n_cand) < 0.3
    return U, C, b, seen, category, is_new


@pytest.mark.parametrize("rules", [Rules(k=5), Rules(k=7, max_per_category=2), Rules(k=6, new_item_quota=3),
                                   Rules(k=8, max_per_category=3, new_item_quota=2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_equals_brute_force(rules, seed):
    U, C, b, seen, category, is_new = random_case(seed)
    idx, score = top_k_block(U, C, b, seen, rules, category, is_new)
    expected = brute_force(U, C, b, seen, rules, category, is_new)
    for u in range(len(U)):
        got = [int(c) for c in idx[u] if c >= 0]
        assert got == expected[u]
        assert not set(got) & set(seen[u].tolist())
        np.testing.assert_allclose(score[u, :len(got)], (U[u] @ C[got].T) + b[got])


@pytest.mark.parametrize("rules", [Rules(k=5), Rules(k=7, max_per_category=2, new_item_quota=3),
                                   Rules(k=6, new_item_quota=2), Rules(k=4, max_per_category=1)])
def test_tiles_merged_equal_one_block(rules):
    U, C, b, seen, category, is_new = random_case(7, n_cand=45)
    whole, _ = top_k_block(U, C, b, seen, rules, category, is_new)
    tiles = [(0, 20), (20, 40), (40, 45)]
    parts = [partial_top_augmented(augment_users(U), augment_candidates(C[a:z], b[a:z]), seen, rules, category[a:z],
                                   is_new[a:z], index_offset=a) for a, z in tiles]
    for u in range(len(U)):
        idx = np.concatenate([p[0][u] for p in parts])
        sc = np.concatenate([p[1][u] for p in parts])
        picked, _ = merge_partial(idx, sc, rules, category, is_new)
        assert picked.tolist() == [int(c) for c in whole[u] if c >= 0]


def test_hand_worked_caps_quota_and_short_lists():
    # scores for one user: candidates 0..4 score 5, 4, 3, 2, 1 (unit user, candidates on one axis)
    U = np.array([[1.0]])
    C = np.array([[5.0], [4.0], [3.0], [2.0], [1.0]])
    b = np.zeros(5)
    category = np.array([0, 0, 0, 1, 1])
    is_new = np.array([False, False, False, False, True])
    idx, score = top_k_block(U, C, b, [None], Rules(k=3), category, is_new)
    assert idx.tolist() == [[0, 1, 2]] and score.tolist() == [[5.0, 4.0, 3.0]]
    # at most 1 per category: 0 (cat 0), 3 (cat 1), then nothing left -> padded
    idx, score = top_k_block(U, C, b, [None], Rules(k=3, max_per_category=1), category, is_new)
    assert idx.tolist() == [[0, 3, -1]] and np.isnan(score[0, 2])
    # one place kept for a new item: 0, 1, then the new item 4 ahead of 2
    idx, _ = top_k_block(U, C, b, [None], Rules(k=3, new_item_quota=1), category, is_new)
    assert idx.tolist() == [[0, 1, 4]]
    # seen 0 and 1; only 3 candidates remain for k=4
    idx, _ = top_k_block(U, C, b, [np.array([0, 1])], Rules(k=4), category, is_new)
    assert idx.tolist() == [[2, 3, 4, -1]]


def test_prefilter_path_on_a_wide_block_equals_brute_force():
    # 400 candidates, k=5: the first 50 columns bound the top 5 (the path the job takes at scale)
    rng = np.random.default_rng(11)
    U = rng.normal(size=(25, 6)).astype(np.float32)
    C = rng.normal(size=(400, 6)).astype(np.float32)
    b = np.zeros(400)
    seen = [rng.choice(400, size=20, replace=False) for _ in range(25)]
    idx, _ = top_k_block(U, C, b, seen, Rules(k=5))
    scores = U @ C.T
    for u in range(25):
        scores[u, seen[u]] = -np.inf
        assert idx[u].tolist() == np.argsort(-scores[u], kind="stable")[:5].tolist()


def test_search_goes_deeper_until_the_list_is_certain(monkeypatch):
    # one user, 12 candidates all scoring 1 except candidate 11 (score 2); seen: 11 and 0..3; k=3.
    # First search: depth k + 5 seen + 1 = 9; every score of 1 ties with the 9th, so only candidate
    # 11 (seen) is trusted and the user is searched again, 4x deeper (capped at 12 = everything).
    # Then the order is exact: 11 (seen), then 0..10 by index; unseen from 4 on: [4, 5, 6].
    U = np.array([[1.0]])
    C = np.ones((12, 1))
    b = np.zeros(12)
    b[11] = 1.0
    depths = []
    real_search = scoring.search
    monkeypatch.setattr(scoring, "search", lambda u, c, d: depths.append(d) or real_search(u, c, d))
    idx, score = top_k_block(U, C, b, [np.array([11, 0, 1, 2, 3])], Rules(k=3))
    assert idx.tolist() == [[4, 5, 6]] and score.tolist() == [[1.0, 1.0, 1.0]]
    assert depths == [9, 12]


def test_users_share_a_search_depth_up_to_twice_their_need(monkeypatch):
    # k=2; user 0 saw nothing (needs 2 + 1 = 3, rounded up to a power of two: 4), users 1 and 2 saw
    # 5 candidates each (need 8): two searches, 4 deep and 8 deep, not one of 8 for everyone
    rng = np.random.default_rng(3)
    U, C, b = rng.normal(size=(3, 4)), rng.normal(size=(40, 4)), np.zeros(40)
    seen = [None, np.arange(5), np.arange(5, 10)]
    depths = []
    real_search = scoring.search
    monkeypatch.setattr(scoring, "search", lambda u, c, d: depths.append((len(u), d)) or real_search(u, c, d))
    idx, _ = top_k_block(U, C, b, seen, Rules(k=2))
    assert sorted(depths) == [(1, 4), (2, 8)]
    expected = brute_force(U, C, b, [np.array([], int) if s is None else s for s in seen], Rules(k=2),
                           np.zeros(40, int), np.zeros(40, bool))
    assert idx.tolist() == expected


@pytest.mark.parametrize("rules", [Rules(k=5), Rules(k=7, max_per_category=2), Rules(k=6, new_item_quota=3),
                                   Rules(k=8, max_per_category=3, new_item_quota=2), Rules(k=4, max_per_category=1)])
def test_tiles_scored_in_turn_equal_brute_force(rules):
    U, C, b, seen, category, is_new = random_case(5, n_cand=45)
    tiles = [(a, (lambda a=a, z=z: augment_candidates(C[a:z], b[a:z]))) for a, z in [(0, 20), (20, 40), (40, 45)]]
    idx, score = top_k_tiles(augment_users(U), tiles, seen, rules, category, is_new)
    expected = brute_force(U, C, b, seen, rules, category, is_new)
    for u in range(len(U)):
        got = [int(c) for c in idx[u] if c >= 0]
        assert got == expected[u]
        np.testing.assert_allclose(score[u, :len(got)], (U[u] @ C[got].T) + b[got])


def test_tiles_are_held_one_at_a_time():
    # each load hands out a fresh tile and checks that the tiles handed out before are gone
    U, C, b, seen, category, is_new = random_case(6, n_cand=45)
    alive = []

    def load(a, z):
        assert all(ref() is None for ref in alive), "an earlier tile is still referenced"
        tile = augment_candidates(C[a:z], b[a:z])
        alive.append(weakref.ref(tile))
        return tile

    for rules in (Rules(k=5), Rules(k=6, max_per_category=2, new_item_quota=2)):
        alive.clear()
        tiles = [(a, (lambda a=a, z=z: load(a, z))) for a, z in [(0, 15), (15, 30), (30, 45)]]
        top_k_tiles(augment_users(U), tiles, seen, rules, category, is_new)
        assert len(alive) == 3


def test_merge_top_hand_worked():
    # user 0: [7 (3.0), 2 (1.0)] + [4 (3.0), 9 (2.0)]: 3.0 ties, lower index first -> 4, 7
    # user 1: [5 (1.0), -1] + [-1, -1]: one candidate, then padding
    a_idx, a_score = np.array([[7, 2], [5, -1]]), np.array([[3.0, 1.0], [1.0, np.nan]])
    b_idx, b_score = np.array([[4, 9], [-1, -1]]), np.array([[3.0, 2.0], [np.nan, np.nan]])
    idx, score = merge_top(a_idx, a_score, b_idx, b_score, 2)
    assert idx.tolist() == [[4, 7], [5, -1]]
    assert score[0].tolist() == [3.0, 3.0] and score[1, 0] == 1.0 and np.isnan(score[1, 1])


def test_fallback_pick_skips_seen_items():
    # list 8, 3, 5, 1, 9 (best first); seen 3 and 9; k=3 -> positions 0, 2, 3 (items 8, 5, 1)
    assert fallback_pick(np.array([8, 3, 5, 1, 9]), np.array([3, 9]), 3).tolist() == [0, 2, 3]
    assert fallback_pick(np.array([8, 3]), None, 3).tolist() == [0, 1]  # a short list stays short


def test_missing_kernel_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(EnvironmentSetupError, match="needs faiss-cpu"):
        top_k_block(np.ones((1, 2)), np.ones((3, 2)), np.zeros(3), [None], Rules(k=2))


def test_fallback_lists_and_frame_hand_worked():

    # items a..e, popularity 5, 1, 5, 3, 0, categories x, y, y, x, y; k=2 -> lists of 4
    # by (popularity desc, index): a, c, d, b, e
    cands = Candidates(item_ids=np.array(list("abcde")), vectors=np.zeros((5, 1), np.float32), bias=np.zeros(5),
                       category=np.array([0, 1, 1, 0, 1]), is_new=np.ones(5, bool),
                       popularity=np.array([5.0, 1.0, 5.0, 3.0, 0.0]), category_names=["x", "y"])
    lists = fallback_lists(cands, 2)
    assert {key: c.tolist() for key, c in lists.cands.items()} == {"": [0, 2, 3, 1], "x": [0, 3, 2, 1],
                                                                   "y": [2, 1, 4, 0]}
    assert lists.scores[""].tolist() == [5.0, 5.0, 3.0, 1.0]
    # n1 likes y and saw c -> b, e; n2 unknown -> a, c; n3's category is no candidate's and saw a, c -> d, b
    # the reason: the fallback, with the category whose launches it shows (n1: y) or 'popular'
    frame = fallback_frame(np.array(["n1", "n2", "n3"]), np.array(["y", None, "zzz"], dtype=object),
                           [np.array([2]), None, np.array([0, 2])], lists, 2, cands.item_ids, reasons=True)
    why_y, why_popular = ["fallback", None, "category=y", None], ["fallback", None, "popular", None]
    assert frame.values.tolist() == [
        ["n1", 1, "b", 1.0, "fallback_category", *why_y], ["n1", 2, "e", 0.0, "fallback_category", *why_y],
        ["n2", 1, "a", 5.0, "fallback_popular", *why_popular], ["n2", 2, "c", 5.0, "fallback_popular", *why_popular],
        ["n3", 1, "d", 3.0, "fallback_popular", *why_popular], ["n3", 2, "b", 1.0, "fallback_popular", *why_popular]]
    # without reasons the same rows, reason null
    plain = fallback_frame(np.array(["n1"]), np.array(["y"], dtype=object), [np.array([2])], lists, 2, cands.item_ids)
    assert plain.values.tolist() == [["n1", 1, "b", 1.0, "fallback_category", None, None, None, None],
                                     ["n1", 2, "e", 0.0, "fallback_category", None, None, None, None]]
