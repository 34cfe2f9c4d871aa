"""The loss and the model's shapes, on hand-worked tensors."""
import math

import numpy as np
import pytest
import tensorflow as tf

from rec_lib.training import loss as loss_module  # noqa: E402
from rec_lib.training import two_tower  # noqa: E402
from rec_lib.training.catalogue import Catalogue  # noqa: E402
from rec_lib.training.loss import RetrievalLoss  # noqa: E402
from rec_lib.training.model_folder import ModelFolder  # noqa: E402


def _loss(cand_index, positives, log_q, weight=(1.0, 1.0)):
    eye = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    return float(loss_module.sampled_softmax_loss(
        eye, eye, tf.zeros(2), tf.constant(cand_index), tf.constant(positives), tf.constant(log_q),
        tf.constant(weight), temperature=1.0))


def test_in_batch_softmax_on_two_orthogonal_users():
    # logits [[1, 0], [0, 1]]: each row's cross-entropy is log(1 + e^-1)
    assert _loss([0, 1], [0, 1], [0.0, 0.0]) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_log_q_correction_and_weights():
    # log_q [log 2, 0]: row 0 logits [1 - log 2, 0] -> log(1 + e^-(1 - log 2)) = 0.551445;
    # row 1 logits [-log 2, 1] -> log(1 + e^(-1 - log 2)) = log(1 + 0.5/e) = 0.168848
    a, b = 0.5514447139, 0.1688476235
    assert _loss([0, 1], [0, 1], [math.log(2), 0.0]) == pytest.approx((a + b) / 2, rel=1e-6)
    assert _loss([0, 1], [0, 1], [math.log(2), 0.0], weight=(3.0, 1.0)) == pytest.approx((3 * a + b) / 4, rel=1e-6)


def test_the_same_item_twice_in_a_batch_is_not_its_own_negative():
    # both rows' positive is item 5: the off-diagonal candidate is masked, so each row has one candidate
    assert _loss([5, 5], [5, 5], [0.0, 0.0]) == pytest.approx(0.0, abs=1e-6)


def test_candidate_log_q_mixes_in_batch_and_uniform_sampling():
    q = tf.constant([0.5, 0.25, 0.25, 0.0])
    got = loss_module.candidate_log_q(q, tf.constant([0, 3]), batch_size=4, extra_negatives=2, n_items=4).numpy()
    # item 0: 4 * 0.5 + 2/4 = 2.5; item 3: 0 + 2/4 = 0.5
    np.testing.assert_allclose(got, [math.log(2.5), math.log(0.5)], rtol=1e-6)


def _catalogue(n=4, text_dim=3):
    rng = np.random.default_rng(0)
    return Catalogue(item_ids=np.array([f"i{i}" for i in range(n)]), text=rng.normal(size=(n, text_dim)).astype(np.float32),
                     category=np.array([1, 1, 2, 0], np.int32), brand=np.zeros(n, np.int32),
                     price_bucket=np.array([0, 1, 2, 1], np.int32), id_slot=np.array([1, 0, 2, 0], np.int32),
                     n_users=np.array([5, 1, 6, 0]), exposure_days=np.array([30.0, 2.0, 10.0, np.nan]),
                     categories=["a", "b"], brands=[], price_edges=[1.0])


def _params(**kw):
    base = dict(embedding_dim=8, hidden_dim=16, temperature=0.1, item_id_dropout=0.5, user_id_dropout=0.5,
                extra_negatives=2, n_user_slots=3, n_user_numeric=3, history_length=4)
    return two_tower.ModelParams(**{**base, **kw})


def test_item_without_an_id_slot_ignores_keep_and_items_are_unit_vectors():
    tf.random.set_seed(1)
    model = two_tower.build(_catalogue(), _params())
    index = tf.constant([0, 1, 2, 3])
    with_ids, b1 = model.item_vectors(index, tf.ones([4], tf.bool))
    content, b0 = model.item_vectors(index, tf.zeros([4], tf.bool))
    np.testing.assert_allclose(np.linalg.norm(with_ids.numpy(), axis=1), 1.0, rtol=1e-5)
    # rows 1 and 3 have no id embedding: identical either way; rows 0 and 2 differ
    np.testing.assert_array_equal(with_ids.numpy()[[1, 3]], content.numpy()[[1, 3]])
    assert not np.allclose(with_ids.numpy()[[0, 2]], content.numpy()[[0, 2]])


