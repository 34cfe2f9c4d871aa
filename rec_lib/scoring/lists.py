"""What a scoring task computes for a block of users, as rows of the recommendations table:
the model's lists (the exact top-K kernel over the candidate tiles) and the fallback lists of
users the model does not know. numpy and pandas only: the job runs it inside `mapInPandas`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from rec_lib.core.schema import ReasonKind, RecommendationSource
from rec_lib.scoring.kernel import fallback_pick
from rec_lib.scoring.reasons import Explanations, Reasons, fallback_detail

REASON_COLUMNS = ("reason_kind", "reason_item_id", "reason_detail", "reason_share")  # a task's flat reason


@dataclass
class Candidates:
    item_ids: np.ndarray  # str [N], sorted
    vectors: np.ndarray  # float32 [N, d]
    bias: np.ndarray  # float64 [N]
    category: np.ndarray  # int [N] (codes)
    is_new: np.ndarray  # bool [N]
    popularity: np.ndarray  # float64 [N]: weighted interactions so far
    category_names: List[str] = field(default_factory=list)
    explain: Optional[Explanations] = None  # None: the model's tables predate reasons

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class FallbackLists:
    """Lists for users the model does not know: per key (a category name, or '' for everyone),
    candidate indices best first and their scores. Small: (categories + 1) x 2k entries."""
    cands: Dict[str, np.ndarray]
    scores: Dict[str, np.ndarray]


def personal_order(idx: np.ndarray, score: np.ndarray, bias: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The lists [B, k] (candidate index, -1 padded; score) re-ordered by the personal part of the
    score (score - the item's bias), ties by index: which items make a list is the score's
    choice, which one opens it goes to what is most this user's rather than to the few launches
    the popularity prior puts first for everyone."""
    live = idx >= 0
    personal = np.where(live, score - bias[np.maximum(idx, 0)], -np.inf)
    order = np.lexsort((np.where(live, idx, np.iinfo(np.int64).max), -personal), axis=-1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(score, order, axis=1)


def model_frame(user_ids: np.ndarray, idx: np.ndarray, score: np.ndarray, item_ids: np.ndarray,
                reasons: Optional[Reasons] = None) -> pd.DataFrame:
    """The rows of the model's lists (candidate index [B, k], -1 padded; score) of a block of users,
    with their reasons (REASON_COLUMNS; None: null)."""
    rows, ranks = np.nonzero(idx >= 0)
    frame = pd.DataFrame({"user_id": user_ids[rows], "rank": (ranks + 1).astype(np.int32),
                          "item_id": item_ids[idx[rows, ranks]], "score": score[rows, ranks],
                          "source": RecommendationSource.MODEL})
    if reasons is None:
        return frame.assign(**{c: None for c in REASON_COLUMNS})
    return frame.assign(reason_kind=reasons.kind[rows, ranks], reason_item_id=reasons.item_id[rows, ranks],
                        reason_detail=reasons.detail[rows, ranks], reason_share=reasons.share[rows, ranks])


def fallback_frame(user_ids: np.ndarray, top_category: np.ndarray, seen: List[Optional[np.ndarray]],
                    lists: FallbackLists, k: int, item_ids: np.ndarray, reasons: bool = False) -> pd.DataFrame:
    """The fallback lists of users the model does not know; with `reasons`, each row's reason is
    the fallback (detail: its category or 'popular'), else null."""
    keys = [c if isinstance(c, str) and c in lists.cands else "" for c in top_category]
    picks = [fallback_pick(lists.cands[key], user_seen, k) for key, user_seen in zip(keys, seen)]
    lengths = np.asarray([len(at) for at in picks], dtype=np.int64)
    cands = np.concatenate([lists.cands[key][at] for key, at in zip(keys, picks)])
    frame = pd.DataFrame({
        "user_id": np.repeat(user_ids, lengths),
        "rank": np.concatenate([np.arange(1, n + 1, dtype=np.int32) for n in lengths]),
        "item_id": item_ids[cands], "score": np.concatenate([lists.scores[key][at] for key, at in zip(keys, picks)]),
        "source": np.repeat([RecommendationSource.FALLBACK_CATEGORY if key else RecommendationSource.FALLBACK_POPULAR
                             for key in keys], lengths)})
    if not reasons:
        return frame.assign(**{c: None for c in REASON_COLUMNS})
    return frame.assign(reason_kind=ReasonKind.FALLBACK, reason_item_id=None,
                        reason_detail=np.repeat([fallback_detail(key) for key in keys], lengths), reason_share=None)


def fallback_lists(cands: Candidates, k: int) -> FallbackLists:
    """For each category its popular candidates first, then the most popular others; for '' the
    most popular overall. 2k long, so that k remain after a user's seen items are removed in most
    cases. Ties by candidate index."""
    order = np.lexsort((np.arange(len(cands)), -cands.popularity))
    length = min(2 * k, len(cands))
    keyed = {"": order[:length]}
    for code, name in enumerate(cands.category_names):
        if name:
            own = cands.category[order] == code
            keyed[name] = np.concatenate([order[own], order[~own]])[:length]
    return FallbackLists(cands=keyed, scores={key: cands.popularity[c] for key, c in keyed.items()})
