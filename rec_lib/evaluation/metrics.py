"""Ranking metrics on numpy score matrices (users x items), shared by training checks and evaluation.

Relevance is binary: an item is relevant to a user when the user interacted with it in the test
period. `recommended` is an int matrix [U, >=K] of item indices, best first.

- Recall@K   |top K ∩ relevant| / |relevant|
- NDCG@K     DCG / ideal DCG, DCG = sum over hits at rank r (1-based) of 1 / log2(r + 1); the ideal
             list puts min(|relevant|, K) hits first
- HitRate@K  1 if any relevant item is in the top K
- MRR@K      1 / rank of the first relevant item in the top K, 0 if none
Each is averaged over the users with at least one relevant item. Catalogue coverage and mean
popularity describe the lists themselves.

Two methods ranked for the same users differ by chance as well as by skill: `paired_interval`
gives the mean per-user difference and its bootstrap interval (users resampled with replacement,
both methods' values of a user kept together), so a gap smaller than its interval's width is read
as a tie, not a loss or a win.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np


def top_k(scores: np.ndarray, k: int, exclude: Optional[np.ndarray] = None,
          tiebreak: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices [U, k] of each row's k best scores, best first; `exclude` [U, N] bool marks items
    that may not be recommended (e.g. already seen; they come last). Equal scores are ordered by
    `tiebreak` [N] (a rank per item, e.g. a seeded permutation), else the lower index first."""
    scores = np.asarray(scores, dtype=np.float64)
    if exclude is not None:
        scores = np.where(exclude, -np.inf, scores)
    k = min(k, scores.shape[1])
    if tiebreak is None:
        # a stable sort of -score keeps equal scores in index order
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.lexsort((np.broadcast_to(tiebreak, scores.shape), -scores), axis=-1)[:, :k]


def hits(recommended: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """bool [U, K]: whether the item at each position is relevant (`relevant` bool [U, N])."""
    return np.take_along_axis(relevant, recommended, axis=1)


def per_user_metrics(recommended: np.ndarray, relevant: np.ndarray, k: int) -> Dict[str, np.ndarray]:
    """recall, ndcg, hit_rate, mrr per user [U] (NaN for users with nothing relevant)."""
    top = recommended[:, :k]
    h = hits(top, relevant).astype(np.float64)
    n_rel = relevant.sum(axis=1).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n_rel, top.shape[1]).astype(int)]
    first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "recall": h.sum(axis=1) / n_rel,
            "ndcg": (h * discount).sum(axis=1) / ideal,
            "hit_rate": h.any(axis=1).astype(np.float64),
            "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
        }
    empty = n_rel == 0
    for values in out.values():
        values[empty] = np.nan
    return out


INTERVAL_LEVEL = 0.95
INTERVAL_RESAMPLES = 1000
RESAMPLES_PER_BLOCK = 100  # resamples drawn at once: their index matrix is this many rows x the users


def paired_interval(first: np.ndarray, second: np.ndarray, seed, resamples: int = INTERVAL_RESAMPLES,
                    level: float = INTERVAL_LEVEL) -> Tuple[float, float, float]:
    """(mean, low, high) of first - second over users ([U] each, the same users in the same order):
    the mean difference and its percentile bootstrap interval at `level` (`resamples` resamples of
    the users with replacement, seeded). NaN for all three without users."""
    if np.ndim(first) != 1 or np.shape(first) != np.shape(second):
        raise ValueError(f"paired values must be two vectors of one length, got {np.shape(first)} and {np.shape(second)}")
    diff = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    if not len(diff):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, RESAMPLES_PER_BLOCK):
        n = min(RESAMPLES_PER_BLOCK, resamples - start)
        means[start:start + n] = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(diff.mean()), float(low), float(high)


def difference_names(metric: str) -> Tuple[str, str]:
    """The metric names under which the evaluation keeps the interval of the model minus a method on
    `metric` (e.g. recall@20 -> recall@20_diff_low, recall@20_diff_high)."""
    return f"{metric}_diff_low", f"{metric}_diff_high"


PER_USER_KEPT = ("recall", "ndcg")  # the per-user values an accumulator keeps when asked (for paired intervals)


@dataclass
class MetricAccumulator:
    """Sums of per-user metrics over blocks of users, plus what the lists contain, so large user
    sets are evaluated block by block with the same result as all at once. With `keep_users`, also
    each judged user's recall and ndcg in the order they were added (for `paired_interval`: the
    evaluation's user count is bounded by evaluate.max_users)."""

    n_items: int
    k: int
    popularity: Optional[np.ndarray] = None  # [N] per item, for the mean popularity of what is recommended
    keep_users: bool = False

    def __post_init__(self) -> None:
        self.sums: Dict[str, float] = {"recall": 0.0, "ndcg": 0.0, "hit_rate": 0.0, "mrr": 0.0}
        self.kept: Dict[str, List[np.ndarray]] = {name: [] for name in PER_USER_KEPT}
        self.n_users = 0
        self.shown = np.zeros(self.n_items, dtype=bool)
        self.popularity_sum, self.slots = 0.0, 0

    def add(self, recommended: np.ndarray, relevant: np.ndarray) -> None:
        per_user = per_user_metrics(recommended, relevant, self.k)
        judged = relevant.any(axis=1)
        self.n_users += int(judged.sum())
        for name, values in per_user.items():
            self.sums[name] += float(values[judged].sum())
            if self.keep_users and name in self.kept:
                self.kept[name].append(values[judged])
        top = recommended[:, :self.k]
        self.shown[top.ravel()] = True
        if self.popularity is not None:
            self.popularity_sum += float(self.popularity[top].sum())
            self.slots += top.size

    def per_user(self, name: str) -> np.ndarray:
        """The judged users' values of `name` (recall or ndcg), in the order added; needs keep_users."""
        if not self.keep_users:
            raise ValueError("this accumulator was not asked to keep per-user values (keep_users=True)")
        parts = self.kept[name]
        return np.concatenate(parts) if parts else np.zeros(0)

    def result(self) -> Dict[str, float]:
        """recall@K, ndcg@K, hit_rate@K, mrr@K, coverage@K, mean_popularity@K, users."""
        out = {f"{name}@{self.k}": (total / self.n_users if self.n_users else float("nan"))
               for name, total in self.sums.items()}
        out[f"coverage@{self.k}"] = float(self.shown.sum() / self.n_items) if self.n_items else float("nan")
        if self.popularity is not None:
            out[f"mean_popularity@{self.k}"] = self.popularity_sum / self.slots if self.slots else float("nan")
        out["users"] = float(self.n_users)
        return out


def recall_at_k(recommended: np.ndarray, relevant: Sequence[Set[int]], k: int) -> float:
    """Mean over users with something relevant of |top k ∩ relevant| / |relevant|, with the
    relevant items given as sets of indices (per_user_metrics' recall)."""
    recommended = np.asarray(recommended)
    n_items = 1 + max([int(recommended.max()) if recommended.size else -1] + [max(r) for r in relevant if r])
    matrix = np.zeros((len(relevant), n_items), dtype=bool)
    for user, items in enumerate(relevant):
        matrix[user, list(items)] = True
    recall = per_user_metrics(recommended, matrix, k)["recall"]
    judged = ~np.isnan(recall)
    return float(recall[judged].mean()) if judged.any() else float("nan")
