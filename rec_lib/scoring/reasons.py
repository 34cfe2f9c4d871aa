"""Why an item is in a user's list (numpy only: a scoring task runs it on its block's top K).

The served score is a sum of named parts (training.sides): the blocks of the user and item rows
(tower, text, attributes) and the item's two bias terms (prior, pace). What ranks an item for a
user is how far each part lifts it above the average candidate, so a part's contribution is

    c_p(u, i) = <u_p, v_p(i) - mean_j v_p(j)>    (a block of the rows; j over the candidates)
    c_p(i)    = b_p(i) - mean_j b_p(j)           (a bias term)

and sum_p c_p(u, i) = score(u, i) - mean_j score(u, j). The reason's kind is the part with the
largest contribution (schema.ReasonKind.OF_PART); its share is that part's part of the positive
contributions, max(c_kind, 0) / sum_p max(c_p, 0) (0 where no part lifts the item, as for an
exposure-floor item below the average). A tower or text reason names the item of the user's
history closest to the recommended one in that part's terms (cosine of the blocks); a user
without history items cannot be told "because you liked", so for them those two parts count only
where no other part lifts the item (the reason then names no item). An attribute reason names the item's token that adds most to
<a_u, h_i> (its weight in h_i x the user's profile at its slot).

A part wider than REASON_DIMS (the text: 384 with MiniLM) is compared in its REASON_DIMS principal
directions (`projection`, fitted on the candidates), which cuts the comparison's cost by its width
over REASON_DIMS: the named item is the closest in those terms, which on the demo shop's text is
the closest in the full width for 93% of (candidate, history) draws and a near one otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from rec_lib.core.schema import ReasonKind

SIMILAR_PARTS = ("tower", "text")  # the parts a history item explains
CHUNK_USERS = 64  # users whose candidate blocks [users, K, width] are gathered at once (kept in cache)
REASON_DIMS = 64  # a similar part wider than this is compared in this many principal directions
PROJECTION_SAMPLE = 4096  # candidates the principal directions are fitted on (a seeded sample)
NO_HISTORY = -1  # closest_history's answer for a user without history items


@dataclass(frozen=True)
class Explanations:
    """What the reasons read of the candidates (rows in candidate order); candidate-sized, built on
    the driver from `item_embeddings` (schema.ITEM_EMBEDDINGS: parts ... attribute_tokens)."""

    parts: Tuple[Tuple[str, int], ...]  # the blocks of the candidates' vectors, in order: (name, width)
    prior_score: np.ndarray  # float64 [N]
    pace_score: np.ndarray  # float64 [N]
    trending: np.ndarray  # str [N]: the pace's detail, users=12,days=2.0
    launch: np.ndarray  # str [N]: the prior's detail, expected_users_per_day=3.1
    centre: np.ndarray  # float32 [d]: the candidates' mean vector
    token_start: np.ndarray  # int64 [N + 1]: candidate c's attribute tokens are token_*[start[c]:start[c + 1]]
    token_slot: np.ndarray  # int32 [T]: the token's slot in the attribute block
    token_weight: np.ndarray  # float32 [T]: its signed weight in the item's attribute vector
    token_text: np.ndarray  # str [T]: the token, e.g. brand=cucina
    # similar part -> [width, REASON_DIMS] its principal directions (parts no wider: compared whole)
    projections: Dict[str, np.ndarray] = field(default_factory=dict)

    def similar_layout(self) -> Tuple[Tuple[str, int, int, Optional[np.ndarray]], ...]:
        """(part, first, last + 1 column in the vectors, projection or None) of each similar part."""
        bounds = self.bounds()
        return tuple((name, *bounds[name], self.projections.get(name)) for name in SIMILAR_PARTS if name in bounds)

    def similar_bounds(self) -> Dict[str, Tuple[int, int]]:
        """similar part -> (first, last + 1) column of its block in `similar_blocks`' rows."""
        out, at = {}, 0
        for name, lo, hi, proj in self.similar_layout():
            width = hi - lo if proj is None else proj.shape[1]
            out[name] = (at, at + width)
            at += width
        return out

    @property
    def width(self) -> int:
        """The candidates' vectors' width: every block's."""
        return sum(w for _, w in self.parts)

    def bounds(self) -> Dict[str, Tuple[int, int]]:
        """part -> (first, last + 1) column of its block in the vectors."""
        out, at = {}, 0
        for name, width in self.parts:
            out[name] = (at, at + width)
            at += width
        return out

    def arrays(self) -> Dict[str, np.ndarray]:
        """The fields as arrays, for np.savez (`from_arrays` reads them back)."""
        names = np.asarray([n for n, _ in self.parts], dtype=str)
        widths = np.asarray([w for _, w in self.parts], dtype=np.int64)
        return {"part_names": names, "part_widths": widths, "prior_score": self.prior_score,
                "pace_score": self.pace_score, "trending": self.trending, "launch": self.launch,
                "centre": self.centre, "token_start": self.token_start, "token_slot": self.token_slot,
                "token_weight": self.token_weight, "token_text": self.token_text,
                **{PROJECTION_KEY + name: matrix for name, matrix in self.projections.items()}}

    @classmethod
    def from_arrays(cls, data) -> "Explanations":
        parts = tuple((str(n), int(w)) for n, w in zip(data["part_names"], data["part_widths"]))
        projections = {key[len(PROJECTION_KEY):]: np.asarray(data[key]) for key in data
                       if key.startswith(PROJECTION_KEY)}
        return cls(parts=parts, projections=projections, **{k: np.asarray(data[k]) for k in (
            "prior_score", "pace_score", "trending", "launch", "centre", "token_start", "token_slot", "token_weight",
            "token_text")})


