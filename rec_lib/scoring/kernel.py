"""Top-K selection on blocks of users x candidates, with optional business rules.

The kernel is an exact inner-product k-NN (`faiss.knn`, BLAS + a heap per user): the bias rides as
an extra dimension, [u, 1] . [v, b] = u . v + b, so one search returns each user's best `depth`
candidates. It costs about what the matrix product alone costs; a numpy partition of every score
costs 8x more (`make bench-score`).

Ties are broken by the lower candidate index (candidates are numbered in item_id order), so the
same inputs always give the same lists. faiss breaks ties its own way, so its answer is re-sorted
by (score desc, index asc) and trusted only down to the last score strictly above the smallest one
it returned: an unreturned candidate can tie with that smallest score, never beat it. Seen items
and rules are applied on that trusted prefix; a user whose list it cannot fill is searched again
deeper (x4), up to the whole tile, where the answer is complete.

Rules are "at most" limits, applied greedily in score order: at most `max_per_category` items of
one category, and at most `k - new_item_quota` established (not new) items, which reserves
`new_item_quota` places for new items when there are enough of them. The greedy pick reads the
order from the front, so a pick completed within the trusted prefix is the pick over all.

Candidate tiles merge exactly: without rules a tile keeps its own top k. With rules it keeps, per
(category, new or not) group, its best min(k, max_per_category) items: the greedy pick can take
an item only after taking every better item of the same group (whatever stops one stops the
other), so no item it takes lies deeper in its group than that.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from rec_lib.core.errors import EnvironmentSetupError

DEEPEN = 4  # each retry searches this many times deeper


@dataclass(frozen=True)
class Rules:
    k: int
    max_per_category: int = 0  # 0: no limit
    new_item_quota: int = 0  # places kept for new items; 0: none

    @property
    def active(self) -> bool:
        return self.max_per_category > 0 or self.new_item_quota > 0


def kernel():
    """The faiss module, or an error that says how to install it (checked before any work)."""
    try:
        import faiss
    except ImportError as exc:
        raise EnvironmentSetupError(
            "the scoring kernel needs faiss-cpu: `make setup` installs it (requirements/base.txt); elsewhere "
            "`pip install faiss-cpu==1.15.1`, or faiss-cpu==1.8.0 where numpy < 1.25 (Databricks Runtime 15.4 LTS)"
        ) from exc
    return faiss


def set_threads(n: int) -> None:
    """Threads the kernel may use in this process (a Spark task: its spark.task.cpus)."""
    kernel().omp_set_num_threads(max(1, int(n)))


def augment_users(user_vectors: np.ndarray) -> np.ndarray:
    """[B, d] -> [B, d + 1] float32, C order: the user side of [u, 1] . [v, b]."""
    out = np.ones((user_vectors.shape[0], user_vectors.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = user_vectors
    return out


def augment_candidates(cand_vectors: np.ndarray, cand_bias: np.ndarray) -> np.ndarray:
    """[N, d], [N] -> [N, d + 1] float32, C order: the candidate side of [u, 1] . [v, b]."""
    out = np.empty((cand_vectors.shape[0], cand_vectors.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = cand_vectors
    out[:, -1] = cand_bias
    return out


def search(users_aug: np.ndarray, cands_aug: np.ndarray, depth: int) -> Tuple[np.ndarray, np.ndarray]:
    """Each user's best `depth` candidates by inner product: (index [B, depth] int64, score [B, depth]
    float32), ordered by (score desc, index asc); -1 / -inf past the last candidate."""
    faiss = kernel()
    n_users, n_cand = users_aug.shape[0], cands_aug.shape[0]
    idx = np.full((n_users, depth), -1, dtype=np.int64)
    score = np.full((n_users, depth), -np.inf, dtype=np.float32)
    if n_users == 0 or n_cand == 0 or depth == 0:
        return idx, score
    found = min(depth, n_cand)
    dist, near = faiss.knn(np.ascontiguousarray(users_aug, dtype=np.float32),
                           np.ascontiguousarray(cands_aug, dtype=np.float32), found, metric=faiss.METRIC_INNER_PRODUCT)
    order = np.lexsort((near, -dist), axis=-1)
    idx[:, :found] = np.take_along_axis(near, order, axis=1)
    score[:, :found] = np.take_along_axis(dist, order, axis=1)
    return idx, score


def _seen_mask(idx: np.ndarray, seen: Sequence[Optional[np.ndarray]], n_cand: int) -> np.ndarray:
    """True where idx[row, j] is one of that row's seen candidates (local indices)."""
    rows = [np.full(len(s), r, dtype=np.int64) for r, s in enumerate(seen) if s is not None and len(s)]
    if not rows:
        return np.zeros(idx.shape, dtype=bool)
    codes = np.concatenate(rows) * n_cand + np.concatenate([s for s in seen if s is not None and len(s)])
    return np.isin(np.arange(idx.shape[0])[:, None] * n_cand + idx, codes)


