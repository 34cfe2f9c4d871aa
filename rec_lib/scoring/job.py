"""The scoring stage: every user against the candidate items -> `recommendations` (Delta, one
partition per run_date), its figures in `list_metrics` and the SQL view `recommendations_latest`.

The lists come from `rec_lib.scoring.serve` (one distributed pass over the users, plus one for the
exposure floor); the table is written once, and the summary's counts are observed during that
write. The driver holds the candidates and one floor threshold per new candidate, never users or
interactions.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Dict, List, Optional, Sequence

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from rec_lib.core import faults
from rec_lib.core.clock import run_identity
from rec_lib.core.config import ScoreJobConfig
from rec_lib.core.progress import timed
from rec_lib.core.schema import (
    INTERACTIONS,
    ITEM_EMBEDDINGS,
    ITEM_STATS,
    ITEMS,
    RECOMMENDATIONS,
    RECOMMENDATIONS_LATEST_VIEW,
    USER_EMBEDDINGS,
    USER_FEATURES,
    USERS,
    ListSource,
    ReasonKind,
    RecommendationSource,
)
from rec_lib.platform import io
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.columns import timestamp_lit
from rec_lib.platform.sql_views import apply_sql
from rec_lib.scoring.kernel import kernel
from rec_lib.scoring.published import champion_snapshot, embedding_model_version
from rec_lib.scoring.reasons import kind_shares, reason_line
from rec_lib.scoring.retention import run_dates_to_drop
from rec_lib.scoring.serve import (
    ScoringError,
    candidate_frame,
    collect_candidates,
    explained,
    lists_figures,
    resolve_run_date,
    seen_candidates,
    served_rows,
    write_list_metrics,
)

log = logging.getLogger(__name__)

@dataclass
class ScoreRunSummary:
    run_id: str
    run_date: date
    model_version: str
    n_candidates: int
    n_new_candidates: int
    n_model_users: int
    n_fallback_users: int
    rows: int
    seconds: float
    examples: Dict[str, List[str]] = field(default_factory=dict)
    figures: Dict[str, float] = field(default_factory=dict)
    removed_run_dates: List[date] = field(default_factory=list)  # score.keep_run_dates
    removed_rows: int = 0
    serve: str = "latest"  # score.serve: the embedding tables' latest model or the gate's champion

    def lines(self) -> List[str]:
        out = [f"scoring job run {self.run_id}: run_date {self.run_date}, model {self.model_version}"
               + (" (the evaluation gate's champion)" if self.serve == "champion" else ""),
               f"  candidates {self.n_candidates:,} ({self.n_new_candidates:,} new); users {self.n_model_users:,} "
               f"scored by the model, {self.n_fallback_users:,} on a fallback list; {self.rows:,} rows "
               f"in {self.seconds:.1f} s"]
        f = self.figures
        if f:
            out.append(f"  lists: {f['candidate_coverage']:.0%} of candidates shown"
                       + (f", {f['floor_reached']:.0%} of new ones at the exposure floor" if "floor_reached" in f else "")
                       + f"; the 3 items most often first hold {f['top3_first_share']:.0%} of first places "
                       f"({f['distinct_first_items']:.0f} distinct); exposure Gini {f['exposure_gini']:.2f}; "
                       f"mean overlap of two lists {f['mean_pairwise_overlap']:.0%} (table list_metrics)")
        kinds = reason_line(f)
        if kinds:
            out.append(f"  reasons: {kinds} of rows (recommendations.reason; view recommendations_explained)")
        if self.removed_run_dates:
            dates = ", ".join(str(d) for d in self.removed_run_dates)
            out.append(f"  retention: removed run date(s) {dates} ({self.removed_rows:,} rows; their files stay "
                       "for time travel until VACUUM)")
        out.append(f"  query it: SELECT * FROM {RECOMMENDATIONS_LATEST_VIEW} WHERE user_id = '...' ORDER BY rank")
        for user, titles in self.examples.items():
            out.append(f"  {user}: " + " | ".join(titles))
        return out


# What scoring reads, each at the version it found at its start (io.Snapshot): a training or feature
# run that commits while scoring runs changes nothing of this run's lists.
INPUTS = (USER_EMBEDDINGS, ITEM_EMBEDDINGS, ITEMS, ITEM_STATS, INTERACTIONS, USERS, USER_FEATURES)


@dataclass
class NoCandidates:
    """A scoring run with nothing to recommend on its run date (nothing launched recently)."""

    run_id: str
    run_date: date
    reason: str

    def lines(self) -> List[str]:
        return [f"scoring job run {self.run_id}: run_date {self.run_date}: nothing written: {self.reason}",
                "  (score.required is false, so the run goes on; set it to true to make this an error)"]


def run_score_job(spark: SparkSession, cfg: ScoreJobConfig):
    start = time.perf_counter()
    now, run_id = run_identity(cfg.run)
    sc, warehouse = cfg.score, cfg.paths.warehouse
    run_date = resolve_run_date(sc, now)
    kernel()
    tables = io.Snapshot.take(spark, warehouse, INPUTS)
    if sc.serve == "champion":
        tables = champion_snapshot(spark, tables)
    version = embedding_model_version(spark, tables)

    frame = candidate_frame(tables.read(spark, ITEMS), tables.read(spark, ITEM_EMBEDDINGS),
                            tables.read(spark, ITEM_STATS), sc, run_date)
    cands = collect_candidates(frame)
    if not len(cands):
        reason = (f"no candidate items on {run_date}: nothing launched within {sc.new_item_days} days "
                  f"(score.candidates={sc.candidates}, score.long_tail={sc.long_tail})")
        if sc.required:
            raise ScoringError(reason)
        log.warning("%s", reason)
        return NoCandidates(run_id, run_date, reason)
    interactions = tables.read(spark, INTERACTIONS)
    folder = tempfile.mkdtemp(prefix="rec-score-")
    try:
        cands, history = explained(spark, tables.read(spark, ITEM_EMBEDDINGS), cands, sc, folder)
        seen = seen_candidates(interactions, cands, spark)
        rows = (served_rows(spark, _users_to_score(spark, tables, seen), cands, sc, folder, history)
                .select("user_id", "rank", "item_id", "score", "source", F.lit(version).alias("model_version"),
                        F.lit(run_date).alias("run_date"), timestamp_lit(now).alias("generated_at"), "reason"))
        # the summary's counts come from the write itself: each user's list has one rank 1
        observed = Observation(f"score-{run_id}")
        rows = rows.observe(observed, F.count(F.lit(1)).alias("rows"),
                            F.sum(F.when((F.col("rank") == 1) & (F.col("source") == RecommendationSource.MODEL), 1)
                                  .otherwise(0)).alias("model_users"),
                            F.sum(F.when((F.col("rank") == 1) & (F.col("source") != RecommendationSource.MODEL), 1)
                                  .otherwise(0)).alias("fallback_users"),
                            *[F.sum(F.when(F.col("reason.kind") == kind, 1).otherwise(0)).alias(kind)
                              for kind in ReasonKind.ALL])
        with timed(log, f"score users against {len(cands)} candidates and write run_date {run_date}"):
            io.replace_partition(rows, RECOMMENDATIONS, warehouse, "run_date", run_date.isoformat(), user_metadata=run_id,
                                 rows_match=True)  # run_date is the literal above on every row
        faults.point("score.lists_written")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    written = io.read_table(spark, warehouse, RECOMMENDATIONS).where(F.col("run_date") == F.lit(run_date))
    counts = observed.get
    figures = {**lists_figures(written, cands, sc.k, sc.min_new_item_exposure),
               **kind_shares({kind: int(counts[kind] or 0) for kind in ReasonKind.ALL})}
    write_list_metrics(spark, warehouse, figures, run_id, run_date, ListSource.PRODUCTION, version, now)
    removed, removed_rows = _apply_retention(spark, warehouse, sc.keep_run_dates, run_date, run_id)
    apply_sql(spark, warehouse, cfg.sql)
    examples = _examples(spark, warehouse, tables, run_date, sc.show_users)
    return ScoreRunSummary(run_id=run_id, run_date=run_date, model_version=version, n_candidates=len(cands),
                           n_new_candidates=int(cands.is_new.sum()), n_model_users=int(counts["model_users"] or 0),
                           n_fallback_users=int(counts["fallback_users"] or 0), rows=int(counts["rows"]),
                           seconds=time.perf_counter() - start, examples=examples, figures=figures,
                           removed_run_dates=removed, removed_rows=removed_rows, serve=sc.serve)


def _apply_retention(spark: SparkSession, warehouse: str, keep: int, written: date, run_id: str):
    """Delete the run dates of `recommendations` beyond the `keep` newest but this run's (0: keep
    all), in one commit after this run's lists. The run dates are collected: one row per day scored."""
    if keep <= 0:
        return [], 0
    dates = [r[0] for r in io.read_table(spark, warehouse, RECOMMENDATIONS).select("run_date").distinct().collect()]
    drop = run_dates_to_drop(dates, keep, written)
    rows = io.delete_partitions(spark, RECOMMENDATIONS, warehouse, "run_date", drop, user_metadata=run_id)
    if drop:
        log.info("retention: removed %d run date(s) of %s (%d rows), keeping the %d newest", len(drop),
                 RECOMMENDATIONS.name, rows, keep)
    return drop, rows


