"""The served score's rows, and new items adapted from their first users, by hand."""
import math

import numpy as np
import pytest

from rec_lib.core.schema import EmbeddingSource
from rec_lib.training import few_shot
from rec_lib.training.blend import Blend, BlendWeights, default_weights, nearest_fitted
from rec_lib.training.catalogue import Catalogue
from rec_lib.training.sides import ItemSides, UserSides, item_bias, item_rows, item_sides, parts, scores, user_rows


def _weights(**w):
    return BlendWeights({"tower": 0.0, "text": 0.0, "attributes": 0.0, "prior": 0.0, "pace": 0.0, **w}, True)


def test_rows_carry_the_weights_of_each_items_k():
    users = UserSides(tower=np.array([[1.0, 0.0]]), text=np.array([[0.0, 1.0]]), attributes=np.array([[1.0]]))
    items = ItemSides(tower=np.array([[1.0, 0.0], [0.0, 1.0]]), text=np.array([[0.6, 0.8], [1.0, 0.0]]),
                      attributes=np.array([[0.5], [1.0]]), prior=np.array([1.0, -1.0]),
                      source=np.array(["content", "few_shot"], dtype=object), k=np.array([0, 4]))
    blend = Blend({0: _weights(tower=1.0, text=2.0, prior=0.5), 3: _weights(tower=3.0, prior=1.0)})
    # attributes weigh 0 at every k: left out of the rows
    assert parts(blend) == ["tower", "text"]
    np.testing.assert_allclose(user_rows(users, blend, temperature=0.5), [[2.0, 0.0, 0.0, 1.0]])
    # item 0 (k 0): [1 * v, 2 * t]; item 1 (k 4 -> the weights fitted at k 3): [3 * v, 0 * t]
    np.testing.assert_allclose(item_rows(items, blend), [[1.0, 0.0, 1.2, 1.6], [0.0, 3.0, 0.0, 0.0]])
    np.testing.assert_allclose(item_bias(items, blend), [0.5, -1.0])
    # user . item + bias = w_tower <u, v> / T + w_text <p, t> + w_prior pi:
    # item 0: 1 * 1 / 0.5 + 2 * 0.8 + 0.5 = 4.1; item 1: 3 * 0 / 0.5 + 0 - 1 = -1
    np.testing.assert_allclose(scores(users, items, blend, temperature=0.5), [[4.1, -1.0]])


def test_the_bias_adds_the_weighted_pace_at_each_items_k():
    items = ItemSides(tower=np.zeros((2, 1)), text=np.zeros((2, 1)), attributes=np.zeros((2, 0)),
                      prior=np.array([1.0, 2.0]), source=np.array(["content", "few_shot"], dtype=object),
                      k=np.array([0, 3]), pace=np.array([0.0, math.log(3.0)]))
    blend = Blend({0: _weights(prior=0.5), 3: _weights(prior=0.25, pace=2.0)})
    # item 0: 0.5 * 1 + 0 ; item 1: 0.25 * 2 + 2 * log 3
    np.testing.assert_allclose(item_bias(items, blend), [0.5, 0.5 + 2 * math.log(3.0)])


def _catalogue():
    # three items: 0 has an id embedding (8 users in 4 days), 1 is new with 2 users in 1 day, 2 new, nobody
    return Catalogue(item_ids=np.array(["a", "b", "c"]), text=np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
                     category=np.zeros(3, np.int32), brand=np.zeros(3, np.int32), price_bucket=np.zeros(3, np.int32),
                     id_slot=np.array([1, 0, 0], np.int32), n_users=np.array([8, 2, 0]),
                     exposure_days=np.array([4.0, 1.0, 2.0]), attr_vectors=np.zeros((3, 0), np.float32),
                     prior=np.array([0.0, math.log(2.0), 0.0]), rate_offset=0.0)


