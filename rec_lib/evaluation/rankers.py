"""Cold-start evaluation by k-shot: the protocol and the rankers it compares (numpy only).

Protocol (temporal). Interactions before `cutoff` are the past; the new items are the catalogue
items with no interaction before it. Every (user, new item) pair first seen in the test window
[cutoff, end) gets its item's `arrival` number: 0 for the item's first user, 1 for the second ...
(by first interaction time, then user id). With ks = [0, 1, 3, 5, 10] and m = max(ks):

- the evaluated items are the new items with more than m users in the window. Every one of them
  then has exactly k revealed users at each k, so how many users an item has in the end cannot
  leak through how many are revealed (an item showing 2 of 3 at k = 3 would be known to have ended);
- revealed(k): pairs with arrival < k, each item's first k users. A method may use them (few-shot
  adaptation, popularity, ALS training rows) and never recommends an item to its revealed users;
- test: pairs with arrival >= m, the same at every k, so the curves over k show what k adds.
  Every user with a test pair is ranked against all evaluated items.

Nothing else after the cutoff reaches any method: the model is trained with `train.cutoff = cutoff`,
and every ranker here is built from the past plus revealed(k) only.

Rankers score a block of users [B] against the items [N]; higher is better, -inf means "cannot
score this item" (ALS for items it never saw). Ties are broken by one seeded random order of the
items, the same for every method, so no method gains from how item ids happen to sort.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from rec_lib.evaluation.metrics import PER_USER_KEPT, MetricAccumulator, difference_names, paired_interval, top_k
from rec_lib.training.facade import (
    COMPONENTS,
    Blend,
    BlendWeights,
    FewShotSettings,
    ItemSides,
    UserSides,
    adapt_item,
    pace_days,
    take,
    unit,
)
from rec_lib.training.facade import scores as served_scores


def revealed(pairs: pd.DataFrame, k: int) -> pd.DataFrame:
    return pairs[pairs["arrival"] < k]


def held_out(pairs: pd.DataFrame, max_k: int) -> pd.DataFrame:
    return pairs[pairs["arrival"] >= max_k]


def epoch_seconds(timestamps) -> np.ndarray:
    """Seconds since the epoch of each timestamp (naive ones read as UTC, as Spark writes them
    here); NaN where missing."""
    return np.array([t.timestamp() if pd.notna(t) else np.nan for t in timestamps], dtype=np.float64)


def pace(shown: pd.DataFrame, items: np.ndarray, launch_ts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(users so far [N], exposure days [N]) of each item after its revealed users: the time from
    launch (where unknown, from its first user) to its latest revealed user, at least an hour;
    NaN exposure for items with nobody revealed."""
    counts = np.zeros(len(items))
    exposure = np.full(len(items), np.nan)
    if len(shown) == 0:
        return counts, exposure
    g = shown.groupby("item_id")["first_ts"].agg(["size", "min", "max"]).reindex(items)
    seen = g["size"].notna().to_numpy()
    counts[seen] = g["size"].to_numpy()[seen]
    last, first = epoch_seconds(g["max"]), epoch_seconds(g["min"])
    start = np.where(np.isfinite(launch_ts), launch_ts, first)
    exposure[seen] = pace_days(start[seen], last[seen])
    return counts, exposure


