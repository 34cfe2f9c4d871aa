"""The rankers' inputs: the model's sides for the ranked users, the users' histories and text
profiles (content kNN, attribute profile), Spark MLlib ALS refitted at every k, and the ground
truth's affinity (rec_lib.evaluation.truth); `build_rankers` makes one ranker per
`evaluate.methods` entry.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rec_lib.core.config import EvaluateJobConfig, EvaluateSection
from rec_lib.core.errors import ConfigError
from rec_lib.core.progress import timed
from rec_lib.core.schema import ITEM_TEXT_EMBEDDINGS
from rec_lib.evaluation import truth
from rec_lib.evaluation.rankers import (
    AttributeProfileRanker,
    ContentKnnRanker,
    FactorRanker,
    ModelInputs,
    ModelRanker,
    OracleRanker,
    PopularRanker,
    RandomRanker,
    Ranker,
    TowerRanker,
)
from rec_lib.evaluation.window import EvaluationSet
from rec_lib.platform import filesystem as fs
from rec_lib.platform import io
from rec_lib.platform.spark import index_frame, sorted_index
from rec_lib.training.facade import (
    FewShotSettings,
    ItemSides,
    before_cutoff,
    pair_weights,
    users_of,
)

if TYPE_CHECKING:
    from rec_lib.training.facade import FittedModel, TrainingData


log = logging.getLogger(__name__)


def model_inputs(fitted: FittedModel, items: np.ndarray, launch_ts: np.ndarray, users: np.ndarray,
                 cfg: EvaluateJobConfig) -> ModelInputs:
    """The model's side of the evaluation for the users of `users` (a bounded sample: embedded on
    the driver as the Spark tasks embed every user)."""
    catalogue = fitted.data.catalogue
    rows = np.searchsorted(catalogue.item_ids, items)
    if catalogue.n_users[rows].any():
        raise AssertionError("a new item has training interactions: the cutoff was not honoured")
    known, sides = fitted.sides_of(users)
    content = ItemSides(fitted.content[rows], catalogue.text[rows], catalogue.attr_vectors[rows],
                        catalogue.prior[rows].astype(np.float64), np.full(len(rows), "content", dtype=object))
    return ModelInputs(users=sides, user_row={u: i for i, u in enumerate(known["user_id"])},
                       content=content, launch_ts=launch_ts, rate_offset=catalogue.rate_offset, weights=fitted.blend,
                       temperature=cfg.train.temperature, settings=FewShotSettings.of(cfg.few_shot))


def user_histories(data: TrainingData, users: np.ndarray) -> Dict[str, np.ndarray]:
    """user_id -> catalogue rows of the user's latest items before the cutoff (what the model's
    user tower sees); users without history are left out. A bounded lookup (training.data.users_of)."""
    table = users_of(data, users)
    table = table[table["n_history"] > 0]
    return {u: h[h >= 0] for u, h in zip(table["user_id"], table["history"])}


def raw_text(spark: SparkSession, warehouse: str, item_ids: np.ndarray) -> np.ndarray:
    """[len(item_ids), text_dim]: the items' text embeddings as the encoder wrote them (not centred)."""
    wanted = index_frame(spark, item_ids, "item_id", "row")
    rows = (io.read_table(spark, warehouse, ITEM_TEXT_EMBEDDINGS).join(F.broadcast(wanted), "item_id")
            .select("row", "embedding").toPandas().sort_values("row"))
    return np.stack(rows["embedding"].map(lambda v: np.asarray(v, np.float32)).to_list())


def history_profiles(data: TrainingData, users: np.ndarray, text: np.ndarray) -> Dict[str, np.ndarray]:
    """user_id -> mean of `text` [n_items, dim] over the user's history (see `user_histories`)."""
    return {u: text[rows].mean(axis=0) for u, rows in user_histories(data, users).items()}


class AlsFitter:
    """Spark MLlib ALS (implicit feedback) on the interactions before the cutoff plus the revealed
    pairs of the new items, refitted for every k; returns the factors of the wanted users and items.
    Users are numbered by Spark (platform.spark.sorted_index) and only the wanted users' and items'
    factors come back to the driver."""

    def __init__(self, spark: SparkSession, interactions: DataFrame, cutoff: datetime, ev: EvaluateSection,
                 user_ids: DataFrame, item_ids: np.ndarray, users: np.ndarray, items: np.ndarray):
        self.spark, self.ev = spark, ev
        self.item_ids = np.asarray(item_ids, str)  # index order
        self.user_index = sorted_index(user_ids, "user_id", "u").cache()
        self.item_index = index_frame(spark, self.item_ids, "item_id", "i")
        self.wanted_users = spark.createDataFrame(pd.DataFrame({"user_id": np.unique(np.asarray(users, str))}),
                                                  "user_id string")
        self.items = set(items)
        self.past = (pair_weights(before_cutoff(interactions, cutoff))
                     .join(self.user_index, "user_id").join(F.broadcast(self.item_index), "item_id")
                     .select("u", "i", F.log1p("weight_sum").cast("float").alias("rating"))).cache()

    def __call__(self, k: int, shown: pd.DataFrame) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        from pyspark.ml.recommendation import ALS

        if not len(shown):  # the new items have no interaction before the cutoff: no factor without revealed pairs
            log.info("ALS at k=%d: no revealed pair of a new item, nothing to fit", k)
            return {}, {}
        extra = (self.spark.createDataFrame(pd.DataFrame({
            "user_id": shown["user_id"].astype(str), "item_id": shown["item_id"].astype(str),
            "rating": np.log1p(shown["first_weight"].to_numpy(np.float64)).astype(np.float32)}),
            "user_id string, item_id string, rating float")
            .join(self.user_index, "user_id").join(F.broadcast(self.item_index), "item_id").select("u", "i", "rating"))
        ratings = self.past.unionByName(extra)
        ev = self.ev
        als = ALS(rank=ev.als_rank, maxIter=ev.als_iterations, regParam=ev.als_reg, alpha=ev.als_alpha,
                  implicitPrefs=True, userCol="u", itemCol="i", ratingCol="rating", seed=ev.seed)
        with timed(log, f"fit ALS at k={k}"):
            model = als.fit(ratings)
        wanted = self.user_index.join(F.broadcast(self.wanted_users), "user_id")
        users = {r["user_id"]: np.asarray(r["features"])
                 for r in model.userFactors.join(wanted, F.col("id") == F.col("u")).select("user_id", "features").collect()}
        items = {self.item_ids[r["id"]]: np.asarray(r["features"]) for r in model.itemFactors.collect()
                 if self.item_ids[r["id"]] in self.items}
        return users, items

    def close(self) -> None:
        self.past.unpersist()
        self.user_index.unpersist()


