"""The backtest: the lists the scoring job would have served the day before the cutoff with the
cutoff model (the scoring code itself: candidates, rules, exposure floor), scored on the test window,
and the served lists' ablation (each part's blend refit served again).
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rec_lib.core.clock import utc_naive
from rec_lib.core.config import EvaluateJobConfig
from rec_lib.core.progress import timed
from rec_lib.core.schema import ITEMS, ListSource
from rec_lib.evaluation import report
from rec_lib.evaluation.window import EvaluationSet
from rec_lib.platform import io
from rec_lib.platform.columns import timestamp_lit
from rec_lib.platform.spark import index_frame
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
from rec_lib.training.facade import COMPONENTS, FewShotSettings, before_cutoff

if TYPE_CHECKING:
    from rec_lib.training.facade import FittedModel


log = logging.getLogger(__name__)


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


def backtest(spark: SparkSession, cfg: EvaluateJobConfig, fitted: FittedModel, ts: EvaluationSet,
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

