"""The training stage's inputs, built in Spark from the feature tables, honouring a time cutoff.

- `training_examples` (Delta): one row per (user, item) pair with an interaction before the
  cutoff, holding the user's recent items, a few user numbers and the pair's weight. Petastorm
  streams it to the Horovod workers.
- The catalogue (numpy, saved with the model): what the item tower knows about every item in the
  `items` table, new ones included: its text embedding, category, brand and price bucket, whether it
  has an id embedding, and how often it appears in training (for the logQ correction).
- User inputs (a Spark DataFrame, never collected): the same history and numbers for every user in
  `users`, embedded by Spark tasks (training.fit); the driver gets only bounded subsets of it
  (`users_of`: each launch's first users, the evaluation's sampled users).
- The launch prior (training.prior) fitted on the launches whose first `train.launch_days` lie
  before the cutoff, and the launch cohorts (`train.launch_cohorts` windows of `launch_days` before
  the cutoff): each window's launches and a seeded sample of the users who came to them, with their
  history as of the window's start: what the blend of the score's parts is fitted on (training.blend).

Nothing dated at or after the cutoff is read: interactions are filtered before anything is
aggregated, and item popularity, user history and recency are computed from what is left.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rec_lib.core.clock import SECONDS_PER_DAY, epoch_s, utc_naive
from rec_lib.core.errors import RecError
from rec_lib.core.schema import INTERACTIONS, ITEM_TEXT_EMBEDDINGS, ITEMS, TRAINING_EXAMPLES, USERS, TableSpec
from rec_lib.platform import io
from rec_lib.platform.columns import timestamp_lit
from rec_lib.platform.spark import index_frame
from rec_lib.training.catalogue import (
    FIRST_INTERACTION,
    USER_NUMERIC,
    Catalogue,
    CatalogueSettings,
    ItemContent,
    assemble,
    dating,
)
from rec_lib.training.cohorts import LaunchCohort, launch_cohorts
from rec_lib.training.pairs import (
    USER_INPUT_COLUMNS,
    before_cutoff,
    epoch_col,
    pair_weights,
    user_id_bucket,
    user_inputs,
)
from rec_lib.training.prior import prior_as_of

if TYPE_CHECKING:
    from rec_lib.core.config import TrainSection

log = logging.getLogger(__name__)



class TrainingDataError(RecError):
    """The feature tables cannot make a training set (empty, or an item lacks its text embedding)."""


@dataclass
class TrainingData:
    examples: DataFrame  # TRAINING_EXAMPLES columns
    n_examples: int
    catalogue: Catalogue
    users: DataFrame  # USER_INPUT_COLUMNS of every user (Spark: it grows with the shop, the driver never holds it)
    n_users: int
    n_users_with_history: int
    n_user_slots: int  # rows of the user-id embedding besides row 0 (train.user_id_buckets)
    cutoff: datetime
    as_of: datetime  # newest interaction used (the 'now' of the training data)
    first_users: pd.DataFrame  # item_index + USER_INPUT_COLUMNS: the first users of items without an id slot, oldest first
    content: Optional[ItemContent] = None  # what the catalogue was assembled from (the prior refits on it)
    data_start: Optional[datetime] = None  # the oldest interaction used
    cohorts: List[LaunchCohort] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSettings:
    history_length: int = 20
    catalogue: CatalogueSettings = CatalogueSettings()
    launch_cohorts: int = 4  # launch windows before the cutoff the blend is fitted on (0: none)
    blend_max_users: int = 20000  # users sampled over all launch cohorts
    blend_max_cells: int = 2_000_000  # sampled users x the widest cohort's launches, over all cohorts
    blend_ks: Tuple[int, ...] = (0, 1, 3, 10)  # revealed first users at which the blend is fitted
    seed: int = 7
    user_id_buckets: int = 0  # rows of the user-id embedding (user_id_bucket); 0: none
    first_users_per_item: int = 10  # users kept per item without an id embedding (few_shot.max_k: those it blends)

    @classmethod
    def of(cls, t: "TrainSection", few_shot_max_k: int) -> "DataSettings":
        return cls(history_length=t.history_length,
                   catalogue=CatalogueSettings(min_item_interactions=t.min_item_interactions,
                                               price_buckets=t.price_buckets, launch_days=t.launch_days,
                                               attribute_types=dict(t.attribute_types),
                                               attribute_slots=t.attribute_slots, attribute_dims=t.attribute_dims,
                                               text_dims=t.text_dims, item_ids=t.item_id_dropout < 1,
                                               held_out_days=(t.launch_days * t.launch_cohorts
                                                              if t.blend == "learned" and t.hold_out_launches else 0),
                                               cohort_days=t.launch_days * t.launch_cohorts if t.blend == "learned" else 0,
                                               pseudo_launches=t.pseudo_launches,
                                               min_cohort_launches=t.min_cohort_launches),
                   launch_cohorts=t.launch_cohorts if t.blend == "learned" else 0,
                   blend_max_users=t.blend_max_users,
                   blend_max_cells=t.blend_max_cells, blend_ks=tuple(t.blend_ks), seed=t.seed,
                   user_id_buckets=t.user_id_buckets, first_users_per_item=few_shot_max_k)


def build_training_data(spark: SparkSession, warehouse: str, cutoff: Optional[datetime],
                        settings: DataSettings = DataSettings(), tables: Optional[io.Snapshot] = None) -> TrainingData:
    """The training data from the warehouse's tables, each read at its version in `tables` (a
    snapshot taken now where not given), so a feature run committing meanwhile changes nothing."""
    tables = tables or io.Snapshot.take(spark, warehouse, (INTERACTIONS, ITEMS, ITEM_TEXT_EMBEDDINGS, USERS))
    interactions = before_cutoff(tables.read(spark, INTERACTIONS), cutoff)
    items = tables.read(spark, ITEMS)
    text = tables.read(spark, ITEM_TEXT_EMBEDDINGS)
    users = tables.read(spark, USERS)
    history_length = settings.history_length

    pairs = pair_weights(interactions).cache()
    n_examples, as_of, data_start = _count_and_as_of(pairs, cutoff)
    as_of_ts = F.lit(as_of).cast("timestamp")
    _check_text_embeddings(items, text)
    cutoff_at = cutoff or as_of
    catalogue, content = _catalogue(items, text, pairs, settings.catalogue, utc_naive(cutoff_at), as_of)
    prior = prior_as_of(catalogue.launched_s, content.tokens, content.fields, content.numeric, content.early_users,
                        epoch_s(as_of), epoch_s(data_start), settings.catalogue.launch_days)
    catalogue.prior, catalogue.rate_offset = prior.values, prior.rate_offset

    pairs_indexed = pairs.join(F.broadcast(index_frame(spark, catalogue.item_ids, "item_id", "item_index")), "item_id")
    with_history = user_inputs(pairs_indexed, as_of_ts, history_length)
    slotted = with_history.withColumn("user_slot", user_id_bucket(F.col("user_id"), settings.user_id_buckets))
    all_users = all_user_inputs(users.select("user_id").union(pairs.select("user_id")).distinct(), slotted,
                                history_length)
    n_users, n_with_history = _count_users(all_users)

    examples = (pairs_indexed.join(slotted, "user_id")
                .select("user_id", "user_slot", F.col("item_index").cast("int").alias("item_index"), "history", "user_numeric",
                        F.log1p(F.col("weight_sum")).cast("float").alias("weight")))
    held_out = np.flatnonzero(~catalogue.in_training).astype(np.int32)
    if len(held_out):  # the launch cohorts' items train no tower: the blend judges the tower on them
        examples = examples.join(F.broadcast(spark.createDataFrame(pd.DataFrame({"item_index": held_out}),
                                                                   "item_index int")), "item_index", "left_anti")
        n_examples -= int(catalogue.n_users[held_out].sum())
    first_users = _first_users(spark, pairs_indexed, slotted, catalogue, settings.first_users_per_item)
    cohorts = launch_cohorts(spark, interactions, pairs, catalogue, content, utc_naive(cutoff_at), settings)
    pairs.unpersist()
    log.info("training data: %d examples, %d items (%d with an id embedding), %d users (%d with history), as of %s; "
             "%d launch cohort(s) with %d positive pairs", n_examples, len(catalogue), catalogue.n_id_slots,
             n_users, n_with_history, as_of, len(cohorts),
             sum(int(c.positives.sum()) for c in cohorts))
    return TrainingData(examples=examples, n_examples=n_examples, catalogue=catalogue, users=all_users,
                        n_users=n_users, n_users_with_history=n_with_history, n_user_slots=settings.user_id_buckets, cutoff=cutoff_at, as_of=as_of,
                        first_users=first_users, content=content, data_start=data_start, cohorts=cohorts)


def _count_and_as_of(pairs: DataFrame, cutoff: Optional[datetime]) -> Tuple[int, datetime, datetime]:
    """(training pairs, the newest interaction among them, the oldest): the training data's 'now'
    (the cutoff when nothing is dated) and where the record starts."""
    stats = pairs.agg(F.count(F.lit(1)).alias("n"), F.max("last_ts").alias("as_of"),
                      F.min("first_ts").alias("start")).first()
    if not stats["n"]:
        where = f"before the cutoff {cutoff.isoformat()}" if cutoff else "in the interactions table"
        raise TrainingDataError(f"the training table would be empty: no interactions {where}")
    as_of = stats["as_of"]
    return int(stats["n"]), (cutoff if cutoff is not None and as_of is None else as_of), stats["start"]


MAX_ENCODERS_NAMED = 5  # encoders named by the mixed-encoder error (a bounded collect)


def _check_text_embeddings(items: DataFrame, text: DataFrame) -> None:
    """Every item has a text vector, and all of them come from one encoder: a switch of
    `encoder.model` re-encodes every item, and a run killed half-way leaves two widths."""
    encoders = [f"{r['model_name']} ({r['model_version']}, {r['width']}-d)" for r in
                text.join(items.select("item_id"), "item_id").groupBy("model_name", "model_version").agg(F.max(F.size("embedding")).alias("width"))
                .orderBy("model_name", "model_version").limit(MAX_ENCODERS_NAMED).collect()]
    if len(encoders) > 1:
        raise TrainingDataError(f"item_text_embeddings holds vectors of more than one encoder: {', '.join(encoders)}; "
                                "run the embedding job with the chosen encoder.model (make embed) to re-encode "
                                "the rest")
    missing = items.join(text, "item_id", "left_anti")
    n_missing = missing.count()
    if n_missing:
        example = missing.select("item_id").orderBy("item_id").first()[0]
        raise TrainingDataError(f"{n_missing} item(s) have no text embedding (e.g. {example!r}); "
                                "run the embedding job first (make embed)")



def _catalogue(items: DataFrame, text: DataFrame, pairs: DataFrame, settings: CatalogueSettings,
               cutoff: datetime, as_of: datetime) -> Tuple[Catalogue, ItemContent]:
    """Every item in item_id order, one row each (catalogue-sized), assembled by
    `training.catalogue.assemble`: users before the cutoff, first interaction, users within the
    launch window of the launch (launch_ts, else the first interaction), the latest user's arrival."""
    per_item = pairs.groupBy("item_id").agg(F.count(F.lit(1)).alias("n_users"), F.min("first_ts").alias("first_ts"),
                                            F.max("first_ts").alias("latest_ts"))
    dated = items.select("item_id", "launch_ts").join(per_item, "item_id", "left")
    dated_at = _dating(dated, settings, cutoff)
    launched = dated.select("item_id", (F.coalesce("first_ts", "launch_ts") if dated_at == FIRST_INTERACTION
                                        else F.coalesce("launch_ts", "first_ts")).alias("_launched"))
    window_s = settings.launch_days * SECONDS_PER_DAY
    early = (pairs.join(launched, "item_id")
             .where(epoch_col(F.col("first_ts")) < epoch_col(F.col("_launched")) + F.lit(window_s))
             .groupBy("item_id").agg(F.count(F.lit(1)).alias("early_users")))
    frame = (items.select("item_id", "category", "brand", "price", "launch_ts", "attributes")
             .join(text.select("item_id", "embedding"), "item_id")
             .join(per_item, "item_id", "left").join(early, "item_id", "left")
             .select("item_id", "embedding", F.coalesce("n_users", F.lit(0)).alias("n_users"),
                     epoch_col(F.col("first_ts")).alias("first_s"), epoch_col(F.col("launch_ts")).alias("launch_s"),
                     epoch_col(F.col("latest_ts")).alias("latest_s"),
                     F.coalesce("early_users", F.lit(0)).alias("early_users"), "category", "brand",
                     F.when(F.col("price") >= 0, F.col("price")).alias("price"), "attributes")
             .orderBy("item_id").toPandas())
    return assemble(frame, settings, epoch_s(cutoff), epoch_s(as_of), dated_at)


