"""Top-K selection on blocks of users x candidates (numpy), with optional business rules.

Ties are broken by the lower candidate index (candidates are numbered in item_id order), so the
same inputs always give the same lists. Rules are "at most" limits, applied greedily in score
order: at most `max_per_category` items of one category, and at most `k - new_item_quota`
established (not new) items, which reserves `new_item_quota` places for new items when there are
enough of them.

Candidate tiles merge exactly: without rules a tile keeps its own top k. With rules it keeps, per
(category, new or not) group, its best min(k, max_per_category) items: the greedy pick can take
an item only after taking every better item of the same group (whatever stops one stops the
other), so no item it takes lies deeper in its group than that.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Rules:
    k: int
    max_per_category: int = 0  # 0: no limit
    new_item_quota: int = 0  # places kept for new items; 0: none

    @property
    def active(self) -> bool:
        return self.max_per_category > 0 or self.new_item_quota > 0


def _mask_seen(scores: np.ndarray, seen: Sequence[Optional[np.ndarray]]) -> None:
    for row, items in enumerate(seen):
        if items is not None and len(items):
            scores[row, np.asarray(items, dtype=np.int64)] = -np.inf


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


def _ranked(scores_row: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Positions of finite scores, best first, ties by the lower candidate index."""
    finite = np.flatnonzero(np.isfinite(scores_row))
    return finite[np.lexsort((index[finite], -scores_row[finite]))]


def top_k_block(user_vectors: np.ndarray, cand_vectors: np.ndarray, cand_bias: np.ndarray,
                seen: Sequence[Optional[np.ndarray]], rules: Rules, category: Optional[np.ndarray] = None,
                is_new: Optional[np.ndarray] = None, index_offset: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(candidate index [B, k], score [B, k]) for a block of users; -1 / NaN where a user has fewer
    than k allowed candidates. `seen` holds, per user, candidate indices (global, i.e. including
    `index_offset`) to leave out; this block's candidates are numbered from `index_offset`."""
    n_users, n_cand = user_vectors.shape[0], cand_vectors.shape[0]
    k = min(rules.k, n_cand)
    out_idx = np.full((n_users, rules.k), -1, dtype=np.int64)
    out_score = np.full((n_users, rules.k), np.nan, dtype=np.float64)
    if n_users == 0 or n_cand == 0:
        return out_idx, out_score
    scores = user_vectors.astype(np.float32) @ cand_vectors.astype(np.float32).T
    scores += cand_bias.astype(np.float32)[None, :]
    local_seen = [None if s is None else np.asarray(s, np.int64) - index_offset for s in seen]
    local_seen = [None if s is None else s[(s >= 0) & (s < n_cand)] for s in local_seen]
    _mask_seen(scores, local_seen)
    index = np.arange(n_cand)

    if rules.active:
        for row in range(n_users):
            picked = greedy_pick(_ranked(scores[row], index), category, is_new, rules)
            out_idx[row, :len(picked)] = np.asarray(picked, np.int64) + index_offset
            out_score[row, :len(picked)] = scores[row, picked]
        return out_idx, out_score

    cols, values = _prefilter(scores, k)
    survivors = values
    part = np.argpartition(survivors, survivors.shape[1] - k, axis=1)[:, -k:]
    chosen = np.take_along_axis(cols, part, axis=1)
    values = np.take_along_axis(survivors, part, axis=1)
    threshold = values.min(axis=1)
    # every column scoring at or above the k-th best survived the prefilter, so ties at the
    # boundary show up among the survivors; those rows get an exact ordering
    ties = np.flatnonzero((survivors >= threshold[:, None]).sum(axis=1) > k)
    for row in ties:
        ranked = _ranked(scores[row], index)[:k]
        rest = np.setdiff1d(index, ranked)[:k - len(ranked)]  # -inf fillers, dropped below
        chosen[row] = np.concatenate([ranked, rest])
        values[row] = scores[row, chosen[row]]
    order = np.lexsort((chosen, -values), axis=-1)
    chosen = np.take_along_axis(chosen, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    finite = np.isfinite(values)
    out_idx[:, :k] = np.where(finite, chosen + index_offset, -1)
    out_score[:, :k] = np.where(finite, values, np.nan)
    return out_idx, out_score


def _prefilter(scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Columns that can hold a row's top k, as (column index, score) [B, W], padded with -inf.

    The k-th best score among the first m columns is a lower bound of the k-th best over all
    columns, so every column at or above it is kept: exact, and for m = N/8 about 8k columns
    survive, which makes the selection several times cheaper than a partition of every column."""
    n_users, n_cand = scores.shape
    m = max(4 * k, n_cand // 8)
    if m >= n_cand:
        return np.broadcast_to(np.arange(n_cand), scores.shape).copy(), scores
    bound = -np.partition(-scores[:, :m], k - 1, axis=1)[:, k - 1]
    keep = scores >= bound[:, None]
    counts = keep.sum(axis=1)
    rows, cols = np.nonzero(keep)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    width = max(int(counts.max()), k)
    out_cols = np.zeros((n_users, width), dtype=np.int64)
    out_vals = np.full((n_users, width), -np.inf, dtype=scores.dtype)
    out_cols[rows, slot] = cols
    out_vals[rows, slot] = scores[rows, cols]
    # padding entries score -inf: never reported (top_k_block marks them -1)
    return out_cols, out_vals


def group_limit(rules: Rules) -> int:
    return min(rules.k, rules.max_per_category) if rules.max_per_category else rules.k


def partial_top_block(user_vectors: np.ndarray, cand_vectors: np.ndarray, cand_bias: np.ndarray,
                      seen: Sequence[Optional[np.ndarray]], rules: Rules, category: np.ndarray, is_new: np.ndarray,
                      index_offset: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A tile's share of the candidates for `merge_partial`: the top k without rules, else each
    (category, newness) group's top `group_limit(rules)`. Returns (index, score) [B, width], -1/NaN padded."""
    if not rules.active:
        return top_k_block(user_vectors, cand_vectors, cand_bias, seen, rules, index_offset=index_offset)
    groups = category.astype(np.int64) * 2 + is_new.astype(np.int64)
    parts = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        group_seen = [None if s is None else
                      np.flatnonzero(np.isin(members + index_offset, np.asarray(s, np.int64))) for s in seen]
        idx, score = top_k_block(user_vectors, cand_vectors[members], cand_bias[members], group_seen,
                                 Rules(k=group_limit(rules)))
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
