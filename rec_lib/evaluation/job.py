"""The evaluation stage: cold-start quality by k-shot, the model against baselines and an oracle
-> `evaluation_metrics` (Delta), a report folder (Markdown + PNG) and an MLflow run.

The protocol and the rankers are in `rec_lib.evaluation.rankers`; this module gathers their inputs with
Spark: the cutoff and test window, the new items and their users in the window, a model trained
only on what precedes the cutoff (its own model version, its own `evaluation_training_examples`,
so the production model and tables are untouched), ALS refitted at every k, and the generated
shop's ground truth where there is one.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from rec_lib.core.clock import resolve_now, run_identity, utc_naive
from rec_lib.core.config import EvaluateJobConfig, EvaluateSection
from rec_lib.core.errors import ConfigError, RecError
from rec_lib.core.progress import timed
from rec_lib.core.schema import (
    EVALUATION_METRICS,
    EVALUATION_TRAINING_EXAMPLES,
    INTERACTIONS,
    ITEM_TEXT_EMBEDDINGS,
    ITEMS,
    ListSource,
)
from rec_lib.evaluation import report
from rec_lib.evaluation.gate import GateDecision, GateOutcome
from rec_lib.evaluation.rankers import (
    AttributeProfileRanker,
    ContentKnnRanker,
    FactorRanker,
    MethodResult,
    ModelInputs,
    ModelRanker,
    OracleRanker,
    PopularRanker,
    RandomRanker,
    Ranker,
    TowerRanker,
    epoch_seconds,
    evaluate,
    held_out,
    revealed,
)
from rec_lib.platform import io
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.columns import timestamp_lit
from rec_lib.platform.spark import index_frame, sorted_index
from rec_lib.platform.sql_views import apply_sql
from rec_lib.platform.tracking import flat_params, log_model_folder, mlflow_run
from rec_lib.scoring.published import EMBEDDINGS, champion_row, embedding_model_version, record_decision
from rec_lib.scoring.serve import (
    SERVED_ITEM_COLUMNS,
    candidate_frame,
    collect_candidates,
    explained,
    lists_figures,
    reason_figures,
    seen_candidates,
    served_item_schema,
    served_rows,
    write_list_metrics,
)
from rec_lib.training.blend import COMPONENTS
from rec_lib.training.data import TrainingData, before_cutoff, pair_weights, users_of
from rec_lib.training.few_shot import FewShotSettings
from rec_lib.training.fit import FittedModel, fit_model
from rec_lib.training.model_folder import ModelFolder
from rec_lib.training.sides import ItemSides
from rec_lib.training.store import ModelStore

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------
# Inputs of the rankers
# --------------------------------------------------------------------------------------------


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


def ground_truth_folder(spark: SparkSession, cfg: EvaluateJobConfig) -> Optional[str]:
    configured = cfg.evaluate.ground_truth
    if configured == "":
        return None
    folder = configured if configured is not None else io.join_path(cfg.paths.input, "ground_truth")
    if io.path_exists(spark, io.join_path(folder, "users.parquet")):
        return folder
    if configured is not None:
        raise ConfigError(f"evaluate.ground_truth {configured!r} has no users.parquet / items.parquet")
    return None


def oracle_affinity_rows(spark: SparkSession, folder: str, users: np.ndarray, items: np.ndarray) -> Dict[str, np.ndarray]:
    """user_id -> ground-truth affinity with each new item (-inf where the truth lacks the item)."""
    from rec_lib.demo.generator import oracle_affinity

    wanted = spark.createDataFrame(pd.DataFrame({"user_id": np.unique(np.asarray(users, str))}), "user_id string")
    truth_users = (spark.read.parquet(io.join_path(folder, "users.parquet"))
                   .join(F.broadcast(wanted), "user_id", "left_semi")
                   .toPandas().sort_values("user_id").reset_index(drop=True))  # the ranked users only
    truth_items = spark.read.parquet(io.join_path(folder, "items.parquet")).toPandas()
    beta = float(json.loads(io.read_text(spark, io.join_path(folder, "params.json")))["beta"])
    truth_items = truth_items.set_index(truth_items["item_id"].astype(str))
    known = np.isin(items, truth_items.index)
    affinity = np.full((len(truth_users), len(items)), -np.inf)
    if len(truth_users) and known.any():
        affinity[:, known] = oracle_affinity(truth_users, truth_items.loc[items[known]].reset_index(drop=True), beta)
    return dict(zip(truth_users["user_id"].astype(str), affinity))


# --------------------------------------------------------------------------------------------
# The backtest: the scoring code itself on the cutoff model
# --------------------------------------------------------------------------------------------


def backtest_run_date(cutoff: datetime) -> date:
    """The run date whose lists were served just before the cutoff (the day that ends at it)."""
    return (utc_naive(cutoff) - timedelta(seconds=1)).date()


def _served_inputs(spark: SparkSession, fitted: FittedModel, cfg: EvaluateJobConfig, before: DataFrame,
                   run_date: date):
    """(candidates, users frame, items frame) as the scoring job would see them on `run_date` with the cutoff
    model's tables: item sides adapted from the users before the cutoff, stats before it."""
    items = fitted.item_sides(FewShotSettings.of(cfg.few_shot), cfg.few_shot.max_k)
    table = fitted.item_table(items).assign(n_users=fitted.data.catalogue.n_users.astype(np.int64))
    item_frame = spark.createDataFrame(table[list(SERVED_ITEM_COLUMNS)], served_item_schema())
    stats = before.groupBy("item_id").agg(F.countDistinct("user_id").alias("n_users"),
                                          F.min("ts").alias("first_interaction_ts"),
                                          F.sum("type_weight").alias("weighted_interactions"))
    cands = collect_candidates(candidate_frame(io.read_table(spark, cfg.paths.warehouse, ITEMS), item_frame, stats,
                                               cfg.score, run_date))
    user_frame = fitted.user_rows_frame().select("user_id", "embedding", F.col("history_items").alias("recent_items"))
    return cands, user_frame, item_frame


