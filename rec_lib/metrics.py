"""Ranking metrics on numpy score matrices (users x items), shared by training checks and evaluation."""
from __future__ import annotations

from typing import Optional, Sequence, Set

import numpy as np


def top_k(scores: np.ndarray, k: int, exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices [U, k] of each row's k best scores, best first; ties go to the lower index;
    `exclude` [U, N] bool marks items that may not be recommended (e.g. already seen)."""
    scores = np.asarray(scores, dtype=np.float64)
    if exclude is not None:
        scores = np.where(exclude, -np.inf, scores)
    k = min(k, scores.shape[1])
    # a stable sort of -score keeps equal scores in index order
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def recall_at_k(recommended: np.ndarray, relevant: Sequence[Set[int]], k: int) -> float:
    """Mean over users with something relevant of |top k ∩ relevant| / |relevant|."""
    values = [len(set(row[:k].tolist()) & rel) / len(rel) for row, rel in zip(recommended, relevant) if rel]
    return float(np.mean(values)) if values else float("nan")
