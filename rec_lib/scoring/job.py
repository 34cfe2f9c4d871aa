"""The scoring stage: every user against the candidate items -> `recommendations` (Delta, one
partition per run_date) and the SQL view `recommendations_latest`.

No cross join, one pass: every user (with an embedding, or new since training) streams through
`mapInPandas` in blocks. The candidates reach the executors as files (`SparkContext.addFile`) in
tiles of `score.max_tile_items`, read by memory map one tile at a time, so a worker holds one tile
whatever the catalogue's size; the exact top-K kernel (`rec_lib.scoring.kernel`, faiss) keeps a running
top list across tiles. Users without an embedding get a fallback list of popular candidates, by
their favourite category where known, in the same pass. The table is written once; the summary's
counts are observed during that write, not read back.

What the driver holds: the candidates (catalogue-sized: ids, vectors while the tile files are
written, categories, popularity), never users or interactions.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from rec_lib.core.clock import run_identity
from rec_lib.core.config import ScoreJobConfig, ScoreSection
from rec_lib.core.errors import ConfigError, RecError
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
    RecommendationSource,
)
from rec_lib.platform import io
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.columns import timestamp_lit
from rec_lib.platform.sql_views import apply_views
from rec_lib.scoring.kernel import (
    Rules,
    augment_candidates,
    augment_users,
    kernel,
    set_threads,
)
from rec_lib.scoring.lists import Candidates, FallbackLists, fallback_frame, fallback_lists, model_frame

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
    on run_date: launched by then (items not launched yet are not active), and, unless
    score.candidates is 'all', new (launched within new_item_days, or fewer users than
    max_new_item_users)."""
    day_end = F.lit(datetime.combine(run_date + timedelta(days=1), datetime.min.time())).cast("timestamp")
    window_start = F.lit(datetime.combine(run_date - timedelta(days=score.new_item_days - 1),
                                          datetime.min.time())).cast("timestamp")
    n_users = F.coalesce(F.col("n_users"), F.lit(0))
    is_new = (F.col("launch_ts") >= window_start) | (n_users < score.max_new_item_users)
    frame = (items.select("item_id", "category", "launch_ts")
             .join(item_emb.select("item_id", "embedding", "bias"), "item_id")
             .join(stats.select("item_id", "n_users", "weighted_interactions"), "item_id", "left")
             .where(F.col("launch_ts").isNull() | (F.col("launch_ts") < day_end))
             .select("item_id", "embedding", "bias", F.coalesce("category", F.lit("")).alias("category"),
                     is_new.alias("is_new"),
                     F.coalesce("weighted_interactions", F.lit(0.0)).alias("popularity")))
    return frame if score.candidates == "all" else frame.where("is_new")


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


def ship_candidates(spark: SparkSession, cands: Candidates, max_tile_items: int, folder: str) -> TileFiles:
    """Write the candidate files under `folder` (names unique to this call) and add them to the job."""
    prefix = f"rec-candidates-{uuid.uuid4().hex[:12]}"

    def save(name: str, array: np.ndarray) -> str:
        path = os.path.join(folder, f"{prefix}-{name}.npy")
        np.save(path, array)
        spark.sparkContext.addFile(path)
        return os.path.basename(path)

    tiles = tuple((lo, save(f"tile{lo}", augment_candidates(cands.vectors[lo:lo + max_tile_items],
                                                             cands.bias[lo:lo + max_tile_items])))
                  for lo in range(0, len(cands), max_tile_items))
    return TileFiles(tiles=tiles, item_ids=save("ids", cands.item_ids.astype(str)),
                     category=save("category", cands.category.astype(np.int32)), is_new=save("new", cands.is_new))


