"""The served score, assembled once for every path that ranks (numpy only): the embedding tables the
scoring job reads, and the evaluation, which scores its new items through the same functions.

    score(u, i) = user_row(u) . item_row(i) + bias(i)
    user_row = [u / temperature,        p_u,           a_u]
    item_row = [w_tower(k_i) * v_i,     w_text(k_i) * t_i,  w_attributes(k_i) * h_i]
    bias     = w_prior(k_i) * pi_i + w_pace(k_i) * r_i

with the weights of training.blend at the item's k (its first users known), u / v the towers'
unit vectors, p / t the text profile and the item's (centred) text embedding, a / h the attribute
profile and vector, pi the launch prior after the item's own users so far (paced), r the observed
pace log(users / exposure days) (few_shot.observed_pace; 0 before anybody came). The weights
ride on the item side, so each item can have its own k; a part whose weight is 0 at every k is
left out of the rows.

A new item (no id embedding) is placed from its content and moved by its first users: each side
blends with the same side of those users (few_shot.blend_vector: the tower vector counting
`prior_strength` users, the text and attribute sides `text_prior_strength`), and its prior follows
how fast they came (few_shot.pace_bias, on the absolute rate exp(pi + rate_offset)). An item with
an id embedding keeps its trained vector and its own sides; its prior is paced by all its users
before the cutoff, which for a well-known item is its observed rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from rec_lib.core.schema import EmbeddingSource
from rec_lib.training import few_shot
from rec_lib.training.blend import Blend
from rec_lib.training.catalogue import Catalogue


@dataclass
class ItemSides:
    """Every item's parts of the score before weighting (rows in catalogue order)."""

    tower: np.ndarray  # unit [N, d]
    text: np.ndarray  # unit [N, text_dim] (centred text)
    attributes: np.ndarray  # unit [N, attribute_dims]
    prior: np.ndarray  # [N]: relative log users/day, paced
    source: np.ndarray  # str [N]: trained | few_shot | content
    k: np.ndarray = None  # int [N]: first users the item was adapted from (the blend's k); trained: many
    pace: np.ndarray = None  # [N]: observed log users/day (few_shot.observed_pace); 0 before anybody came
    pace_days: np.ndarray = None  # [N]: the days the pace was read over (nan: not launched by the cutoff)

    def __post_init__(self) -> None:
        if self.k is None:
            self.k = np.zeros(len(self.prior), np.int64)
        if self.pace is None:
            self.pace = np.zeros(len(self.prior), np.float64)
        if self.pace_days is None:
            self.pace_days = np.full(len(self.prior), np.nan)


@dataclass
class UserSides:
    """Users' parts of the score before weighting (rows in the users' order)."""

    tower: np.ndarray  # unit [U, d]
    text: np.ndarray  # [U, text_dim]: text profile (unit, zeros without history)
    attributes: np.ndarray  # [U, attribute_dims]: attribute profile (unit, zeros without history)


TRAINED_K = 1_000_000  # the k of an item with an id embedding: the blend's last weights


def parts(blend: Blend) -> List[str]:
    """The parts the rows hold: those with a weight at some k."""
    return [name for name in ("tower", "text", "attributes") if any(w[name] != 0.0 for w in blend.by_k.values())]


def user_rows(users: UserSides, blend: Blend, temperature: float) -> np.ndarray:
    """float32 [U, width]: what `user_embeddings.embedding` holds."""
    scale = {"tower": 1.0 / temperature, "text": 1.0, "attributes": 1.0}
    blocks = [scale[name] * getattr(users, name) for name in parts(blend)]
    return _concat(blocks, len(users.tower))


def item_rows(items: ItemSides, blend: Blend) -> np.ndarray:
    """float32 [N, width]: what `item_embeddings.embedding` holds (weighted at each item's k)."""
    weights = blend.weights_for(items.k)
    return _concat([weights[name][:, None] * getattr(items, name) for name in parts(blend)], len(items.tower))


def item_bias(items: ItemSides, blend: Blend) -> np.ndarray:
    weights = blend.weights_for(items.k)
    return (weights["prior"] * items.prior + weights["pace"] * items.pace).astype(np.float64)


def _concat(blocks: List[np.ndarray], n: int) -> np.ndarray:
    if not blocks:
        return np.zeros((n, 0), np.float32)
    return np.concatenate(blocks, axis=1).astype(np.float32)


def scores(users: UserSides, items: ItemSides, blend: Blend, temperature: float) -> np.ndarray:
    """[U, N]: the served score (the same product the scoring job's kernel ranks)."""
    return (user_rows(users, blend, temperature).astype(np.float64) @ item_rows(items, blend).T.astype(np.float64)
            + item_bias(items, blend)[None, :])


