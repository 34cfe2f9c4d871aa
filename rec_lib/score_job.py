"""The scoring stage: every user against the candidate items -> `recommendations` (Delta, one
partition per run_date) and the SQL view `recommendations_latest`.

No cross join: users stream through `mapInPandas` in blocks; each block is multiplied with the
candidate matrix (broadcast once per tile of `score.max_tile_items` candidates) and the top K is
selected in numpy (`rec_lib.scoring`). With several tiles, each keeps its partial top list and a
per-user merge makes the final one. Users without an embedding (new since training) get a
fallback list of popular candidates, by their favourite category where known.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Dict, Iterator, List

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from rec_lib import io
from rec_lib.config import ScoreJobConfig, ScoreSection
from rec_lib.errors import ConfigError, RecError
from rec_lib.progress import timed
from rec_lib.runs import run_identity, timestamp_lit
from rec_lib.schema import (INTERACTIONS, ITEM_EMBEDDINGS, ITEM_STATS, ITEMS, RECOMMENDATIONS,
                            RECOMMENDATIONS_LATEST_VIEW, USER_EMBEDDINGS, USER_FEATURES, USERS,
                            RecommendationSource)
from rec_lib.scoring import Rules, merge_partial, partial_top_block, top_k_block
from rec_lib.sql_views import apply_views

log = logging.getLogger(__name__)

PARTIAL_SCHEMA = "user_id string, cand array<int>, score array<double>"
TOP_SCHEMA = "user_id string, rank int, cand int, score double"


class ScoringError(RecError):
    """Scoring cannot start: embeddings missing or from different models, or no candidates."""


@dataclass
class Candidates:
    item_ids: np.ndarray  # str [N], sorted
    vectors: np.ndarray  # float32 [N, d]
    bias: np.ndarray  # float64 [N]
    category: np.ndarray  # int [N] (codes)
    is_new: np.ndarray  # bool [N]
    popularity: np.ndarray  # float64 [N]: weighted interactions so far
    category_names: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.item_ids)


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


def _score_tile(bc, rules: Rules, start: int, stop: int, partial: bool, batch: int):
    """mapInPandas function: users (user_id, embedding, seen) -> their top list over one tile."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cands = bc.value
        vectors, bias = cands["vectors"][start:stop], cands["bias"][start:stop]
        category, is_new = cands["category"][start:stop], cands["is_new"][start:stop]
        for pdf in frames:
            for lo in range(0, len(pdf), batch):
                part = pdf.iloc[lo:lo + batch]
                users = np.stack([np.asarray(v, np.float32) for v in part["embedding"]])
                seen = [None if s is None else np.asarray(s, np.int64) for s in part["seen"]]
                if partial:
                    idx, score = partial_top_block(users, vectors, bias, seen, rules, category, is_new, start)
                    yield pd.DataFrame({"user_id": part["user_id"].to_numpy(),
                                        "cand": list(idx.astype(np.int32)), "score": list(score)})
                else:
                    idx, score = top_k_block(users, vectors, bias, seen, rules, category, is_new, start)
                    valid = idx >= 0
                    rows, ranks = np.nonzero(valid)
                    yield pd.DataFrame({"user_id": part["user_id"].to_numpy()[rows], "rank": (ranks + 1).astype(np.int32),
                                        "cand": idx[valid].astype(np.int32), "score": score[valid]})

    return run


def _merge(bc, rules: Rules):
    """applyInPandas function: one user's partial lists from every tile -> the final top K."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        cands = bc.value
        idx = np.concatenate([np.asarray(a, np.int64) for a in pdf["cand"]])
        score = np.concatenate([np.asarray(a, np.float64) for a in pdf["score"]])
        picked, scores = merge_partial(idx, np.nan_to_num(score, nan=-np.inf), rules, cands["category"], cands["is_new"])
        return pd.DataFrame({"user_id": pdf["user_id"].iloc[0], "rank": np.arange(1, len(picked) + 1, dtype=np.int32),
                             "cand": picked.astype(np.int32), "score": scores})

    return run


def score_users(spark: SparkSession, users: DataFrame, cands: Candidates, rules: Rules, max_tile_items: int,
                users_per_batch: int) -> DataFrame:
    """users (user_id, embedding, seen: candidate indices) -> user_id, rank, cand, score."""
    bc = spark.sparkContext.broadcast({"vectors": cands.vectors, "bias": cands.bias,
                                       "category": cands.category, "is_new": cands.is_new})
    tiles = [(lo, min(lo + max_tile_items, len(cands))) for lo in range(0, len(cands), max_tile_items)]
    if len(tiles) == 1:
        return users.mapInPandas(_score_tile(bc, rules, 0, len(cands), False, users_per_batch), TOP_SCHEMA)
    partials = None
    for lo, hi in tiles:
        part = users.mapInPandas(_score_tile(bc, rules, lo, hi, True, users_per_batch), PARTIAL_SCHEMA)
        partials = part if partials is None else partials.unionByName(part)
    return partials.groupBy("user_id").applyInPandas(_merge(bc, rules), TOP_SCHEMA)


def fallback_lists(cands: Candidates, k: int) -> pd.DataFrame:
    """key (a category name, or '' for everyone), rank, cand, score: for each category its popular
    candidates first, then the most popular others; for '' the most popular overall. 2k long, so
    that k remain after a user's seen items are removed in most cases."""
    order = np.lexsort((np.arange(len(cands)), -cands.popularity))
    length = min(2 * k, len(cands))
    rows = [("", r + 1, int(c)) for r, c in enumerate(order[:length])]
    for code, name in enumerate(cands.category_names):
        if not name:
            continue
        own = [c for c in order if cands.category[c] == code]
        rest = [c for c in order if cands.category[c] != code]
        rows += [(name, r + 1, int(c)) for r, c in enumerate((own + rest)[:length])]
    out = pd.DataFrame(rows, columns=["key", "rank", "cand"])
    out["score"] = cands.popularity[out["cand"].to_numpy()] if len(out) else []
    return out


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
    versions = {spec.name: {r[0] for r in io.read_table(spark, warehouse, spec).select("model_version").distinct().collect()}
                for spec in (USER_EMBEDDINGS, ITEM_EMBEDDINGS)}
    if len(versions["user_embeddings"] | versions["item_embeddings"]) != 1:
        raise ScoringError(f"user_embeddings and item_embeddings come from different models {versions}; "
                           "re-run the training job")
    return next(iter(versions["user_embeddings"]))