def _score_partition(files: TileFiles, rules: Rules, lists: FallbackLists, batch: int):
    """mapInPandas function: users (user_id, embedding or null, seen, top_category) -> their list:
    the model's top k where they have an embedding, else a fallback list."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import SparkFiles, TaskContext

        task = TaskContext.get()
        set_threads(task.cpus() if task is not None else 1)

        def mapped(name: str) -> np.ndarray:
            return np.load(SparkFiles.get(name), mmap_mode="r")

        item_ids, category, is_new = mapped(files.item_ids), mapped(files.category), mapped(files.is_new)
        # one tile stays mapped for the whole task; several are mapped in turn for each block of users
        tiles = ([(files.tiles[0][0], (lambda tile=mapped(files.tiles[0][1]): tile))] if len(files.tiles) == 1
                 else [(start, (lambda name=name: mapped(name))) for start, name in files.tiles])
        for pdf in frames:
            for lo in range(0, len(pdf), batch):
                part = pdf.iloc[lo:lo + batch]
                seen = [None if s is None else np.asarray(s, np.int64) for s in part["seen"]]
                known = part["embedding"].notna().to_numpy()
                user_ids = part["user_id"].to_numpy()
                if known.any():
                    users = augment_users(np.stack(part["embedding"].to_numpy()[known]))
                    yield model_frame(user_ids[known], users, tiles, [s for s, m in zip(seen, known) if m], rules,
                                       category, is_new, item_ids)
                if not known.all():
                    yield fallback_frame(user_ids[~known], part["top_category"].to_numpy()[~known],
                                          [s for s, m in zip(seen, known) if not m], lists, rules.k, item_ids)

    return run


def score_users(spark: SparkSession, users: DataFrame, cands: Candidates, rules: Rules, max_tile_items: int,
                users_per_batch: int, folder: str) -> DataFrame:
    """users (user_id, embedding or null, seen: candidate indices, top_category) -> user_id, rank,
    item_id, score, source: one list per user in one pass. The candidate files go under `folder`,
    which must outlive the returned frame's evaluation."""
    files = ship_candidates(spark, cands, max_tile_items, folder)
    lists = fallback_lists(cands, rules.k)
    return users.mapInPandas(_score_partition(files, rules, lists, users_per_batch), TOP_SCHEMA)


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

    def lines(self) -> List[str]:
        out = [f"scoring job run {self.run_id}: run_date {self.run_date}, model {self.model_version}",
               f"  candidates {self.n_candidates:,} ({self.n_new_candidates:,} new); users {self.n_model_users:,} "
               f"scored by the model, {self.n_fallback_users:,} on a fallback list; {self.rows:,} rows "
               f"in {self.seconds:.1f} s",
               f"  query it: SELECT * FROM {RECOMMENDATIONS_LATEST_VIEW} WHERE user_id = '...' ORDER BY rank"]
        for user, titles in self.examples.items():
            out.append(f"  {user}: " + " | ".join(titles))
        return out


def _check_embeddings(spark: SparkSession, warehouse: str) -> str:
    for spec in (USER_EMBEDDINGS, ITEM_EMBEDDINGS):
        if not io.delta_exists(spark, io.table_path(warehouse, spec)):
            raise ScoringError(f"table {spec.name} not found under {warehouse}: run the training job first (make train)")
    # one Spark job for both tables: (table, model_version) pairs, a handful of rows
    tagged = [io.read_table(spark, warehouse, spec).select(F.lit(spec.name).alias("table"), "model_version")
              for spec in (USER_EMBEDDINGS, ITEM_EMBEDDINGS)]
    versions: Dict[str, set] = {USER_EMBEDDINGS.name: set(), ITEM_EMBEDDINGS.name: set()}
    for table, version in tagged[0].unionByName(tagged[1]).distinct().collect():
        versions[table].add(version)
    if len(versions["user_embeddings"] | versions["item_embeddings"]) != 1:
        raise ScoringError(f"user_embeddings and item_embeddings come from different models {versions}; "
                           "re-run the training job")
    return next(iter(versions["user_embeddings"]))


