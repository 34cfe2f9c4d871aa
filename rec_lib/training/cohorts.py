"""Launch cohorts: the launch windows before the cutoff, their launches, a seeded sample of the users
who came to them and each launch's first users, as of each window's start: what the blend of the
score's parts is fitted on (rec_lib.training.blend).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, List, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rec_lib.core.clock import SECONDS_PER_DAY, epoch_s
from rec_lib.platform.spark import index_frame
from rec_lib.training.blend import users_per_cohort
from rec_lib.training.catalogue import USER_NUMERIC, Catalogue, ItemContent
from rec_lib.training.pairs import epoch_col, user_inputs

if TYPE_CHECKING:
    from rec_lib.training.data import DataSettings

log = logging.getLogger(__name__)


@dataclass
class LaunchCohort:
    """One launch window before the cutoff, as the blend sees it (training.blend)."""

    index: int  # 0: the window just before the cutoff
    start_s: float  # the window's start (epoch seconds): users and the prior are taken as of then
    launches: np.ndarray  # int32 [L]: catalogue rows launched in the window
    user_ids: np.ndarray  # str [U]: the sampled users who came to a launch, and each launch's first users
    history: np.ndarray  # int32 [U, H]: their latest items before the start (-1 padded)
    user_numeric: np.ndarray  # float32 [U, F]: their numbers as of the start
    positives: np.ndarray  # bool [U, L]: which launch each sampled user came to within the window
    sampled: np.ndarray  # bool [U]: in the sample (rows the blend is fitted on)
    first: np.ndarray  # int64 [L, max_k]: rows (in user_ids) of each launch's first users, by arrival; -1 pads
    first_s: np.ndarray  # float64 [L, max_k]: when each of them came (epoch seconds)
    n_came: np.ndarray  # int64 [L]: users who came to each launch within the window (all, not only sampled)




def cohort_windows(cutoff_s: float, launch_days: int, n: int) -> List[Tuple[float, float]]:
    """[start, end) of the n launch windows before the cutoff, newest first, each launch_days long."""
    width = launch_days * SECONDS_PER_DAY
    return [(cutoff_s - (j + 1) * width, cutoff_s - j * width) for j in range(n)]


def cohort_items(catalogue: Catalogue, content: ItemContent, start_s: float, end_s: float) -> np.ndarray:
    """Catalogue rows launched in [start, end) that nobody interacted with before start."""
    launched = catalogue.launched_s
    first = content.first_s
    inside = np.isfinite(launched) & (launched >= start_s) & (launched < end_s)
    untouched = ~np.isfinite(first) | (first >= start_s)
    return np.flatnonzero(inside & untouched).astype(np.int32)


def launch_cohorts(spark: SparkSession, interactions: DataFrame, pairs: DataFrame, catalogue: Catalogue,
                   content: ItemContent, cutoff: datetime, settings: DataSettings) -> List[LaunchCohort]:
    """Per launch window before the cutoff: its launches, a seeded sample of the users who came to
    them in the window (at most blend_max_users over all windows, and about blend_max_cells
    users x launches: blend.users_per_cohort), each launch's first
    `max(blend_ks)` users (over all users: whom k-shot adaptation reads), and all of these users'
    history and numbers as of the window's start. Three Spark jobs whatever the number of windows."""
    windows = cohort_windows(epoch_s(cutoff), settings.catalogue.launch_days, settings.launch_cohorts)
    rows = {j: cohort_items(catalogue, content, lo, hi) for j, (lo, hi) in enumerate(windows)}
    rows = {j: r for j, r in rows.items() if len(r)}
    if not rows:
        return []
    launch_index = pd.DataFrame([(int(r), j, windows[j][0], windows[j][1]) for j, rs in rows.items() for r in rs],
                                columns=["item_index", "cohort", "start_s", "end_s"])
    spark_index = spark.createDataFrame(launch_index.assign(item_id=catalogue.item_ids[launch_index.item_index]),
                                        "item_index int, cohort int, start_s double, end_s double, item_id string")
    first_s = epoch_col(F.col("first_ts"))
    came = (pairs.join(F.broadcast(spark_index), "item_id")
            .where((first_s >= F.col("start_s")) & (first_s < F.col("end_s")))
            .select("user_id", "cohort", "item_index", first_s.alias("first_s")))
    widest = max(len(r) for r in rows.values())
    per_cohort = users_per_cohort(len(rows), widest, settings.blend_max_users, settings.blend_max_cells)
    log.info("blend sample: at most about %d user(s) in each of %d launch cohort(s) (the widest has %d launches; "
             "train.blend_max_users %d, train.blend_max_cells %d)", per_cohort, len(rows), widest,
             settings.blend_max_users, settings.blend_max_cells)
    counts = {r["cohort"]: r["n"] for r in came.groupBy("cohort").agg(F.countDistinct("user_id").alias("n")).collect()}
    share = F.lit(1.0)
    for cohort, n in counts.items():
        share = F.when(F.col("cohort") == cohort, F.lit(min(1.0, per_cohort / n))).otherwise(share)
    # a seeded hash of (user, cohort) in [0, 1): the same sample on every run with the same seed
    draw = (F.abs(F.xxhash64("user_id", "cohort", F.lit(settings.seed))) % 1_000_000) / 1_000_000.0
    item_window = Window.partitionBy("cohort", "item_index")
    kept = (came.withColumn("arrival", F.row_number().over(item_window.orderBy("first_s", "user_id")) - 1)
            .withColumn("n_came", F.count(F.lit(1)).over(item_window))
            .withColumn("sampled", draw < share)
            .where(F.col("sampled") | (F.col("arrival") < max(settings.blend_ks, default=0))).toPandas())
    if not kept["sampled"].any():
        return []
    users = kept[["user_id", "cohort"]].drop_duplicates().assign(
        start_s=lambda d: d["cohort"].map({j: w[0] for j, w in enumerate(windows)}))
    past = _cohort_user_inputs(spark, interactions, catalogue, users, settings.history_length)
    max_k = max(settings.blend_ks, default=0)
    return [_cohort(j, windows[j][0], rows[j], kept[kept.cohort == j], past[past.cohort == j],
                    settings.history_length, max_k) for j in sorted(rows) if kept[kept.cohort == j]["sampled"].any()]