def run_score_job(spark: SparkSession, cfg: ScoreJobConfig) -> ScoreRunSummary:
    start = time.perf_counter()
    now, run_id = run_identity(cfg.run)
    sc, warehouse = cfg.score, cfg.paths.warehouse
    run_date = resolve_run_date(sc, now)
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
    embedded = io.read_table(spark, warehouse, USER_EMBEDDINGS).select("user_id", "embedding")
    model_rows = score_users(spark, embedded.join(seen, "user_id", "left"), cands, rules, sc.max_tile_items,
                             sc.users_per_batch).withColumn("source", F.lit(RecommendationSource.MODEL))

    # users known to the shop but not to the model (new since training): fallback lists
    lists = spark.createDataFrame(fallback_lists(cands, sc.k))
    profile = io.read_table_if_exists(spark, warehouse, USER_FEATURES)
    newcomers = io.read_table(spark, warehouse, USERS).select("user_id").join(embedded, "user_id", "left_anti")
    if profile is not None:
        newcomers = newcomers.join(profile.select("user_id", "top_category"), "user_id", "left")
    else:
        newcomers = newcomers.withColumn("top_category", F.lit(None).cast("string"))
    known = F.col("top_category").isin(*[c for c in cands.category_names if c]) if cands.category_names else F.lit(False)
    keyed = newcomers.withColumn("key", F.when(known, F.col("top_category")).otherwise(F.lit("")))
    fallback = (keyed.join(F.broadcast(lists), "key")
                .join(seen.select("user_id", F.explode("seen").alias("cand")), ["user_id", "cand"], "left_anti"))
    fallback = (fallback.withColumn("rank", F.row_number().over(Window.partitionBy("user_id").orderBy("rank")))
                .where(F.col("rank") <= sc.k)
                .withColumn("source", F.when(F.col("key") == "", RecommendationSource.FALLBACK_POPULAR)
                            .otherwise(RecommendationSource.FALLBACK_CATEGORY))
                .select("user_id", F.col("rank").cast("int").alias("rank"), "cand", "score", "source"))

    rows = (model_rows.unionByName(fallback).join(F.broadcast(index), "cand")
            .select("user_id", "rank", "item_id", "score", "source", F.lit(version).alias("model_version"),
                    F.lit(run_date).alias("run_date"),
                    timestamp_lit(now).alias("generated_at")))
    with timed(log, f"score users against {len(cands)} candidates and write run_date {run_date}"):
        io.replace_partition(rows, RECOMMENDATIONS, warehouse, "run_date", run_date.isoformat(), user_metadata=run_id)
    apply_views(spark, warehouse, cfg.sql.database)

    written = io.read_table(spark, warehouse, RECOMMENDATIONS).where(F.col("run_date") == F.lit(run_date))
    counts = {r["source"]: (r["users"], r["rows"]) for r in written.groupBy("source").agg(
        F.countDistinct("user_id").alias("users"), F.count(F.lit(1)).alias("rows")).collect()}
    examples = _examples(spark, written, warehouse, sc.show_users)
    model_users = counts.get(RecommendationSource.MODEL, (0, 0))[0]
    return ScoreRunSummary(run_id=run_id, run_date=run_date, model_version=version, n_candidates=len(cands),
                           n_new_candidates=int(cands.is_new.sum()), n_model_users=model_users,
                           n_fallback_users=sum(u for s, (u, _) in counts.items() if s != RecommendationSource.MODEL),
                           rows=sum(n for _, n in counts.values()), seconds=time.perf_counter() - start,
                           examples=examples)


def _examples(spark: SparkSession, written: DataFrame, warehouse: str, n: int) -> Dict[str, List[str]]:
    if n <= 0:
        return {}
    users = [r[0] for r in written.select("user_id").distinct().orderBy("user_id").limit(n).collect()]
    titled = (written.where(F.col("user_id").isin(users)).where(F.col("rank") <= 5)
              .join(io.read_table(spark, warehouse, ITEMS).select("item_id", "title"), "item_id")
              .orderBy("user_id", "rank").collect())
    out: Dict[str, List[str]] = {u: [] for u in users}
    for r in titled:
        out[r["user_id"]].append(r["title"])
    return out