def accuracy(lists: DataFrame, test: DataFrame, ks: Sequence[int]) -> Dict[str, float]:
    """recall@k and ndcg@k (binary relevance) of written lists (user_id, rank, item_id) over the
    users with a test pair (user_id, item_id), as evaluation.metrics defines them; one aggregate row
    back to the driver."""
    per_user = test.groupBy("user_id").agg(F.count(F.lit(1)).alias("relevant"))
    hits = lists.join(test, ["user_id", "item_id"])
    out: Dict[str, float] = {}
    discount = [0.0] + list(np.cumsum(1.0 / np.log2(np.arange(2, max(ks) + 2))))
    for k in ks:
        got = (hits.where(F.col("rank") <= k).groupBy("user_id")
               .agg(F.count(F.lit(1)).alias("hits"), F.sum(1.0 / F.log2(F.col("rank") + 1.0)).alias("dcg")))
        ideal = F.element_at(F.array(*[F.lit(float(v)) for v in discount]),
                             (F.least(F.col("relevant"), F.lit(k)) + 1).cast("int"))
        row = (per_user.join(got, "user_id", "left").na.fill(0, ["hits", "dcg"])
               .agg(F.avg(F.col("hits") / F.col("relevant")).alias("recall"), F.avg(F.col("dcg") / ideal).alias("ndcg"),
                    F.count(F.lit(1)).alias("users")).first())
        out[f"recall@{k}"], out[f"ndcg@{k}"] = float(row["recall"] or 0.0), float(row["ndcg"] or 0.0)
        out["test_users"] = float(row["users"])
    return out


