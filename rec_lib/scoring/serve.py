"""Serving lists in Spark: candidates, the users' lists (exact top-K, rules, exposure floor) in one
distributed pass over the users, and the figures of written lists. The scoring job and the
evaluation's backtest (which runs this same code on the model of its cutoff) share it.

No cross join: every user (with an embedding, or new since training) streams through
`mapInPandas` in blocks. The candidates reach the executors as files (`SparkContext.addFile`) in
tiles of `score.max_tile_items`, read by memory map one tile at a time, so a worker holds one tile
whatever the catalogue's size; the exact top-K kernel (`rec_lib.scoring.kernel`, faiss) keeps a
running top list across tiles. With the exposure floor (`rec_lib.scoring.floor`) a first pass over
the users finds each new candidate's threshold. Users without an embedding get a fallback list of
popular candidates, by their favourite category where known, in the same pass.

What the driver holds: the candidates (catalogue-sized: ids, vectors while the tile files are
written, categories, popularity) and one threshold per new candidate, never users or interactions.
"""
from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Dict, Iterator, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rec_lib.core.clock import utc_naive
from rec_lib.core.config import ScoreSection
from rec_lib.core.errors import ConfigError, RecError
from rec_lib.core.schema import LIST_METRICS
from rec_lib.platform import io
from rec_lib.scoring.floor import FLOOR_ROUNDS, OFFER_FACTOR, ItemTop, apply_floor, gaps, new_item_scores
from rec_lib.scoring.kernel import Rules, augment_candidates, augment_users, set_threads, top_k_tiles
from rec_lib.scoring.list_metrics import list_figures
from rec_lib.scoring.lists import (
    Candidates,
    FallbackLists,
    fallback_frame,
    fallback_lists,
    model_frame,
    personal_order,
)

log = logging.getLogger(__name__)

TOP_SCHEMA = "user_id string, rank int, item_id string, score double, source string"


class ScoringError(RecError):
    """Scoring cannot start: embeddings missing or from different models, or no candidates."""


def resolve_run_date(score: ScoreSection, now: datetime) -> date:
    if score.run_date is None:
        return now.date()
    try:
        return date.fromisoformat(score.run_date)
    except ValueError as exc:
        raise ConfigError(f"score.run_date must be YYYY-MM-DD, got {score.run_date!r}") from exc


def candidate_frame(items: DataFrame, item_emb: DataFrame, stats: DataFrame, score: ScoreSection,
                    run_date: date) -> DataFrame:
    """item_id, embedding, bias, category, is_new, popularity of the items that may be recommended
    on run_date. Launched by then (items not launched yet are not active), and, unless
    score.candidates is 'all', new: launched within new_item_days before run_date (the launch is
    launch_ts, else the first interaction; an item with neither has never been seen: new), plus,
    with score.long_tail, the long-tail pool of established items with fewer than
    max_new_item_users users (not new: score.new_item_quota keeps places for the launches)."""
    day_end = F.lit(datetime.combine(run_date + timedelta(days=1), datetime.min.time())).cast("timestamp")
    window_start = F.lit(datetime.combine(run_date - timedelta(days=score.new_item_days),
                                          datetime.min.time())).cast("timestamp")
    n_users = F.coalesce(F.col("n_users"), F.lit(0))
    launched = F.coalesce(F.col("launch_ts"), F.col("first_interaction_ts"))
    is_new = launched.isNull() | (launched >= window_start)
    long_tail = (n_users < score.max_new_item_users) if score.long_tail else F.lit(False)
    frame = (items.select("item_id", "category", "launch_ts")
             .join(item_emb.select("item_id", "embedding", "bias"), "item_id")
             .join(stats.select("item_id", "n_users", "weighted_interactions", "first_interaction_ts"), "item_id", "left")
             .where(launched.isNull() | (launched < day_end))
             .select("item_id", "embedding", "bias", F.coalesce("category", F.lit("")).alias("category"),
                     is_new.alias("is_new"), long_tail.alias("long_tail"),
                     F.coalesce("weighted_interactions", F.lit(0.0)).alias("popularity")))
    chosen = frame if score.candidates == "all" else frame.where(F.col("is_new") | F.col("long_tail"))
    return chosen.drop("long_tail")


