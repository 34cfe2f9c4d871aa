"""The blend of the score's parts: its loss by hand, what the fit finds, and weights by k."""
import math

import numpy as np
import pytest

from rec_lib.training.blend import (
    COMPONENTS,
    Blend,
    BlendWeights,
    _gradient_hessian,
    default_weights,
    fit_weights,
    nearest_fitted,
    softmax_loss,
    users_per_cohort,
    without_part,
)


def test_softmax_loss_by_hand():
    # one user, two launches, the second positive: -log(3 / (1 + 3)); a row without positive counts nothing
    logits = np.array([[0.0, math.log(3.0)], [5.0, 0.0]])
    positives = np.array([[False, True], [False, False]])
    assert softmax_loss(logits, positives) == pytest.approx(-math.log(0.75))


def _world(seed, n_users=400, n_launches=12):
    """Users pick the launch with the best signal + noise; 'noise_part' is unrelated to the pick."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_users, n_launches))
    noise_part = rng.normal(size=(n_users, n_launches))
    pick = np.argmax(signal + 0.5 * rng.gumbel(size=signal.shape), axis=1)
    positives = np.zeros_like(signal, dtype=bool)
    positives[np.arange(n_users), pick] = True
    return {"text": signal * 3.0, "attributes": noise_part}, positives


def test_the_fit_weights_what_predicts_the_launches_chosen():
    components, positives = _world(0)
    fallback = default_weights(20.0, "x")
    blend = fit_weights(components, positives, fallback)
    assert blend.fitted and blend.n_positives == 400 and blend.n_launches == 12
    # the informative part gets the weight; the unrelated one next to none; all >= 0
    assert blend["text"] > 0.5 and 0.0 <= blend["attributes"] < 0.1 * blend["text"]
    assert blend.loss < blend.loss_uniform == pytest.approx(math.log(12))
    # weights are on the raw components: scaling a component by 3 divides its weight by 3
    scaled = fit_weights({"text": components["text"] * 3.0, "attributes": components["attributes"]}, positives, fallback)
    assert scaled["text"] == pytest.approx(blend["text"] / 3.0, rel=1e-6)


def test_a_part_equal_for_every_launch_weighs_nothing_and_the_pace_is_learned_where_it_tells():
    # users pick by popularity: each launch's pick probability follows its rate, the same for all users
    rng = np.random.default_rng(3)
    n_users, n_launches = 600, 10
    rate = rng.normal(size=n_launches)
    pick = np.array([rng.choice(n_launches, p=np.exp(2 * rate) / np.exp(2 * rate).sum()) for _ in range(n_users)])
    positives = np.zeros((n_users, n_launches), bool)
    positives[np.arange(n_users), pick] = True
    components = {"pace": np.broadcast_to(rate, (n_users, n_launches)), "text": rng.normal(size=(n_users, n_launches)),
                  "prior": np.zeros((n_users, n_launches))}  # the prior: constant (k = 0 for everything)
    got = fit_weights(components, positives, default_weights(1.0, "x"))
    # the softmax over launches recovers the popularity weight (2) the picks were drawn with
    assert got["pace"] == pytest.approx(2.0, abs=0.3)
    assert got.scales["prior"] == 0.0 and got["prior"] == 0.0
    assert 0.0 <= got["text"] < 0.15


def test_padded_entries_are_not_candidates():
    components, positives = _world(1, n_users=200, n_launches=6)
    fallback = default_weights(1.0, "x")
    plain = fit_weights(components, positives, fallback)
    # the same rows padded with two fake launches of huge scores, marked invalid: the same fit
    pad = np.full((200, 2), 50.0)
    padded = {name: np.concatenate([values, pad], axis=1) for name, values in components.items()}
    valid = np.concatenate([np.ones((200, 6), bool), np.zeros((200, 2), bool)], axis=1)
    got = fit_weights(padded, np.concatenate([positives, np.zeros((200, 2), bool)], axis=1), fallback, valid=valid,
                      n_launches=6)
    assert got["text"] == pytest.approx(plain["text"], rel=1e-6) and got.loss == pytest.approx(plain.loss, rel=1e-9)


def test_too_small_a_launch_split_keeps_the_defaults_and_says_why():
    components, positives = _world(2, n_users=20, n_launches=5)
    got = fit_weights(components, positives, default_weights(20.0, "x"))
    assert not got.fitted and got["text"] == 20.0 and got["tower"] == 1.0
    assert got.reason == "launch split too small: 5 launches, 20 positive pairs"


def test_an_item_takes_the_weights_of_its_k():
    at0 = BlendWeights({"tower": 0.0, "text": 1.0, "attributes": 0.0, "prior": 2.0}, True)
    at3 = BlendWeights({"tower": 1.0, "text": 0.5, "attributes": 0.0, "prior": 4.0}, True)
    blend = Blend({0: at0, 3: at3})
    assert blend.at(0) is at0 and blend.at(2) is at0 and blend.at(3) is at3 and blend.at(50) is at3
    w = blend.weights_for(np.array([0, 1, 3, 9]))
    np.testing.assert_allclose(w["prior"], [2.0, 2.0, 4.0, 4.0])
    np.testing.assert_allclose(w["tower"], [0.0, 0.0, 1.0, 1.0])
    assert Blend.from_dict(blend.to_dict()).at(4).weights == at3.weights


def test_the_fit_is_the_same_whether_its_rows_are_taken_in_blocks_or_at_once(monkeypatch):
    from rec_lib.training import blend as module

    components, positives = _world(4, n_users=300, n_launches=8)
    positives[::5] = False  # rows without a positive count nothing, in any block
    components = {name: values.astype(np.float32) for name, values in components.items()}  # as the towers give them
    fallback = default_weights(1.0, "x")
    monkeypatch.setattr(module, "ROWS_PER_CHUNK", 10_000)  # every row in one block
    whole = fit_weights(components, positives, fallback)
    monkeypatch.setattr(module, "ROWS_PER_CHUNK", 7)  # 43 blocks, the last of 6 rows
    blocks = fit_weights(components, positives, fallback)
    assert whole.fitted and whole.n_positives == 240
    for name in ("text", "attributes"):
        assert blocks[name] == pytest.approx(whole[name], rel=1e-9)
    assert blocks.loss == pytest.approx(whole.loss, rel=1e-12)
    assert blocks.loss_uniform == pytest.approx(math.log(8), rel=1e-12)


def test_the_users_sampled_per_cohort_keep_the_fit_within_its_rows_and_cells():
    # 4 cohorts, the widest with 565 launches: 20,000 users would be 5,000 per cohort, but
    # 2,000,000 cells allow 2,000,000 // (4 x 565) = 884 (4 x 884 x 565 = 1,997,840 cells)
    assert users_per_cohort(4, 565, 20000, 2_000_000) == 884
    # few launches: the users' cap binds (20,000 // 4)
    assert users_per_cohort(4, 10, 20000, 2_000_000) == 5000
    # more launches than cells: still one user, so every cohort can be fitted
    assert users_per_cohort(2, 10, 100, 5) == 1
    # no cohort or an empty one is not a division by zero
    assert users_per_cohort(0, 0, 100, 1000) == 100


def _correlated_launches(seed: int, users: int = 300, launches: int = 40):
    """Components as the launch cohorts give them: a pace that follows the launches' quality, a
    prior that half does, attributes and text both noisy views of the users' taste (text also
    repeating the attributes), a tower of noise; each user came to 2 launches drawn by taste and
    quality."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=launches)
    pace, prior = quality + 0.3 * rng.normal(size=launches), 0.6 * quality + rng.normal(size=launches)
    taste = rng.normal(size=(users, launches))
    attributes = taste + 0.8 * rng.normal(size=(users, launches))
    text = 0.5 * taste + rng.normal(size=(users, launches)) + 0.8 * attributes
    chance = np.exp(1.2 * taste + 1.5 * quality[None])
    chance /= chance.sum(axis=1, keepdims=True)
    positives = np.zeros((users, launches), bool)
    for u in range(users):
        positives[u, rng.choice(launches, size=2, replace=False, p=chance[u])] = True
    every = np.ones((users, 1))
    return {"tower": rng.normal(size=(users, launches)), "text": text, "attributes": attributes,
            "prior": every * prior, "pace": every * pace}, positives