def _cohort_user_inputs(spark: SparkSession, interactions: DataFrame, catalogue: Catalogue, users: pd.DataFrame,
                        history_length: int) -> pd.DataFrame:
    """cohort, user_id, history, user_numeric of the sampled users as of their cohort's start."""
    wanted = spark.createDataFrame(users, "user_id string, cohort int, start_s double")
    before = (interactions.join(F.broadcast(wanted), "user_id")
              .where(epoch_col(F.col("ts")) < F.col("start_s")))
    pairs = before.groupBy("cohort", "start_s", "user_id", "item_id").agg(
        F.sum("type_weight").alias("weight_sum"), F.count(F.lit(1)).alias("n_events"),
        F.min("ts").alias("first_ts"), F.max("ts").alias("last_ts"))
    indexed = pairs.join(F.broadcast(index_frame(spark, catalogue.item_ids, "item_id", "item_index")), "item_id")
    keyed = indexed.withColumn("user_id", F.concat_ws("\u001f", F.col("cohort").cast("string"), F.col("user_id")))
    as_of = F.timestamp_seconds(F.first("start_s").over(Window.partitionBy("user_id")))
    with_start = keyed.withColumn("_as_of", as_of)
    inputs = user_inputs(with_start, F.col("_as_of"), history_length, carry=["_as_of"]).toPandas()
    split = inputs["user_id"].str.split("\u001f", n=1, expand=True)
    return inputs.assign(cohort=split[0].astype(int), user_id=split[1])


def _cohort(j: int, start_s: float, launches: np.ndarray, came: pd.DataFrame, past: pd.DataFrame,
            history_length: int, max_k: int) -> LaunchCohort:
    """One cohort's arrays from its rows (user_id, item_index, first_s, arrival, n_came, sampled)."""
    users = np.sort(came["user_id"].unique().astype(str))
    history = np.full((len(users), history_length), -1, np.int32)
    numeric = np.zeros((len(users), len(USER_NUMERIC)), np.float32)
    if len(past):
        at = np.searchsorted(users, past["user_id"].to_numpy(str))
        history[at] = np.stack(past["history"].map(lambda h: np.asarray(h, np.int32)).to_list())
        numeric[at] = np.stack(past["user_numeric"].map(lambda v: np.asarray(v, np.float32)).to_list())
    column = {int(r): i for i, r in enumerate(launches)}
    user_at = np.searchsorted(users, came["user_id"].to_numpy(str))
    item_at = np.asarray([column[int(r)] for r in came["item_index"]], np.int64)
    sampled = came["sampled"].to_numpy(bool)
    positives = np.zeros((len(users), len(launches)), bool)
    positives[user_at[sampled], item_at[sampled]] = True
    first = np.full((len(launches), max_k), -1, np.int64)
    first_s = np.full((len(launches), max_k), np.nan)
    early = came["arrival"].to_numpy() < max_k
    first[item_at[early], came["arrival"].to_numpy()[early]] = user_at[early]
    first_s[item_at[early], came["arrival"].to_numpy()[early]] = came["first_s"].to_numpy()[early]
    n_came = np.zeros(len(launches), np.int64)
    n_came[item_at] = came["n_came"].to_numpy()
    is_sampled = np.zeros(len(users), bool)
    is_sampled[user_at[sampled]] = True
    return LaunchCohort(index=j, start_s=start_s, launches=launches, user_ids=users, history=history,
                        user_numeric=numeric, positives=positives, sampled=is_sampled, first=first, first_s=first_s,
                        n_came=n_came)