def greedy_pick(order: np.ndarray, category: np.ndarray, is_new: np.ndarray, rules: Rules) -> list:
    """Candidates from `order` (best first) that the rules allow, up to k."""
    picked, per_category, established = [], {}, 0
    max_established = rules.k - rules.new_item_quota if rules.new_item_quota else rules.k
    for c in order:
        cat = category[c]
        if rules.max_per_category and per_category.get(cat, 0) >= rules.max_per_category:
            continue
        if not is_new[c]:
            if established >= max_established:
                continue
            established += 1
        per_category[cat] = per_category.get(cat, 0) + 1
        picked.append(int(c))
        if len(picked) == rules.k:
            break
    return picked


def _select(idx: np.ndarray, score: np.ndarray, seen: Sequence[Optional[np.ndarray]], rules: Rules,
            category: Optional[np.ndarray], is_new: Optional[np.ndarray], n_cand: int,
            complete: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Which rows a search of this depth settles, and their picks: (settled [B] bool, positions into
    those rows of idx [S, k], -1 padded).

    Usable positions: a real candidate, not seen, and trusted (score above the row's smallest
    returned score, or every candidate returned). A row is settled when its picks fill k from the
    usable positions, or when the search returned every candidate."""
    usable = (idx >= 0) & ~_seen_mask(idx, seen, n_cand)
    if not complete:
        usable &= score > score[:, -1:]
    k = rules.k
    if not rules.active:
        settled = usable.sum(axis=1) >= k
        if complete:
            settled[:] = True
        usable = usable[settled]
        first = np.argsort(~usable, axis=1, kind="stable")[:, :k]
        positions = np.where(np.take_along_axis(usable, first, axis=1), first, -1)
        if positions.shape[1] < k:  # fewer candidates than k
            positions = np.pad(positions, ((0, 0), (0, k - positions.shape[1])), constant_values=-1)
        return settled, positions
    settled = np.zeros(idx.shape[0], dtype=bool)
    rows = []
    for row in range(idx.shape[0]):
        usable_at = np.flatnonzero(usable[row])
        chosen = greedy_pick(idx[row, usable_at], category, is_new, rules)
        if complete or len(chosen) == k:
            settled[row] = True
            at = dict(zip(idx[row, usable_at].tolist(), usable_at.tolist()))
            rows.append([at[c] for c in chosen] + [-1] * (k - len(chosen)))
    return settled, np.asarray(rows, dtype=np.int64).reshape(-1, k)


def top_k_block(user_vectors: np.ndarray, cand_vectors: np.ndarray, cand_bias: np.ndarray,
                seen: Sequence[Optional[np.ndarray]], rules: Rules, category: Optional[np.ndarray] = None,
                is_new: Optional[np.ndarray] = None, index_offset: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(candidate index [B, k], score [B, k]) for a block of users; -1 / NaN where a user has fewer
    than k allowed candidates. `seen` holds, per user, candidate indices (global, i.e. including
    `index_offset`) to leave out; this block's candidates are numbered from `index_offset`, and
    `category` / `is_new` describe this block's candidates (local order)."""
    return top_k_augmented(augment_users(user_vectors), augment_candidates(cand_vectors, cand_bias), seen, rules,
                           category, is_new, index_offset)


def top_k_augmented(users_aug: np.ndarray, cands_aug: np.ndarray, seen: Sequence[Optional[np.ndarray]], rules: Rules,
                    category: Optional[np.ndarray] = None, is_new: Optional[np.ndarray] = None,
                    index_offset: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """`top_k_block` on vectors already augmented with the bias (`augment_users`, `augment_candidates`)."""
    n_users, n_cand = users_aug.shape[0], cands_aug.shape[0]
    out_idx = np.full((n_users, rules.k), -1, dtype=np.int64)
    out_score = np.full((n_users, rules.k), np.nan, dtype=np.float64)
    if n_users == 0 or n_cand == 0:
        return out_idx, out_score
    local_seen = [None if s is None else np.asarray(s, np.int64) - index_offset for s in seen]
    local_seen = [None if s is None else s[(s >= 0) & (s < n_cand)] for s in local_seen]
    n_seen = np.asarray([0 if s is None else len(s) for s in local_seen], dtype=np.int64)
    # one candidate past the k + seen it needs shows where the trusted prefix ends; a rule can pass
    # over any number of items, so its first search goes deeper
    depth = (rules.k + n_seen + 1) * (2 if rules.active else 1)
    pending = np.arange(n_users)
    while pending.size:
        # users searched together share a depth rounded up to a power of two (at most 2x the work),
        # but no deeper than the deepest of them needs
        need = depth[pending]
        bucket = np.minimum(2 ** np.ceil(np.log2(need)).astype(np.int64), min(int(need.max()), n_cand))
        unsettled = []
        for d in np.unique(bucket):
            rows = pending[bucket == d]
            idx, score = search(users_aug[rows], cands_aug, int(d))
            settled, positions = _select(idx, score, [local_seen[r] for r in rows], rules, category, is_new,
                                         n_cand, complete=bool(d >= n_cand))
            found = positions >= 0
            at = np.maximum(positions, 0)
            out_idx[rows[settled]] = np.where(found, np.take_along_axis(idx[settled], at, axis=1) + index_offset, -1)
            out_score[rows[settled]] = np.where(found, np.take_along_axis(score[settled], at, axis=1), np.nan)
            unsettled.append(rows[~settled])
        pending = np.concatenate(unsettled)
        depth[pending] *= DEEPEN
    return out_idx, out_score


def group_limit(rules: Rules) -> int:
    return min(rules.k, rules.max_per_category) if rules.max_per_category else rules.k


def partial_top_augmented(users_aug: np.ndarray, cands_aug: np.ndarray, seen: Sequence[Optional[np.ndarray]],
                          rules: Rules, category: np.ndarray, is_new: np.ndarray,
                          index_offset: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A tile's share of the candidates for `merge_partial`: the top k without rules, else each
    (category, newness) group's top `group_limit(rules)`, on vectors augmented with the bias.
    Returns (index, score) [B, width], -1/NaN padded."""
    if not rules.active:
        return top_k_augmented(users_aug, cands_aug, seen, rules, index_offset=index_offset)
    groups = category.astype(np.int64) * 2 + is_new.astype(np.int64)
    parts = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        group_seen = [None if s is None else
                      np.flatnonzero(np.isin(members + index_offset, np.asarray(s, np.int64))) for s in seen]
        idx, score = top_k_augmented(users_aug, cands_aug[members], group_seen, Rules(k=group_limit(rules)))
        parts.append((np.where(idx >= 0, members[np.maximum(idx, 0)] + index_offset, -1), score))
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)


def merge_partial(cand_idx: np.ndarray, scores: np.ndarray, rules: Rules, category: np.ndarray,
                  is_new: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One user's final list from the union of partial top-Ks (global candidate indices)."""
    keep = cand_idx >= 0
    cand_idx, scores = cand_idx[keep], scores[keep]
    order = np.lexsort((cand_idx, -scores))
    ranked = cand_idx[order]
    picked = greedy_pick(ranked, category, is_new, rules) if rules.active else [int(c) for c in ranked[:rules.k]]
    best = dict(zip(cand_idx.tolist(), scores.tolist()))
    return np.asarray(picked, np.int64), np.asarray([best[c] for c in picked], np.float64)


def merge_top(a_idx: np.ndarray, a_score: np.ndarray, b_idx: np.ndarray, b_score: np.ndarray,
              k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Two top lists of the same users (global indices, -1/NaN padded) -> their top k [B, k], by
    (score desc, index asc): the running merge of tiles without rules, vectorised."""
    idx = np.concatenate([a_idx, b_idx], axis=1)
    score = np.concatenate([a_score, b_score], axis=1)
    score = np.where(idx >= 0, score, -np.inf)
    order = np.lexsort((idx, -score), axis=-1)[:, :k]
    idx, score = np.take_along_axis(idx, order, axis=1), np.take_along_axis(score, order, axis=1)
    found = np.isfinite(score)
    return np.where(found, idx, -1), np.where(found, score, np.nan)


def top_k_tiles(users_aug: np.ndarray, tiles: Sequence[Tuple[int, Callable[[], np.ndarray]]],
                seen: Sequence[Optional[np.ndarray]], rules: Rules, category: np.ndarray,
                is_new: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(candidate index [B, k], score [B, k]) over every tile, as `top_k_block` over all candidates.

    `tiles` are (first candidate index, load) pairs in index order; `load()` returns that tile's
    augmented candidates. Tiles are loaded one at a time and released before the next, so memory
    holds one tile whatever the catalogue's size. `category` / `is_new` cover every candidate
    (global order; a memory map reads only the entries it is asked for)."""
    if len(tiles) == 1:
        start, load = tiles[0]
        cands = load()
        stop = start + len(cands)
        return top_k_augmented(users_aug, cands, seen, rules, np.asarray(category[start:stop]),
                               np.asarray(is_new[start:stop]), start)
    best_idx = np.full((users_aug.shape[0], rules.k), -1, dtype=np.int64)
    best_score = np.full((users_aug.shape[0], rules.k), np.nan)
    parts = []
    for start, load in tiles:
        cands = load()
        stop = start + len(cands)
        idx, score = partial_top_augmented(users_aug, cands, seen, rules, np.asarray(category[start:stop]),
                                           np.asarray(is_new[start:stop]), start)
        del cands
        if rules.active:
            parts.append((idx, score))
        else:
            best_idx, best_score = merge_top(best_idx, best_score, idx, score, rules.k)
    if not rules.active:
        return best_idx, best_score
    idx = np.concatenate([p[0] for p in parts], axis=1)
    score = np.nan_to_num(np.concatenate([p[1] for p in parts], axis=1), nan=-np.inf)
    for row in range(users_aug.shape[0]):
        picked, picked_score = merge_partial(idx[row], score[row], rules, category, is_new)
        best_idx[row, :len(picked)] = picked
        best_score[row, :len(picked)] = picked_score
    return best_idx, best_score


def fallback_pick(ranked: np.ndarray, seen: Optional[np.ndarray], k: int) -> np.ndarray:
    """Positions of the first k entries of a fallback list (candidate indices, best first) that the
    user has not seen."""
    unseen = np.flatnonzero(~np.isin(ranked, np.asarray([] if seen is None else seen, np.int64)))
    return unseen[:k]