def _dating(dated: DataFrame, settings: CatalogueSettings, cutoff: datetime) -> str:
    """catalogue.dating of the items (item_id, launch_ts, first_ts): one aggregation counting the
    items launched (launch_ts, else first interaction) and those first interacted with in the span
    the launch cohorts cover."""
    if settings.pseudo_launches != "auto" or settings.cohort_days <= 0:
        return dating(settings, 0, 0)

    def within(ts):
        return F.sum(F.when((ts >= timestamp_lit(cutoff - timedelta(days=settings.cohort_days)))
                            & (ts < timestamp_lit(cutoff)), 1).otherwise(0))

    row = dated.agg(within(F.coalesce("launch_ts", "first_ts")).alias("launched"),
                    within(F.col("first_ts")).alias("found")).first()
    launched, found = int(row["launched"] or 0), int(row["found"] or 0)
    dated_at = dating(settings, launched, found)
    if dated_at == FIRST_INTERACTION:
        log.info("launch cohorts: %d item(s) launched in the %d days before the cutoff, fewer than "
                 "train.min_cohort_launches (%d), and %d first interacted with in them: items are dated at their "
                 "first interaction, so those first found in each window are the blend's pseudo-launches",
                 launched, settings.cohort_days, settings.min_cohort_launches, found)
    return dated_at


