"""The items a model scores, as the model and its workers hold them (numpy arrays, no Spark)."""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from rec_lib.core.clock import SECONDS_PER_DAY
from rec_lib.core.files import atomic_write
from rec_lib.training import few_shot
from rec_lib.training.model_folder import ModelFolder

log = logging.getLogger(__name__)

# The numeric user features of the user tower, in this order (training.data computes them).
USER_NUMERIC = ("log1p_events", "log1p_items", "log1p_days_since_last")


def _empty_tokens(n: int, dtype) -> np.ndarray:
    return np.zeros((n, 1), dtype)


LAUNCH = "launch"  # an item's launch is its launch_ts (else its first interaction)
FIRST_INTERACTION = "first_interaction"  # ... its first interaction (else its launch_ts): pseudo-launches


def dating(settings: "CatalogueSettings", launched: int, found: int) -> str:
    """How the catalogue dates its items' launches, given how many items of the span the launch
    cohorts cover were launched in it (launch_ts, else first interaction) and how many were first
    interacted with in it: at their first interaction where the launches are too few for the blend
    to learn from and the first interactions are enough (train.pseudo_launches: auto)."""
    if settings.pseudo_launches == "always":
        return FIRST_INTERACTION
    if settings.pseudo_launches == "never" or settings.cohort_days <= 0:
        return LAUNCH
    enough = settings.min_cohort_launches
    return FIRST_INTERACTION if launched < enough <= found else LAUNCH


@dataclass
class Catalogue:
    """Every item the model can score, in a fixed order (sorted by item_id); row i is item_index i."""

    item_ids: np.ndarray  # str [N]
    text: np.ndarray  # float32 [N, text_dim]: the text embedding, centred on the catalogue's mean, unit length
    category: np.ndarray  # int32 [N]; 0: unknown
    brand: np.ndarray  # int32 [N]; 0: unknown
    price_bucket: np.ndarray  # int32 [N]; 0: no price
    id_slot: np.ndarray  # int32 [N]; 0: no id embedding (few users, or launched within train.launch_days)
    n_users: np.ndarray  # int64 [N]; users with an interaction before the cutoff
    exposure_days: np.ndarray  # float64 [N]; as_of - launch (or first interaction); NaN: unknown
    attr_ids: np.ndarray = None  # int32 [N, T]: attribute token slots + 1 (0 pads), the item tower's bag
    attr_weights: np.ndarray = None  # float32 [N, T]: their weights (each field sums to 1)
    attr_vectors: np.ndarray = None  # float32 [N, attribute_dims]: unit attribute vectors h_i (training.attributes)
    launched_s: np.ndarray = None  # float64 [N]: launch (or first interaction) in epoch seconds; NaN: unknown
    prior: np.ndarray = None  # float64 [N]: the launch prior (relative log users/day, training.prior)
    in_training: np.ndarray = None  # bool [N]: the item's pairs train the towers (held-out launches: not)
    pace_days: np.ndarray = None  # float64 [N]: launch to the latest user before the cutoff (few_shot.pace_days); NaN: none
    categories: List[str] = field(default_factory=list)
    brands: List[str] = field(default_factory=list)
    price_edges: List[float] = field(default_factory=list)  # bucket b holds log1p(price) < edges[b-1]
    attribute_scheme: Dict = field(default_factory=dict)  # training.attributes.AttributeScheme.to_dict()
    attribute_slots: int = 0  # ids of attr_ids are 1..attribute_slots
    rate_offset: float = 0.0  # mean log users/day of recent launches: prior + offset is a launch's absolute rate
    dated_at: str = LAUNCH  # what launched_s holds: LAUNCH (launch_ts, else the first interaction) or FIRST_INTERACTION

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.attr_ids is None:
            self.attr_ids = _empty_tokens(n, np.int32)
        if self.attr_weights is None:
            self.attr_weights = _empty_tokens(n, np.float32)
        if self.attr_vectors is None:
            self.attr_vectors = np.zeros((n, 0), np.float32)
        if self.launched_s is None:
            self.launched_s = np.full(n, np.nan)
        if self.prior is None:
            self.prior = np.zeros(n)
        if self.in_training is None:
            self.in_training = np.ones(n, bool)
        if self.pace_days is None:  # a folder written before the field: the span up to the cutoff
            self.pace_days = np.where(self.n_users > 0, self.exposure_days, np.nan)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def n_id_slots(self) -> int:
        return int(self.id_slot.max()) if len(self) else 0

    def train_log_q(self) -> np.ndarray:
        """log of each item's share of training examples (-inf for items with none)."""
        examples = np.where(self.in_training, self.n_users, 0)
        total = max(int(examples.sum()), 1)
        with np.errstate(divide="ignore"):
            return np.log(examples / total).astype(np.float32)

    ARRAYS = ("item_ids", "text", "category", "brand", "price_bucket", "id_slot", "n_users", "exposure_days",
              "attr_ids", "attr_weights", "attr_vectors", "launched_s", "prior", "in_training", "pace_days")
    VOCAB = ("categories", "brands", "price_edges", "attribute_scheme", "attribute_slots", "rate_offset", "dated_at")

    def save(self, folder: ModelFolder) -> None:
        folder.root.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        arrays["item_ids"] = self.item_ids.astype(str)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(folder.catalogue, buffer.getvalue())
        atomic_write(folder.vocab, json.dumps({name: getattr(self, name) for name in self.VOCAB}, indent=1))

    @classmethod
    def load(cls, folder: ModelFolder) -> "Catalogue":
        arrays = np.load(folder.catalogue, allow_pickle=False)
        vocab = json.loads(folder.vocab.read_text())
        return cls(**{k: arrays[k] for k in arrays.files}, **vocab)


