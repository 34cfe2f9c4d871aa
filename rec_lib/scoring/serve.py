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

import dataclasses
import logging
from datetime import date, datetime, timedelta
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rec_lib.core.clock import check_not_ahead, utc_naive
from rec_lib.core.config import ScoreSection
from rec_lib.core.errors import ConfigError, RecError
from rec_lib.core.schema import ITEM_EMBEDDINGS, LIST_METRICS
from rec_lib.platform import io
from rec_lib.scoring import reasons
from rec_lib.scoring.floor import FLOOR_ROUNDS, OFFER_FACTOR, ItemTop, apply_floor, gaps, new_item_scores
from rec_lib.scoring.kernel import Rules, augment_users, top_k_tiles
from rec_lib.scoring.list_metrics import list_figures
from rec_lib.scoring.lists import (
    Candidates,
    FallbackLists,
    fallback_frame,
    fallback_lists,
    model_frame,
    personal_order,
)
from rec_lib.scoring.tiles import HistoryFile, TaskCandidates, TaskHistory, TileFiles, ship_candidates, ship_history

log = logging.getLogger(__name__)

# a task's rows: the list's columns and its reason, flat (served_rows makes `reason` a struct)
TOP_SCHEMA = ("user_id string, rank int, item_id string, score double, source string, reason_kind string, "
              "reason_item_id string, reason_detail string, reason_share double")
# what the reasons read of item_embeddings (schema.ITEM_EMBEDDINGS); absent in tables trained before them
REASON_INPUTS = ("parts", "prior_score", "pace_score", "pace_days", "expected_users_per_day", "attribute_tokens",
                 "n_users")
SERVED_ITEM_COLUMNS = ("item_id", "embedding", "bias") + REASON_INPUTS  # what candidate_frame reads of it


def served_item_schema():
    """The Spark schema of SERVED_ITEM_COLUMNS (item_embeddings' types), for a frame built elsewhere
    than the table (the evaluation's cutoff model)."""
    from pyspark.sql import types as T

    fields = {f.name: f for f in ITEM_EMBEDDINGS.schema.fields}
    return T.StructType([fields[name] for name in SERVED_ITEM_COLUMNS])


class ScoringError(RecError):
    """Scoring cannot start: embeddings missing or from different models, or no candidates."""


def resolve_run_date(score: ScoreSection, now: datetime) -> date:
    if score.run_date is None:
        return now.date()
    try:
        day = date.fromisoformat(score.run_date)
    except ValueError as exc:
        raise ConfigError(f"score.run_date must be YYYY-MM-DD, got {score.run_date!r}") from exc
    check_not_ahead(day, "score.run_date")
    return day


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
    # what the reasons read, where the table has it (n_users: the users the model's pace counted)
    explained = set(REASON_INPUTS) <= set(item_emb.columns)
    carried = [c for c in REASON_INPUTS if c != "n_users"] + ["model_users"] if explained else []
    reason_columns = [F.col("n_users").alias(c) if c == "model_users" else F.col(c) for c in carried]
    frame = (items.select("item_id", "category", "launch_ts")
             .join(item_emb.select("item_id", "embedding", "bias", *reason_columns), "item_id")
             .join(stats.select("item_id", "n_users", "weighted_interactions", "first_interaction_ts"), "item_id", "left")
             .where(launched.isNull() | (launched < day_end))
             .select("item_id", "embedding", "bias", F.coalesce("category", F.lit("")).alias("category"),
                     is_new.alias("is_new"), long_tail.alias("long_tail"),
                     F.coalesce("weighted_interactions", F.lit(0.0)).alias("popularity"), *carried))
    chosen = frame if score.candidates == "all" else frame.where(F.col("is_new") | F.col("long_tail"))
    return chosen.drop("long_tail")


def collect_candidates(frame: DataFrame) -> Candidates:
    pdf = frame.orderBy("item_id").toPandas()
    names = sorted(set(pdf["category"]))
    codes = {c: i for i, c in enumerate(names)}
    vectors = (np.stack([np.asarray(v, np.float32) for v in pdf["embedding"]]) if len(pdf)
               else np.zeros((0, 0), np.float32))
    return Candidates(
        item_ids=pdf["item_id"].to_numpy(dtype=str), vectors=vectors,
        bias=pdf["bias"].to_numpy(np.float64), category=pdf["category"].map(codes).to_numpy(np.int64),
        is_new=pdf["is_new"].to_numpy(bool), popularity=pdf["popularity"].to_numpy(np.float64), category_names=names,
        explain=_explanations(pdf, vectors))


