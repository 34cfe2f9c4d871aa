"""The catalogue's assembly from one row per item, by hand."""
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from rec_lib.training.catalogue import (
    CatalogueSettings,
    assemble,
    centred_text,
    price_bucket_of,
    price_edges,
    principal_directions,
)

DAY = 86400.0


def test_price_bucket_edges():
    # log1p(price) against the edges 1 and 3: no price -> 0; 0.5 -> 1; exactly 1 and 2.5 -> 2; 3 -> 3
    prices = np.expm1(np.array([np.nan, 0.5, 1.0, 2.5, 3.0]))
    assert list(price_bucket_of(prices, [1.0, 3.0])) == [0, 1, 2, 2, 3]
    # prices 9.5, 25, 12: the median of log1p is log(13) (a data point, as Spark's approxQuantile gives)
    assert price_edges(np.array([9.5, 25.0, 12.0, np.nan]), 2) == pytest.approx([math.log(13)])


def test_centred_text_compares_what_differs():
    got = centred_text(np.array([[1.0, 1.0], [1.0, 3.0]], np.float32))
    np.testing.assert_allclose(got, [[0.0, -1.0], [0.0, 1.0]])


def test_text_dims_keeps_the_directions_the_items_spread_along():
    # mean [1, 1, 1]; centred: (+-2, 0, 0) and (0, +-1, 0). Gram diag(8, 2, 0): e1 first, then e2
    text = np.array([[3.0, 1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(centred_text(text, 2), [[1, 0], [-1, 0], [0, 1], [0, -1]], atol=1e-7)
    # one direction: the items spread along e2 have nothing left there (0, not divided by 0)
    np.testing.assert_allclose(centred_text(text, 1), [[1], [-1], [0], [0]], atol=1e-7)
    # the first direction, e1, and its share of the variance: 8 of the Gram matrix's trace 8 + 2 + 0
    directions, share = principal_directions(text - text.mean(axis=0), 1)
    np.testing.assert_allclose(directions, [[1], [0], [0]], atol=1e-12)
    assert share == pytest.approx(0.8)
    # 0 or the full width: no projection
    np.testing.assert_allclose(centred_text(text, 0), centred_text(text, 3))
    assert centred_text(text, 0).shape == (4, 3)


def test_text_dims_keeps_every_cosine_of_texts_in_that_many_directions():
    # texts of width 6 that differ only within a plane: projected on 2 directions, every pair's
    # cosine is the full width's (the plane is found whatever its orientation)
    rng = np.random.default_rng(3)
    plane = np.linalg.qr(rng.normal(size=(6, 2)))[0]
    text = (rng.normal(size=(40, 2)) @ plane.T + rng.normal(size=6)).astype(np.float32)
    full, small = centred_text(text), centred_text(text, 2)
    assert small.shape == (40, 2)
    np.testing.assert_allclose(small @ small.T, full @ full.T, atol=1e-5)


def _frame():
    # a: old, 6 users; b: launched 3 days before the cutoff with 6 users; c: no launch date, first seen 20 days
    # before; d: nobody yet
    cutoff = 100 * DAY
    return pd.DataFrame({
        "item_id": ["a", "b", "c", "d"], "embedding": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]],
        "n_users": [6, 6, 2, 0], "first_s": [10 * DAY, 97.5 * DAY, 80 * DAY, np.nan],
        "launch_s": [5 * DAY, 97 * DAY, np.nan, 99 * DAY], "early_users": [3, 6, 2, 0],
        "category": ["x", "x", None, "y"], "brand": [None, "B", "B", None], "price": [1.0, None, 3.0, 7.0],
        "attributes": [{"colour": "red", "material": "a|b"}, {"colour": "blue"}, {}, None]}), cutoff


def test_assemble_numbers_ids_and_keeps_launches_without_an_id_embedding():
    frame, cutoff = _frame()
    catalogue, content = assemble(frame, CatalogueSettings(min_item_interactions=5, price_buckets=2, launch_days=14,
                                                           attribute_slots=64, attribute_dims=8), cutoff, cutoff - DAY)
    # a has 6 users and launched long ago: slot 1; b has 6 but launched 3 days ago: a launch, no slot
    assert list(catalogue.id_slot) == [1, 0, 0, 0]
    # launch: launch_s, else the first interaction (c)
    np.testing.assert_allclose(catalogue.launched_s, [5 * DAY, 97 * DAY, 80 * DAY, 99 * DAY])
    # exposure from as_of (day 99): 94, 2, 19 days; d launched at as_of exactly: 0
    np.testing.assert_allclose(catalogue.exposure_days, [94.0, 2.0, 19.0, 0.0])
    assert catalogue.categories == ["x", "y"] and list(catalogue.category) == [1, 1, 0, 2]
    assert catalogue.brands == ["B"] and list(catalogue.brand) == [0, 1, 1, 0]
    # fields: brand, category, colour (categorical), material (multi: a|b), price (numeric)
    assert catalogue.attribute_scheme["types"] == {"brand": "categorical", "category": "categorical",
                                                   "colour": "categorical", "material": "multi", "price": "numeric"}
    # a: category, colour, material (a, b at 1/2 each), price -> 4 fields; d: category, price -> 2
    assert list(catalogue.attr_weights.sum(axis=1)) == [4.0, 3.0, 2.0, 2.0]
    assert [t for _, t, _ in content.tokens[0]] == ["category=x", "colour=red", "material=a", "material=b",
                                                   "price#0"]
    assert list(content.early_users) == [3, 6, 2, 0]
    assert catalogue.in_training.all()  # nothing held out without held_out_days


def test_held_out_launches_train_no_tower():
    frame, cutoff = _frame()
    catalogue, _ = assemble(frame, CatalogueSettings(min_item_interactions=1, launch_days=14, held_out_days=28),
                            cutoff, cutoff - DAY)
    # launched within 28 days: b (3 days), c (20 days), d (1 day): held out, no id embedding; a trains
    assert list(catalogue.in_training) == [True, False, False, False] and list(catalogue.id_slot) == [1, 0, 0, 0]
    # their pairs do not count as training examples for the logQ correction
    assert np.isfinite(catalogue.train_log_q()[0]) and np.isneginf(catalogue.train_log_q()[1:]).all()


def test_the_pace_span_runs_from_launch_to_the_latest_user():
    frame, cutoff = _frame()
    # a's latest user came on day 60, b's 2 hours after its launch, c's on day 85 (launch: its first
    # user, day 80), d has nobody
    frame["latest_s"] = [60 * DAY, 97 * DAY + 2 * 3600, 85 * DAY, np.nan]
    catalogue, _ = assemble(frame, CatalogueSettings(attribute_slots=64, attribute_dims=8), cutoff, cutoff - DAY)
    np.testing.assert_allclose(catalogue.pace_days, [55.0, 2.0 / 24, 5.0, np.nan])
    # a user within the launch's first hour still gives a finite span: an hour
    frame["latest_s"] = [60 * DAY, 97 * DAY + 60, 85 * DAY, np.nan]
    catalogue, _ = assemble(frame, CatalogueSettings(attribute_slots=64, attribute_dims=8), cutoff, cutoff - DAY)
    assert catalogue.pace_days[1] == pytest.approx(1.0 / 24)


def test_without_item_ids_no_item_gets_an_id_slot():
    # train.item_id_dropout 1: the item tower reads content only, so a (warm) item has no id embedding either
    frame, cutoff = _frame()
    catalogue, _ = assemble(frame, CatalogueSettings(min_item_interactions=5, attribute_slots=64, attribute_dims=8,
                                                     item_ids=False), cutoff, cutoff - DAY)
    assert list(catalogue.id_slot) == [0, 0, 0, 0] and catalogue.n_id_slots == 0
    assert list(catalogue.n_users) == [6, 6, 2, 0]  # what paces the prior is unchanged


def test_items_are_dated_at_their_first_interaction_only_where_that_gives_the_blend_launches_to_learn_from():
    from rec_lib.training.catalogue import FIRST_INTERACTION, LAUNCH, dating

    span = CatalogueSettings(cohort_days=56, min_cohort_launches=30)
    # (launched in the span, first interacted with in it)
    assert dating(span, 29, 30) == FIRST_INTERACTION
    assert dating(span, 30, 500) == LAUNCH  # launches enough
    assert dating(span, 2, 29) == LAUNCH  # first interactions too few as well: nothing gained
    assert dating(dataclasses.replace(span, pseudo_launches="never"), 0, 500) == LAUNCH
    assert dating(dataclasses.replace(span, pseudo_launches="always"), 1000, 0) == FIRST_INTERACTION
    assert dating(dataclasses.replace(span, cohort_days=0), 0, 500) == LAUNCH  # no launch cohorts: nothing to fit
