"""An item's structured attributes as tokens, for the item tower and the attribute profile (numpy and
pandas only).

Fields: `category` and `brand` (the input contract's columns) and every further items column (the
`items.attributes` map). Each field is read as one of
- `categorical`: one value, e.g. `colour=red`;
- `multi`: several values separated by `|`, e.g. `material=cotton|linen` -> two tokens;
- `numeric`: a number, bucketed into quantile bins of the field's values, e.g. `year#3`;
- `ignore`.
By default a field is `numeric` when every value parses as a number, `multi` when some value holds
`|`, else `categorical` (`train.attribute_types` overrides per field). A field's tokens share its
weight equally (a field with two values gives each 1/2), so every field counts alike whatever its
number of values.

Tokens get ids (`token_slots`: the frequent ones exactly, the long tail hashed) that the item tower
embeds (a weighted bag), and the same way, signed where shared, columns of a fixed width: an item's
attribute vector h_i (unit length). A user's
attribute profile is the normalised sum of the vectors of the items in their history, so
<profile_u, h_i> grows with the share of the user's history that has the item's attribute values:
the attribute-profile heuristic, in a fixed width that one dot product scores.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from rec_lib.core.config import ATTRIBUTE_TYPES as TYPES

CONTRACT_FIELDS = ("category", "brand")
MULTI_SEPARATOR = "|"
MAX_TOKENS = 16  # tokens kept per item (the first ones by field, then value order)


def _is_number(text: str) -> bool:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(value))


def detect_types(values: Mapping[str, pd.Series], overrides: Mapping[str, str]) -> Dict[str, str]:
    """field -> type for each field (its non-null text values in `values`), see the module doc."""
    unknown = sorted(set(overrides.values()) - set(TYPES))
    if unknown:
        raise ValueError(f"attribute types must be some of {list(TYPES)}, got {unknown}")
    types: Dict[str, str] = {}
    for name, column in values.items():
        if name in overrides:
            types[name] = overrides[name]
            continue
        present = column.dropna().astype(str)
        if present.empty:
            types[name] = "ignore"
        elif name in CONTRACT_FIELDS:
            types[name] = "categorical"
        elif present.map(_is_number).all():
            types[name] = "numeric"
        elif present.str.contains(MULTI_SEPARATOR, regex=False).any():
            types[name] = "multi"
        else:
            types[name] = "categorical"
    return types


def numeric_edges(column: pd.Series, n_buckets: int) -> List[float]:
    """Quantile edges of a numeric field's values: bucket b holds values < edges[b] (the last: all above)."""
    numbers = pd.to_numeric(column, errors="coerce").dropna().to_numpy(np.float64)
    numbers = numbers[np.isfinite(numbers)]
    if len(numbers) == 0 or n_buckets < 2:
        return []
    return sorted(set(np.quantile(numbers, np.arange(1, n_buckets) / n_buckets).tolist()))