def collect_candidates(frame: DataFrame) -> Candidates:
    pdf = frame.orderBy("item_id").toPandas()
    names = sorted(set(pdf["category"]))
    codes = {c: i for i, c in enumerate(names)}
    return Candidates(
        item_ids=pdf["item_id"].to_numpy(dtype=str),
        vectors=np.stack([np.asarray(v, np.float32) for v in pdf["embedding"]]) if len(pdf) else np.zeros((0, 0), np.float32),
        bias=pdf["bias"].to_numpy(np.float64), category=pdf["category"].map(codes).to_numpy(np.int64),
        is_new=pdf["is_new"].to_numpy(bool), popularity=pdf["popularity"].to_numpy(np.float64), category_names=names)


@dataclass(frozen=True)
class TileFiles:
    """The candidates as files shipped to every executor (`SparkContext.addFile`), read by memory
    map: a task maps one tile at a time, so its memory holds one tile whatever the catalogue's size.
    `tiles`: (first candidate index, file name) per tile of augmented vectors [n, d + 1]."""
    tiles: Tuple[Tuple[int, str], ...]
    item_ids: str  # str [N]
    category: str  # int32 [N]
    is_new: str  # bool [N]
    new_index: str  # int64 [N_new]: the new candidates' indices (the exposure floor's items)
    bias: str  # float64 [N]: the candidates' biases (the personal order subtracts them)
    prefix: str = ""


def _save(spark: SparkSession, folder: str, prefix: str, name: str, array: np.ndarray) -> str:
    path = os.path.join(folder, f"{prefix}-{name}.npy")
    np.save(path, array)
    spark.sparkContext.addFile(path)
    return os.path.basename(path)


def ship_candidates(spark: SparkSession, cands: Candidates, max_tile_items: int, folder: str) -> TileFiles:
    """Write the candidate files under `folder` (names unique to this call) and add them to the job."""
    prefix = f"rec-candidates-{uuid.uuid4().hex[:12]}"

    def save(name: str, array: np.ndarray) -> str:
        return _save(spark, folder, prefix, name, array)

    tiles = tuple((lo, save(f"tile{lo}", augment_candidates(cands.vectors[lo:lo + max_tile_items],
                                                             cands.bias[lo:lo + max_tile_items])))
                  for lo in range(0, len(cands), max_tile_items))
    return TileFiles(tiles=tiles, item_ids=save("ids", cands.item_ids.astype(str)),
                     category=save("category", cands.category.astype(np.int32)), is_new=save("new", cands.is_new),
                     new_index=save("new-index", np.flatnonzero(cands.is_new).astype(np.int64)),
                     bias=save("bias", cands.bias.astype(np.float64)), prefix=prefix)


class _TaskCandidates:
    """What a scoring task maps of the candidate files (see TileFiles)."""

    def __init__(self, files: TileFiles):
        from pyspark import SparkFiles, TaskContext

        task = TaskContext.get()
        set_threads(task.cpus() if task is not None else 1)

        def mapped(name: str) -> np.ndarray:
            return np.load(SparkFiles.get(name), mmap_mode="r")

        self.mapped = mapped
        self.item_ids, self.category, self.is_new = mapped(files.item_ids), mapped(files.category), mapped(files.is_new)
        self.new_index = np.asarray(mapped(files.new_index))
        self.bias = mapped(files.bias)
        # one tile stays mapped for the whole task; several are mapped in turn for each block of users
        self.tiles = ([(files.tiles[0][0], (lambda tile=mapped(files.tiles[0][1]): tile))] if len(files.tiles) == 1
                      else [(start, (lambda name=name: mapped(name))) for start, name in files.tiles])


def _blocks(frames: Iterator[pd.DataFrame], batch: int):
    """(user_ids, embeddings known mask, seen lists, block) per block of `batch` users."""
    for pdf in frames:
        for lo in range(0, len(pdf), batch):
            part = pdf.iloc[lo:lo + batch]
            seen = [None if s is None else np.asarray(s, np.int64) for s in part["seen"]]
            yield part["user_id"].to_numpy(), part["embedding"].notna().to_numpy(), seen, part


def _block_gaps(task: _TaskCandidates, users: np.ndarray, seen, rules: Rules):
    """The block's lists (idx, score), its scores for the new candidates and their gaps (scoring.floor)."""
    idx, score = top_k_tiles(users, task.tiles, seen, rules, task.category, task.is_new)
    new_scores = new_item_scores(users, task.tiles, task.new_index)
    return idx, score, new_scores, gaps(new_scores, score[:, -1], seen, task.new_index, idx)