# --------------------------------------------------------------------------------------------
# Assembly: the catalogue from one row per item (what the training data's Spark step collects)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CatalogueSettings:
    min_item_interactions: int = 5  # fewer users before the cutoff: no id embedding
    price_buckets: int = 10
    launch_days: int = 14  # the launch window: the prior's target, and launches get no id embedding
    attribute_types: Dict[str, str] = field(default_factory=dict)  # field -> categorical | multi | numeric | ignore
    attribute_slots: int = 65536  # ids of the item tower's attribute bag
    attribute_dims: int = 256  # width of the attribute vectors (0: no attribute vectors)
    text_dims: int = 0  # the text's width after projection on its principal directions (0: the encoder's)
    held_out_days: int = 0  # launches this recent train no tower (the blend's launch cohorts judge it on them)
    item_ids: bool = True  # False: no item has an id embedding (train.item_id_dropout 1: the item tower reads content only)
    cohort_days: int = 0  # the span the blend's launch cohorts cover before the cutoff (launch_days x cohorts)
    pseudo_launches: str = "auto"  # train.pseudo_launches: when items are dated at their first interaction
    min_cohort_launches: int = 30  # fewer launches in the cohorts' span: pseudo-launches (auto)


@dataclass
class ItemContent:
    """What the catalogue is assembled from besides its arrays, kept for refitting the prior at
    earlier times (the launch cohorts): every item's tokens, numeric features and early users."""

    tokens: List[list]  # per item: (field, token, weight) of training.attributes
    fields: List[str]
    numeric: np.ndarray  # [N, F] prior features of the numeric fields
    early_users: np.ndarray  # [N] users within launch_days of the item's launch
    first_s: np.ndarray  # [N] first interaction before the cutoff, epoch seconds (NaN: none)


def _vocabulary(values) -> List[str]:
    return sorted({str(v) for v in values if v is not None and str(v) != "" and v == v})


