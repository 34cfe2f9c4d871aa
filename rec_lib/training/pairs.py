"""Spark building blocks of the training data: the interactions before a cutoff, each (user, item)
pair's weight, the users' inputs (latest items, numbers, hashed id slot) as of a time.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rec_lib.platform.columns import days_between, timestamp_lit

USER_INPUT_COLUMNS = ("user_id", "user_slot", "history", "n_history", "user_numeric")


def epoch_col(col: Column) -> Column:
    """A timestamp column as epoch seconds (double)."""
    return col.cast("double")


def before_cutoff(interactions: DataFrame, cutoff: Optional[datetime]) -> DataFrame:
    """Interactions strictly before the cutoff (all of them without one)."""
    if cutoff is None:
        return interactions
    return interactions.where(F.col("ts") < timestamp_lit(cutoff))


def user_id_bucket(user_id: Column, buckets: int) -> Column:
    """The user's row of the user-id embedding: 1 + (xxhash64(user_id) mod `buckets`), so 1..buckets
    (row 0 is "none"); 0 for everybody when `buckets` is 0. A hash, not a numbering: no window over
    every user, no vocabulary on the driver, and the same user lands in the same row in every run."""
    if buckets <= 0:
        return F.lit(0).cast("int")
    return (F.pmod(F.xxhash64(user_id), F.lit(buckets)) + 1).cast("int")


def pair_weights(interactions: DataFrame) -> DataFrame:
    """user_id, item_id, weight_sum, n_events, first_ts, last_ts: one row per pair."""
    return interactions.groupBy("user_id", "item_id").agg(
        F.sum("type_weight").alias("weight_sum"),
        F.count(F.lit(1)).alias("n_events"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
    )


def user_inputs(pairs_indexed: DataFrame, as_of_ts: Column, history_length: int,
                carry: Sequence[str] = ()) -> DataFrame:
    """Per user with history: history (latest `history_length` items, newest first, -1 padded),
    n_history and user_numeric. `pairs_indexed` has user_id, item_index, n_events, last_ts (and the
    `carry` columns, constant per user, which `as_of_ts` may read)."""
    newest_first = Window.partitionBy("user_id").orderBy(F.col("last_ts").desc(), F.col("item_index"))
    ranked = pairs_indexed.withColumn("_rank", F.row_number().over(newest_first))
    recent = (ranked.where(F.col("_rank") <= history_length)
              .groupBy("user_id")
              .agg(F.sort_array(F.collect_list(F.struct("_rank", "item_index"))).alias("_recent")))
    totals = pairs_indexed.groupBy("user_id").agg(
        F.sum("n_events").alias("_events"), F.count(F.lit(1)).alias("_items"), F.max("last_ts").alias("_last"),
        *[F.first(c).alias(c) for c in carry])
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