def _item_top_partition(files: TileFiles, rules: Rules, n_floor: int, batch: int):
    """mapInPandas function of the floor's first pass: users with an embedding -> per new candidate
    the task's `n_floor` best (gap, user) entries (cand, user_id, gap)."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        task = _TaskCandidates(files)
        top = ItemTop.empty(n_floor, len(task.new_index))
        for user_ids, known, seen, part in _blocks(frames, batch):
            if not known.any() or not len(task.new_index):
                continue
            users = augment_users(np.stack(part["embedding"].to_numpy()[known]))
            *_, gap = _block_gaps(task, users, [s for s, m in zip(seen, known) if m], rules)
            top = top.add(gap, user_ids[known])
        cand, user, gap = top.rows(task.new_index)
        yield pd.DataFrame({"cand": cand.astype(np.int64), "user_id": user.astype(str), "gap": gap})

    return run


def _score_partition(files: TileFiles, rules: Rules, lists: FallbackLists, batch: int, order: str = "score"):
    """mapInPandas function: users (user_id, embedding or null, seen, top_category, floor) -> their
    list: the model's top k where they have an embedding, with their floor items (scoring.floor),
    else a fallback list."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        task = _TaskCandidates(files)
        for user_ids, known, seen, part in _blocks(frames, batch):
            if known.any():
                users = augment_users(np.stack(part["embedding"].to_numpy()[known]))
                known_seen = [s for s, m in zip(seen, known) if m]
                idx, score = top_k_tiles(users, task.tiles, known_seen, rules, task.category, task.is_new)
                floor = ([None if f is None else np.asarray(f, np.int64) for f in part["floor"].to_numpy()[known]]
                         if "floor" in part.columns else [])
                if any(f is not None and len(f) for f in floor):
                    new_scores = new_item_scores(users, task.tiles, task.new_index)
                    idx, score, _ = apply_floor(idx, score, floor, new_scores, task.new_index)
                if order == "personal":
                    idx, score = personal_order(idx, score, np.asarray(task.bias))
                yield model_frame(user_ids[known], idx, score, task.item_ids)
            if not known.all():
                yield fallback_frame(user_ids[~known], part["top_category"].to_numpy()[~known],
                                     [s for s, m in zip(seen, known) if not m], lists, rules.k, task.item_ids)

    return run


def floor_pairs(spark: SparkSession, users: DataFrame, files: TileFiles, rules: Rules, n_floor: int,
                max_slots: int, users_per_batch: int) -> DataFrame:
    """user_id, floor (candidate indices): the exposure floor's pairs (scoring.floor), all in Spark.
    Offers come from one pass over the users; then rounds of deferred acceptance on them: every
    item short of its floor proposes to its next best users, every user keeps the proposals of the
    largest gaps that fit (at most max_slots from outside the list, and no more floor pairs than the
    list has places; those already in the list take no slot) and rejects the rest, until no item
    has anyone left to ask or FLOOR_ROUNDS have run (a warning says so). The offers are at most
    OFFER_FACTOR x floor per new candidate, whatever the number of users."""
    offers = users.where(F.col("embedding").isNotNull()).mapInPandas(
        _item_top_partition(files, rules, OFFER_FACTOR * n_floor, users_per_batch),
        "cand long, user_id string, gap double")
    by_item = Window.partitionBy("cand").orderBy(F.col("gap").desc(), F.col("user_id"))
    state = (offers.withColumn("_r", F.row_number().over(by_item)).where(F.col("_r") <= OFFER_FACTOR * n_floor)
             .withColumn("status", F.lit("idle")).localCheckpoint())
    outside = F.col("gap") < F.lit(float("inf"))  # not in the user's list (+inf): takes one of their floor slots
    for rounds in range(1, FLOOR_ROUNDS + 1):
        held = F.sum(F.when(F.col("status") == "held", 1).otherwise(0)).over(Window.partitionBy("cand"))
        idle_rank = F.sum(F.when(F.col("status") == "idle", 1).otherwise(0)).over(by_item.rowsBetween(
            Window.unboundedPreceding, Window.currentRow))
        proposed = state.withColumn("status", F.when((F.col("status") == "idle") & (idle_rank <= n_floor - held),
                                                     F.lit("proposed")).otherwise(F.col("status")))
        if proposed.where(F.col("status") == "proposed").limit(1).count() == 0:
            log.info("exposure floor: %d round(s) of deferred acceptance", rounds - 1)
            break
        by_user = Window.partitionBy("user_id").orderBy(F.col("gap").desc(), F.col("cand"))
        asking = F.col("status").isin("held", "proposed")
        so_far = by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        slot = F.sum(F.when(asking & outside, 1).otherwise(0)).over(so_far)
        place = F.sum(F.when(asking, 1).otherwise(0)).over(so_far)  # held pairs inside the list come first
        fits = ~outside | ((slot <= max_slots) & (place <= rules.k))
        state = proposed.withColumn("status", F.when(asking & fits, F.lit("held"))
                                    .when(asking, F.lit("rejected")).otherwise(F.col("status"))).localCheckpoint()
    else:  # the cap, not the offers, ended the rounds
        log.warning("exposure floor: stopped after %d rounds of deferred acceptance with launches still asking; "
                    "some may fall short of their floor (floor_reached says how many reached it)", FLOOR_ROUNDS)
    # held pairs inside a list are kept there too: an insertion must not push out another launch's floor
    return state.where(F.col("status") == "held").groupBy("user_id").agg(F.collect_list("cand").alias("floor"))