def adapt_item(content: np.ndarray, text: np.ndarray, attributes: np.ndarray, prior: float,
               first: Optional[UserSides], k: int, exposure_days: float, rate_offset: float,
               settings: few_shot.FewShotSettings):
    """(tower, text, attributes, prior, pace) of one new item after its first k users, of whom
    `first` holds the sides known (oldest first; None or empty: none known)."""
    tower_v, text_v, attr_v = content.copy(), text.copy(), attributes.copy()
    if settings.method == "blend" and first is not None and len(first.tower):
        tower_v = few_shot.blend_vector(content, first.tower, settings.prior_strength)
        text_v = few_shot.blend_vector(text, first.text, settings.text_prior_strength)
        if attributes.size:
            attr_v = few_shot.blend_vector(attributes, first.attributes, settings.text_prior_strength)
    paced = prior
    if settings.pace:
        paced = few_shot.pace_bias(prior, k, exposure_days, float(np.exp(rate_offset)), settings.pace_prior_strength)
    return tower_v, text_v, attr_v, paced, few_shot.observed_pace(k, exposure_days)


def item_sides(catalogue: Catalogue, trained: np.ndarray, content: np.ndarray,
               first_users: Dict[int, UserSides], settings: few_shot.FewShotSettings, max_k: int) -> ItemSides:
    """Every catalogue item's sides: trained items keep their trained vector, the others start
    from content and are adapted from their first users (`first_users`: catalogue row -> their
    sides, oldest first; the first `max_k` are blended, all of them pace the prior)."""
    n = len(catalogue)
    tower_v, text_v, attr_v = trained.copy(), catalogue.text.copy(), catalogue.attr_vectors.copy()
    prior = catalogue.prior.astype(np.float64).copy()
    source = np.full(n, EmbeddingSource.TRAINED, dtype=object)
    pace, pace_days = np.zeros(n, np.float64), np.full(n, np.nan)
    k = np.where(catalogue.id_slot > 0, TRAINED_K, catalogue.n_users).astype(np.int64)
    for row in range(n):
        exposure = float(catalogue.exposure_days[row])
        if catalogue.id_slot[row] > 0:
            pace_days[row] = exposure
            pace[row] = few_shot.observed_pace(int(catalogue.n_users[row]), exposure)
            if settings.pace:
                prior[row] = few_shot.pace_bias(prior[row], int(catalogue.n_users[row]), exposure,
                                                float(np.exp(catalogue.rate_offset)), settings.pace_prior_strength)
            continue
        first = first_users.get(row)
        known = None if first is None else UserSides(first.tower[:max_k], first.text[:max_k], first.attributes[:max_k])
        if catalogue.n_users[row] > 0:  # the span its users took, as the blend was fitted and evaluated
            exposure = float(catalogue.pace_days[row])
        pace_days[row] = exposure
        tower_v[row], text_v[row], attr_v[row], prior[row], pace[row] = adapt_item(
            content[row], catalogue.text[row], catalogue.attr_vectors[row], float(catalogue.prior[row]), known,
            int(catalogue.n_users[row]), exposure, catalogue.rate_offset, settings)
        adapted = known is not None and len(known.tower) > 0 and settings.method != "none"
        source[row] = EmbeddingSource.FEW_SHOT if adapted else EmbeddingSource.CONTENT
    return ItemSides(tower_v, text_v, attr_v, prior, source, k, pace, pace_days)


def item_table(items: ItemSides, blend: Blend, catalogue: Catalogue,
               attribute_slots: Optional[List[List[Tuple[str, int, float]]]]) -> Dict[str, object]:
    """The served columns of `item_embeddings` (schema.ITEM_EMBEDDINGS), rows in catalogue order:
    the row and bias of the score, and what a recommendation's reason reads (the blocks of the row,
    the bias's two terms, the pace's days, the prior as users per day, the attribute tokens
    (training.attributes.signed_slots; None: not known))."""
    weights = blend.weights_for(items.k)
    layout = [{"name": name, "width": int(getattr(items, name).shape[1])} for name in parts(blend)]
    tokens = ([None] * len(items.prior) if attribute_slots is None else
              [[{"token": t, "slot": int(slot), "weight": float(w)} for t, slot, w in row] for row in attribute_slots])
    return {"embedding": list(item_rows(items, blend)), "bias": item_bias(items, blend),
            "parts": [layout] * len(items.prior), "prior_score": weights["prior"] * items.prior,
            "pace_score": weights["pace"] * items.pace, "pace_days": items.pace_days.astype(np.float64),
            "expected_users_per_day": np.exp(items.prior + catalogue.rate_offset), "attribute_tokens": tokens}


def take(users: UserSides, rows: np.ndarray) -> UserSides:
    return UserSides(users.tower[rows], users.text[rows], users.attributes[rows])


__all__ = ["ItemSides", "UserSides", "user_rows", "item_rows", "item_bias", "scores", "adapt_item", "item_sides", "item_table",
           "parts", "take", "TRAINED_K"]