PROJECTION_KEY = "projection_"  # Explanations.arrays: the key of a part's principal directions


def projection(block: np.ndarray, dims: int = REASON_DIMS, seed: int = 0) -> Optional[np.ndarray]:
    """float32 [w, dims]: the `dims` leading right singular vectors of the unit rows of `block`
    [N, w] (a seeded sample of at most PROJECTION_SAMPLE rows; not centred: the directions that
    keep the rows' inner products best); None where w <= dims (the block is compared whole)."""
    if block.shape[1] <= dims or len(block) == 0:
        return None
    rows = block if len(block) <= PROJECTION_SAMPLE else \
        block[np.sort(np.random.default_rng(seed).choice(len(block), PROJECTION_SAMPLE, replace=False))]
    unit_rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    _, _, vt = np.linalg.svd(unit_rows.astype(np.float64), full_matrices=False)
    out = np.zeros((block.shape[1], dims), np.float32)
    out[:, :min(dims, len(vt))] = vt[:dims].T
    return out


def similar_blocks(vectors: np.ndarray, layout: Sequence[Tuple[str, int, int, Optional[np.ndarray]]],
                   unit: bool = False) -> np.ndarray:
    """float32 [..., W]: the similar parts' blocks of `vectors` [..., d] side by side, each in its
    principal directions where it has them (Explanations.similar_layout); with `unit`, each block
    unit length (the history file's rows; a candidate's own norm does not change which history
    item is closest to it)."""
    out = []
    for _, lo, hi, proj in layout:
        block = np.asarray(vectors[..., lo:hi], np.float32)
        if proj is not None:
            block = block @ proj
        if unit:
            block = block / np.maximum(np.linalg.norm(block, axis=-1, keepdims=True), 1e-12)
        out.append(block)
    return np.concatenate(out, axis=-1) if out else np.zeros(vectors.shape[:-1] + (0,), np.float32)


def trending_detail(users: np.ndarray, days: np.ndarray) -> np.ndarray:
    """'users=12,days=2.0' per item: the users the pace counted and the days it read them over."""
    return np.asarray([f"users={int(u)},days={(d if np.isfinite(d) else 0.0):.1f}" for u, d in zip(users, days)],
                      dtype=str)