def test_user_history_excludes_the_scored_item_and_padding():
    tf.random.set_seed(1)
    model = two_tower.build(_catalogue(), _params())
    numeric, slot = tf.zeros([1, 3]), tf.zeros([1], tf.int32)
    only_2 = model.encode_users(tf.constant([[2, -1, -1, -1]]), numeric, slot)
    with_0_excluded = model.encode_users(tf.constant([[0, 2, -1, -1]]), numeric, slot, exclude=tf.constant([0]))
    with_0 = model.encode_users(tf.constant([[0, 2, -1, -1]]), numeric, slot)
    np.testing.assert_allclose(only_2.numpy(), with_0_excluded.numpy(), rtol=1e-6)
    assert not np.allclose(only_2.numpy(), with_0.numpy())


def test_saved_model_loads_with_the_same_vectors(tmp_path):
    tf.random.set_seed(3)
    catalogue = _catalogue()
    model = two_tower.build(catalogue, _params())
    two_tower.save(model, catalogue, ModelFolder(tmp_path), {"model_version": "v1"})
    loaded, cat2, extra = two_tower.load(ModelFolder(tmp_path))
    index = tf.constant([0, 1, 2, 3])
    keep = tf.ones([4], tf.bool)
    np.testing.assert_array_equal(model.item_vectors(index, keep)[0].numpy(), loaded.item_vectors(index, keep)[0].numpy())
    assert extra == {"model_version": "v1"} and list(cat2.item_ids) == list(catalogue.item_ids)


def test_extra_logits_are_added_to_the_scores():
    # the text term [[0, 1], [0, 0]] lifts row 0's negative to 1: logits [1, 1] -> log 2; row 1 as before
    eye = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    loss = float(loss_module.sampled_softmax_loss(
        eye, eye, tf.zeros(2), tf.constant([0, 1]), tf.constant([0, 1]), tf.zeros(2), tf.ones(2), temperature=1.0,
        extra_logits=tf.constant([[0.0, 1.0], [0.0, 0.0]])))
    assert loss == pytest.approx((math.log(2) + math.log(1 + math.exp(-1))) / 2, rel=1e-6)


def test_text_profile_is_the_normalised_mean_history_text():
    catalogue = _catalogue()
    catalogue.text = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    model = two_tower.build(catalogue, _params(text_weight=20.0))
    got = model.text_profile(tf.constant([[0, 1, -1, -1], [2, 0, -1, -1], [-1, -1, -1, -1]]),
                             exclude=tf.constant([5, 0, 5])).numpy()
    s = 1 / math.sqrt(2)
    # user 0: (e1 + e2) / sqrt 2; user 1: item 0 excluded -> e3; user 2: no history -> zeros
    np.testing.assert_allclose(got, [[s, s, 0], [0, 0, 1], [0, 0, 0]], atol=1e-6)
    assert float(model.text_weight()) == 20.0 and float(two_tower.build(catalogue, _params()).text_weight()) == 0.0


def test_text_mask_changes_only_the_content_path_input():
    tf.random.set_seed(2)
    model = two_tower.build(_catalogue(), _params())
    index, keep = tf.constant([1, 3]), tf.zeros([2], tf.bool)
    ones = tf.ones([2, 3])
    np.testing.assert_allclose(model.item_vectors(index, keep, ones)[0].numpy(), model.item_vectors(index, keep)[0].numpy())
    masked = model.item_vectors(index, keep, tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))[0].numpy()
    assert not np.allclose(masked[0], model.item_vectors(index, keep)[0].numpy()[0])
    np.testing.assert_allclose(masked[1], model.item_vectors(index, keep)[0].numpy()[1], rtol=1e-6)


def test_item_tower_without_text_reads_only_category_brand_and_price():
    # the same model, the catalogue's text of items 1 and 3 (no ids) negated: their vectors stay
    # when the tower does not read text, and move when it does
    index, keep = tf.constant([1, 3]), tf.zeros([2], tf.bool)
    for reads_text in (False, True):
        tf.random.set_seed(3)
        model = two_tower.build(_catalogue(), _params(text_in_item_tower=reads_text))
        before = model.item_vectors(index, keep)[0].numpy()
        model.text = -model.text
        after = model.item_vectors(index, keep)[0].numpy()
        assert np.allclose(before, after, atol=1e-6) == (not reads_text)
        assert any(w.name.startswith("text_proj") for w in model.weights) == reads_text