def test_the_fit_stops_at_the_minimum_not_at_a_corner():
    # The loss is convex in w >= 0, so its minimum is where every weight above 0 has a zero
    # gradient and every weight at 0 a gradient >= 0 (nothing to gain by raising it). A full Newton
    # step clipped at 0 stopped short of it on this data, with attributes 0.44 and pace 1.13 where
    # the minimum has 0.49 and 1.05 (a gradient of 0.109 left; loss 2.7810 against 2.7745).
    components, positives = _correlated_launches(51)
    fitted = fit_weights(components, positives, BlendWeights({c: 1.0 for c in COMPONENTS}, False))
    used = [c for c in COMPONENTS if fitted.scales[c] > 0]
    x = np.stack([components[c] / fitted.scales[c] for c in used])
    w = np.array([fitted[c] * fitted.scales[c] for c in used])
    grad, _ = _gradient_hessian(w, x, positives, np.zeros(positives.shape))
    assert np.all(np.where(w > 0, np.abs(grad), np.maximum(-grad, 0.0)) < 1e-5), dict(zip(used, grad))
    assert fitted.loss == pytest.approx(2.7745, abs=1e-4)
    # what the data says: the pace and the taste views count, the noise tower next to nothing
    assert fitted["pace"] > 0 and fitted["attributes"] > 0 and fitted["text"] > 0
    assert fitted["tower"] * fitted.scales["tower"] < 0.1