def pair_matrix(pairs: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """bool [len(users), len(items)] marking the pairs; users and items sorted str arrays."""
    out = np.zeros((len(users), len(items)), dtype=bool)
    if len(pairs) == 0:
        return out
    pair_users, pair_items = pairs["user_id"].to_numpy(str), pairs["item_id"].to_numpy(str)
    u = np.minimum(np.searchsorted(users, pair_users), max(len(users) - 1, 0))
    i = np.minimum(np.searchsorted(items, pair_items), max(len(items) - 1, 0))
    ok = (users[u] == pair_users) & (items[i] == pair_items)
    out[u[ok], i[ok]] = True
    return out


# --------------------------------------------------------------------------------------------
# Rankers
# --------------------------------------------------------------------------------------------


class Ranker:
    """Scores users against the new items after seeing revealed(k)."""

    name = ""

    def prepare(self, k: int, shown: pd.DataFrame) -> None:
        """Learn what revealed(k) (`shown`: user_id, item_id, first_ts, arrival) allows."""

    def scores(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def scorable(self) -> np.ndarray:
        """bool [N]: the items this ranker can score at the current k."""
        return np.ones(self.n_items, dtype=bool)

    n_items = 0


class RandomRanker(Ranker):
    name = "random"

    def __init__(self, n_items: int, seed: int):
        self.n_items, self.seed = n_items, seed
        self.rng = np.random.default_rng(seed)

    def prepare(self, k: int, shown: pd.DataFrame) -> None:
        self.rng = np.random.default_rng([self.seed, k])

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.rng.random((len(users), self.n_items))


class PopularRanker(Ranker):
    """New items by how popular their first k users show them to be: every evaluated item has k,
    so by how fast they came (users per day since launch). All equal at k = 0."""

    name = "popular"

    def __init__(self, items: np.ndarray, launch_ts: np.ndarray):
        self.items, self.launch_ts, self.n_items = items, launch_ts, len(items)
        self.rate = np.zeros(len(items))

    def prepare(self, k: int, shown: pd.DataFrame) -> None:
        counts, exposure = pace(shown, self.items, self.launch_ts)
        self.rate = np.where(counts > 0, counts / np.where(counts > 0, exposure, 1.0), 0.0)

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.rate, (len(users), self.n_items))


class ContentKnnRanker(Ranker):
    """No training: a user's profile is the mean text embedding of the items they interacted with
    before the cutoff; new items are scored by cosine similarity to it (0 for users without one)."""

    name = "content_knn"

    def __init__(self, profiles: Dict[str, np.ndarray], item_text: np.ndarray):
        self.profiles = {u: unit(np.asarray(p, np.float64)) for u, p in profiles.items()}
        self.item_text = unit(np.asarray(item_text, np.float64))
        self.n_items = len(item_text)
        self.zero = np.zeros(item_text.shape[1])

    def scores(self, users: np.ndarray) -> np.ndarray:
        profile = np.stack([self.profiles.get(u, self.zero) for u in users]) if len(users) else \
            np.zeros((0, self.item_text.shape[1]))
        return profile @ self.item_text.T


@dataclass
class ModelInputs:
    """What the trained two-tower model gives the evaluation: the users' and the new items' parts of
    the served score as of the cutoff (training.sides), its blend and its few-shot settings."""

    users: UserSides  # rows of the users the rankers need
    user_row: Dict[str, int]  # user_id -> row in `users`
    content: ItemSides  # the new items from content alone (their users before the cutoff: none)
    launch_ts: np.ndarray  # float64 [N] epoch seconds; NaN: unknown (the first arrival is used)
    rate_offset: float
    weights: Blend  # the score's blend by k (an item takes the weights of its revealed users' count)
    temperature: float
    settings: FewShotSettings


class ModelRanker(Ranker):
    """The two-tower model as it is served: each new item's sides adapted from its first k users
    and its prior paced by them (training.sides.adapt_item, what the training job writes to
    `item_embeddings`), scored by the served formula (training.sides.scores)."""

    name = "model"

    def __init__(self, inputs: ModelInputs, items: np.ndarray):
        self.m, self.items, self.n_items = inputs, items, len(items)
        self.prepare(0, pd.DataFrame(columns=["item_id", "user_id", "arrival", "first_ts"]))

    def prepare(self, k: int, shown: pd.DataFrame) -> None:
        m, base = self.m, self.m.content
        counts, exposure = pace(shown, self.items, m.launch_ts)
        sides = ItemSides(base.tower.copy(), base.text.copy(), base.attributes.copy(), base.prior.copy(),
                          base.source.copy(), counts.astype(np.int64))
        position = {item: i for i, item in enumerate(self.items)}
        for item, group in shown.sort_values(["item_id", "arrival"]).groupby("item_id", sort=False):
            i = position[item]
            rows = np.asarray([m.user_row[u] for u in group["user_id"] if u in m.user_row], np.int64)
            sides.tower[i], sides.text[i], sides.attributes[i], sides.prior[i], sides.pace[i] = adapt_item(
                base.tower[i], base.text[i], base.attributes[i], float(base.prior[i]), take(m.users, rows),
                int(counts[i]), float(exposure[i]), m.rate_offset, m.settings)
        self.sides = sides

    def scores(self, users: np.ndarray) -> np.ndarray:
        rows = np.asarray([self.m.user_row.get(u, -1) for u in users], np.int64)
        known = take(self.m.users, np.maximum(rows, 0))
        unknown = rows < 0
        for block in (known.tower, known.text, known.attributes):
            block[unknown] = 0.0
        return served_scores(known, self.sides, self.m.weights, self.m.temperature)


class TowerRanker(ModelRanker):
    """The towers alone: the served model with every other part of the score weighed 0, each new
    item's tower vector adapted from its first k users as served. What the two-tower training
    brings by itself, next to the baselines."""

    name = "tower"

    def __init__(self, inputs: ModelInputs, items: np.ndarray):
        alone = BlendWeights({name: float(name == "tower") for name in COMPONENTS}, True, "the tower alone")
        super().__init__(dataclasses.replace(inputs, weights=Blend.single(alone)), items)


class AttributeProfileRanker(Ranker):
    """The heuristic an analyst writes in SQL: the user's share of each attribute value in their
    history (latest items before the cutoff), dotted with the item's values:
        score(u, i) = sum_t share_u(t) * w_i(t),  share_u(t) = sum over history items of w_j(t) / |history|
    with w the tokens' weights (training.attributes: each field's values share 1)."""

    name = "attribute_profile"

    def __init__(self, history: Dict[str, np.ndarray], token_ids: np.ndarray, token_weights: np.ndarray,
                 item_rows: np.ndarray):
        self.n_items = len(item_rows)
        wanted = np.unique(token_ids[item_rows][token_ids[item_rows] > 0])
        self.column = {int(t): c for c, t in enumerate(wanted)}
        self.token_ids, self.token_weights = token_ids, token_weights
        self.item_matrix = self._matrix(item_rows)  # [N, R]
        self.history = history

    def _matrix(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), len(self.column)))
        for i, row in enumerate(rows):
            for token, weight in zip(self.token_ids[row], self.token_weights[row]):
                c = self.column.get(int(token))
                if c is not None:
                    out[i, c] += weight
        return out

    def scores(self, users: np.ndarray) -> np.ndarray:
        shares = np.zeros((len(users), len(self.column)))
        for u, user in enumerate(users):
            rows = self.history.get(user)
            if rows is not None and len(rows):
                shares[u] = self._matrix(rows).sum(axis=0) / len(rows)
        return shares @ self.item_matrix.T


