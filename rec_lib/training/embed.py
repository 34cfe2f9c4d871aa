"""Every user's and item's vectors from a trained model, and new items adapted from their first users
(numpy and TensorFlow; no Spark)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from rec_lib.core.schema import EmbeddingSource
from rec_lib.training import few_shot
from rec_lib.training.catalogue import Catalogue

EMBED_BATCH = 4096


def user_vectors(model, users: pd.DataFrame) -> np.ndarray:
    import tensorflow as tf

    out = []
    for start in range(0, len(users), EMBED_BATCH):
        part = users.iloc[start:start + EMBED_BATCH]
        out.append(model.encode_users(
            tf.constant(np.stack(part["history"].to_list()), tf.int32),
            tf.constant(np.stack(part["user_numeric"].to_list()), tf.float32),
            tf.constant(part["user_slot"].to_numpy(np.int32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.params.embedding_dim), np.float32)


def user_text_profiles(model, users: pd.DataFrame) -> np.ndarray:
    """[n_users, text_dim]: each user's normalised mean history text (zeros without a history)."""
    import tensorflow as tf

    out = [model.text_profile(tf.constant(np.stack(users["history"].iloc[start:start + EMBED_BATCH].to_list()),
                                          tf.int32)).numpy()
           for start in range(0, len(users), EMBED_BATCH)]
    return np.concatenate(out) if out else np.zeros((0, int(model.text.shape[1])), np.float32)


def with_text(vectors: np.ndarray, text: Optional[np.ndarray], text_weight: float) -> np.ndarray:
    """The vectors the embedding tables hold: [vectors, sqrt(w) * text] with the text-affinity
    term (so one dot product gives both parts of the score), the vectors alone without it."""
    if text is None or text_weight <= 0:
        return vectors.astype(np.float32)
    return np.concatenate([vectors, np.sqrt(text_weight) * text], axis=1).astype(np.float32)


def item_vectors(model, n_items: int, use_ids: bool) -> Tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    vectors, biases = [], []
    for start in range(0, n_items, EMBED_BATCH):
        index = tf.range(start, min(start + EMBED_BATCH, n_items), dtype=tf.int32)
        v, b = model.item_vectors(index, tf.fill(tf.shape(index), use_ids))
        vectors.append(v.numpy())
        biases.append(b.numpy())
    return np.concatenate(vectors), np.concatenate(biases).astype(np.float64)


@dataclass
class ItemEmbeddings:
    vectors: np.ndarray  # unit [N, d]
    bias: np.ndarray  # [N]
    source: np.ndarray  # str [N]
    text: np.ndarray  # [N, text_dim]: the text side of the text-affinity term


def adapt_catalogue(catalogue: Catalogue, trained: Tuple[np.ndarray, np.ndarray],
                    content: Tuple[np.ndarray, np.ndarray], first_users: Dict[int, np.ndarray],
                    settings: few_shot.FewShotSettings, max_k: int, rate_scale: float,
                    first_profiles: Optional[Dict[int, np.ndarray]] = None) -> ItemEmbeddings:
    """Items with an id embedding keep their trained vector; the others start from content and are
    adapted from their users so far (`first_users`: catalogue row -> user vectors, oldest first;
    `first_profiles`: the same users' text profiles, which move the item's text side alike)."""
    vectors, bias, text = trained[0].copy(), trained[1].copy(), catalogue.text.copy()
    source = np.full(len(catalogue), EmbeddingSource.TRAINED, dtype=object)
    for row in np.flatnonzero(catalogue.id_slot == 0):
        users = first_users.get(int(row), np.zeros((0, vectors.shape[1]), np.float32))[:max_k]
        vectors[row], bias[row] = few_shot.adapt(content[0][row], float(content[1][row]), users,
                                                 float(catalogue.exposure_days[row]), rate_scale, settings)
        adapted = len(users) > 0 and settings.method != "none"
        if adapted and first_profiles and int(row) in first_profiles:
            text[row] = few_shot.adapt_text(catalogue.text[row], first_profiles[int(row)][:max_k], settings)
        source[row] = EmbeddingSource.FEW_SHOT if adapted else EmbeddingSource.CONTENT
    return ItemEmbeddings(vectors, bias, source, text)


def user_sources(users: pd.DataFrame) -> np.ndarray:
    return np.where(users["user_slot"] > 0, EmbeddingSource.USER_ID,
                    np.where(users["n_history"] > 0, EmbeddingSource.USER_HISTORY, EmbeddingSource.USER_FEATURES_ONLY))
