"""Few-shot adaptation on hand-worked values (pure numpy)."""
import math

import numpy as np
import pytest

from rec_lib.training import few_shot
from rec_lib.training.few_shot import FewShotSettings


def test_blend_with_no_users_is_the_content_vector():
    content = np.array([0.6, 0.8])
    assert np.array_equal(few_shot.blend_vector(content, np.zeros((0, 2)), 3.0), content)


def test_blend_weights_content_as_prior_strength_interactions():
    content = np.array([1.0, 0.0])
    users = np.array([[0.0, 1.0], [0.0, 1.0]])
    # 3 * [1, 0] + [0, 2] = [3, 2]; |[3, 2]| = sqrt(13)
    np.testing.assert_allclose(few_shot.blend_vector(content, users, 3.0), [3 / math.sqrt(13), 2 / math.sqrt(13)])
    # one user, prior 1: [1, 1] / sqrt(2)
    np.testing.assert_allclose(few_shot.blend_vector(content, users[:1], 1.0), [0.70710678, 0.70710678])


def test_pace_raises_a_fast_item_and_lowers_an_ignored_one():
    # r0 = 0.5 * exp(0) = 0.5 users/day, a = 2.
    # 3 users in 2 days: log((2 + 3) / (2 + 0.5 * 2)) = log(5/3)
    assert few_shot.pace_bias(0.0, 3, 2.0, 0.5, 2.0) == pytest.approx(math.log(5 / 3))
    # nobody in 4 days: log(2 / (2 + 0.5 * 4)) = log(1/2)
    assert few_shot.pace_bias(0.0, 0, 4.0, 0.5, 2.0) == pytest.approx(math.log(0.5))
    # as many users as expected (1 user in 2 days at r0 = 0.5): no change
    assert few_shot.pace_bias(0.0, 1, 2.0, 0.5, 2.0) == pytest.approx(math.log(3 / 3))


def test_pace_leaves_the_bias_alone_without_an_exposure_or_a_scale():
    assert few_shot.pace_bias(0.7, 5, float("nan"), 0.5, 2.0) == 0.7
    assert few_shot.pace_bias(0.7, 5, 3.0, 0.0, 2.0) == 0.7


def test_observed_pace_is_log_users_per_day_and_zero_before_anybody_came():
    assert few_shot.observed_pace(6, 2.0) == pytest.approx(math.log(3.0))
    assert few_shot.observed_pace(1, 1.0 / 24) == pytest.approx(math.log(24.0))
    assert few_shot.observed_pace(0, 5.0) == 0.0
    assert few_shot.observed_pace(3, float("nan")) == 0.0


def test_rate_scale_matches_observed_rates_in_total():
    bias = np.array([0.0, math.log(2.0), 5.0, 1.0])
    n_users = np.array([10, 30, 7, 0])
    exposure = np.array([10.0, 10.0, 0.5, 20.0])  # third: under a day, fourth: no users -> not used
    # rates 1 and 3 users/day; exp(bias) 1 and 2 -> scale (1 + 3) / (1 + 2)
    assert few_shot.fit_rate_scale(bias, n_users, exposure) == pytest.approx(4 / 3)
    assert few_shot.fit_rate_scale(bias, np.zeros(4, int), exposure) == 0.0


def test_adapt_combines_both_and_none_keeps_content_vector():
    content, users = np.array([1.0, 0.0]), np.array([[0.0, 1.0]])
    blend = FewShotSettings("blend", 1.0, True, 2.0)
    vector, bias = few_shot.adapt(content, 0.0, users, 2.0, 0.5, blend)
    np.testing.assert_allclose(vector, [0.70710678, 0.70710678])
    assert bias == pytest.approx(math.log(3 / 3))
    vector, bias = few_shot.adapt(content, 0.2, users, 2.0, 0.5, FewShotSettings("none", 1.0, False, 2.0))
    assert np.array_equal(vector, content) and bias == 0.2


def test_text_side_moves_towards_its_users_profiles_only_when_blending():
    text, profiles = np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.0, 1.0]])
    blend = few_shot.FewShotSettings("blend", 3.0, False, 2.0, text_prior_strength=2.0)
    # 2 * [1, 0] + 2 * [0, 1] = [2, 2] -> [0.7071, 0.7071]
    np.testing.assert_allclose(few_shot.adapt_text(text, profiles, blend), [0.5 ** 0.5, 0.5 ** 0.5])
    np.testing.assert_array_equal(few_shot.adapt_text(text, profiles[:0], blend), text)
    off = few_shot.FewShotSettings("none", 3.0, False, 2.0, text_prior_strength=2.0)
    np.testing.assert_array_equal(few_shot.adapt_text(text, profiles, off), text)