class FactorRanker(Ranker):
    """Scores from factor matrices, e.g. Spark MLlib ALS refitted at each k on the past plus
    revealed(k): items without a factor (never seen) cannot be scored and rank last."""

    name = "als"

    def __init__(self, items: np.ndarray, fit):
        self.items, self.n_items, self.fit = items, len(items), fit
        self.user_factors: Dict[str, np.ndarray] = {}
        self.item_factors: Optional[np.ndarray] = None
        self.has_factor = np.zeros(len(items), dtype=bool)

    def prepare(self, k: int, shown: pd.DataFrame) -> None:
        users, items = self.fit(k, shown)  # {user_id: vector}, {item_id: vector}
        self.user_factors = users
        dim = len(next(iter(users.values()))) if users else 1
        self.item_factors = np.zeros((self.n_items, dim))
        self.has_factor = np.array([item in items for item in self.items], dtype=bool)
        for i in np.flatnonzero(self.has_factor):
            self.item_factors[i] = items[self.items[i]]

    def scorable(self) -> np.ndarray:
        return self.has_factor

    def scores(self, users: np.ndarray) -> np.ndarray:
        dim = self.item_factors.shape[1]
        zero = np.zeros(dim)
        u = np.stack([self.user_factors.get(x, zero) for x in users]) if len(users) else np.zeros((0, dim))
        return np.where(self.has_factor[None, :], u @ self.item_factors.T, -np.inf)