def backtest(spark: SparkSession, cfg: EvaluateJobConfig, fitted: FittedModel, ts: "EvaluationSet",
             interactions: DataFrame, run_id: str, now: datetime) -> Dict[str, Dict[str, float]]:
    """The lists the scoring job would have served the day before the cutoff with the cutoff
    model (the same code: candidates, rules, exposure floor), with the floor and without, scored on
    the test window: its users' first interactions with those candidates. Written to
    `list_metrics` (sources backtest, backtest_no_floor); source -> figures."""
    run_date = backtest_run_date(ts.cutoff)
    before = before_cutoff(interactions, ts.cutoff)
    cands, user_frame, item_frame = _served_inputs(spark, fitted, cfg, before, run_date)
    if not len(cands):
        log.warning("backtest: no candidates on %s (nothing launched within %d days)", run_date, cfg.score.new_item_days)
        return {}
    index = index_frame(spark, cands.item_ids, "item_id", "cand")
    window = interactions.where((F.col("ts") >= timestamp_lit(ts.cutoff)) & (F.col("ts") < timestamp_lit(ts.end)))
    test = (window.join(F.broadcast(index), "item_id").select("user_id", "item_id").distinct()
            .join(before.select("user_id", "item_id").distinct(), ["user_id", "item_id"], "left_anti")).cache()
    ks = sorted({10, cfg.score.k})
    out: Dict[str, Dict[str, float]] = {}
    folder = tempfile.mkdtemp(prefix="rec-backtest-")
    users = None
    try:
        # the served lists say why (as the scoring job's), the no-floor lists compared with them need not
        cands, history = explained(spark, item_frame, cands, cfg.score, folder)
        seen = seen_candidates(before, cands, spark)
        # every user embedded once by Spark tasks, kept on the executors for both lists
        users = user_frame.withColumn("top_category", F.lit(None).cast("string")).join(seen, "user_id", "left").persist()
        for source, sc, served in ((ListSource.BACKTEST, cfg.score, cands),
                                   (ListSource.BACKTEST_NO_FLOOR, dataclasses.replace(cfg.score, min_new_item_exposure=0),
                                    dataclasses.replace(cands, explain=None))):
            with timed(log, f"backtest: serve the lists of {run_date} ({source})"):
                lists = served_rows(spark, users, served, sc, folder, history).persist()
                figures = {**lists_figures(lists, served, sc.k, sc.min_new_item_exposure), **accuracy(lists, test, ks),
                           **reason_figures(lists)}
                lists.unpersist()
            write_list_metrics(spark, cfg.paths.warehouse, figures, run_id, run_date, source, fitted.version, now)
            out[source] = figures
        name = f"recall@{cfg.score.k}"
        without = ablation(spark, cfg, fitted, before, run_date, seen, test, folder,
                           out[ListSource.BACKTEST_NO_FLOOR][name])
        if without:
            out[report.ABLATION] = {f"{name}_without_{part}": value for part, value in without.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        test.unpersist()
        if users is not None:
            users.unpersist()
    return out


def ablation(spark: SparkSession, cfg: EvaluateJobConfig, fitted: FittedModel, before: DataFrame, run_date: date,
             seen: DataFrame, test: DataFrame, folder: str, full: float) -> Dict[str, float]:
    """part -> Recall@K of the lists served (without the exposure floor, whose own change the
    backtest reports) when the blend is refitted without that part (`ablated_lists`); a part whose
    refit leaves the weights as they are is `full`, the no-floor lists' own Recall@K. Empty where
    the blend was not fitted."""
    name = f"recall@{cfg.score.k}"
    return {part: full if lists is None else accuracy(lists, test, [cfg.score.k])[name]
            for part, lists in ablated_lists(spark, cfg, fitted, before, run_date, folder, seen)}


def ablated_lists(spark: SparkSession, cfg: EvaluateJobConfig, fitted: FittedModel, before: DataFrame,
                  run_date: date, folder: str, seen: Optional[DataFrame] = None
                  ) -> Iterator[Tuple[str, Optional[DataFrame]]]:
    """(part, lists) for every part of the score, in COMPONENTS order, whose blend was refitted
    without it (training.blend: Blend.ablated): the lists `unfloored_lists` serves with that blend;
    None where the refit leaves the weights as they are (the full lists stand for it)."""
    for part in COMPONENTS:
        other = fitted.blend.ablated(part)
        if other is None:
            continue
        if other.same_weights(fitted.blend):
            yield part, None
            continue
        with timed(log, f"serve the lists of {run_date} without the {part} part"):
            yield part, unfloored_lists(spark, cfg, dataclasses.replace(fitted, blend=other), before, run_date,
                                        folder, seen)


def unfloored_lists(spark: SparkSession, cfg: EvaluateJobConfig, fitted: FittedModel, before: DataFrame,
                    run_date: date, folder: str, seen: Optional[DataFrame] = None) -> DataFrame:
    """user_id, rank, item_id, ... of the lists the scoring job would serve on `run_date` with
    `fitted` and the interactions `before` (each user's seen candidates left out: `seen`, else
    computed), without the exposure floor and without reasons."""
    sc = dataclasses.replace(cfg.score, min_new_item_exposure=0)
    cands, user_frame, _ = _served_inputs(spark, fitted, cfg, before, run_date)
    seen = seen_candidates(before, cands, spark) if seen is None else seen
    users = user_frame.withColumn("top_category", F.lit(None).cast("string")).join(seen, "user_id", "left")
    return served_rows(spark, users, dataclasses.replace(cands, explain=None), sc, folder)


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


@dataclass
class EvaluationRunSummary:
    run_id: str
    model_version: str
    cutoff: datetime
    end: datetime
    n_items: int  # evaluated: new items with more than max(ks) users in the window
    n_new_items: int
    n_users: int
    top_k: int
    rows: pd.DataFrame  # k, method, metric, value
    report: Dict[str, str] = field(default_factory=dict)
    served: Dict[str, Dict[str, float]] = field(default_factory=dict)  # list_metrics source -> figures
    window: str = "test"
    blend: str = ""
    mlflow_run_id: Optional[str] = None
    seconds: float = 0.0
    gate: Optional[GateOutcome] = None  # evaluate.gate's decision (None: no gate)

    @property
    def failure(self) -> Optional[RecError]:
        """What ends the job non-zero once its lines are printed: a failed gate."""
        return None if self.gate is None else self.gate.failure()

    def lines(self) -> List[str]:
        table = report.metric_table(self.rows, f"recall@{self.top_k}")
        ndcg = report.metric_table(self.rows, f"ndcg@{self.top_k}")
        width = max(len(c) for c in table.columns)
        out = [f"evaluation run {self.run_id} ({self.window} window): model {self.model_version}, "
               f"cutoff {self.cutoff:%Y-%m-%d %H:%M}, "
               f"test until {self.end:%Y-%m-%d %H:%M}; {self.n_items} of {self.n_new_items} new items evaluated, "
               f"{self.n_users:,} test users",
               f"  Recall@{self.top_k} / NDCG@{self.top_k} by k (first interactions of each new item seen):",
               "  " + "method".ljust(width) + "".join(f"{f'k={k}':>16}" for k in table.index)]
        for method in table.columns:
            cells = "".join(f"{report.fmt(table.at[k, method]) + ' / ' + report.fmt(ndcg.at[k, method]):>16}"
                            for k in table.index)
            out.append("  " + method.ljust(width) + cells)
        losses = report.model_losses(self.rows, self.top_k)
        out.append(f"  model beats {', '.join(report.BASELINES)} at every k: " + ("yes" if not losses else
                                                                                 f"no ({len(losses)} losses)"))
        ratios = report.oracle_ratios(self.rows, self.top_k)
        if ratios:
            ceiling = report.model_losses(self.rows, self.top_k, method="oracle")
            out.append("  oracle (true affinity) beats them at every k: " + ("yes" if not ceiling else
                                                                             f"no ({len(ceiling)} losses)"))
            out.append("  model / oracle Recall@%d: %s" % (self.top_k, ", ".join(f"k={k} {r:.2f}" for k, r in ratios.items())))
        if self.blend:
            out.append(f"  score blend: {self.blend}")
        out += ["  " + line for line in report.served_lines(self.served)]
        if self.report:
            out.append(f"  report: {self.report['summary']}")
        if self.mlflow_run_id:
            out.append(f"  MLflow run {self.mlflow_run_id}")
        if self.gate is not None:
            out += self.gate.lines()
        out.append(f"  done in {self.seconds:.1f} s")
        return out


def metric_rows(results: List[MethodResult]) -> pd.DataFrame:
    return pd.DataFrame([{"k": r.k, "method": r.method, "metric": name, "value": float(value)}
                         for r in results for name, value in r.metrics.items()],
                        columns=["k", "method", "metric", "value"])


def ablation_rows(served: Dict[str, Dict[str, float]], k: int) -> pd.DataFrame:
    """evaluation_metrics rows of the served lists' ablation (method 'served', k -1: the lists mix
    launches at every k): recall@K of the lists without the floor, and per part recall@K_without_<part>
    and recall@K_change_without_<part> (relative); none without an ablation."""
    without = served.get(report.ABLATION, {})
    if not without:
        return pd.DataFrame(columns=["k", "method", "metric", "value"])
    name = f"recall@{k}"
    values = {name: served[ListSource.BACKTEST_NO_FLOOR][name], **without}
    values.update({f"{name}_change_without_{part}": change for part, change in report.ablation_changes(served, k).items()})
    return pd.DataFrame([{"k": -1, "method": "served", "metric": m, "value": float(v)} for m, v in values.items()])


def write_metrics(spark: SparkSession, warehouse: str, rows: pd.DataFrame, run_id: str, version: str,
                  cutoff: datetime, end: datetime, now: datetime) -> None:
    """Replace this run's rows of `evaluation_metrics` (earlier runs stay) in one commit."""
    table = rows.assign(run_id=run_id, model_version=version, k=rows["k"].astype(np.int32),
                        cutoff=pd.Timestamp(utc_naive(cutoff)), test_end=pd.Timestamp(utc_naive(end)),
                        evaluated_at=pd.Timestamp(utc_naive(now)))
    df = spark.createDataFrame(table[list(EVALUATION_METRICS.columns)], schema=EVALUATION_METRICS.schema)
    io.replace_partition(df, EVALUATION_METRICS, warehouse, "run_id", run_id, user_metadata=run_id)


def log_evaluation(cfg: EvaluateJobConfig, run_id: str, version: str, rows: pd.DataFrame,
                   report_folder: Path, model_folder: ModelFolder) -> Optional[str]:
    """One MLflow run per evaluation: its and the model's parameters, every metric by step k, the
    report and the evaluated model."""
    with mlflow_run(cfg.mlflow, f"evaluate {run_id}") as mlflow:
        if mlflow is None:
            return None
        mlflow.set_tags({"model_version": version, "run_id": run_id, "stage": "evaluate"})
        mlflow.log_params(flat_params({"evaluate": cfg.evaluate, "train": cfg.train, "few_shot": cfg.few_shot}))
        for r in rows.dropna(subset=["value"]).itertuples():
            mlflow.log_metric(f"{r.method}.{r.metric.replace('@', '_at_')}", r.value, step=int(r.k))
        mlflow.log_artifacts(str(report_folder), artifact_path="report")
        log_model_folder(mlflow, model_folder.artifacts())
        return mlflow.active_run().info.run_id


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


@dataclass
class SkippedEvaluation:
    """An evaluation that could not run on this shop today, and why (the run goes on)."""

    run_id: str
    reason: str
    gate: Optional[GateOutcome] = None

    def lines(self) -> List[str]:
        return [f"evaluation run {self.run_id}: nothing evaluated: {self.reason}",
                "  (evaluate.required is false, so the run goes on; set it to true to make this an error)",
                *(self.gate.lines() if self.gate is not None else [])]


def run_evaluate_job(spark: SparkSession, cfg: EvaluateJobConfig):
    """The evaluation's summary, or a SkippedEvaluation where the shop cannot be evaluated today
    (no new items, too few users on them) unless `evaluate.required` makes that an error."""
    now, run_id = run_identity(cfg.run)
    production = production_model(spark, cfg)  # what the gate decides on: fixed before the evaluation
    interactions = io.read_table(spark, cfg.paths.warehouse, INTERACTIONS)
    try:
        ts = evaluation_set(spark, interactions, io.read_table(spark, cfg.paths.warehouse, ITEMS), cfg.evaluate)
    except EvaluationError as exc:
        if cfg.evaluate.required:
            raise
        log.warning("nothing evaluated: %s", exc)
        gate = None if production is None else apply_gate(spark, cfg, run_id, now, production,
                                                          GateDecision.not_evaluated(str(exc)), "")
        return SkippedEvaluation(run_id, str(exc), gate)
    summary = _evaluate(spark, cfg, now, run_id, interactions, ts)
    if production is not None:
        decision = GateDecision.of(summary.rows, cfg.evaluate.gate, cfg.evaluate.top_k)
        summary.gate = apply_gate(spark, cfg, run_id, now, production, decision, summary.model_version)
    return summary


# --------------------------------------------------------------------------------------------
# The evaluation gate (evaluate.gate): publish the production model, or keep serving the champion
# --------------------------------------------------------------------------------------------


def production_model(spark: SparkSession, cfg: EvaluateJobConfig) -> Optional[Tuple[io.Snapshot, str]]:
    """With a gate: the embedding tables' versions and the model they hold, taken at the job's
    start (a training that lands while the evaluation runs is not published by it); else None."""
    if not cfg.evaluate.gate:
        return None
    tables = io.Snapshot.take(spark, cfg.paths.warehouse, EMBEDDINGS)
    return tables, embedding_model_version(spark, tables)


def apply_gate(spark: SparkSession, cfg: EvaluateJobConfig, run_id: str, now: datetime,
               production: Tuple[io.Snapshot, str], decision: GateDecision, evaluated_version: str) -> GateOutcome:
    """Record the decision in `model_gate` (what scoring serves with score.serve: champion); a
    passed model is registered first (when a registry is configured) and gets the alias
    `champion` last, so the alias never names a model the table does not serve."""
    tables, version = production
    registered = None
    publish = decision.passed and bool(cfg.mlflow.tracking_uri and cfg.mlflow.registered_model)
    if publish:
        registered = register_production_model(spark, cfg, version)
    record_decision(spark, cfg.paths.warehouse, run_id, tables, version, evaluated_version, decision.passed,
                    decision.reason, cfg.mlflow.registered_model, registered, now)
    if publish:
        from rec_lib.training import registry

        registry.set_champion(cfg.mlflow, registered)
    champion = champion_row(spark, cfg.paths.warehouse)
    outcome = GateOutcome(decision, version, None if champion is None else champion["model_version"], registered)
    log.info("evaluation gate: %s", " ".join(line.strip() for line in outcome.lines()))
    return outcome


def register_production_model(spark: SparkSession, cfg: EvaluateJobConfig, version: str) -> str:
    """The registry's version of production model `version`, registered from its model folder now
    if training did not (tracking was off, or the version was complete already); a model on a URI
    is brought to the driver first."""
    from rec_lib.training import registry

    registered = registry.registered_version(cfg.mlflow, version)
    if registered is not None:
        return registered
    store = ModelStore.of(cfg.train)
    folder = store.fetch(spark, version)
    if not folder.is_complete():
        raise EvaluationError(f"the production model {version} has no complete folder at {store.uri(version)} to register; "
                              "run the training job with this train.model_dir")
    with mlflow_run(cfg.mlflow, f"register {version}") as mlflow:
        mlflow.set_tag("model_version", version)
        return registry.register(mlflow, cfg.mlflow, folder, version)


def _evaluate(spark: SparkSession, cfg: EvaluateJobConfig, now: datetime, run_id: str, interactions: DataFrame,
              ts: "EvaluationSet") -> EvaluationRunSummary:
    start = time.perf_counter()
    ev, warehouse = cfg.evaluate, cfg.paths.warehouse
    log.info("evaluation window %s: %d of %d new items have more than %d users; %d test pairs, %d test users "
             "(%d ranked)", ts.window, len(ts.items), ts.n_new, max(ev.ks), ts.n_test_pairs, ts.n_test_users,
             len(ts.users))

    fitted = fit_model(spark, cfg.train_config(ts.cutoff.isoformat()), examples_table=EVALUATION_TRAINING_EXAMPLES)
    notes = protocol_notes(ts, ev)
    rankers, als = build_rankers(spark, cfg, fitted, ts, interactions, notes)
    try:
        with timed(log, f"evaluate {len(rankers)} methods at k = {ev.ks}"):
            results = evaluate(ts.pairs, ts.items, rankers, list(ev.ks), ev.top_k, ts.users, ev.seed,
                               popularity=ts.popularity)
    finally:
        if als is not None:
            als.close()
    rows = metric_rows(results)
    served = backtest(spark, cfg, fitted, ts, interactions, run_id, now) if ev.backtest else {}
    ablated = ablation_rows(served, cfg.score.k)
    write_metrics(spark, warehouse, pd.concat([rows, ablated], ignore_index=True) if len(ablated) else rows,
                  run_id, fitted.version, ts.cutoff, ts.end, now)
    apply_sql(spark, warehouse, cfg.sql)

    folder = Path(ev.report_dir) / run_id
    header = {"run": run_id, "model version": fitted.version, "window": f"{ev.window} {ts.window}",
              "cutoff": f"{ts.cutoff:%Y-%m-%d %H:%M} UTC", "new items": f"{ts.n_new:,} ({len(ts.items):,} evaluated)",
              "K": str(ev.top_k), "score blend": fitted.blend.describe(),
              "table": io.table_path(warehouse, EVALUATION_METRICS)}
    paths = report.write_report(rows, ev.top_k, folder, header, notes, served)
    summary = EvaluationRunSummary(run_id, fitted.version, ts.cutoff, ts.end, len(ts.items), ts.n_new, len(ts.users),
                                   ev.top_k, rows, {name: str(p) for name, p in paths.items()}, served=served,
                                   window=ev.window, blend=fitted.blend.describe())
    summary.mlflow_run_id = log_evaluation(cfg, run_id, fitted.version, rows, folder, fitted.folder)
    summary.seconds = time.perf_counter() - start
    return summary


# --------------------------------------------------------------------------------------------
# Entry point: `rec-evaluate`, `python -m jobs.evaluate`, spark-submit jobs/evaluate.py
# --------------------------------------------------------------------------------------------

DESCRIPTION = """Evaluate cold-start quality by k-shot: the model against random, popular, content kNN, ALS and
(on the generated shop) an oracle; write evaluation_metrics and a report."""
CONFIG = EvaluateJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_spark_job(argv, DESCRIPTION, CONFIG, run_evaluate_job)
