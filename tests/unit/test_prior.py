"""The launch prior on values worked out by hand."""
import math

import numpy as np
import pytest

from rec_lib.training import prior as P

DAY = 86400.0


def test_launch_rate_and_the_cohort_relative_target():
    assert P.launch_rate(np.array([0, 13.5]), 14)[0] == pytest.approx(math.log(0.5 / 14))
    assert P.launch_rate(np.array([0, 13.5]), 14)[1] == pytest.approx(0.0)
    # launches on days 0, 1 and 10 with rates 1, 3, 5; within +-2 days: days 0 and 1 together, day 10 alone
    rate = np.array([1.0, 3.0, 5.0, 7.0])
    launched = np.array([0.0, 1.0, 10.0, 0.5]) * DAY
    fit = np.array([True, True, True, False])  # the 4th is not fitted: neither target nor neighbour
    np.testing.assert_allclose(P.relative_to_cohort(rate, launched, fit, 2), [-1.0, 1.0, 0.0, np.nan])


def _brand(*values):
    return [[("brand", f"brand={v}", 1.0)] if v else [] for v in values]


def test_encodings_leave_a_fitted_item_out_of_its_own_tokens():
    tokens = _brand("x", "x", "y", "x", None)
    y = np.array([0.0, 6.0, 3.0, 0.0, 0.0])
    fit = np.array([True, True, True, False, False])
    enc = P.encodings(tokens, ["brand"], y, fit, mean=3.0)[:, 0]
    # SHRINKAGE 5 pseudo-items at the mean 3: item 0 sees only item 1: (6 + 15) / (1 + 5) = 3.5; item 1:
    # (0 + 15) / 6 = 2.5; item 2 alone with y: 15 / 5 = 3; item 3 (not fitted) sees both x: 21 / 7 = 3;
    # item 4 has no brand: the mean
    np.testing.assert_allclose(enc, [3.5, 2.5, 3.0, 3.0, 3.0])


def test_the_prior_learns_how_much_a_field_says():
    tokens = _brand(*(["a"] * 20 + ["b"] * 20 + ["a", "b"]))
    y = np.array([1.0] * 20 + [-1.0] * 20 + [0.0, 0.0])
    fit = np.array([True] * 40 + [False, False])
    prior, values = P.fit_prior(tokens, ["brand"], y, fit)
    # mean 0; a fitted 'a' item's encoding leaves itself out: 19 / (19 + 5) = 0.791667; the ridge on
    # 40 such rows: coef = 40 * 0.791667 / (40 * 0.791667^2 + 1) = 1.21468; a new 'a' item's
    # encoding is 20 / 25 = 0.8, so its prior is 0.97174 (and -0.97174 for 'b')
    assert prior.mean == 0.0 and prior.n_items == 40
    assert prior.coef[0] == pytest.approx(40 * 0.791667 / (40 * 0.791667 ** 2 + 1), rel=1e-4)
    assert values[40] == pytest.approx(0.97174, rel=1e-4) and values[41] == pytest.approx(-0.97174, rel=1e-4)


def test_too_few_launches_give_the_mean():
    prior, values = P.fit_prior(_brand("a", "b", "a"), ["brand"], np.array([1.0, 2.0, 0.0]),
                                np.array([True, True, False]))
    assert prior.n_items == 2 and list(values) == [1.5, 1.5, 1.5]
    prior, values = P.fit_prior(_brand("a"), ["brand"], np.array([1.0]), np.array([False]))
    assert prior.n_items == 0 and list(values) == [0.0]


def test_numeric_features_are_z_scores_and_group_deviations():
    got = P.numeric_features(np.array([1.0, 2.0, 3.0, 4.0, np.nan]), np.array(["a", "a", "b", "b", "b"]))
    std = np.std([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(got[:, 0], [-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std, 0.0])
    # deviations from the group means 1.5 and 3.5: -0.5, 0.5, -0.5, 0.5, scaled to unit spread
    np.testing.assert_allclose(got[:, 1], [-1.0, 1.0, -1.0, 1.0, 0.0])


def test_prior_as_of_fits_only_launches_whose_first_window_ended():
    # data from day 0; as of day 30 with a 14-day window: launched on days 2 and 10 count (10 + 14 <= 30),
    # day 20 does not (its window ends on day 34), day -5 started before the record
    launched = np.array([2.0, 10.0, 20.0, -5.0]) * DAY
    at = P.prior_as_of(launched, _brand("a", "a", "a", "a"), ["brand"], np.zeros((4, 0)), np.array([5, 9, 1, 40]),
                       as_of_s=30 * DAY, data_start_s=0.0, window_days=14)
    assert at.prior.n_items == 2
    # the offset: the mean log rate of the fitted launches of the last 28 days (both): log(5.5/14), log(9.5/14)
    assert at.rate_offset == pytest.approx((math.log(5.5 / 14) + math.log(9.5 / 14)) / 2)