def score_users(spark: SparkSession, users: DataFrame, cands: Candidates, rules: Rules, max_tile_items: int,
                users_per_batch: int, folder: str, min_exposure: int = 0, max_floor_slots: int = 0,
                order: str = "score") -> DataFrame:
    """users (user_id, embedding or null, seen: candidate indices, top_category) -> user_id, rank,
    item_id, score, source: one list per user. With `min_exposure` > 0 the exposure floor's pairs
    come first (scoring.floor: a pass over the users and three small windows) and each list takes
    its floor items (at most `max_floor_slots`); `order` 'personal' orders each list by the personal
    part of the score (scoring.lists.personal_order). The candidate files go under `folder`, which
    must outlive the returned frame's evaluation."""
    files = ship_candidates(spark, cands, max_tile_items, folder)
    lists = fallback_lists(cands, rules.k)
    if min_exposure > 0 and max_floor_slots > 0 and cands.is_new.any():
        floor = floor_pairs(spark, users, files, rules, min_exposure, min(max_floor_slots, rules.k), users_per_batch)
        users = users.join(floor, "user_id", "left")
    return users.mapInPandas(_score_partition(files, rules, lists, users_per_batch, order), TOP_SCHEMA)


def seen_candidates(interactions: DataFrame, cands: Candidates, spark: SparkSession) -> DataFrame:
    """user_id, seen: the candidate indices each user has interacted with (in `interactions`)."""
    index = spark.createDataFrame(pd.DataFrame({"item_id": cands.item_ids, "cand": np.arange(len(cands), dtype=np.int32)}))
    return (interactions.select("user_id", "item_id").distinct()
            .join(F.broadcast(index), "item_id").groupBy("user_id").agg(F.collect_list("cand").alias("seen")))


def served_rows(spark: SparkSession, users: DataFrame, cands: Candidates, sc: ScoreSection, folder: str) -> DataFrame:
    """user_id, rank, item_id, score, source of every user's list under the job's rules and floor."""
    rules = Rules(k=sc.k, max_per_category=sc.max_per_category, new_item_quota=min(sc.new_item_quota, sc.k))
    return score_users(spark, users, cands, rules, sc.max_tile_items, sc.users_per_batch, folder,
                       sc.min_new_item_exposure, sc.max_floor_slots, sc.order)


def lists_figures(lists: DataFrame, cands: Candidates, k: int, min_exposure: int) -> Dict[str, float]:
    """scoring.list_metrics of written lists (user_id, rank, item_id): one aggregation, one row per
    candidate shown back to the driver."""
    per_item = lists.groupBy("item_id").agg(F.count(F.lit(1)).alias("exposure"),
                                            F.sum(F.when(F.col("rank") == 1, 1).otherwise(0)).alias("first"))
    totals = {r["item_id"]: (r["exposure"], r["first"]) for r in per_item.collect()}
    exposure = np.asarray([totals.get(i, (0, 0))[0] for i in cands.item_ids], np.float64)
    first = np.asarray([totals.get(i, (0, 0))[1] for i in cands.item_ids], np.float64)
    return list_figures(exposure, first, cands.is_new, int(first.sum()), k, min_exposure or None)


def write_list_metrics(spark: SparkSession, warehouse: str, figures: Dict[str, float], run_id: str, run_date: date,
                       source: str, version: str, now: datetime) -> None:
    """Replace the rows of this (run_id, source) in `list_metrics` (one commit)."""
    rows = pd.DataFrame({"run_id": run_id, "run_date": run_date, "source": source, "model_version": version,
                         "metric": list(figures), "value": [float(v) for v in figures.values()],
                         "computed_at": pd.Timestamp(utc_naive(now))})
    io.replace_partition(spark.createDataFrame(rows[list(LIST_METRICS.columns)], LIST_METRICS.schema), LIST_METRICS,
                         warehouse, "run_id", run_id, user_metadata=run_id, also={"source": source})