def _explanations(pdf: pd.DataFrame, vectors: np.ndarray) -> Optional[reasons.Explanations]:
    """The candidates' Explanations from their item_embeddings columns; None (and a warning) where
    the table was written before reasons."""
    if "parts" not in pdf.columns or not len(pdf):
        if len(pdf):
            log.warning("item_embeddings has no reason columns (a model trained before reasons): the lists are "
                        "written with reason null; train again to fill them")
        return None
    if pdf["parts"].isna().any():
        log.warning("item_embeddings rows without reason columns (a model trained before reasons): reason null")
        return None
    parts = [(p["name"], int(p["width"])) for p in pdf["parts"].iloc[0]]
    tokens = [None if t is None else [(x["token"], int(x["slot"]), float(x["weight"])) for x in t]
              for t in pdf["attribute_tokens"]]
    return reasons.build(parts, vectors, pdf["prior_score"].to_numpy(np.float64),
                         pdf["pace_score"].to_numpy(np.float64), pdf["model_users"].to_numpy(np.int64),
                         pdf["pace_days"].to_numpy(np.float64), pdf["expected_users_per_day"].to_numpy(np.float64),
                         tokens)


def _blocks(frames: Iterator[pd.DataFrame], batch: int):
    """(user_ids, embeddings known mask, seen lists, block) per block of `batch` users."""
    for pdf in frames:
        for lo in range(0, len(pdf), batch):
            part = pdf.iloc[lo:lo + batch]
            seen = [None if s is None else np.asarray(s, np.int64) for s in part["seen"]]
            yield part["user_id"].to_numpy(), part["embedding"].notna().to_numpy(), seen, part


def _block_gaps(task: TaskCandidates, users: np.ndarray, seen, rules: Rules):
    """The block's lists (idx, score), its scores for the new candidates and their gaps (scoring.floor)."""
    idx, score = top_k_tiles(users, task.tiles, seen, rules, task.category, task.is_new)
    new_scores = new_item_scores(users, task.tiles, task.new_index)
    return idx, score, new_scores, gaps(new_scores, score[:, -1], seen, task.new_index, idx)


def _item_top_partition(files: TileFiles, rules: Rules, n_floor: int, batch: int):
    """mapInPandas function of the floor's first pass: users with an embedding -> per new candidate
    the task's `n_floor` best (gap, user) entries (cand, user_id, gap)."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        task = TaskCandidates(files)
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


def _reasons(task: TaskCandidates, history: Optional[TaskHistory], users: np.ndarray, idx: np.ndarray,
             score: np.ndarray, part: pd.DataFrame, known: np.ndarray) -> Optional[reasons.Reasons]:
    """The reasons of a block's lists (None: the candidates carry none)."""
    if task.explain is None:
        return None
    if history is None or "recent_items" not in part.columns:
        rows = reasons.padded_history([None] * len(users))
        return reasons.explain(users, idx, task.columns, task.explain, rows, lambda name, r: None, lambda r: None,
                               score=score)
    rows = history.rows(list(part["recent_items"].to_numpy()[known]))
    return reasons.explain(users, idx, task.columns, task.explain, rows, history.block, history.item_ids,
                           task.similar, score)


def _score_partition(files: TileFiles, rules: Rules, lists: FallbackLists, batch: int, order: str = "score",
                     history: Optional[HistoryFile] = None):
    """mapInPandas function: users (user_id, embedding or null, seen, top_category, floor, history,
    history_items) -> their list: the model's top k where they have an embedding, with their floor
    items (scoring.floor), else a fallback list; each row with its reason where the candidates
    carry reasons (files.explain)."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        task = TaskCandidates(files)
        mapped = TaskHistory(history) if history is not None and task.explain is not None else None
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
                why = _reasons(task, mapped, users[:, :-1], idx, score, part, known)
                yield model_frame(user_ids[known], idx, score, task.item_ids, why)
            if not known.all():
                yield fallback_frame(user_ids[~known], part["top_category"].to_numpy()[~known],
                                     [s for s, m in zip(seen, known) if not m], lists, rules.k, task.item_ids,
                                     reasons=task.explain is not None)

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
                order: str = "score", history: Optional[HistoryFile] = None) -> DataFrame:
    """users (user_id, embedding or null, seen: candidate indices, top_category; with `history`,
    recent_items: the items a similar_to reason may name, most recent first) -> TOP_SCHEMA: one list per user, each row with its
    reason where `cands.explain` is set (scoring.reasons). With `min_exposure` > 0 the exposure floor's pairs
    come first (scoring.floor: a pass over the users and three small windows) and each list takes
    its floor items (at most `max_floor_slots`); `order` 'personal' orders each list by the personal
    part of the score (scoring.lists.personal_order). The candidate files go under `folder`, which
    must outlive the returned frame's evaluation."""
    files = ship_candidates(spark, cands, max_tile_items, folder)
    lists = fallback_lists(cands, rules.k)
    if min_exposure > 0 and max_floor_slots > 0 and cands.is_new.any():
        floor = floor_pairs(spark, users, files, rules, min_exposure, min(max_floor_slots, rules.k), users_per_batch)
        users = users.join(floor, "user_id", "left")
    return users.mapInPandas(_score_partition(files, rules, lists, users_per_batch, order, history), TOP_SCHEMA)