def _users_to_score(spark: SparkSession, tables: io.Snapshot, seen: DataFrame) -> DataFrame:
    """Every user with an embedding and every user of the shop: user_id, embedding (null for users
    new since training), recent_items (the history the embedding was built from, newest first: what
    a similar_to reason may name; null in tables trained before reasons), top_category (only for
    users new since training: their fallback list's key; null where unknown), seen (candidate
    indices or null). Only the join with `seen` moves the embeddings."""
    table = tables.read(spark, USER_EMBEDDINGS)
    recent = (F.col("history_items") if "history_items" in table.columns
              else F.lit(None).cast("array<string>")).alias("recent_items")
    embedded = table.select("user_id", "embedding", recent)
    newcomers = (tables.read(spark, USERS).select("user_id")
                 .join(embedded.select("user_id"), "user_id", "left_anti"))
    profile = tables.read_if_exists(spark, USER_FEATURES)
    newcomers = (newcomers.withColumn("top_category", F.lit(None).cast("string")) if profile is None
                 else newcomers.join(profile.select("user_id", "top_category"), "user_id", "left"))
    everyone = (embedded.withColumn("top_category", F.lit(None).cast("string"))
                .unionByName(newcomers.withColumn("embedding", F.lit(None).cast(embedded.schema["embedding"].dataType))
                             .withColumn("recent_items", F.lit(None).cast("array<string>"))))
    return everyone.join(seen, "user_id", "left")


def _examples(spark: SparkSession, warehouse: str, tables: io.Snapshot, run_date: date,
              n: int) -> Dict[str, List[str]]:
    """The first n users' top 5 titles, read from the written partition (only when n > 0)."""
    if n <= 0:
        return {}
    written = io.read_table(spark, warehouse, RECOMMENDATIONS).where(F.col("run_date") == F.lit(run_date))
    users = [r[0] for r in written.select("user_id").distinct().orderBy("user_id").limit(n).collect()]
    titled = (written.where(F.col("user_id").isin(users)).where(F.col("rank") <= 5)
              .join(tables.read(spark, ITEMS).select("item_id", "title"), "item_id")
              .orderBy("user_id", "rank").collect())
    out: Dict[str, List[str]] = {u: [] for u in users}
    for r in titled:
        out[r["user_id"]].append(r["title"])
    return out


# --------------------------------------------------------------------------------------------
# Entry point: `rec-score`, `python -m jobs.score`, spark-submit jobs/score.py
# --------------------------------------------------------------------------------------------

DESCRIPTION = """Score every user against the candidate items; write the recommendations table and its view."""
CONFIG = ScoreJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_spark_job(argv, DESCRIPTION, CONFIG, run_score_job)