def _field_tokens(name: str, kind: str, value: Optional[str], edges: Sequence[float]) -> List[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or kind == "ignore":
        return []
    text = str(value)
    if kind == "numeric":
        if not _is_number(text):
            return []
        return [f"{name}#{int(np.searchsorted(np.asarray(edges), float(text), side='right'))}"]
    if kind == "multi":
        parts = [p.strip() for p in text.split(MULTI_SEPARATOR)]
        return [f"{name}={p.lower()}" for p in dict.fromkeys(parts) if p]
    return [f"{name}={text.strip().lower()}"]


@dataclass(frozen=True)
class AttributeScheme:
    """How a catalogue's fields become tokens: the fields' types and the numeric fields' edges."""

    types: Dict[str, str]
    edges: Dict[str, List[float]] = field(default_factory=dict)

    def item_tokens(self, row: Mapping[str, Optional[str]]) -> List[Tuple[str, str, float]]:
        """(field, token, weight) of one item's fields, fields in name order; each field's tokens
        share its weight 1."""
        out: List[Tuple[str, str, float]] = []
        for name in sorted(self.types):
            found = _field_tokens(name, self.types[name], row.get(name), self.edges.get(name, []))
            out.extend((name, token, 1.0 / len(found)) for token in found)
        return out[:MAX_TOKENS]

    def to_dict(self) -> dict:
        return {"types": self.types, "edges": self.edges}

    @classmethod
    def from_dict(cls, data: dict) -> "AttributeScheme":
        return cls(types=dict(data.get("types", {})), edges={k: list(v) for k, v in data.get("edges", {}).items()})


def scheme_for(fields: pd.DataFrame, overrides: Mapping[str, str], n_buckets: int) -> AttributeScheme:
    """The scheme of a catalogue whose fields are `fields`' columns (text values, None where absent)."""
    types = detect_types({c: fields[c] for c in fields.columns}, overrides)
    edges = {name: numeric_edges(fields[name], n_buckets) for name, kind in types.items() if kind == "numeric"}
    return AttributeScheme(types, edges)


def _crc(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


def token_slots(tokens: Sequence[Sequence[Tuple[str, str, float]]], size: int) -> Dict[str, int]:
    """token -> slot in 0..size-1 for every token of the catalogue: the most frequent tokens (by
    items holding them; ties by token) get a slot each, exactly, and the rest share the last
    quarter of the slots by a stable hash. A small vocabulary is thus kept exactly, a large one
    (authors, publishers) keeps its common values exact and hashes its long tail."""
    counts: Dict[str, int] = {}
    for item_tokens in tokens:
        for token in {t for _, t, _ in item_tokens}:
            counts[token] = counts.get(token, 0) + 1
    tail = max(1, size // 4)
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    exact = ranked[:size - tail] if len(ranked) > size else ranked
    slots = {t: i for i, t in enumerate(exact)}
    for token in ranked[len(exact):]:
        slots[token] = size - tail + _crc(token) % tail
    return slots


def token_arrays(tokens: Sequence[Sequence[Tuple[str, str, float]]], slots: Mapping[str, int]
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Per item (its `item_tokens`) the token slots + 1 (0 pads) and weights, int32 / float32 [N, MAX_TOKENS]."""
    ids = np.zeros((len(tokens), MAX_TOKENS), np.int32)
    w = np.zeros((len(tokens), MAX_TOKENS), np.float32)
    for row, item_tokens in enumerate(tokens):
        for col, (_, token, weight) in enumerate(item_tokens):
            ids[row, col] = slots[token] + 1
            w[row, col] = weight
    return ids, w


def signed_slots(tokens: Sequence[Sequence[Tuple[str, str, float]]], dims: int) -> List[List[Tuple[str, int, float]]]:
    """Per item its (token, slot, signed weight) in the attribute vector h_i (`signed_vectors`): each
    token's weight at its slot (`token_slots` of `dims`), signed by a second hash where the slot is
    shared (collisions then cancel on average), divided by the item's vector norm, so that
    <a, h_i> = sum over the item's tokens of weight * a[slot]."""
    slots = token_slots(tokens, dims)
    shared_from = dims - max(1, dims // 4) if len(slots) > dims else dims
    out: List[List[Tuple[str, int, float]]] = []
    for item_tokens in tokens:
        signed = [(token, slots[token], (1.0 if slots[token] < shared_from or (_crc(token) // dims) % 2 == 0
                                         else -1.0) * weight) for _, token, weight in item_tokens]
        summed: Dict[int, float] = {}
        for _, slot, weight in signed:
            summed[slot] = summed.get(slot, 0.0) + weight
        norm = float(np.sqrt(sum(v * v for v in summed.values())))
        scale = 1.0 / norm if norm > 1e-12 else 0.0  # tokens that cancel out: a zero vector
        out.append([(token, slot, weight * scale) for token, slot, weight in signed])
    return out


def signed_vectors(tokens: Sequence[Sequence[Tuple[str, str, float]]], dims: int) -> np.ndarray:
    """float32 [N, dims]: the items' attribute vectors h_i, unit length (all zero where an item has
    no token): the sum of their `signed_slots`."""
    out = np.zeros((len(tokens), dims), np.float64)
    for row, item_slots in enumerate(signed_slots(tokens, dims)):
        for _, slot, weight in item_slots:
            out[row, slot] += weight
    return out.astype(np.float32)


def profiles(history: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """[U, dims]: each user's normalised sum of the vectors of the items in `history` [U, H]
    (catalogue rows, -1 padded); zeros for a user without history."""
    valid = history >= 0
    summed = (item_vectors[np.maximum(history, 0)] * valid[:, :, None]).sum(axis=1)
    norm = np.linalg.norm(summed, axis=1, keepdims=True)
    return (summed / np.maximum(norm, 1e-12)).astype(np.float32)


__all__ = ["AttributeScheme", "scheme_for", "detect_types", "numeric_edges", "token_slots", "token_arrays",
           "signed_vectors", "signed_slots", "profiles", "TYPES", "MAX_TOKENS"]