def test_new_items_are_adapted_and_every_prior_is_paced():
    catalogue = _catalogue()
    trained = np.array([[0.0, 1.0], [9.0, 9.0], [9.0, 9.0]])  # only row 0's is used
    content = np.array([[5.0, 5.0], [1.0, 0.0], [0.6, 0.8]])
    first = {1: UserSides(tower=np.array([[0.0, 1.0], [0.0, 1.0]]), text=np.array([[0.0, 1.0], [0.0, 1.0]]),
                          attributes=np.zeros((2, 0)))}
    settings = few_shot.FewShotSettings("blend", prior_strength=2.0, pace=True, pace_prior_strength=2.0,
                                        text_prior_strength=2.0)
    sides = item_sides(catalogue, trained, content, first, settings, max_k=10)
    assert list(sides.source) == [EmbeddingSource.TRAINED, EmbeddingSource.FEW_SHOT, EmbeddingSource.CONTENT]
    assert sides.k[1] == 2 and sides.k[2] == 0 and sides.k[0] > 1000
    # b: tower unit(2 [1, 0] + [0, 2]) = [1, 1] / sqrt 2, text the same blend
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(sides.tower[1], [s, s])
    np.testing.assert_allclose(sides.text[1], [s, s])
    np.testing.assert_allclose(sides.tower[0], [0.0, 1.0])  # trained: kept
    np.testing.assert_allclose(sides.tower[2], [0.6, 0.8])  # nobody yet: content
    # pace, a = 2, r0 = exp(prior + offset 0): a: r0 1, 8 users in 4 days -> log((2 + 8) / (2 + 4)) = log(5/3);
    # b: r0 2, 2 users in 1 day -> log 2 + log(4 / 4) = log 2; c: r0 1, nobody in 2 days -> log(2 / 4)
    np.testing.assert_allclose(sides.prior, [math.log(5 / 3), math.log(2.0), math.log(0.5)])
    # max_k limits the users blended, not the users that pace the prior
    # the observed pace, log(users / exposure days): a 8 in 4 days, b 2 in 1 day: log 2; c nobody: 0
    np.testing.assert_allclose(sides.pace, [math.log(2.0), math.log(2.0), 0.0])
    capped = item_sides(catalogue, trained, content, first, settings, max_k=1)
    np.testing.assert_allclose(capped.tower[1], np.array([2.0, 1.0]) / math.sqrt(5))
    assert capped.prior[1] == pytest.approx(math.log(2.0))


def test_the_pace_of_a_new_item_is_read_over_the_span_its_users_took():
    # b's 2 users came within half a day of its launch, a day before the cutoff: the pace reads
    # half a day, as the blend's fit and the evaluation read it, not the day up to the cutoff
    catalogue = _catalogue()
    catalogue.pace_days = np.array([4.0, 0.5, np.nan])
    settings = few_shot.FewShotSettings("blend", prior_strength=2.0, pace=True, pace_prior_strength=2.0,
                                        text_prior_strength=2.0)
    sides = item_sides(catalogue, np.zeros((3, 2)), np.array([[1.0, 0.0]] * 3), {}, settings, max_k=10)
    # observed pace log(2 / 0.5); prior: r0 = 2, a = 2 -> log 2 + log((2 + 2) / (2 + 2 * 0.5))
    assert sides.pace[1] == pytest.approx(math.log(4.0))
    assert sides.prior[1] == pytest.approx(math.log(2.0) + math.log(4.0 / 3.0))
    # c (nobody yet) keeps its exposure up to the cutoff: log(2 / (2 + 1 * 2)); a (trained) its whole life
    assert sides.prior[2] == pytest.approx(math.log(0.5)) and sides.pace[2] == 0.0
    assert sides.pace[0] == pytest.approx(math.log(2.0))


def test_launches_at_different_k_are_ranked_on_one_scale():
    # the blend was fitted at k=0 only; k=1 and k=3 could not be fitted (too few launches) and take
    # k=0's weights. Three launches with the same text side and prior, at k = 0, 1, 3: the user's
    # text profile [1, 0] meets launch 0 at 0.9, launch 1 at 0.6, launch 2 at 0.8, so that is the order
    # (with the fixed blend at k >= 1, text 20, launch 1 would have come first by its scale alone)
    fitted = _weights(text=1.0, prior=0.5)
    blend = Blend(nearest_fitted({0: fitted, 1: default_weights(20.0, "too few"), 3: default_weights(20.0, "too few")}))
    users = UserSides(tower=np.zeros((1, 1)), text=np.array([[1.0, 0.0]]), attributes=np.zeros((1, 0)))
    items = ItemSides(tower=np.zeros((3, 1)), text=np.array([[0.9, 0.436], [0.6, 0.8], [0.8, 0.6]]),
                      attributes=np.zeros((3, 0)), prior=np.zeros(3), source=np.array(["content"] * 3, dtype=object),
                      k=np.array([0, 1, 3]))
    got = scores(users, items, blend, temperature=0.1)[0]
    np.testing.assert_allclose(got, [0.9, 0.6, 0.8])
    assert list(np.argsort(-got)) == [0, 2, 1]
    unscaled = scores(users, items, Blend({0: fitted, 1: default_weights(20.0, "too few")}), temperature=0.1)[0]
    assert list(np.argsort(-unscaled)) == [2, 1, 0]  # what the fixed blend did: k >= 1 first by its scale
