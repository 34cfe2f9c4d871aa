"""Item attributes as tokens, slots and vectors, on values worked out by hand."""
import math

import numpy as np
import pandas as pd
import pytest

from rec_lib.training import attributes as attr


def test_types_are_detected_from_the_values_and_overridable():
    values = {"year": pd.Series(["2019", "2020", None]), "material": pd.Series(["cotton|linen", "silk"]),
              "colour": pd.Series(["red", "blue"]), "category": pd.Series(["1", "2"]), "empty": pd.Series([None])}
    assert attr.detect_types(values, {}) == {"year": "numeric", "material": "multi", "colour": "categorical",
                                             "category": "categorical", "empty": "ignore"}
    # a contract field stays categorical even when its values are numbers; an override wins
    assert attr.detect_types(values, {"year": "categorical"})["year"] == "categorical"
    with pytest.raises(ValueError, match="attribute types must be some of"):
        attr.detect_types(values, {"year": "date"})


def test_an_items_tokens_share_each_fields_weight():
    scheme = attr.AttributeScheme(types={"category": "categorical", "brand": "categorical", "material": "multi",
                                         "year": "numeric", "note": "ignore"}, edges={"year": [2020.0, 2022.0]})
    tokens = scheme.item_tokens({"category": "Books", "brand": "Inkwell", "material": "cotton| Linen|cotton",
                                 "year": "2021", "note": "x"})
    # fields in name order; 'cotton' once; 2021 is at or above one edge -> bucket 1; lower-cased values
    assert tokens == [("brand", "brand=inkwell", 1.0), ("category", "category=books", 1.0),
                      ("material", "material=cotton", 0.5), ("material", "material=linen", 0.5),
                      ("year", "year#1", 1.0)]
    assert scheme.item_tokens({"category": None, "year": "not a year"}) == []


def test_numeric_edges_are_quantiles():
    assert attr.numeric_edges(pd.Series(["1", "2", "3", "4", "x"]), 2) == [2.5]
    assert attr.numeric_edges(pd.Series(["5", "5", "5"]), 4) == [5.0]  # duplicates dropped
    assert attr.numeric_edges(pd.Series([], dtype=object), 4) == []


def _tokens(*items):
    return [[(t.split("=")[0], t, w) for t, w in item] for item in items]


def test_frequent_tokens_get_exact_slots_and_the_tail_shares_a_quarter():
    tokens = _tokens([("a=1", 1.0), ("b=1", 1.0)], [("a=1", 1.0), ("c=1", 1.0)], [("a=2", 1.0), ("d=1", 1.0)])
    # 5 tokens fit 8 slots: each its own, by frequency (a=1 in two items), then name
    assert attr.token_slots(tokens, 8) == {"a=1": 0, "a=2": 1, "b=1": 2, "c=1": 3, "d=1": 4}
    # into 4 slots: the tail is the last quarter (1 slot): a=1, a=2, b=1 exact; c=1 and d=1 share slot 3
    slots = attr.token_slots(tokens, 4)
    assert (slots["a=1"], slots["a=2"], slots["b=1"]) == (0, 1, 2) and slots["c=1"] == slots["d=1"] == 3
    ids, weights = attr.token_arrays(tokens, slots)
    assert ids.shape == (3, attr.MAX_TOKENS) and list(ids[0][:3]) == [1, 3, 0]  # slot + 1, 0 pads
    assert list(weights[1][:3]) == [1.0, 1.0, 0.0]


def test_attribute_vectors_and_profiles():
    tokens = _tokens([("a=1", 1.0), ("b=1", 1.0)], [("a=1", 1.0)], [])
    h = attr.signed_vectors(tokens, 4)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(h, [[s, s, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], atol=1e-7)
    # a profile is the normalised sum of the history's vectors: [s + 1, s] / |.|; -1 pads, no history -> 0
    p = attr.profiles(np.array([[0, 1, -1], [-1, -1, -1]]), h)
    expected = np.array([s + 1, s, 0, 0]) / np.linalg.norm([s + 1, s])
    np.testing.assert_allclose(p, [expected, [0, 0, 0, 0]], atol=1e-7)
