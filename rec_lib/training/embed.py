"""Every user's and item's vectors from a trained model, the blend of the score's parts fitted on
the launch cohorts, and new items adapted from their first users (numpy and TensorFlow; no Spark).

`UserRowsTask` is what a Spark task runs over its share of the users (`mapInPandas`): it loads the
model from its folder once and turns batches of user inputs into `user_embeddings` rows, so every
user is embedded where the data is and the driver never holds them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Tuple, Union

import numpy as np
import pandas as pd

from rec_lib.core.clock import epoch_s
from rec_lib.core.process import worker_setup
from rec_lib.core.schema import EmbeddingSource
from rec_lib.training import attributes, few_shot
from rec_lib.training.blend import COMPONENTS, Blend, BlendWeights, fit_weights, nearest_fitted, without_part
from rec_lib.training.catalogue import Catalogue
from rec_lib.training.model_folder import ModelFolder
from rec_lib.training.prior import prior_as_of
from rec_lib.training.sides import UserSides, adapt_item, take, user_rows

if TYPE_CHECKING:
    from rec_lib.training.cohorts import LaunchCohort
    from rec_lib.training.data import TrainingData

EMBED_BATCH = 4096


def history_matrix(users: pd.DataFrame) -> np.ndarray:
    return np.stack(users["history"].to_list()).astype(np.int32) if len(users) else np.zeros((0, 0), np.int32)


def sides_of(model, history: np.ndarray, numeric: np.ndarray, slots: np.ndarray, catalogue: Catalogue) -> UserSides:
    """The users' parts of the score (tower vector, text profile, attribute profile) from their
    history [U, H] (catalogue rows, -1 padded), numbers [U, n] and user-id rows [U], EMBED_BATCH
    users at a time, so the gathered history vectors ([batch, H, text width]) stay bounded."""
    import tensorflow as tf

    n = len(history)
    tower = np.zeros((n, model.params.embedding_dim), np.float32)
    text = np.zeros((n, int(model.text.shape[1])), np.float32)
    attr = np.zeros((n, catalogue.attr_vectors.shape[1]), np.float32)
    for start in range(0, n, EMBED_BATCH):
        part = slice(start, start + EMBED_BATCH)
        h = tf.constant(history[part], tf.int32)
        tower[part] = model.encode_users(h, tf.constant(numeric[part], tf.float32),
                                         tf.constant(slots[part], tf.int32)).numpy()
        text[part] = model.text_profile(h).numpy()
        attr[part] = attributes.profiles(history[part], catalogue.attr_vectors)
    return UserSides(tower, text, attr)


def user_sides(model, users: pd.DataFrame, catalogue: Catalogue) -> UserSides:
    """Every user's parts of the score, from user inputs (training.pairs.USER_INPUT_COLUMNS)."""
    numeric = (np.stack(users["user_numeric"].to_list()).astype(np.float32) if len(users)
               else np.zeros((0, 0), np.float32))
    return sides_of(model, history_matrix(users), numeric, users["user_slot"].to_numpy(np.int32), catalogue)


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
class _CohortState:
    """What a launch cohort's blend fit reads, computed once for every k."""

    cohort: "LaunchCohort"
    users: UserSides  # every cohort user's sides as of the cohort's start (no user id embedding)
    content: np.ndarray  # [L, d] the launches' content vectors
    prior: np.ndarray  # [L] the prior as fitted at the cohort's start


def _cohort_state(model, data: "TrainingData", cohort: "LaunchCohort", launch_days: int) -> _CohortState:
    import tensorflow as tf

    catalogue, content = data.catalogue, data.content
    users = sides_of(model, cohort.history, cohort.user_numeric, np.zeros(len(cohort.user_ids), np.int32), catalogue)
    vectors, _ = model.item_vectors(tf.constant(cohort.launches, tf.int32), tf.zeros([len(cohort.launches)], tf.bool))
    prior = prior_as_of(catalogue.launched_s, content.tokens, content.fields, content.numeric, content.early_users,
                        cohort.start_s, epoch_s(data.data_start), launch_days).values
    return _CohortState(cohort, users, vectors.numpy(), prior[cohort.launches])


def cohort_components(state: _CohortState, catalogue: Catalogue, k: int, temperature: float,
                      settings: few_shot.FewShotSettings, rate_offset: float):
    """(components name -> [U, L'], positives [U, L'], valid [U, L']) of a cohort at k revealed
    users per launch: its launches with more than k users in the window, each adapted from its
    first k (training.sides.adapt_item, as served), against the sampled users; a user is never
    asked about a launch among whose revealed users they are, nor counted for it."""
    c = state.cohort
    keep = np.flatnonzero(c.n_came > k)
    rows = np.flatnonzero(c.sampled)
    names = ["tower", "text", "prior", "pace"] + (["attributes"] if catalogue.attr_vectors.shape[1] else [])
    if not len(keep):
        empty = np.zeros((len(rows), 0))
        return {n: empty for n in names}, empty.astype(bool), empty.astype(bool)
    sides = {n: [] for n in ("tower", "text", "attributes", "prior", "pace")}
    revealed = np.zeros((len(rows), len(keep)), bool)
    position = {int(r): i for i, r in enumerate(rows)}
    for j, launch in enumerate(keep):
        row = int(c.launches[launch])
        first = c.first[launch, :k]
        first = first[first >= 0]
        exposure = (np.nan if not len(first) else
                    float(few_shot.pace_days(catalogue.launched_s[row], c.first_s[launch, len(first) - 1])))
        t, x, a, p, r = adapt_item(state.content[launch], catalogue.text[row], catalogue.attr_vectors[row],
                                   float(state.prior[launch]), take(state.users, first), len(first), exposure,
                                   catalogue.rate_offset if rate_offset is None else rate_offset, settings)
        for name, value in (("tower", t), ("text", x), ("attributes", a), ("prior", p), ("pace", r)):
            sides[name].append(value)
        for u in first:
            if int(u) in position:
                revealed[position[int(u)], j] = True
    users = take(state.users, rows)
    items = {n: np.asarray(v) for n, v in sides.items()}
    components = {"tower": users.tower @ items["tower"].T / temperature, "text": users.text @ items["text"].T,
                  "prior": np.broadcast_to(items["prior"], (len(rows), len(keep))).copy(),
                  "pace": np.broadcast_to(items["pace"], (len(rows), len(keep))).copy()}
    if "attributes" in names:
        components["attributes"] = users.attributes @ items["attributes"].T
    positives = c.positives[rows][:, keep] & ~revealed
    return components, positives, ~revealed