def build_rankers(spark: SparkSession, cfg: EvaluateJobConfig, fitted: FittedModel, ts: EvaluationSet,
                  interactions: DataFrame, notes: List[str]) -> Tuple[List[Ranker], Optional[AlsFitter]]:
    """One ranker per evaluate.methods entry (oracle only where the shop has a ground truth); what
    each cannot do is added to `notes`. The ALS fitter holds a Spark model: close it after use."""
    ev = cfg.evaluate
    rankers: List[Ranker] = []
    als: Optional[AlsFitter] = None
    inputs: Optional[ModelInputs] = None  # the model's sides, for the model and the tower alone
    for method in ev.methods:
        if method in ("model", "tower"):
            inputs = inputs or model_inputs(fitted, ts.items, ts.launch_ts, ts.needed, cfg)
            rankers.append((ModelRanker if method == "model" else TowerRanker)(inputs, ts.items))
        elif method == "random":
            rankers.append(RandomRanker(len(ts.items), ev.seed))
        elif method == "popular":
            rankers.append(PopularRanker(ts.items, ts.launch_ts))
        elif method == "content_knn":
            catalogue = fitted.data.catalogue
            text = raw_text(spark, cfg.paths.warehouse, catalogue.item_ids)
            rankers.append(ContentKnnRanker(history_profiles(fitted.data, ts.users, text),
                                            text[np.searchsorted(catalogue.item_ids, ts.items)]))
        elif method == "attribute_profile":
            catalogue = fitted.data.catalogue
            rankers.append(AttributeProfileRanker(user_histories(fitted.data, ts.users), catalogue.attr_ids,
                                                  catalogue.attr_weights, np.searchsorted(catalogue.item_ids, ts.items)))
        elif method == "als":
            als = AlsFitter(spark, interactions, ts.cutoff, ev, fitted.data.users.select("user_id"),
                            fitted.data.catalogue.item_ids, ts.users, ts.items)
            rankers.append(FactorRanker(ts.items, als))
            notes.append("als cannot score an item nobody interacted with: n/a at k=0 (scorable_items 0)")
        elif method == "oracle":
            folder = ground_truth_folder(spark, cfg)
            if folder is None:
                notes.append("oracle: no ground truth (only the generated shop has one)")
                continue
            rankers.append(OracleRanker(oracle_affinity_rows(spark, folder, ts.users, ts.items), len(ts.items)))
            notes.append("oracle ranks by the generated shop's true affinity; users still choose at random, "
                         "so it stays below 1.0")
    return rankers, als


def ground_truth_folder(spark: SparkSession, cfg: EvaluateJobConfig) -> Optional[str]:
    """The configured folder (an error when it lacks the contract's files), else the input's
    `ground_truth` where there is one, else None ('' turns the oracle off)."""
    configured = cfg.evaluate.ground_truth
    if configured == "":
        return None
    folder = configured if configured is not None else fs.join_path(cfg.paths.input, "ground_truth")
    if fs.path_exists(spark, fs.join_path(folder, "users.parquet")):
        return folder
    if configured is not None:
        raise ConfigError(f"evaluate.ground_truth {configured!r} has no users.parquet / items.parquet")
    return None


def oracle_affinity_rows(spark: SparkSession, folder: str, users: np.ndarray, items: np.ndarray) -> Dict[str, np.ndarray]:
    """user_id -> ground-truth affinity with each new item (-inf where the truth lacks the item)."""
    wanted = spark.createDataFrame(pd.DataFrame({"user_id": np.unique(np.asarray(users, str))}), "user_id string")
    truth_users = (spark.read.parquet(fs.join_path(folder, "users.parquet"))
                   .join(F.broadcast(wanted), "user_id", "left_semi")
                   .toPandas().sort_values("user_id").reset_index(drop=True))  # the ranked users only
    truth_items = spark.read.parquet(fs.join_path(folder, "items.parquet")).toPandas()
    beta = float(json.loads(fs.read_text(spark, fs.join_path(folder, "params.json")))["beta"])
    truth_items = truth_items.set_index(truth_items["item_id"].astype(str))
    known = np.isin(items, truth_items.index)
    affinity = np.full((len(truth_users), len(items)), -np.inf)
    if len(truth_users) and known.any():
        affinity[:, known] = truth.affinity(truth_users, truth_items.loc[items[known]].reset_index(drop=True), beta)
    return dict(zip(truth_users["user_id"].astype(str), affinity))

