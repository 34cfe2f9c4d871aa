"""The two-tower model (TensorFlow 2.15 / Keras 2): the towers, the encoder's adapter, saving and loading
(the loss that trains them is rec_lib.training.loss).

Item tower: category, brand and price-bucket embeddings, a weighted bag of the item's attribute
tokens (training.attributes: every further items column) and, with `text_in_item_tower` (the
default), the frozen text embedding through a dense layer (its dimensions hidden at random in
training, `text_dropout`), through an MLP. Optionally an item-id embedding hidden at random during
training (DropoutNet, `item_id_dropout` < 1); the shipped configs have none (`item_id_dropout` 1):
the tower is content only, which is all a launch has, so what it learns on warm items is what it
can say about launches. A bias head on the same hidden layer predicts the item's popularity from
content.

User tower: the mean of the item-tower vectors of the user's recent items (the item being scored
left out), the normalised mean of those items' text embeddings, the user's numbers, through an
MLP; plus a user-id embedding, also hidden at random, so a user with history but no trained id
still gets a good vector.

score(u, i) = <u, v_i> / temperature + b_i + w <p_u, t_i>, with u and v_i unit vectors, p_u the
user's text profile, t_i the item's text embedding and w >= 0 a fixed weight (`text_weight`; 0,
the default: no such term, the towers learn from the text themselves). With w > 0 the towers learn
the residual of the text term; on launches that residual (popularity, what ids explain) carried
nothing the served blend used. For scoring both parts go into one dot product: user
[u, sqrt(w) p_u] . item [v / temperature, sqrt(w) t_i].
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from rec_lib.core.files import atomic_write
from rec_lib.training.catalogue import Catalogue
from rec_lib.training.model_folder import ModelFolder

NEG_INF = -1e9


@dataclass(frozen=True)
class ModelParams:
    embedding_dim: int
    hidden_dim: int
    temperature: float
    item_id_dropout: float
    user_id_dropout: float
    extra_negatives: int
    n_user_slots: int
    n_user_numeric: int
    history_length: int
    text_dropout: float = 0.0  # share of text-embedding dimensions hidden per item and step in training
    text_weight: float = 0.0  # w of the text-affinity term w * <user text profile, item text>; 0: none
    text_in_item_tower: bool = True  # the item tower's content path reads the text embedding
    logq_correction: bool = True  # candidates' logits corrected by log E[times sampled] (a folder's params before the key: on)
    encoder_tuning: str = "frozen"  # frozen | adapter: a residual low-rank layer on the encoder's output, trained
    adapter_rank: int = 32  # the adapter's inner width

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ModelParams":
        return cls(**json.loads(text))


def _small() -> tf.keras.initializers.Initializer:
    """Near-zero id embeddings at the start: content carries the first steps. Seeded by the global
    seed (tf.random.set_seed), one initializer per layer."""
    return tf.keras.initializers.RandomNormal(stddev=0.01)


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


class TwoTower(tf.keras.Model):
    def __init__(self, catalogue: Catalogue, params: ModelParams):
        super().__init__(name="two_tower")
        self.params = params
        d, h = params.embedding_dim, params.hidden_dim
        self.n_items = len(catalogue)
        self.text = tf.constant(catalogue.text, tf.float32)
        self.category = tf.constant(catalogue.category, tf.int32)
        self.brand = tf.constant(catalogue.brand, tf.int32)
        self.price = tf.constant(catalogue.price_bucket, tf.int32)
        self.id_slot = tf.constant(catalogue.id_slot, tf.int32)
        self.attr_ids = tf.constant(catalogue.attr_ids, tf.int32)
        self.attr_weights = tf.constant(catalogue.attr_weights, tf.float32)
        log_q = catalogue.train_log_q()
        self.train_q = tf.constant(np.where(np.isfinite(log_q), np.exp(log_q), 0.0), tf.float32)

        dense = tf.keras.layers.Dense
        self.adapter_down = self.adapter_up = None
        if params.encoder_tuning == "adapter":
            # zero at the start (the up-projection): training starts from the frozen encoder's vectors
            self.adapter_down = dense(params.adapter_rank, use_bias=False, name="adapter_down")
            self.adapter_up = dense(int(catalogue.text.shape[1]), use_bias=False, kernel_initializer="zeros",
                                    name="adapter_up")
        self.text_proj = dense(h, activation="relu", name="text_proj") if params.text_in_item_tower else None
        self.category_emb = tf.keras.layers.Embedding(len(catalogue.categories) + 1, 16, name="category_emb")
        self.brand_emb = tf.keras.layers.Embedding(len(catalogue.brands) + 1, 16, name="brand_emb")
        self.price_emb = tf.keras.layers.Embedding(len(catalogue.price_edges) + 2, 8, name="price_emb")
        self.attr_emb = (tf.keras.layers.Embedding(catalogue.attribute_slots + 1, 16, name="attr_emb")
                         if catalogue.attribute_slots > 0 else None)
        self.item_hidden = dense(h, activation="relu", name="item_hidden")
        self.item_out = dense(d, name="item_out")
        self.item_bias_head = dense(1, name="item_bias_head")
        self.item_id_emb = tf.keras.layers.Embedding(catalogue.n_id_slots + 1, d, embeddings_initializer=_small(),
                                                     name="item_id_emb")
        self.item_id_bias = tf.keras.layers.Embedding(catalogue.n_id_slots + 1, 1, embeddings_initializer="zeros",
                                                      name="item_id_bias")
        self.user_hidden = dense(h, activation="relu", name="user_hidden")
        self.user_out = dense(d, name="user_out")
        self.user_id_emb = tf.keras.layers.Embedding(params.n_user_slots + 1, d, embeddings_initializer=_small(),
                                                     name="user_id_emb")

    # -- the encoder's output, tuned --------------------------------------------------------------

    def tune(self, text: tf.Tensor) -> tf.Tensor:
        """[M, text_dim] frozen (centred, unit) text embeddings -> the vectors the model uses: the
        same without an adapter; with one, unit(t + up(down(t))), trained with the towers."""
        if self.adapter_up is None:
            return text
        return l2_normalize(text + self.adapter_up(self.adapter_down(text)))

    def text_of(self, index: tf.Tensor) -> tf.Tensor:
        return self.tune(tf.gather(self.text, index))

    def tuned_text(self, batch: int = 8192) -> np.ndarray:
        """float32 [n_items, text_dim]: every catalogue item's text vector as the model uses it."""
        if self.adapter_up is None:
            return self.text.numpy()
        return np.concatenate([self.tune(self.text[i:i + batch]).numpy() for i in range(0, self.n_items, batch)]
                              or [np.zeros((0, self.text.shape[1]), np.float32)])

    # -- text affinity ------------------------------------------------------------------------

    def text_weight(self) -> tf.Tensor:
        """w of the text-affinity term (a fixed prior weight; 0 when the model has none)."""
        return tf.constant(float(self.params.text_weight))

    def text_profile(self, history: tf.Tensor, exclude: Optional[tf.Tensor] = None) -> tf.Tensor:
        """[B, text_dim]: the normalised mean text embedding of each user's history (catalogue
        rows, -1 padded; `exclude` [B] left out); zeros for users without one."""
        valid = history >= 0
        if exclude is not None:
            valid = tf.logical_and(valid, history != exclude[:, None])
        flat = tf.reshape(tf.maximum(history, 0), [-1])
        text = tf.reshape(self.text_of(flat), tf.concat([tf.shape(history), [-1]], 0))
        return l2_normalize(tf.reduce_sum(text * tf.cast(valid, tf.float32)[:, :, None], axis=1))

    # -- item tower ---------------------------------------------------------------------------

    def item_vectors(self, index: tf.Tensor, keep_id: tf.Tensor,
                     text_mask: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        """Unit vectors [M, d] and biases [M] of catalogue rows `index`; `keep_id` [M] bool says
        whether each item's id embedding may be used (items without one never use it);
        `text_mask` [M, text_dim] (training only) scales the text embedding's dimensions."""
        parts = [
            self.category_emb(tf.gather(self.category, index)),
            self.brand_emb(tf.gather(self.brand, index)),
            self.price_emb(tf.gather(self.price, index)),
        ]
        if self.attr_emb is not None:
            parts.append(self.attribute_bag(index))
        if self.text_proj is not None:
            text = self.text_of(index)
            if text_mask is not None:
                text = text * text_mask
            parts.insert(0, self.text_proj(text))
        content = tf.concat(parts, axis=-1)
        hidden = self.item_hidden(content)
        slot = tf.gather(self.id_slot, index)
        keep = tf.cast(tf.logical_and(keep_id, slot > 0), tf.float32)[:, None]
        vector = self.item_out(hidden) + self.item_id_emb(slot) * keep
        bias = self.item_bias_head(hidden) + self.item_id_bias(slot) * keep
        return l2_normalize(vector), bias[:, 0]

    def attribute_bag(self, index: tf.Tensor) -> tf.Tensor:
        """[M, 16]: the weighted mean of the embeddings of the items' attribute tokens (zeros without any)."""
        ids, weights = tf.gather(self.attr_ids, index), tf.gather(self.attr_weights, index)
        summed = tf.reduce_sum(self.attr_emb(ids) * weights[:, :, None], axis=1)
        return summed / tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1.0)

    # -- user tower ---------------------------------------------------------------------------

    def user_vectors(self, history_vectors: tf.Tensor, history_text: tf.Tensor, history_valid: tf.Tensor,
                     user_numeric: tf.Tensor, user_slot: tf.Tensor, keep_id: tf.Tensor) -> tf.Tensor:
        """history_vectors [B, H, d], history_text [B, H, text_dim], history_valid [B, H] bool,
        user_numeric [B, F], user_slot [B] (0: none), keep_id [B] bool -> unit vectors [B, d]."""
        valid = tf.cast(history_valid, tf.float32)
        count = tf.reduce_sum(valid, axis=1, keepdims=True)
        pooled = tf.reduce_sum(history_vectors * valid[:, :, None], axis=1) / tf.maximum(count, 1.0)
        # the raw text of what the user chose: taste in the encoder's own terms, well separated
        # even where the item tower's vectors (which also carry popularity) are not
        text_profile = l2_normalize(tf.reduce_sum(history_text * valid[:, :, None], axis=1))
        has_history = tf.cast(count > 0, tf.float32)
        hidden = self.user_hidden(tf.concat([pooled, text_profile, user_numeric, has_history], axis=-1))
        keep = tf.cast(tf.logical_and(keep_id, user_slot > 0), tf.float32)[:, None]
        return l2_normalize(self.user_out(hidden) + self.user_id_emb(user_slot) * keep)

    def encode_users(self, history: tf.Tensor, user_numeric: tf.Tensor, user_slot: tf.Tensor,
                     keep_item_ids: Optional[Callable[[tf.Tensor], tf.Tensor]] = None,
                     keep_user_ids: Optional[tf.Tensor] = None,
                     exclude: Optional[tf.Tensor] = None,
                     text_mask: Optional[Callable[[tf.Tensor], tf.Tensor]] = None) -> tf.Tensor:
        """User vectors from history [B, H] (catalogue rows, -1 padded); `exclude` [B] (the item
        being scored in training) is left out of each history. `keep_item_ids(unique rows)` and
        `keep_user_ids` [B] draw the id dropout in training; by default every id is used."""
        flat = tf.reshape(history, [-1])
        unique, position = tf.unique(tf.maximum(flat, 0))
        keep_items = tf.ones_like(unique, tf.bool) if keep_item_ids is None else keep_item_ids(unique)
        vectors, _ = self.item_vectors(unique, keep_items, None if text_mask is None else text_mask(unique))
        shape = tf.concat([tf.shape(history), [-1]], 0)
        history_vectors = tf.reshape(tf.gather(vectors, position), shape)
        history_text = tf.reshape(tf.gather(self.text_of(unique), position), shape)
        valid = history >= 0
        if exclude is not None:
            valid = tf.logical_and(valid, history != exclude[:, None])
        keep_users = tf.ones_like(user_slot, tf.bool) if keep_user_ids is None else keep_user_ids
        return self.user_vectors(history_vectors, history_text, valid, user_numeric, user_slot, keep_users)