def launch_detail(per_day: np.ndarray) -> np.ndarray:
    """'expected_users_per_day=3.1' per item: the launch prior as an absolute rate."""
    return np.asarray([f"expected_users_per_day={(r if np.isfinite(r) else 0.0):.2f}" for r in per_day], dtype=str)


def build(parts: Sequence[Tuple[str, int]], vectors: np.ndarray, prior_score: np.ndarray, pace_score: np.ndarray,
          users: np.ndarray, pace_days: np.ndarray, per_day: np.ndarray,
          tokens: Sequence[Optional[Sequence[Tuple[str, int, float]]]]) -> Explanations:
    """The candidates' Explanations from their item_embeddings columns (tokens: (token, slot, weight)
    per candidate, None or empty without attributes)."""
    lists = [list(t) if t is not None else [] for t in tokens]
    start = np.concatenate([[0], np.cumsum([len(t) for t in lists])]).astype(np.int64)
    flat = [t for item in lists for t in item]
    ex = Explanations(
        parts=tuple((str(n), int(w)) for n, w in parts), prior_score=np.asarray(prior_score, np.float64),
        pace_score=np.asarray(pace_score, np.float64), trending=trending_detail(users, pace_days),
        launch=launch_detail(per_day),
        centre=(vectors.mean(axis=0) if len(vectors) else np.zeros(vectors.shape[1])).astype(np.float32),
        token_start=start, token_slot=np.asarray([s for _, s, _ in flat], np.int32),
        token_weight=np.asarray([w for _, _, w in flat], np.float32),
        token_text=np.asarray([t for t, _, _ in flat], dtype=str) if flat else np.zeros(0, dtype=str))
    for name, lo, hi, _ in ex.similar_layout():  # the blocks' bounds are the Explanations' own
        proj = projection(vectors[:, lo:hi])
        if proj is not None:
            ex.projections[name] = proj
    return ex


@dataclass
class Reasons:
    """The reasons of a block's lists, cells [B, K] as the lists (empty past a list's end)."""

    kind: np.ndarray  # object [B, K]: ReasonKind
    item_id: np.ndarray  # object [B, K]: similar_to's history item, else None
    detail: np.ndarray  # object [B, K]
    share: np.ndarray  # float64 [B, K]