def test_a_k_the_fit_could_not_learn_takes_the_nearest_fitted_k():
    at1 = BlendWeights({"tower": 0.0, "text": 1.0, "attributes": 2.0, "prior": 0.5, "pace": 0.0}, True)
    at5 = BlendWeights({"tower": 0.5, "text": 0.5, "attributes": 1.0, "prior": 0.2, "pace": 1.0}, True)
    fixed = default_weights(20.0, "launch split too small: 2 launches, 9 positive pairs")
    got = nearest_fitted({0: fixed, 1: at1, 3: fixed, 4: fixed, 5: at5, 10: fixed})
    # k=0 -> 1 (the only neighbour below does not exist), k=3 -> 1 or 5 at distance 2 and 2: the lower,
    # k=4 -> 5 (distance 1), k=10 -> 5; the fitted ones are kept as they are
    assert got[1] is at1 and got[5] is at5
    assert got[0].weights == at1.weights and got[3].weights == at1.weights
    assert got[4].weights == at5.weights and got[10].weights == at5.weights
    assert not got[3].fitted
    assert got[3].reason == "launch split too small: 2 launches, 9 positive pairs; the weights fitted at k=1"
    # nothing fitted: every k keeps the fixed blend
    assert nearest_fitted({0: fixed, 3: fixed})[3].weights == fixed.weights


def test_a_part_left_out_is_refitted_without_it_and_a_part_at_zero_changes_nothing():
    # text predicts the picks; a copy of it ("tower") shares the signal: without text, the copy takes its place
    components, positives = _world(0)
    components = {"text": components["text"], "tower": components["text"] * 0.5 + 0.1 * components["attributes"],
                  "attributes": components["attributes"]}
    full = fit_weights(components, positives, default_weights(20.0, "x"))
    no_text = without_part(components, positives, full, "text")
    assert no_text.fitted and no_text["text"] == 0.0 and no_text["tower"] > full["tower"] > 0.0
    alone = fit_weights({"tower": components["tower"], "attributes": components["attributes"]}, positives, full)
    assert no_text.weights == alone.weights  # the same fit as with the part never offered
    # a part the fit gave no weight (the pace, absent here), or a k that was not fitted: the full weights, the part at 0
    assert without_part(components, positives, full, "pace").weights == {**full.weights, "pace": 0.0}
    unfitted = default_weights(20.0, "launch split too small")
    assert without_part(components, positives, unfitted, "text").weights == {**unfitted.weights, "text": 0.0}


def test_the_ablated_blends_are_kept_with_the_blend():
    at0 = BlendWeights({"tower": 1.0, "text": 2.0, "attributes": 0.0, "prior": 1.0, "pace": 0.0}, True)
    no_tower = BlendWeights({"tower": 0.0, "text": 2.5, "attributes": 0.0, "prior": 1.0, "pace": 0.0}, True)
    blend = Blend({0: at0}, {"tower": {0: no_tower}, "pace": {0: at0}})
    back = Blend.from_dict(blend.to_dict())
    assert back.ablated("tower").at(0).weights == no_tower.weights and back.ablated("text") is None
    assert back.ablated("pace").same_weights(blend) and not back.ablated("tower").same_weights(blend)
    assert "without" not in Blend({0: at0}).to_dict() and Blend.from_dict({"by_k": {"0": at0.to_dict()}}).without == {}


def test_launches_at_k_0_1_and_3_are_ranked_by_what_their_parts_say_not_by_their_k():
    from rec_lib.training.sides import ItemSides, UserSides, scores

    # one user and three launches, every part one column: A (nobody yet) has every part above B's
    # (2 users, who came fast), whose parts are at or above C's (3 users, slowly)
    user = UserSides(np.array([[1.0]]), np.array([[1.0]]), np.array([[1.0]]))
    items = ItemSides(tower=np.array([[.2], [.1], [.1]]), text=np.array([[.9], [.3], [.1]]),
                      attributes=np.array([[.5], [.2], [.1]]), prior=np.zeros(3), source=np.array(["content"] * 3),
                      k=np.array([0, 2, 3]), pace=np.array([0.0, math.log(2 / .5), 0.0]))
    at0 = BlendWeights({"tower": .5, "text": 1.5, "attributes": 1.0, "prior": .7, "pace": 0.0}, True)
    at3 = BlendWeights({"tower": .5, "text": 1.0, "attributes": 1.0, "prior": .5, "pace": .3}, True)
    fixed = default_weights(20.0, "launch split too small: 2 launches, 9 positive pairs")
    by_k = {0: at0, 1: fixed, 3: at3}
    # A: .5*.2 + 1.5*.9 + .5 = 1.95; B takes k=0's weights (the pace counts 0 there): .05 + .45 + .2 = .70;
    # C at k=3: .05 + .1 + .1 + .3*0 = .25
    got = scores(user, items, Blend(nearest_fitted(by_k)), temperature=1.0)[0]
    np.testing.assert_allclose(got, [1.95, .70, .25], atol=1e-6)
    # on the fixed blend's scale B would be 1*.1 + 20*.3 = 6.1 and outrank A by construction
    assert scores(user, items, Blend(by_k), temperature=1.0)[0][1] == pytest.approx(6.1)
