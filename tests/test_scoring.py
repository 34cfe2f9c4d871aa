"""Top-K selection against brute force, with ties, seen items, caps, quotas and tiles."""
import numpy as np
import pytest

from rec_lib.scoring import Rules, greedy_pick, merge_partial, partial_top_block, top_k_block


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
    parts = [partial_top_block(U, C[a:z], b[a:z], seen, rules, category[a:z], is_new[a:z], index_offset=a)
             for a, z in tiles]
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
