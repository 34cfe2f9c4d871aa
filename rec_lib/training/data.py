"""The training stage's inputs, built in Spark from the feature tables, honouring a time cutoff.

- `training_examples` (Delta): one row per (user, item) pair with an interaction before the
  cutoff, holding the user's recent items, a few user numbers and the pair's weight. Petastorm
  streams it to the Horovod workers.
- The catalogue (numpy, saved with the model): what the item tower knows about every item in the
  `items` table, new ones included: its text embedding, category, brand and price bucket, whether it
  has an id embedding, and how often it appears in training (for the logQ correction).
- User inputs (pandas): the same history and numbers for every user in `users`, to embed them all.

Nothing dated at or after the cutoff is read: interactions are filtered before anything is
aggregated, and item popularity, user history and recency are computed from what is left.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rec_lib.core.errors import RecError
from rec_lib.core.schema import INTERACTIONS, ITEM_TEXT_EMBEDDINGS, ITEMS, TRAINING_EXAMPLES, USERS, TableSpec
from rec_lib.platform import io
from rec_lib.platform.columns import days_between, timestamp_lit
from rec_lib.platform.spark import index_frame
from rec_lib.training.catalogue import USER_NUMERIC, Catalogue

log = logging.getLogger(__name__)

class TrainingDataError(RecError):
    """The feature tables cannot make a training set (empty, or an item lacks its text embedding)."""


@dataclass
class TrainingData:
    examples: DataFrame  # TRAINING_EXAMPLES columns
    n_examples: int
    catalogue: Catalogue
    users: pd.DataFrame  # user_id, user_slot, history (int32 [H], -1 padded), n_history, user_numeric
    n_user_slots: int
    cutoff: datetime
    as_of: datetime  # newest interaction used (the 'now' of the training data)
    first_users: pd.DataFrame  # item_index, user_id: users of items without an id slot, oldest first


# --------------------------------------------------------------------------------------------
# Pure transforms
# --------------------------------------------------------------------------------------------


def before_cutoff(interactions: DataFrame, cutoff: Optional[datetime]) -> DataFrame:
    """Interactions strictly before the cutoff (all of them without one)."""
    if cutoff is None:
        return interactions
    return interactions.where(F.col("ts") < timestamp_lit(cutoff))


def pair_weights(interactions: DataFrame) -> DataFrame:
    """user_id, item_id, weight_sum, n_events, first_ts, last_ts: one row per pair."""
    return interactions.groupBy("user_id", "item_id").agg(
        F.sum("type_weight").alias("weight_sum"),
        F.count(F.lit(1)).alias("n_events"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
    )


def user_inputs(pairs_indexed: DataFrame, as_of_ts: Column, history_length: int) -> DataFrame:
    """Per user with history: history (latest `history_length` items, newest first, -1 padded),
    n_history and user_numeric. `pairs_indexed` has user_id, item_index, n_events, last_ts."""
    newest_first = Window.partitionBy("user_id").orderBy(F.col("last_ts").desc(), F.col("item_index"))
    ranked = pairs_indexed.withColumn("_rank", F.row_number().over(newest_first))
    recent = (ranked.where(F.col("_rank") <= history_length)
              .groupBy("user_id")
              .agg(F.sort_array(F.collect_list(F.struct("_rank", "item_index"))).alias("_recent")))
    totals = pairs_indexed.groupBy("user_id").agg(
        F.sum("n_events").alias("_events"), F.count(F.lit(1)).alias("_items"), F.max("last_ts").alias("_last"))
    history = F.transform(F.col("_recent"), lambda s: s["item_index"])
    padded = F.concat(history, F.array_repeat(F.lit(-1), F.lit(history_length) - F.size(history)))
    numeric = F.array(
        F.log1p(F.col("_events")).cast("float"),
        F.log1p(F.col("_items")).cast("float"),
        F.log1p(F.greatest(days_between(as_of_ts, F.col("_last")), F.lit(0.0))).cast("float"),
    )
    return (recent.join(totals, "user_id")
            .select("user_id", padded.cast("array<int>").alias("history"),
                    F.size(history).cast("int").alias("n_history"), numeric.alias("user_numeric")))


def price_bucket(log_price: Column, edges: List[float]) -> Column:
    """0 for a missing price, else 1 + the number of edges at or below log1p(price)."""
    bucket = F.lit(1)
    for edge in edges:
        bucket = bucket + F.when(log_price >= F.lit(edge), 1).otherwise(0)
    return F.when(log_price.isNull(), F.lit(0)).otherwise(bucket).cast("int")


def vocabulary(df: DataFrame, column: str) -> List[str]:
    """Distinct non-empty values, sorted; value i gets index i + 1 (0 is 'unknown')."""
    rows = df.where(F.col(column).isNotNull() & (F.col(column) != "")).select(column).distinct().collect()
    return sorted(r[0] for r in rows)


def _index_of(column: str, vocab: List[str]) -> Column:
    if not vocab:
        return F.lit(0)
    mapping = F.create_map(*[x for i, v in enumerate(vocab) for x in (F.lit(v), F.lit(i + 1))])
    return F.coalesce(mapping[F.col(column)], F.lit(0)).cast("int")


# --------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------


def build_training_data(spark: SparkSession, warehouse: str, cutoff: Optional[datetime],
                        history_length: int, min_item_interactions: int, price_buckets: int) -> TrainingData:
    interactions = before_cutoff(io.read_table(spark, warehouse, INTERACTIONS), cutoff)
    items = io.read_table(spark, warehouse, ITEMS)
    text = io.read_table(spark, warehouse, ITEM_TEXT_EMBEDDINGS)
    users = io.read_table(spark, warehouse, USERS)

    pairs = pair_weights(interactions).cache()
    n_examples, as_of = _count_and_as_of(pairs, cutoff)
    as_of_ts = F.lit(as_of).cast("timestamp")
    _check_text_embeddings(items, text)
    catalogue = _catalogue(items, text, pairs, as_of_ts, min_item_interactions, price_buckets)

    pairs_indexed = pairs.join(F.broadcast(index_frame(spark, catalogue.item_ids, "item_id", "item_index")), "item_id")
    with_history = user_inputs(pairs_indexed, as_of_ts, history_length)
    slotted = with_history.withColumn("user_slot", F.row_number().over(Window.orderBy("user_id")).cast("int"))
    all_users = (users.select("user_id").union(pairs.select("user_id")).distinct()
                 .join(slotted, "user_id", "left"))
    users_pdf = _fill_users_without_history(all_users.orderBy("user_id").toPandas(), history_length)

    examples = (pairs_indexed.join(slotted, "user_id")
                .select("user_slot", F.col("item_index").cast("int").alias("item_index"), "history", "user_numeric",
                        F.log1p(F.col("weight_sum")).cast("float").alias("weight")))
    first_users = _first_users(spark, pairs_indexed, catalogue)
    pairs.unpersist()
    log.info("training data: %d examples, %d items (%d with an id embedding), %d users (%d with history), as of %s",
             n_examples, len(catalogue), catalogue.n_id_slots, len(users_pdf), int((users_pdf.user_slot > 0).sum()), as_of)
    return TrainingData(examples=examples, n_examples=n_examples, catalogue=catalogue, users=users_pdf,
                        n_user_slots=int(users_pdf.user_slot.max()), cutoff=cutoff or as_of, as_of=as_of,
                        first_users=first_users)


def _count_and_as_of(pairs: DataFrame, cutoff: Optional[datetime]) -> Tuple[int, datetime]:
    """(training pairs, the newest interaction among them): the training data's 'now' (the cutoff
    when nothing is dated)."""
    stats = pairs.agg(F.count(F.lit(1)).alias("n"), F.max("last_ts").alias("as_of")).first()
    if not stats["n"]:
        where = f"before the cutoff {cutoff.isoformat()}" if cutoff else "in the interactions table"
        raise TrainingDataError(f"the training table would be empty: no interactions {where}")
    as_of = stats["as_of"]
    return int(stats["n"]), (cutoff if cutoff is not None and as_of is None else as_of)


def _check_text_embeddings(items: DataFrame, text: DataFrame) -> None:
    missing = items.join(text, "item_id", "left_anti")
    n_missing = missing.count()
    if n_missing:
        example = missing.select("item_id").orderBy("item_id").first()[0]
        raise TrainingDataError(f"{n_missing} item(s) have no text embedding (e.g. {example!r}); "
                                "run the embedding job first (make embed)")


def _catalogue(items: DataFrame, text: DataFrame, pairs: DataFrame, as_of_ts: Column, min_item_interactions: int,
               price_buckets: int) -> Catalogue:
    """Every item in item_id order with its text, vocabulary indices, price bucket, id slot (items
    with at least `min_item_interactions` users get one) and exposure so far."""
    categories, brands = vocabulary(items, "category"), vocabulary(items, "brand")
    log_price = F.log1p(F.when(F.col("price") >= 0, F.col("price")))
    quantiles = [i / price_buckets for i in range(1, price_buckets)]
    edges = (items.select(log_price.alias("lp")).where(F.col("lp").isNotNull())
             .approxQuantile("lp", quantiles, 0.001) if quantiles else [])
    edges = sorted(set(edges))

    per_item = pairs.groupBy("item_id").agg(F.count(F.lit(1)).alias("n_users"), F.min("first_ts").alias("first_ts"))
    launched = F.coalesce(F.col("launch_ts"), F.col("first_ts"))
    has_slot = F.col("n_users") >= min_item_interactions
    slot_order = Window.partitionBy(has_slot).orderBy("item_id")
    catalogue_df = (items.join(text.select("item_id", "embedding"), "item_id")
                    .join(per_item, "item_id", "left")
                    .withColumn("n_users", F.coalesce(F.col("n_users"), F.lit(0)))
                    .select(
                        "item_id", "embedding", "n_users",
                        (F.row_number().over(Window.orderBy("item_id")) - 1).cast("int").alias("item_index"),
                        _index_of("category", categories).alias("category"),
                        _index_of("brand", brands).alias("brand"),
                        price_bucket(log_price, edges).alias("price_bucket"),
                        F.when(has_slot, F.row_number().over(slot_order)).otherwise(0).cast("int").alias("id_slot"),
                        F.when(launched <= as_of_ts, days_between(as_of_ts, launched)).alias("exposure_days"),
                    ))
    cat = catalogue_df.orderBy("item_index").toPandas()
    return Catalogue(
        item_ids=cat["item_id"].to_numpy(dtype=str),
        text=np.stack(cat["embedding"].map(lambda v: np.asarray(v, dtype=np.float32)).to_list()),
        category=cat["category"].to_numpy(np.int32), brand=cat["brand"].to_numpy(np.int32),
        price_bucket=cat["price_bucket"].to_numpy(np.int32), id_slot=cat["id_slot"].to_numpy(np.int32),
        n_users=cat["n_users"].to_numpy(np.int64),
        exposure_days=cat["exposure_days"].astype("float64").to_numpy(),
        categories=categories, brands=brands, price_edges=[float(e) for e in edges],
    )


def _first_users(spark: SparkSession, pairs_indexed: DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    """item_index, user_id of the items without an id embedding, each item's users in order of
    arrival: what few-shot adaptation reads."""
    no_slot = np.flatnonzero((catalogue.id_slot == 0) & (catalogue.n_users > 0)).astype(np.int32)
    wanted = spark.createDataFrame(pd.DataFrame({"item_index": no_slot}), "item_index int")
    return (pairs_indexed.join(F.broadcast(wanted), "item_index")
            .select("item_index", "user_id", "first_ts")
            .orderBy("item_index", "first_ts", "user_id").toPandas()[["item_index", "user_id"]])


def _fill_users_without_history(users_pdf: pd.DataFrame, history_length: int) -> pd.DataFrame:
    no_history = users_pdf["user_slot"].isna()
    users_pdf["user_slot"] = users_pdf["user_slot"].fillna(0).astype(np.int32)
    users_pdf["n_history"] = users_pdf["n_history"].fillna(0).astype(np.int32)
    empty, zeros = np.full(history_length, -1, np.int32), np.zeros(len(USER_NUMERIC), np.float32)
    users_pdf["history"] = [empty if missing else np.asarray(h, np.int32)
                            for h, missing in zip(users_pdf["history"], no_history)]
    users_pdf["user_numeric"] = [zeros if missing else np.asarray(v, np.float32)
                                 for v, missing in zip(users_pdf["user_numeric"], no_history)]
    return users_pdf


def write_examples(data: TrainingData, warehouse: str, model_version: str, partitions: int,
                   table: TableSpec = TRAINING_EXAMPLES) -> DataFrame:
    """Overwrite `training_examples` (or another table of its schema; tagged with the model
    version) and return it, read back from Delta, in at least `partitions` files so every Horovod
    worker gets a shard."""
    io.overwrite_table(data.examples.repartition(partitions), table, warehouse, user_metadata=model_version)
    spark = data.examples.sparkSession
    return io.read_table(spark, warehouse, table)
