"""The evaluation's window and what it evaluates on, built in Spark: the cutoff and test window, the
new items (nobody interacted with them before the cutoff), their users in the window numbered by
arrival, the seeded sample of test users; only each launch's first users and the ranked users'
pairs reach the driver (`EvaluationSet`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import List, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from rec_lib.core.clock import resolve_now
from rec_lib.core.config import EvaluateSection
from rec_lib.core.errors import ConfigError, RecError
from rec_lib.evaluation.rankers import epoch_seconds, held_out, revealed
from rec_lib.platform.columns import timestamp_lit
from rec_lib.training.facade import before_cutoff


class EvaluationError(RecError):
    """The evaluation cannot run on this data (no new items or no test interactions after the cutoff)."""


def resolve_window(interactions: DataFrame, ev: EvaluateSection) -> Tuple[datetime, datetime]:
    """(cutoff, end), UTC. Without a configured cutoff: the day after the newest interaction,
    minus `test_days`. The validation window (`evaluate.window: validation`) is the test_days
    before that: settings are chosen there, and the test window is read once."""
    if ev.cutoff is not None:
        try:
            cutoff = resolve_now(ev.cutoff)
        except ConfigError as exc:
            raise ConfigError(f"evaluate.cutoff must be ISO-8601 (e.g. 2026-10-17T00:00:00Z), got {ev.cutoff!r}") from exc
    else:
        newest = interactions.agg(F.max("ts")).first()[0]
        if newest is None:
            raise EvaluationError("the interactions table is empty: nothing to evaluate")
        day_after = datetime(newest.year, newest.month, newest.day, tzinfo=timezone.utc) + timedelta(days=1)
        cutoff = day_after - timedelta(days=ev.test_days)
    if ev.window == "validation":
        cutoff = cutoff - timedelta(days=ev.test_days)
    return cutoff, cutoff + timedelta(days=ev.test_days)


def new_items(items: DataFrame, interactions: DataFrame, cutoff: datetime, end: datetime) -> DataFrame:
    """item_id, launch_ts of the items nobody interacted with before the cutoff, launched (where
    known) before the end of the test window."""
    seen = before_cutoff(interactions, cutoff).select("item_id").distinct()
    return (items.join(seen, "item_id", "left_anti")
            .where(F.col("launch_ts").isNull() | (F.col("launch_ts") < timestamp_lit(end)))
            .select("item_id", "launch_ts"))


def window_pairs(interactions: DataFrame, new: DataFrame, cutoff: datetime, end: datetime) -> DataFrame:
    """user_id, item_id, first_ts, first_weight (event-type weight of the pair's first event) and
    `arrival` (0-based order of each item's users by first_ts, then user_id) of the new items in
    [cutoff, end): a Spark frame, as large as the window's users."""
    in_window = interactions.where((F.col("ts") >= timestamp_lit(cutoff)) & (F.col("ts") < timestamp_lit(end)))
    pairs = (in_window.join(F.broadcast(new.select("item_id")), "item_id")
             .groupBy("user_id", "item_id")
             .agg(F.min("ts").alias("first_ts"), F.min_by("type_weight", "ts").alias("first_weight")))
    order = Window.partitionBy("item_id").orderBy("first_ts", "user_id")
    return pairs.withColumn("arrival", (F.row_number().over(order) - 1).cast("long"))


def sample_users(users: DataFrame, max_users: int, seed: int) -> np.ndarray:
    """The users of `users` (one column user_id, distinct), sorted; where they are more than
    `max_users` (> 0), the `max_users` first by a seeded hash of their id: a sample Spark draws, so
    the driver receives only the users it keeps."""
    if max_users > 0:
        users = users.orderBy(F.xxhash64("user_id", F.lit(int(seed))), "user_id").limit(max_users)
    return np.sort(users.toPandas()["user_id"].to_numpy(str))


@dataclass
class EvaluationSet:
    """What the protocol evaluates on: new items with more than max(ks) users in the window, their
    pairs, and the users ranked."""

    cutoff: datetime
    end: datetime
    window: str  # "[cutoff, end)" as text
    n_new: int  # new items in the window, evaluated or not
    pairs: pd.DataFrame  # user_id, item_id, first_ts, arrival of the evaluated items: their first max(ks) users' and the ranked users'
    items: np.ndarray  # evaluated item ids, sorted
    launch_ts: np.ndarray  # their launch times, epoch seconds
    test_pairs: pd.DataFrame  # the ranked users' pairs after each item's first max(ks) users
    n_test_users: int  # users with a pair after an item's first max(ks) users (ranked or not)
    users: np.ndarray  # test users ranked (a seeded sample when evaluate.max_users caps them)
    needed: np.ndarray  # users whose vectors the rankers need: the ranked ones and the revealed ones
    n_test_pairs: int  # pairs after each item's first max(ks) users (of every test user)
    popularity: np.ndarray  # [items]: each evaluated item's users in the window


def evaluation_set(spark: SparkSession, interactions: DataFrame, items_table: DataFrame, ev: EvaluateSection) -> EvaluationSet:
    cutoff, end = resolve_window(interactions, ev)
    new = new_items(items_table, interactions, cutoff, end).toPandas()
    window = f"[{cutoff:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M})"
    if new.empty:
        raise EvaluationError(f"no new items: every item was seen before the cutoff {cutoff:%Y-%m-%d %H:%M} "
                              "(set evaluate.cutoff earlier)")
    max_k = max(ev.ks)
    all_pairs = window_pairs(interactions, spark.createDataFrame(new[["item_id"]]), cutoff, end).persist()
    try:
        counts = all_pairs.groupBy("item_id").count().toPandas()  # new items only: catalogue-sized
        evaluated = counts[counts["count"] > max_k].sort_values("item_id")
        if evaluated.empty:
            most = int(counts["count"].max()) if len(counts) else 0
            raise EvaluationError(f"no new item has more than {max_k} users in the test window {window} (the most any "
                                  f"of the {len(new)} new items has is {most}); lower the largest of evaluate.ks, "
                                  "widen evaluate.test_days or move evaluate.cutoff")
        items = evaluated["item_id"].to_numpy(str)
        pairs = all_pairs.join(F.broadcast(spark.createDataFrame(evaluated[["item_id"]])), "item_id")
        test = pairs.where(F.col("arrival") >= max_k)
        test_users = test.select("user_id").distinct()
        n_test_pairs, n_test_users = test.count(), test_users.count()
        users = sample_users(test_users, ev.max_users if ev.max_users < n_test_users else 0, ev.seed)
        # to the driver: every item's first max_k users and the ranked users' pairs, nothing of the others
        ranked = spark.createDataFrame(pd.DataFrame({"user_id": users}), "user_id string")
        kept = pairs.where(F.col("arrival") < max_k).unionByName(test.join(F.broadcast(ranked), "user_id"))
        kept = kept.toPandas().sort_values(["item_id", "arrival"], kind="stable").reset_index(drop=True)
    finally:
        all_pairs.unpersist()
    launch = new.set_index(new["item_id"].astype(str))["launch_ts"].reindex(items)
    needed = np.union1d(users, revealed(kept, max_k)["user_id"].to_numpy(str))
    return EvaluationSet(cutoff, end, window, len(new), kept, items, epoch_seconds(launch), held_out(kept, max_k),
                         n_test_users, users, needed, n_test_pairs, evaluated["count"].to_numpy(np.float64))


def protocol_notes(ts: EvaluationSet, ev: EvaluateSection) -> List[str]:
    max_k = max(ev.ks)
    return [f"evaluated items: the {len(ts.items)} of {ts.n_new} new items with more than {max_k} users in the "
            "test window; every one has exactly k users revealed at each k",
            f"test interactions: each item's users after its first {max_k} ({ts.n_test_pairs:,} pairs), "
            "the same at every k; a user is never shown an item among whose revealed users they are",
            f"test users ranked: {len(ts.users):,} of {ts.n_test_users:,}"
            + (f" (a seeded sample, evaluate.max_users={ev.max_users})" if len(ts.users) < ts.n_test_users else ""),
            "popular ranks items by how fast their first k users came (users per day since launch); "
            "at k=0 all are equal and its order is the seeded tie-break"]
