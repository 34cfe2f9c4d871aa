"""What the served lists look like beyond accuracy (numpy only): figures of one set of top-K lists
from per-item counts, so a job computes them from one aggregation of the written table.

- candidate_coverage: share of the candidates that appear in any list (new_candidate_coverage:
  the same for the new ones);
- top3_first_share: share of the lists whose first place is held by one of the 3 items most often
  first (1.0: three items open every list);
- exposure_gini: Gini coefficient of how often each candidate appears (0: all equally, -> 1: one
  item everywhere), candidates that appear nowhere included;
- mean_pairwise_overlap: mean over pairs of users of |A & B| / K, exactly, from the counts:
  sum_i c_i (c_i - 1) / (U (U - 1) K), with c_i the lists holding item i;
- new_item_share: share of the list places held by new candidates;
- floor_reached: share of the new candidates in at least `min_exposure` lists (with a floor).
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 where all are equal or all zero)."""
    x = np.sort(np.asarray(counts, np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * ranks - n - 1) @ x / (n * total))


def list_figures(exposure: np.ndarray, first: np.ndarray, is_new: np.ndarray, n_lists: int, k: int,
                 min_exposure: Optional[int] = None) -> Dict[str, float]:
    """Figures of the lists (module doc) from, per candidate, the lists holding it (`exposure`), the
    lists it opens (`first`) and whether it is new."""
    exposure = np.asarray(exposure, np.float64)
    first = np.asarray(first, np.float64)
    is_new = np.asarray(is_new, bool)
    places = exposure.sum()
    out = {
        "lists": float(n_lists),
        "candidates": float(len(exposure)),
        "new_candidates": float(is_new.sum()),
        "candidate_coverage": float((exposure > 0).mean()) if len(exposure) else float("nan"),
        "new_candidate_coverage": float((exposure[is_new] > 0).mean()) if is_new.any() else float("nan"),
        "top3_first_share": float(np.sort(first)[::-1][:3].sum() / n_lists) if n_lists else float("nan"),
        "distinct_first_items": float((first > 0).sum()),
        "exposure_gini": gini(exposure),
        "mean_pairwise_overlap": (float((exposure * (exposure - 1)).sum() / (n_lists * (n_lists - 1) * k))
                                  if n_lists > 1 and k > 0 else float("nan")),
        "new_item_share": float(exposure[is_new].sum() / places) if places else float("nan"),
    }
    if min_exposure:
        out["floor_reached"] = float((exposure[is_new] >= min_exposure).mean()) if is_new.any() else float("nan")
    return out


__all__ = ["gini", "list_figures"]