def with_reason(rows: DataFrame) -> DataFrame:
    """TOP_SCHEMA rows -> user_id, rank, item_id, score, source, reason (the struct of
    schema.RECOMMENDATIONS; null where the row has no reason)."""
    reason = F.when(F.col("reason_kind").isNotNull(), F.struct(
        F.col("reason_kind").alias("kind"), F.col("reason_item_id").alias("item_id"),
        F.col("reason_detail").alias("detail"), F.col("reason_share").alias("share")))
    return rows.select("user_id", "rank", "item_id", "score", "source", reason.alias("reason"))


def seen_candidates(interactions: DataFrame, cands: Candidates, spark: SparkSession) -> DataFrame:
    """user_id, seen: the candidate indices each user has interacted with (in `interactions`)."""
    index = spark.createDataFrame(pd.DataFrame({"item_id": cands.item_ids, "cand": np.arange(len(cands), dtype=np.int32)}))
    return (interactions.select("user_id", "item_id").distinct()
            .join(F.broadcast(index), "item_id").groupBy("user_id").agg(F.collect_list("cand").alias("seen")))


def served_rows(spark: SparkSession, users: DataFrame, cands: Candidates, sc: ScoreSection, folder: str,
                history: Optional[HistoryFile] = None) -> DataFrame:
    """user_id, rank, item_id, score, source, reason of every user's list under the job's rules and
    floor (reasons where `cands.explain` is set: see `explained`)."""
    rules = Rules(k=sc.k, max_per_category=sc.max_per_category, new_item_quota=min(sc.new_item_quota, sc.k))
    return with_reason(score_users(spark, users, cands, rules, sc.max_tile_items, sc.users_per_batch, folder,
                                   sc.min_new_item_exposure, sc.max_floor_slots, sc.order, history))


def explained(spark: SparkSession, item_emb: DataFrame, cands: Candidates, sc: ScoreSection, folder: str
              ) -> Tuple[Candidates, Optional[HistoryFile]]:
    """(candidates, history file) for served_rows under `score.reasons`: without it the candidates
    lose their Explanations (reason null); with it the history items' blocks are shipped
    (ship_history), for the users' recent_items (user_embeddings.history_items)."""
    if not sc.reasons or cands.explain is None:
        return dataclasses.replace(cands, explain=None), None
    history = ship_history(spark, item_emb, cands, folder) if sc.reason_history > 0 else None
    return cands, None if history is None else dataclasses.replace(history, depth=sc.reason_history)


def lists_figures(lists: DataFrame, cands: Candidates, k: int, min_exposure: int) -> Dict[str, float]:
    """scoring.list_metrics of written lists (user_id, rank, item_id): one aggregation, one row per
    candidate shown back to the driver."""
    per_item = lists.groupBy("item_id").agg(F.count(F.lit(1)).alias("exposure"),
                                            F.sum(F.when(F.col("rank") == 1, 1).otherwise(0)).alias("first"))
    totals = {r["item_id"]: (r["exposure"], r["first"]) for r in per_item.collect()}
    exposure = np.asarray([totals.get(i, (0, 0))[0] for i in cands.item_ids], np.float64)
    first = np.asarray([totals.get(i, (0, 0))[1] for i in cands.item_ids], np.float64)
    return list_figures(exposure, first, cands.is_new, int(first.sum()), k, min_exposure or None)


def reason_figures(lists: DataFrame) -> Dict[str, float]:
    """reasons.REASON_METRIC<kind> -> the share of the rows of `lists` (with a `reason` column) whose reason
    is of that kind, for every ReasonKind ({} where no row has a reason); one small aggregation."""
    return reasons.kind_shares({r["kind"]: int(r["n"]) for r in lists.groupBy(F.col("reason.kind").alias("kind"))
                                .agg(F.count(F.lit(1)).alias("n")).collect()})


def write_list_metrics(spark: SparkSession, warehouse: str, figures: Dict[str, float], run_id: str, run_date: date,
                       source: str, version: str, now: datetime) -> None:
    """Replace the rows of this (run_id, source) in `list_metrics` (one commit)."""
    rows = pd.DataFrame({"run_id": run_id, "run_date": run_date, "source": source, "model_version": version,
                         "metric": list(figures), "value": [float(v) for v in figures.values()],
                         "computed_at": pd.Timestamp(utc_naive(now))})
    io.replace_partition(spark.createDataFrame(rows[list(LIST_METRICS.columns)], LIST_METRICS.schema), LIST_METRICS,
                         warehouse, "run_id", run_id, user_metadata=run_id, also={"source": source})