# --------------------------------------------------------------------------------------------
# The artifact: everything needed to load a trained model
# --------------------------------------------------------------------------------------------

def build(catalogue: Catalogue, params: ModelParams) -> TwoTower:
    """A model with all its variables created (so checkpoints restore and broadcast immediately)."""
    model = TwoTower(catalogue, params)
    history = tf.fill([1, params.history_length], -1)
    model.encode_users(history, tf.zeros([1, params.n_user_numeric]), tf.zeros([1], tf.int32))
    model.item_vectors(tf.zeros([1], tf.int32), tf.ones([1], tf.bool))
    return model


def write_weights(model: TwoTower, folder: ModelFolder) -> None:
    tf.train.Checkpoint(model=model).write(folder.weights)


def read_weights(model: TwoTower, folder: ModelFolder) -> TwoTower:
    """Restore the weights `write_weights` wrote (optimizer state in a checkpoint is ignored)."""
    status = tf.train.Checkpoint(model=model).read(folder.weights)
    status.expect_partial().assert_existing_objects_matched()
    return model


def write_description(catalogue: Catalogue, params: ModelParams, folder: ModelFolder) -> None:
    """What `build` needs besides the weights: the catalogue, its vocabularies and the sizes."""
    catalogue.save(folder)
    atomic_write(folder.params, params.to_json())


