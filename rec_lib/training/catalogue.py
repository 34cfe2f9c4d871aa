"""The items a model scores, as the model and its workers hold them (numpy arrays, no Spark)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import List

import numpy as np

from rec_lib.training.model_folder import ModelFolder

# The numeric user features of the user tower, in this order (training.data computes them).
USER_NUMERIC = ("log1p_events", "log1p_items", "log1p_days_since_last")


@dataclass
class Catalogue:
    """Every item the model can score, in a fixed order (sorted by item_id); row i is item_index i."""

    item_ids: np.ndarray  # str [N]
    text: np.ndarray  # float32 [N, text_dim]
    category: np.ndarray  # int32 [N]; 0: unknown
    brand: np.ndarray  # int32 [N]; 0: unknown
    price_bucket: np.ndarray  # int32 [N]; 0: no price
    id_slot: np.ndarray  # int32 [N]; 0: no id embedding (too few users before the cutoff)
    n_users: np.ndarray  # int64 [N]; users with an interaction before the cutoff
    exposure_days: np.ndarray  # float64 [N]; as_of - launch (or first interaction); NaN: unknown
    categories: List[str] = field(default_factory=list)
    brands: List[str] = field(default_factory=list)
    price_edges: List[float] = field(default_factory=list)  # bucket b holds log1p(price) < edges[b-1]

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def n_id_slots(self) -> int:
        return int(self.id_slot.max()) if len(self) else 0

    def train_log_q(self) -> np.ndarray:
        """log of each item's share of training examples (-inf for items with none)."""
        total = max(int(self.n_users.sum()), 1)
        with np.errstate(divide="ignore"):
            return np.log(self.n_users / total).astype(np.float32)

    def save(self, folder: ModelFolder) -> None:
        folder.root.mkdir(parents=True, exist_ok=True)
        np.savez(folder.catalogue, item_ids=self.item_ids.astype(str), text=self.text,
                 category=self.category, brand=self.brand, price_bucket=self.price_bucket,
                 id_slot=self.id_slot, n_users=self.n_users, exposure_days=self.exposure_days)
        folder.vocab.write_text(json.dumps(
            {"categories": self.categories, "brands": self.brands, "price_edges": self.price_edges}, indent=1))

    @classmethod
    def load(cls, folder: ModelFolder) -> "Catalogue":
        arrays = np.load(folder.catalogue, allow_pickle=False)
        vocab = json.loads(folder.vocab.read_text())
        return cls(**{k: arrays[k] for k in arrays.files}, **vocab)