def fit_blend(model, data: "TrainingData", launch_days: int, temperature: float, ks, settings: few_shot.FewShotSettings,
              fallback: BlendWeights) -> Blend:
    """The blend's weights at each k of `ks`, fitted on every launch cohort at once (training.blend):
    the cohorts' rows stacked, each over its own launches (padded to a common width)."""
    if not data.cohorts:
        return Blend.single(BlendWeights(fallback.weights, False, "no launch cohort before the cutoff"))
    states = [_cohort_state(model, data, c, launch_days) for c in data.cohorts]
    by_k, without = {}, {part: {} for part in COMPONENTS}
    for k in sorted(ks):
        parts = [cohort_components(st, data.catalogue, k, temperature, settings, None) for st in states]
        parts = [p for p in parts if p[1].shape[1]]
        if not parts:
            by_k[k] = BlendWeights(fallback.weights, False, f"no launch with more than {k} users in a cohort")
            for part in COMPONENTS:
                without[part][k] = BlendWeights({**fallback.weights, part: 0.0}, False, by_k[k].reason)
            continue
        width = max(p[1].shape[1] for p in parts)

        def pad(matrix: np.ndarray, fill) -> np.ndarray:
            return np.pad(matrix, ((0, 0), (0, width - matrix.shape[1])), constant_values=fill)

        names = sorted(set.intersection(*[set(p[0]) for p in parts]))
        # in the parts' own precision (fit_weights works in float64 a block of rows at a time)
        components = {n: np.concatenate([pad(np.asarray(p[0][n]), 0.0) for p in parts]) for n in names}
        positives = np.concatenate([pad(p[1], False) for p in parts])
        valid = np.concatenate([pad(p[2], False) for p in parts])
        n_launches = sum(p[1].shape[1] for p in parts)
        del parts  # the per-cohort matrices: only the stacked ones are needed from here
        by_k[k] = fit_weights(components, positives, fallback, valid=valid, n_launches=n_launches)
        for part in COMPONENTS:
            without[part][k] = without_part(components, positives, by_k[k], part, valid, n_launches)
    if not any(w.fitted for w in by_k.values()):
        return Blend(by_k)
    return Blend(nearest_fitted(by_k), {part: nearest_fitted(w) for part, w in without.items()})


def user_sources(users: pd.DataFrame) -> np.ndarray:
    return np.where(users["user_slot"] > 0, EmbeddingSource.USER_ID,
                    np.where(users["n_history"] > 0, EmbeddingSource.USER_HISTORY, EmbeddingSource.USER_FEATURES_ONLY))


# The columns a UserRowsTask yields (the rest of user_embeddings is constant per run: added in Spark).
USER_ROW_COLUMNS = "user_id string, embedding array<float>, source string, n_history int, history_items array<string>"


def history_items(users: pd.DataFrame, catalogue: Catalogue) -> List[List[str]]:
    """Per user the item ids of the history their vector was built from (newest first)."""
    return [[] if h is None else [str(catalogue.item_ids[i]) for i in np.asarray(h) if i >= 0] for h in users["history"]]


class UserRowsTask:
    """user inputs (training.pairs.USER_INPUT_COLUMNS) -> USER_ROW_COLUMNS, for `mapInPandas`: the
    model is loaded from `folder` once per task (its catalogue, sizes and weights), then every batch
    is embedded as `user_sides` + `sides.user_rows` embed them on the driver. `folder`: the model
    folder's path, or a callable that gives it in the task (training.store.ModelStore.task_folder).
    Picklable: it holds only that and the blend."""

    def __init__(self, folder: Union[str, Callable[[], str]], blend: Blend, temperature: float, tf_threads: int = 0):
        self.folder, self.blend, self.temperature, self.tf_threads = folder, blend, temperature, tf_threads

    def load(self):
        from rec_lib.training import two_tower

        folder = self.folder if isinstance(self.folder, str) else self.folder()
        return two_tower.load_model(ModelFolder(Path(folder)))

    def rows(self, model, catalogue: Catalogue, users: pd.DataFrame) -> pd.DataFrame:
        users = users.reset_index(drop=True)
        sides = user_sides(model, users, catalogue)
        return pd.DataFrame({"user_id": users["user_id"].astype(str),
                             "embedding": list(user_rows(sides, self.blend, self.temperature)),
                             "source": user_sources(users).astype(str),
                             "n_history": users["n_history"].astype(np.int32),
                             "history_items": history_items(users, catalogue)})

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        worker_setup(self.tf_threads)
        loaded: Optional[tuple] = None
        for batch in batches:
            if not len(batch):
                continue
            loaded = loaded or self.load()
            yield self.rows(*loaded, batch)