def run_score_job(spark: SparkSession, cfg: ScoreJobConfig) -> ScoreRunSummary:
    start = time.perf_counter()
    now, run_id = run_identity(cfg.run)
    sc, warehouse = cfg.score, cfg.paths.warehouse
    run_date = resolve_run_date(sc, now)
    kernel()
    version = _check_embeddings(spark, warehouse)

    frame = candidate_frame(io.read_table(spark, warehouse, ITEMS), io.read_table(spark, warehouse, ITEM_EMBEDDINGS),
                            io.read_table(spark, warehouse, ITEM_STATS), sc, run_date)
    cands = collect_candidates(frame)
    if not len(cands):
        raise ScoringError(f"no candidate items on {run_date}: nothing launched within {sc.new_item_days} days "
                           f"or with fewer than {sc.max_new_item_users} users (score.candidates={sc.candidates})")
    rules = Rules(k=sc.k, max_per_category=sc.max_per_category, new_item_quota=sc.new_item_quota)
    index = spark.createDataFrame(pd.DataFrame({"item_id": cands.item_ids, "cand": np.arange(len(cands), dtype=np.int32)}))
    seen = (io.read_table(spark, warehouse, INTERACTIONS).select("user_id", "item_id").distinct()
            .join(F.broadcast(index), "item_id").groupBy("user_id").agg(F.collect_list("cand").alias("seen")))
    folder = tempfile.mkdtemp(prefix="rec-score-")
    try:
        rows = (score_users(spark, _users_to_score(spark, warehouse, seen), cands, rules, sc.max_tile_items,
                            sc.users_per_batch, folder)
                .select("user_id", "rank", "item_id", "score", "source", F.lit(version).alias("model_version"),
                        F.lit(run_date).alias("run_date"), timestamp_lit(now).alias("generated_at")))
        # the summary's counts come from the write itself: each user's list has one rank 1
        observed = Observation(f"score-{run_id}")
        rows = rows.observe(observed, F.count(F.lit(1)).alias("rows"),
                            F.sum(F.when((F.col("rank") == 1) & (F.col("source") == RecommendationSource.MODEL), 1)
                                  .otherwise(0)).alias("model_users"),
                            F.sum(F.when((F.col("rank") == 1) & (F.col("source") != RecommendationSource.MODEL), 1)
                                  .otherwise(0)).alias("fallback_users"))
        with timed(log, f"score users against {len(cands)} candidates and write run_date {run_date}"):
            io.replace_partition(rows, RECOMMENDATIONS, warehouse, "run_date", run_date.isoformat(), user_metadata=run_id,
                                 rows_match=True)  # run_date is the literal above on every row
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    apply_views(spark, warehouse, cfg.sql.database)
    counts = observed.get
    examples = _examples(spark, warehouse, run_date, sc.show_users)
    return ScoreRunSummary(run_id=run_id, run_date=run_date, model_version=version, n_candidates=len(cands),
                           n_new_candidates=int(cands.is_new.sum()), n_model_users=int(counts["model_users"] or 0),
                           n_fallback_users=int(counts["fallback_users"] or 0), rows=int(counts["rows"]),
                           seconds=time.perf_counter() - start, examples=examples)


def _users_to_score(spark: SparkSession, warehouse: str, seen: DataFrame) -> DataFrame:
    """Every user with an embedding and every user of the shop: user_id, embedding (null for users
    new since training), top_category (only for those: their fallback list's key; null where
    unknown), seen (candidate indices or null). Only the join with `seen` moves the embeddings."""
    embedded = io.read_table(spark, warehouse, USER_EMBEDDINGS).select("user_id", "embedding")
    newcomers = (io.read_table(spark, warehouse, USERS).select("user_id")
                 .join(embedded.select("user_id"), "user_id", "left_anti"))
    profile = io.read_table_if_exists(spark, warehouse, USER_FEATURES)
    newcomers = (newcomers.withColumn("top_category", F.lit(None).cast("string")) if profile is None
                 else newcomers.join(profile.select("user_id", "top_category"), "user_id", "left"))
    everyone = (embedded.withColumn("top_category", F.lit(None).cast("string"))
                .unionByName(newcomers.withColumn("embedding", F.lit(None).cast(embedded.schema["embedding"].dataType))))
    return everyone.join(seen, "user_id", "left")


def _examples(spark: SparkSession, warehouse: str, run_date: date, n: int) -> Dict[str, List[str]]:
    """The first n users' top 5 titles, read from the written partition (only when n > 0)."""
    if n <= 0:
        return {}
    written = io.read_table(spark, warehouse, RECOMMENDATIONS).where(F.col("run_date") == F.lit(run_date))
    users = [r[0] for r in written.select("user_id").distinct().orderBy("user_id").limit(n).collect()]
    titled = (written.where(F.col("user_id").isin(users)).where(F.col("rank") <= 5)
              .join(io.read_table(spark, warehouse, ITEMS).select("item_id", "title"), "item_id")
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