def _index(values, vocab: List[str]) -> np.ndarray:
    position = {v: i + 1 for i, v in enumerate(vocab)}
    return np.asarray([position.get(str(v), 0) if v is not None and v == v else 0 for v in values], np.int32)


def price_edges(prices: np.ndarray, n_buckets: int) -> List[float]:
    """Quantiles of log1p(price) over the priced items (data points, as Spark's approxQuantile
    gives them): n_buckets - 1 edges, duplicates dropped."""
    log_price = np.log1p(prices[np.isfinite(prices) & (prices >= 0)])
    if len(log_price) == 0 or n_buckets < 2:
        return []
    quantiles = np.arange(1, n_buckets) / n_buckets
    return sorted(set(np.quantile(log_price, quantiles, method="inverted_cdf").tolist()))


def price_bucket_of(prices: np.ndarray, edges: List[float]) -> np.ndarray:
    """0 for a missing price, else 1 + the number of edges at or below log1p(price)."""
    prices = np.asarray(prices, np.float64)
    known = np.isfinite(prices) & (prices >= 0)
    bucket = np.zeros(len(prices), np.int32)
    bucket[known] = 1 + np.searchsorted(np.asarray(edges), np.log1p(prices[known]), side="right")
    return bucket


def centred_text(text: np.ndarray, dims: int = 0) -> np.ndarray:
    """The text embeddings minus the catalogue's mean, unit length. Sentence encoders put every
    product text in one narrow cone (any two titles have a cosine of 0.3-0.8), so raw cosines
    favour the texts nearest the cone's axis for every user alike; centred, they compare what
    differs. With 0 < `dims` < the encoder's width (`train.text_dims`), the centred texts are
    projected on their first `dims` principal directions (fitted on these items) before they are
    made unit again: the text term of the embedding tables and the towers' text input shrink to
    `dims` floats, and a dot product keeps what the dropped directions did not carry."""
    centred = text.astype(np.float64) - text.mean(axis=0, keepdims=True)
    if 0 < dims < centred.shape[1]:
        directions, kept = principal_directions(centred, dims)
        log.info("item text on %d of its %d dimensions (train.text_dims): %.1f%% of the catalogue texts' variance",
                 dims, centred.shape[1], 100 * kept)
        centred = centred @ directions
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.maximum(norm, 1e-12)).astype(np.float32)


def principal_directions(x: np.ndarray, n: int) -> Tuple[np.ndarray, float]:
    """([width, n], share): the unit directions along which the rows of `x` (centred) spread most,
    widest first, and the share of the rows' variance they carry, from the width x width Gram
    matrix (its size does not grow with the rows). Each direction's sign is fixed (its largest
    entry positive), so the same rows give the same columns."""
    values, vectors = np.linalg.eigh(x.T @ x)
    order = np.argsort(values)[::-1][:n]
    top = vectors[:, order]
    largest = top[np.argmax(np.abs(top), axis=0), np.arange(top.shape[1])]
    share = float(values[order].sum() / values.sum()) if values.sum() > 0 else 1.0
    return top * np.where(largest < 0, -1.0, 1.0), share


def item_fields(frame: pd.DataFrame) -> pd.DataFrame:
    """The fields the attribute scheme reads: category, brand, price and every attributes key."""
    columns = {"category": frame["category"], "brand": frame["brand"],
               "price": frame["price"].map(lambda p: None if p is None or p != p else repr(float(p)))}
    attributes = [a if isinstance(a, dict) else dict(a or {}) for a in frame["attributes"]]
    for key in sorted({k for a in attributes for k in a}):
        columns[key] = [a.get(key) for a in attributes]
    return pd.DataFrame(columns, index=frame.index)