def _batch_loss(catalogue, params, weights=None):
    tf.random.set_seed(1)
    model = two_tower.build(catalogue, params)
    if weights is not None:
        model.set_weights(weights)
    rng = tf.random.Generator.from_seed(3)
    loss = RetrievalLoss()(model, tf.constant([0, 0]), tf.constant([0, 2]), tf.constant([[1, 3, -1, -1], [0, 1, -1, -1]]),
                              tf.zeros([2, 3]), tf.ones([2]), rng, batch_size=2)
    return float(loss), model.get_weights()


def test_without_the_logq_correction_how_often_items_are_sampled_does_not_count():
    # the same weights and batch over two catalogues that differ only in their items' users (what the
    # logQ correction reads): off, the loss is the same; on, it is not
    busy = _catalogue()
    busy.n_users = np.array([500, 1, 2, 0])
    for logq, same in ((False, True), (True, False)):
        params = _params(logq_correction=logq, item_id_dropout=0.0, user_id_dropout=0.0)
        plain, weights = _batch_loss(_catalogue(), params)
        other, _ = _batch_loss(busy, params, weights)
        assert (plain == pytest.approx(other, rel=1e-6)) is same, (logq, plain, other)


def _unit_catalogue():
    catalogue = _catalogue()
    catalogue.text = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]], np.float32)
    return catalogue


def _set_adapter(model, down, up):
    model.adapter_down.kernel.assign(np.asarray(down, np.float32))
    model.adapter_up.kernel.assign(np.asarray(up, np.float32))


def test_the_adapter_starts_as_the_frozen_encoder_and_tunes_every_text_read():
    catalogue = _unit_catalogue()
    model = two_tower.build(catalogue, _params(encoder_tuning="adapter", adapter_rank=1))
    np.testing.assert_allclose(model.tuned_text(), catalogue.text, atol=1e-6)  # up starts at zero
    # down reads the first coordinate, up writes it to the second: t' = unit(t + t_0 e_1)
    _set_adapter(model, [[1.0], [0.0], [0.0]], [[0.0, 1.0, 0.0]])
    s = 1 / math.sqrt(2)
    # item 3: (0.6, 0.8 + 0.6, 0) / |.| = (0.6, 1.4, 0) / 1.523155
    n3 = math.hypot(0.6, 1.4)
    expected = np.array([[s, s, 0], [0, 1, 0], [0, 0, 1], [0.6 / n3, 1.4 / n3, 0]])
    np.testing.assert_allclose(model.tuned_text(), expected, atol=1e-6)
    # the text profile averages the tuned texts: items 0 and 2 -> unit((s, s, 1)) = (0.5, 0.5, s)
    np.testing.assert_allclose(model.text_profile(tf.constant([[0, 2, -1, -1]])).numpy(), [[0.5, 0.5, s]], atol=1e-6)
    # the frozen model has no adapter: its text is the catalogue's
    frozen = two_tower.build(catalogue, _params())
    assert frozen.adapter_up is None and not any("adapter" in v.name for v in frozen.trainable_variables)
    np.testing.assert_array_equal(frozen.tuned_text(), catalogue.text)


def test_the_adapter_learns_from_the_loss_and_loads_with_its_tuned_catalogue(tmp_path):
    tf.random.set_seed(4)
    catalogue = _unit_catalogue()
    model = two_tower.build(catalogue, _params(encoder_tuning="adapter", adapter_rank=2))
    rng = tf.random.Generator.from_seed(1)
    with tf.GradientTape() as tape:
        loss = RetrievalLoss()(model, tf.constant([1, 2]), tf.constant([0, 2]), tf.constant([[3, -1, -1, -1], [1, 3, -1, -1]]),
                                  tf.zeros([2, 3]), tf.ones([2]), rng, batch_size=2)
    up = next(v for v in model.trainable_variables if "adapter_up" in v.name)
    grad = tape.gradient(loss, up)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0  # the text term reaches the adapter
    _set_adapter(model, [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    two_tower.save(model, catalogue, ModelFolder(tmp_path), {})
    loaded, served = two_tower.load_model(ModelFolder(tmp_path))
    # the folder keeps the frozen text; the served catalogue holds the tuned one, which the model does not tune twice
    np.testing.assert_array_equal(loaded.text.numpy(), catalogue.text)
    np.testing.assert_allclose(served.text, model.tuned_text(), atol=1e-6)
    np.testing.assert_allclose(loaded.tuned_text(), model.tuned_text(), atol=1e-6)
