"""The exposure floor: every new candidate reaches at least `score.min_new_item_exposure` users (numpy
only; the scoring job runs it inside its Spark tasks).

A launch that is never shown never collects the first interactions that few-shot adaptation
reads, and lists ranked by score alone give most of their places to the few launches the prior
favours. So each new item is given to the N users for whom it costs least: the users whose own
list it comes closest to entering. For user u and new item i,

    gap(u, i) = score(u, i) - score of u's k-th item

(the loss to u's own ranking if i took the last place; +inf where i is in u's list already or the
list is not full, -inf where u has seen i). The assignment, in Spark (scoring.serve):
1. offers: a first pass over the users keeps, per new item, its `OFFER_FACTOR * N` largest gaps
   (`ItemTop` per task, then per item over all tasks), ordered by (gap desc, user_id asc);
2. deferred acceptance over the offers, until no item short of N has anyone left to ask (at most
   `FLOOR_ROUNDS` rounds): each item short of N proposes to its next best users; each user keeps,
   of what they hold and are offered, the largest gaps that fit `max_slots` places outside their
   list (offers inside it cost nothing and are always kept), and rejects the rest, which frees the
   item to ask its next users in the following round. Where taste matters little, every item's
   best offers are much the same users and most proposals are turned down, so items walk far down
   their offers: 43 to 64 rounds on the popularity regime's 5,000-user shops, where a cap of 20
   left about 40% of the launches short;
3. the offers held at the end are the floor pairs.
The pass that writes the lists then puts each user's floor items into the list (`apply_floor`):
missing ones replace the lowest entries that are not floor items (a floor pair already in the list
is kept there: an insertion never pushes out another launch's floor), and the list is re-sorted
by score. The shortlist's slack (OFFER_FACTOR) lets an item whose first choices are full reach the
next users; an item none of whose offers survive stays short (the summary's floor_reached says),
and one whose every offer was turned down gets no floor pair at all: its offers are the users
with the largest gaps, who may all be full while others have places left.

Choosing by gap rather than by raw score matters: raw scores carry a per-user offset (some users
score every item high), so the top N by score would be the same users for every item, whose
lists cannot take them all. By gap the floor spreads over the users it disturbs least.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np


def new_item_scores(users_aug: np.ndarray, tiles: Sequence[Tuple[int, Callable[[], np.ndarray]]],
                    new_index: np.ndarray) -> np.ndarray:
    """[B, len(new_index)] scores of the users (augmented) for the new candidates (global indices,
    sorted), read tile by tile."""
    out = np.full((users_aug.shape[0], len(new_index)), -np.inf, np.float64)
    for start, load in tiles:
        cands = load()
        inside = (new_index >= start) & (new_index < start + len(cands))
        if inside.any():
            out[:, inside] = users_aug.astype(np.float64) @ np.asarray(cands[new_index[inside] - start], np.float64).T
        del cands
    return out


def gaps(new_scores: np.ndarray, kth_score: np.ndarray, seen: Sequence[Optional[np.ndarray]],
         new_index: np.ndarray, lists: Optional[np.ndarray] = None) -> np.ndarray:
    """[B, N_new] gap(u, i) of the module doc; `kth_score` [B]: each user's k-th list score (NaN
    where the list is not full); `lists` [B, k] (candidate indices): a new item in the user's list
    is marked +inf whatever its recomputed score (float64 here, float32 in the kernel)."""
    kth = np.where(np.isnan(kth_score), -np.inf, kth_score)
    with np.errstate(invalid="ignore"):
        out = np.minimum(new_scores - kth[:, None], np.finfo(np.float64).max)
    out[np.isinf(kth)] = np.inf
    if lists is not None:
        rows, cols = np.nonzero(np.isin(lists, new_index))
        out[rows, np.searchsorted(new_index, lists[rows, cols])] = np.inf
    for row, user_seen in enumerate(seen):
        if user_seen is not None and len(user_seen):
            out[row, np.isin(new_index, np.asarray(user_seen, np.int64))] = -np.inf
    return out


def _order(gap: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Row order of each column, best first: gap desc, then user_id asc (columns independent)."""
    return np.lexsort((users, -gap), axis=0)


@dataclass
class ItemTop:
    """Per new item, the N users with the largest gaps seen so far (gap desc, user_id asc):
    gap [N, N_new] (-inf: empty) and user [N, N_new] (str)."""

    gap: np.ndarray
    user: np.ndarray

    @classmethod
    def empty(cls, n: int, n_new: int) -> "ItemTop":
        return cls(np.full((n, n_new), -np.inf), np.full((n, n_new), "", dtype=object))

    def add(self, gap: np.ndarray, user_ids: np.ndarray) -> "ItemTop":
        """Merge a block's gaps [B, N_new] of users `user_ids` [B]."""
        n = self.gap.shape[0]
        all_gap = np.concatenate([self.gap, gap], axis=0)
        all_user = np.concatenate([self.user, np.broadcast_to(np.asarray(user_ids, dtype=object)[:, None],
                                                              gap.shape)], axis=0)
        # an empty slot ("", -inf) must sort after a real user with -inf: give it the last user order
        sort_user = np.where(np.isneginf(all_gap) & (all_user == ""), "\U0010ffff", all_user).astype(str)
        order = _order(all_gap, sort_user)[:n]
        return ItemTop(np.take_along_axis(all_gap, order, axis=0), np.take_along_axis(all_user, order, axis=0))

    def rows(self, new_index: np.ndarray):
        """(candidate, user_id, gap) of every kept entry with a finite or +inf gap."""
        keep = ~np.isneginf(self.gap)
        rank, column = np.nonzero(keep)
        return new_index[column], self.user[rank, column], self.gap[rank, column]


def apply_floor(idx: np.ndarray, score: np.ndarray, floor: Sequence[Optional[np.ndarray]], new_scores: np.ndarray,
                new_index: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lists [B, k] (candidate index, -1 padded; score) with each user's floor items (`floor`:
    per user candidate indices, or None) in them: missing ones replace the lowest entries that are
    not floor items; lists re-sorted by (score desc, index asc). `new_scores` [B, N_new]: the
    users' scores of the new candidates `new_index` (sorted). Returns (idx, score, placed [B]: floor
    items a list gained)."""
    idx, score = idx.copy(), score.copy()
    placed = np.zeros(len(idx), np.int64)
    for row, wanted in enumerate(floor):
        if wanted is None or not len(wanted):
            continue
        wanted = np.asarray(wanted, np.int64)
        missing = wanted[~np.isin(wanted, idx[row])]
        if not len(missing):
            continue
        protected = np.isin(idx[row], wanted)
        free = [p for p in range(idx.shape[1] - 1, -1, -1) if idx[row, p] < 0] + \
               [p for p in range(idx.shape[1] - 1, -1, -1) if idx[row, p] >= 0 and not protected[p]]
        columns = np.searchsorted(new_index, missing)
        for position, cand, column in zip(free, missing, columns):
            idx[row, position], score[row, position] = cand, new_scores[row, column]
            placed[row] += 1
        live = idx[row] >= 0
        order = np.lexsort((np.where(live, idx[row], np.iinfo(np.int64).max), -np.where(live, score[row], -np.inf)))
        idx[row], score[row] = idx[row, order], score[row, order]
    return idx, score, placed


OFFER_FACTOR = 20  # offers kept per new item: this many times the floor
FLOOR_ROUNDS = 100  # the most rounds of deferred acceptance (each: items propose, users keep what fits)


__all__ = ["new_item_scores", "gaps", "ItemTop", "apply_floor", "OFFER_FACTOR"]