class OracleRanker(Ranker):
    """The generated shop's ground-truth affinity: what a perfect model of the users' tastes and
    the items' appeal would rank (still short of 1.0: what users pick is drawn at random)."""

    name = "oracle"

    def __init__(self, affinity: Dict[str, np.ndarray], n_items: int):
        self.affinity, self.n_items = affinity, n_items

    def scores(self, users: np.ndarray) -> np.ndarray:
        missing = np.full(self.n_items, -np.inf)
        return np.stack([self.affinity.get(u, missing) for u in users]) if len(users) else np.zeros((0, self.n_items))


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclass
class MethodResult:
    k: int
    method: str
    metrics: Dict[str, float]


def evaluate(pairs: pd.DataFrame, items: np.ndarray, rankers: List[Ranker], ks: List[int], top: int,
             users: np.ndarray, seed: int, block: int = 2048,
             popularity: Optional[np.ndarray] = None) -> List[MethodResult]:
    """Every ranker at every k. `pairs`: the evaluated items' pairs with their arrival numbers;
    `items`: the evaluated items (sorted str); `users`: the test users to rank (sorted str);
    `popularity` [items]: each item's users in the window (default: counted in `pairs`, which then
    must hold every user's pairs).
    Metrics: see `rec_lib.evaluation.metrics`, plus `scorable_items`, the share of items the ranker could score;
    a ranker that can score none at some k gets only that. Each other method's rows also get
    `<recall|ndcg>@K_diff_low` / `_diff_high`: the 95% paired bootstrap interval of the model's
    value minus its own (`model_intervals`)."""
    items = np.asarray(items, dtype=str)
    tiebreak = np.argsort(np.random.default_rng(seed).permutation(len(items)))
    if popularity is None:
        popularity = pairs.groupby("item_id").size().reindex(items, fill_value=0).to_numpy(np.float64)
    test = held_out(pairs, max(ks))
    test = test[test["user_id"].isin(users)]
    judged = np.intersect1d(users, test["user_id"].to_numpy(str))
    results: List[MethodResult] = []
    for k in ks:
        shown = revealed(pairs, k)
        shown_judged = shown[shown["user_id"].isin(judged)]
        accumulators = {}
        for ranker in rankers:
            ranker.prepare(k, shown)
            accumulators[ranker.name] = MetricAccumulator(len(items), top, popularity, keep_users=True)
        active = [r for r in rankers if r.scorable().any()]
        for start in range(0, len(judged), block):
            block_users = judged[start:start + block]
            relevant = pair_matrix(test[test["user_id"].isin(block_users)], block_users, items)
            exclude = pair_matrix(shown_judged[shown_judged["user_id"].isin(block_users)], block_users, items)
            for ranker in active:
                recommended = top_k(ranker.scores(block_users), top, exclude, tiebreak)
                accumulators[ranker.name].add(recommended, relevant)
        intervals = model_intervals({r.name: accumulators[r.name] for r in active}, top, [seed, k, INTERVAL_STREAM])
        for ranker in rankers:
            metrics = accumulators[ranker.name].result() if ranker in active else {}
            metrics.update(intervals.get(ranker.name, {}))
            metrics["scorable_items"] = float(ranker.scorable().mean()) if len(items) else float("nan")
            results.append(MethodResult(k, ranker.name, metrics))
    return results


INTERVAL_STREAM = 1  # the intervals' random stream, apart from the random ranker's ([seed, k])


def model_intervals(accumulators: Dict[str, MetricAccumulator], top: int, seed) -> Dict[str, Dict[str, float]]:
    """method -> {'<metric>@K_diff_low': .., '<metric>@K_diff_high': ..}: the paired bootstrap interval
    (metrics.paired_interval) of the model's per-user recall and ndcg minus each other method's, the
    same resamples of the users for every method; empty without a model."""
    model = accumulators.get("model")
    if model is None:
        return {}
    out: Dict[str, Dict[str, float]] = {}
    for name, other in accumulators.items():
        if name == "model":
            continue
        out[name] = {}
        for metric in PER_USER_KEPT:
            _, low, high = paired_interval(model.per_user(metric), other.per_user(metric), seed)
            out[name].update(zip(difference_names(f"{metric}@{top}"), (low, high)))
    return out