def save(model: TwoTower, catalogue: Catalogue, folder: ModelFolder, extra: Dict[str, object]) -> None:
    write_description(catalogue, model.params, folder)
    write_weights(model, folder)
    atomic_write(folder.description, json.dumps(extra, indent=1, default=str))


def served_catalogue(model: TwoTower, catalogue: Catalogue) -> Catalogue:
    """The catalogue whose text is the model's (tuned, with an adapter): what every part of the score
    reads. The model itself keeps the frozen text it was built from; never build a model from this one."""
    if model.adapter_up is None:
        return catalogue
    return dataclasses.replace(catalogue, text=model.tuned_text())


def load_model(folder: ModelFolder) -> Tuple[TwoTower, Catalogue]:
    """The model and its served catalogue (`served_catalogue`) from a folder's catalogue, sizes and
    weights (what the embedding tasks read; model.json, the run's record, is not needed to rebuild
    the model)."""
    catalogue = Catalogue.load(folder)
    params = ModelParams.from_json(folder.params.read_text())
    model = read_weights(build(catalogue, params), folder)
    return model, served_catalogue(model, catalogue)


def load(folder: ModelFolder) -> Tuple[TwoTower, Catalogue, Dict[str, object]]:
    model, catalogue = load_model(folder)
    return model, catalogue, json.loads(folder.description.read_text())