def assemble(frame: pd.DataFrame, settings: CatalogueSettings, cutoff_s: float, as_of_s: float,
             dated_at: str = LAUNCH) -> "tuple[Catalogue, ItemContent]":
    """The catalogue of `frame` (one row per item in item_id order: item_id, embedding, n_users,
    first_s, launch_s, early_users, latest_s (the latest user's first interaction; optional), category, brand, price, attributes). `cutoff_s`: the training
    cutoff; `as_of_s`: the newest interaction before it (epoch seconds); `dated_at`: what an
    item's launch is (LAUNCH or FIRST_INTERACTION; early_users counted from it)."""
    from rec_lib.training import attributes as attr

    n = len(frame)
    text = np.stack([np.asarray(v, np.float32) for v in frame["embedding"]]) if n else np.zeros((0, 0), np.float32)
    categories, brands = _vocabulary(frame["category"]), _vocabulary(frame["brand"])
    prices = frame["price"].astype("float64").to_numpy()
    edges = price_edges(prices, settings.price_buckets)
    first_s = frame["first_s"].astype("float64").to_numpy()
    launch_s = frame["launch_s"].astype("float64").to_numpy()
    launched = (np.where(np.isfinite(first_s), first_s, launch_s) if dated_at == FIRST_INTERACTION
                else np.where(np.isfinite(launch_s), launch_s, first_s))
    n_users = frame["n_users"].to_numpy(np.int64)
    recent = np.isfinite(launched) & (launched >= cutoff_s - settings.launch_days * SECONDS_PER_DAY)
    held_out = (np.isfinite(launched) & (launched >= cutoff_s - settings.held_out_days * SECONDS_PER_DAY)
                if settings.held_out_days > 0 else np.zeros(n, bool))
    has_slot = (n_users >= settings.min_item_interactions) & ~recent & ~held_out & settings.item_ids
    id_slot = np.where(has_slot, np.cumsum(has_slot), 0).astype(np.int32)
    exposure = np.where(np.isfinite(launched) & (launched <= as_of_s), (as_of_s - launched) / SECONDS_PER_DAY, np.nan)
    latest = frame["latest_s"].astype("float64").to_numpy() if "latest_s" in frame else np.full(n, np.nan)

    fields = item_fields(frame)
    scheme = attr.scheme_for(fields, settings.attribute_types, settings.price_buckets)
    tokens = [scheme.item_tokens(row) for row in fields.to_dict("records")]
    slots = attr.token_slots(tokens, settings.attribute_slots)
    attr_ids, attr_weights = attr.token_arrays(tokens, slots)
    attr_vectors = (attr.signed_vectors(tokens, settings.attribute_dims) if settings.attribute_dims > 0
                    else np.zeros((n, 0), np.float32))
    catalogue = Catalogue(
        item_ids=frame["item_id"].to_numpy(dtype=str), text=centred_text(text, settings.text_dims) if n else text,
        category=_index(frame["category"], categories), brand=_index(frame["brand"], brands),
        price_bucket=price_bucket_of(prices, edges), id_slot=id_slot, n_users=n_users, exposure_days=exposure,
        attr_ids=attr_ids, attr_weights=attr_weights, attr_vectors=attr_vectors, launched_s=launched,
        pace_days=few_shot.pace_days(launched, latest),
        categories=categories, brands=brands, price_edges=[float(e) for e in edges],
        attribute_scheme=scheme.to_dict(), attribute_slots=settings.attribute_slots, in_training=~held_out,
        dated_at=dated_at)
    content = ItemContent(tokens=tokens, fields=sorted(scheme.types), numeric=_numeric(fields, scheme, frame),
                          early_users=frame["early_users"].to_numpy(np.int64), first_s=first_s)
    return catalogue, content


def _numeric(fields, scheme, frame) -> np.ndarray:
    from rec_lib.training import prior

    groups = frame["category"].fillna("").astype(str).to_numpy()
    parts = [prior.numeric_features(np.asarray([float(v) if v is not None and v == v and _number(v) else np.nan
                                                for v in fields[name]]), groups)
             for name, kind in sorted(scheme.types.items()) if kind == "numeric"]
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))


def _number(value) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False