def _first_users(spark: SparkSession, pairs_indexed: DataFrame, with_history: DataFrame, catalogue: Catalogue,
                 per_item: int) -> pd.DataFrame:
    """item_index and the inputs (USER_INPUT_COLUMNS) of each item without an id embedding's first
    `per_item` users, in order of arrival: what few-shot adaptation blends (the pace reads the
    item's count of users, not this list). The driver holds at most items x `per_item` rows,
    however many users a launch found."""
    no_slot = np.flatnonzero((catalogue.id_slot == 0) & (catalogue.n_users > 0)).astype(np.int32)
    if per_item <= 0 or not len(no_slot):
        return _as_arrays(pd.DataFrame({"item_index": np.zeros(0, np.int32),
                                        **{c: np.zeros(0, object) for c in USER_INPUT_COLUMNS}}))
    wanted = spark.createDataFrame(pd.DataFrame({"item_index": no_slot}), "item_index int")
    arrival = Window.partitionBy("item_index").orderBy("first_ts", "user_id")
    first = (pairs_indexed.join(F.broadcast(wanted), "item_index")
             .withColumn("_arrival", F.row_number().over(arrival)).where(F.col("_arrival") <= per_item)
             .join(with_history, "user_id")
             .select("item_index", "first_ts", *USER_INPUT_COLUMNS)
             .orderBy("item_index", "first_ts", "user_id").toPandas())
    return _as_arrays(first[["item_index", *USER_INPUT_COLUMNS]].reset_index(drop=True))


