"""The training loss, an object of its own beside the towers (as TensorFlow Recommenders' `tasks`
are): the towers (rec_lib.training.two_tower) say what a user and an item are, the loss how a batch
teaches them.

`RetrievalLoss` is an in-batch softmax: each user's positive against the batch's other positives and
`extra_negatives` uniformly drawn items, at the model's temperature, each logit corrected by
log E[times the item is a candidate] with `logq_correction` (else in-batch candidates drawn by
popularity leave popularity to the score's prior and pace parts). With the encoder's adapter
(`train.encoder_tuning: adapter`) the text part's own softmax is added, so the tuned text learns to
rank what the shop's users chose by their history's text.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from rec_lib.training.two_tower import NEG_INF, TwoTower


class RetrievalLoss:
    """The loss of a TwoTower's training batch; its settings are the model's (ModelParams)."""

    def __call__(self, model: TwoTower, user_slot: tf.Tensor, item_index: tf.Tensor, history: tf.Tensor,
                 user_numeric: tf.Tensor, weight: tf.Tensor, rng: tf.random.Generator, batch_size: int) -> tf.Tensor:
        """The loss of one training batch: each user's positive against the batch's other positives
        and `extra_negatives` uniform items, logQ-corrected. `rng` draws the id dropouts, the text
        dropout and the extra negatives."""
        p = model.params

        def keep_item_ids(unique: tf.Tensor) -> tf.Tensor:
            return rng.uniform(tf.shape(unique)) >= p.item_id_dropout

        def text_mask(index: tf.Tensor) -> Optional[tf.Tensor]:
            # inverted dropout of the text embedding's dimensions: an item's exact text cannot be
            # memorised as a second id, only what generalises (its style, its kind) is learned
            if p.text_dropout <= 0:
                return None
            keep = rng.uniform([tf.shape(index)[0], model.text.shape[1]]) >= p.text_dropout
            return tf.cast(keep, tf.float32) / (1.0 - p.text_dropout)

        keep_users = rng.uniform(tf.shape(user_slot)) >= p.user_id_dropout
        user = model.encode_users(history, user_numeric, user_slot, keep_item_ids, keep_users,
                                 exclude=item_index, text_mask=text_mask)
        negatives = rng.uniform([p.extra_negatives], 0, model.n_items, dtype=tf.int32)
        cand_index = tf.concat([item_index, negatives], 0)
        cand_vectors, cand_bias = model.item_vectors(cand_index, keep_item_ids(cand_index), text_mask(cand_index))
        log_q = (candidate_log_q(model.train_q, cand_index, batch_size, p.extra_negatives, model.n_items)
                 if p.logq_correction else tf.zeros([tf.shape(cand_index)[0]]))
        text_logits, profile, cand_text = None, None, None
        if p.text_weight > 0 or model.adapter_up is not None:
            profile = model.text_profile(history, exclude=item_index)
            cand_text = model.text_of(cand_index)
        if p.text_weight > 0:
            text_logits = model.text_weight() * tf.matmul(profile, cand_text, transpose_b=True)
        loss = sampled_softmax_loss(user, cand_vectors, cand_bias, cand_index, item_index, log_q, weight,
                                    p.temperature, text_logits)
        if model.adapter_up is not None:
            # the tuned encoder is also the score's text part, <text profile, item text>, alone: it
            # learns to rank what the shop's users chose by their history's text
            loss += sampled_softmax_loss(profile, cand_text, tf.zeros_like(cand_bias), cand_index, item_index, log_q,
                                         weight, p.temperature)
        return loss


def sampled_softmax_loss(user: tf.Tensor, cand_vectors: tf.Tensor, cand_bias: tf.Tensor, cand_index: tf.Tensor,
                         positive_index: tf.Tensor, cand_log_q: tf.Tensor, weight: tf.Tensor,
                         temperature: float, extra_logits: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Weighted mean cross-entropy of each user's positive (candidate b for row b) against all
    candidates. Candidates equal to a row's positive (the same item twice in a batch) are masked,
    except on the diagonal. `extra_logits` [B, C] (the text affinity) is added to the scores."""
    batch = tf.shape(user)[0]
    logits = tf.matmul(user, cand_vectors, transpose_b=True) / temperature + cand_bias[None, :] - cand_log_q[None, :]
    if extra_logits is not None:
        logits = logits + extra_logits
    same_item = tf.equal(positive_index[:, None], cand_index[None, :])
    n_cand = tf.shape(cand_index)[0]
    diagonal = tf.cast(tf.eye(batch, n_cand), tf.bool)
    logits = tf.where(tf.logical_and(same_item, tf.logical_not(diagonal)), NEG_INF, logits)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(batch), logits=logits)
    return tf.reduce_sum(losses * weight) / tf.maximum(tf.reduce_sum(weight), 1e-12)


def candidate_log_q(train_q: tf.Tensor, cand_index: tf.Tensor, batch_size: int, extra_negatives: int,
                    n_items: int) -> tf.Tensor:
    """log of the expected number of times each candidate appears among one step's candidates:
    batch_size x its share of training examples (in-batch) + extra_negatives / n_items (uniform)."""
    expected = batch_size * tf.gather(train_q, cand_index) + extra_negatives / float(max(n_items, 1))
    return tf.math.log(tf.maximum(expected, 1e-12))