def contributions(users: np.ndarray, columns: Callable[[int, int], np.ndarray], idx: np.ndarray, ex: Explanations,
                  score: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """part -> c_p [B, K] (module doc) of the lists idx [B, K] (-1 padded) of users whose rows are
    users [B, d]; columns(lo, hi) -> the listed candidates' columns lo:hi [B, K, hi - lo]. With the
    lists' scores `score` [B, K] (<user row, item row> + bias), the widest block's dot product is
    what the score leaves after the bias and the other blocks, so its columns are never read (the
    text, 384 of the row's columns with MiniLM). Bias terms that are 0 for every candidate (a part
    the blend does not weigh) are left out."""
    out, dots = {}, {}
    bounds = ex.bounds()
    widest = max(bounds, key=lambda n: bounds[n][1] - bounds[n][0]) if score is not None and bounds else None
    safe = np.maximum(idx, 0)
    for name, (lo, hi) in bounds.items():
        if name != widest:
            u = np.ascontiguousarray(users[:, lo:hi], dtype=np.float32)
            dots[name] = np.matmul(columns(lo, hi), u[:, :, None])[..., 0].astype(np.float64)
    if widest is not None:
        rest = sum(dots.values()) if dots else 0.0
        dots[widest] = np.asarray(score, np.float64) - (ex.prior_score + ex.pace_score)[safe] - rest
    for name, (lo, hi) in bounds.items():
        out[name] = dots[name] - (users[:, lo:hi].astype(np.float32) @ ex.centre[lo:hi].astype(np.float32))[:, None]
    for name, term in (("prior", ex.prior_score), ("pace", ex.pace_score)):
        if len(term) and np.any(term != 0.0):
            out[name] = term[safe] - term.mean()
    return out


def _pick(contrib: Dict[str, np.ndarray], has_history: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(part index into list(contrib) [B, K], share [B, K]): the largest contribution; for a user
    without history items the tower and text parts only where no other part lifts the item."""
    names = list(contrib)
    stack = np.stack([contrib[n] for n in names])  # [P, B, K]
    ranked = stack.copy()
    for p, name in enumerate(names):
        if name in SIMILAR_PARTS:
            ranked[p][~has_history] = -np.inf
    chosen = np.where(ranked.max(axis=0) > 0, np.argmax(ranked, axis=0), np.argmax(stack, axis=0))
    positive = np.maximum(stack, 0.0)
    total = positive.sum(axis=0)
    mine = np.take_along_axis(positive, chosen[None], axis=0)[0]
    return chosen, np.where(total > 0, mine / np.where(total > 0, total, 1.0), 0.0)


def closest_history(cand_block: np.ndarray, history: np.ndarray, history_block: Callable[[np.ndarray], np.ndarray]
                    ) -> np.ndarray:
    """[B, K]: per cell the position in the user's history [B, H] (-1 padded) of the item closest
    to the candidate: the largest cosine of cand_block [B, K, w] with history_block(rows) [B, H, w],
    which are unit rows (the history file's; the candidate's own norm does not change which is
    closest); -1 where the user has none."""
    valid = history >= 0
    hist = np.asarray(history_block(np.maximum(history, 0)), dtype=np.float32)
    sims = np.matmul(cand_block, np.swapaxes(hist, 1, 2))  # [B, K, H]
    sims += np.where(valid, np.float32(0), np.float32(-np.inf))[:, None, :]
    best = np.argmax(sims, axis=2)
    return np.where(valid.any(axis=1)[:, None], best, NO_HISTORY)


def _attribute_tokens(users: np.ndarray, cands: np.ndarray, rows: np.ndarray, ex: Explanations, lo: int) -> np.ndarray:
    """object [n]: for each (user row, candidate) cell the candidate's token adding most to <a_u, h_i>
    (None for a candidate without tokens)."""
    start, end = ex.token_start[cands], ex.token_start[cands + 1]
    width = int((end - start).max(initial=0))
    if width == 0:
        return np.full(len(cands), None, dtype=object)
    at = start[:, None] + np.arange(width)[None, :]
    valid = at < end[:, None]
    at = np.where(valid, at, 0)
    value = ex.token_weight[at] * users[rows[:, None], lo + ex.token_slot[at]]
    best = np.argmax(np.where(valid, value, -np.inf), axis=1)
    return np.where(valid.any(axis=1), ex.token_text[at[np.arange(len(cands)), best]].astype(object), None)


def padded_history(rows: Sequence[Optional[np.ndarray]]) -> np.ndarray:
    """int64 [B, H]: a block's users' history-file rows (most recent first), -1 padded."""
    lengths = np.asarray([0 if r is None else len(r) for r in rows], np.int64)
    out = np.full((len(rows), int(lengths.max(initial=0))), -1, np.int64)
    if lengths.any():
        out[np.arange(out.shape[1])[None, :] < lengths[:, None]] = np.concatenate(
            [np.asarray(r, np.int64) for r in rows if r is not None and len(r)])
    return out


def explain(users: np.ndarray, idx: np.ndarray, columns: Callable[[np.ndarray, int, int], np.ndarray],
            ex: Explanations, history: np.ndarray, history_block: Callable[[str, np.ndarray], np.ndarray],
            history_ids: Callable[[np.ndarray], np.ndarray],
            similar: Optional[Callable[[np.ndarray], np.ndarray]] = None,
            score: Optional[np.ndarray] = None) -> Reasons:
    """The reasons of the lists idx [B, K] (-1 padded) of users whose rows are users [B, d].
    columns(idx, lo, hi) -> the candidates' columns lo:hi of their vectors [.., hi - lo]; history
    [B, H]: each user's items as rows of the history file, most recent first, -1 padded, and
    history_ids [B, H] their item ids (padded_history); history_block(part, rows) -> those items'
    unit blocks of the part, in its principal directions where it has them [.., w']; similar(idx)
    -> the candidates' similar_blocks [.., W] (default: from their columns); score [B, K]: the
    lists' scores, which spare reading the widest block (see `contributions`)."""
    B, K = idx.shape
    kind = np.full((B, K), None, dtype=object)
    item = np.full((B, K), None, dtype=object)
    detail = np.full((B, K), None, dtype=object)
    share = np.full((B, K), np.nan)
    bounds, similar_bounds, layout = ex.bounds(), ex.similar_bounds(), ex.similar_layout()
    for lo_user in range(0, B, CHUNK_USERS):
        rows = slice(lo_user, min(B, lo_user + CHUNK_USERS))
        u, cells, hist = users[rows], idx[rows], history[rows]
        contrib = contributions(u, lambda lo, hi, c=cells: columns(c, lo, hi), cells, ex,
                                None if score is None else score[rows])
        if not contrib:
            continue
        names = list(contrib)
        chosen, part_share = _pick(contrib, (hist >= 0).any(axis=1))
        live = cells >= 0
        k_kind = np.asarray([ReasonKind.OF_PART[n] for n in names], dtype=object)[chosen]
        k_detail = np.full(chosen.shape, None, dtype=object)
        k_item = np.full(chosen.shape, None, dtype=object)
        safe = np.maximum(cells, 0)
        sim = None
        for p, name in enumerate(names):
            here = live & (chosen == p)
            if not here.any():
                continue
            if name == "prior":
                k_detail[here] = ex.launch[safe[here]]
            elif name == "pace":
                k_detail[here] = ex.trending[safe[here]]
            elif name == "attributes":
                b, _ = np.nonzero(here)
                k_detail[here] = _attribute_tokens(u, safe[here], b, ex, bounds[name][0])
            else:  # a history item: the closest of the user's to the recommended one in this part's terms
                k_detail[here] = f"part={name}"
                if hist.shape[1]:
                    if sim is None:
                        sim = (similar(cells) if similar is not None
                               else similar_blocks(columns(cells, 0, ex.width), layout))
                    lo, hi = similar_bounds[name]
                    best = closest_history(sim[:, :, lo:hi], hist, lambda r, n=name: history_block(n, r))
                    named = np.take_along_axis(hist, np.maximum(best, 0), axis=1)
                    found = here & (best >= 0)
                    k_item[found] = history_ids(named[found])
        kind[rows] = np.where(live, k_kind, None)
        detail[rows], item[rows] = k_detail, k_item
        share[rows] = np.where(live, part_share, np.nan)
    return Reasons(kind, item, detail, share)


REASON_METRIC = "reason_share_"  # list_metrics: the share of a list's rows of each kind (reason_share_similar_to, ...)


def kind_shares(counts: Dict[Optional[str], int]) -> Dict[str, float]:
    """REASON_METRIC<kind> -> the share of the rows with a reason that are of that kind, for every
    ReasonKind, from rows counted by kind (None: rows without a reason); {} where none has one."""
    total = sum(n for kind, n in counts.items() if kind is not None)
    if not total:
        return {}
    return {REASON_METRIC + kind: counts.get(kind, 0) / total for kind in ReasonKind.ALL}


def reason_line(figures: Dict[str, float]) -> str:
    """'similar_to 61%, attribute 20%, ...' from the REASON_METRIC figures ('' where there are none)."""
    return ", ".join(f"{kind} {figures[REASON_METRIC + kind]:.0%}" for kind in ReasonKind.ALL
                     if REASON_METRIC + kind in figures)


def fallback_detail(top_category: Optional[str]) -> str:
    """A fallback row's detail: the category whose popular launches it shows, or 'popular'."""
    return f"category={top_category}" if top_category else "popular"


__all__ = ["Explanations", "Reasons", "build", "contributions", "explain", "closest_history", "projection",
           "similar_blocks", "REASON_DIMS", "padded_history", "fallback_detail",
           "trending_detail", "launch_detail", "SIMILAR_PARTS", "REASON_METRIC", "reason_line", "kind_shares"]