def all_user_inputs(user_ids: DataFrame, with_history: DataFrame, history_length: int) -> DataFrame:
    """USER_INPUT_COLUMNS of every user in `user_ids` (distinct): those in `with_history` (user_inputs
    with a user_slot) as they are, the others with slot 0, an empty history (-1s) and zero numbers."""
    zeros = F.array(*[F.lit(0.0).cast("float") for _ in USER_NUMERIC])
    return (user_ids.join(with_history, "user_id", "left")
            .select("user_id", F.coalesce("user_slot", F.lit(0)).cast("int").alias("user_slot"),
                    F.coalesce("history", F.array_repeat(F.lit(-1), history_length)).cast("array<int>").alias("history"),
                    F.coalesce("n_history", F.lit(0)).cast("int").alias("n_history"),
                    F.coalesce("user_numeric", zeros).cast("array<float>").alias("user_numeric")))


def _count_users(all_users: DataFrame) -> Tuple[int, int]:
    row = all_users.agg(F.count(F.lit(1)).alias("n"), F.sum((F.col("n_history") > 0).cast("long")).alias("h")).first()
    return int(row["n"]), int(row["h"] or 0)


def users_of(data: TrainingData, user_ids: np.ndarray) -> pd.DataFrame:
    """USER_INPUT_COLUMNS of the users of `user_ids` that `data` knows, sorted by user_id: a bounded
    lookup (as many rows as ids asked for) in the Spark frame of every user."""
    spark = data.users.sparkSession
    ids = np.unique(np.asarray(user_ids, dtype=str))
    wanted = spark.createDataFrame(pd.DataFrame({"user_id": ids}), "user_id string")
    found = data.users.join(F.broadcast(wanted), "user_id").toPandas()
    return _as_arrays(found.sort_values("user_id").reset_index(drop=True))


def _as_arrays(users: pd.DataFrame) -> pd.DataFrame:
    """History and numbers as numpy arrays (int32, float32), whatever Arrow returned."""
    return users.assign(user_id=users["user_id"].astype(str),
                        user_slot=users["user_slot"].astype(np.int32), n_history=users["n_history"].astype(np.int32),
                        history=[np.asarray(h, np.int32) for h in users["history"]],
                        user_numeric=[np.asarray(v, np.float32) for v in users["user_numeric"]])


def write_examples(data: TrainingData, warehouse: str, model_version: str, partitions: int,
                   table: TableSpec = TRAINING_EXAMPLES) -> DataFrame:
    """Overwrite `training_examples` (or another table of its schema; tagged with the model
    version) and return it, read back from Delta at the version this write made (a training of
    another model overwriting it meanwhile does not change these rows), in at least `partitions`
    files so every Horovod worker gets a shard."""
    io.overwrite_table(data.examples.repartition(partitions), table, warehouse, user_metadata=model_version)
    return io.read_written(data.examples.sparkSession, warehouse, table, model_version)
