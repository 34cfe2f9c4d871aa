"""Benchmark: the scoring job against the numpy floor, Spark MLlib ALS and a naive cross join.

Usage: python scripts/bench_score.py --users 100000 --items 10000 --dim 64 --k 50 [--naive-users 2000]
Writes seeded random user/item factors as the embedding tables of a scratch warehouse (every item
a candidate, no seen items), then times in the same run:
  (a) the scoring job (`run_score_job`, score.candidates=all), table write included;
  (b) the matrix product alone in one numpy process (blocks of 4,096 users), and the product
      plus numpy argpartition top-K;
  (c) Spark MLlib ALS `recommendForAllUsers(k)` with the same rank and sizes (the model is fitted
      with maxIter=1 on one rating per user and per item, outside the timing);
  (d) a naive crossJoin + window top-K on `--naive-users` users (it cannot finish the full size).
Pairs scored per second = users x items / seconds.
"""
import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rec_lib.cli import configure_logging  # noqa: E402
from rec_lib.config import ScoreJobConfig, load_config  # noqa: E402

BLOCK = 4096


def write_tables(spark, warehouse: str, U: np.ndarray, V: np.ndarray, b: np.ndarray) -> None:
    from rec_lib import io
    from rec_lib.schema import (INTERACTIONS, ITEM_EMBEDDINGS, ITEM_STATS, ITEMS, USER_EMBEDDINGS, USER_FEATURES,
                                USERS)

    now = pd.Timestamp("2026-10-31")
    user_ids = [f"u{i:07d}" for i in range(len(U))]
    item_ids = [f"i{i:06d}" for i in range(len(V))]

    def write(spec, pdf):
        io.overwrite_table(spark.createDataFrame(pdf, spec.schema), spec, warehouse)

    write(USER_EMBEDDINGS, pd.DataFrame({"user_id": user_ids, "model_version": "bench", "embedding": list(U),
                                         "source": "id+history", "n_history": np.int32(1), "created_at": now}))
    write(ITEM_EMBEDDINGS, pd.DataFrame({"item_id": item_ids, "model_version": "bench", "embedding": list(V), "bias": b,
                                         "n_users": np.int64(0), "source": "trained", "created_at": now}))
    write(ITEMS, pd.DataFrame({"item_id": item_ids, "title": item_ids, "description": None, "category": "c",
                               "brand": None, "price": None, "launch_ts": now - pd.Timedelta(days=30),
                               "content_hash": "h", "source_file": None, "updated_run_id": "bench"}))
    for spec in (USERS, INTERACTIONS, ITEM_STATS, USER_FEATURES):
        io.overwrite_table(spark.createDataFrame([], spec.schema), spec, warehouse)
    write(USERS, pd.DataFrame({"user_id": user_ids, "signup_ts": now, "attributes": None,
                               "derived_from_events": False, "updated_run_id": "bench"}))


def numpy_floor(U, V, b, k):
    start = time.perf_counter()
    for lo in range(0, len(U), BLOCK):
        U[lo:lo + BLOCK] @ V.T + b[None, :]
    product_s = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, len(U), BLOCK):
        scores = U[lo:lo + BLOCK] @ V.T + b[None, :]
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        np.take_along_axis(scores, part, axis=1)
    return product_s, time.perf_counter() - start


def als_time(spark, U, V, k, seed=0):
    from pyspark.ml.recommendation import ALS

    rng = np.random.default_rng(seed)
    n_u, n_i = len(U), len(V)
    ratings = pd.DataFrame({"user": np.concatenate([np.arange(n_u), rng.integers(0, n_u, n_i)]).astype(np.int32),
                            "item": np.concatenate([rng.integers(0, n_i, n_u), np.arange(n_i)]).astype(np.int32),
                            "rating": np.float32(1.0)})
    model = ALS(rank=U.shape[1], maxIter=1, implicitPrefs=True, seed=seed, userCol="user", itemCol="item",
                ratingCol="rating").fit(spark.createDataFrame(ratings))
    start = time.perf_counter()
    model.recommendForAllUsers(k).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def naive_time(spark, U, V, b, k):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    users = spark.createDataFrame(pd.DataFrame({"user": np.arange(len(U)), "u": list(U)}))
    items = spark.createDataFrame(pd.DataFrame({"item": np.arange(len(V)), "v": list(V), "b": b}))
    dot = F.aggregate(F.zip_with("u", "v", lambda x, y: x * y), F.lit(0.0), lambda s, x: s + x) + F.col("b")
    best = Window.partitionBy("user").orderBy(F.col("score").desc(), "item")
    start = time.perf_counter()
    (users.crossJoin(items).select("user", "item", dot.alias("score"))
     .withColumn("r", F.row_number().over(best)).where(F.col("r") <= k)
     .write.format("noop").mode("overwrite").save())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--naive-users", type=int, default=2000)
    parser.add_argument("--out", default="bench_out/score")
    parser.add_argument("--conf-file", default="conf/local.yaml")
    args = parser.parse_args()
    configure_logging()
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    from rec_lib.score_job import run_score_job
    from rec_lib.spark import get_spark

    rng = np.random.default_rng(42)
    U = rng.normal(size=(args.users, args.dim)).astype(np.float32)
    V = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    b = rng.normal(size=args.items).astype(np.float32)
    cfg = load_config(ScoreJobConfig, args.conf_file, [
        f"paths.warehouse={out / 'warehouse'}", "run.now=2026-10-31T12:00:00Z", "score.candidates=all",
        f"score.k={args.k}", f"score.max_tile_items={max(args.items, 1)}", "score.show_users=0"])
    spark = get_spark(cfg.spark)
    write_tables(spark, cfg.paths.warehouse, U, V, b.astype(np.float64))

    start = time.perf_counter()
    summary = run_score_job(spark, cfg)
    job_s = time.perf_counter() - start
    assert summary.rows == args.users * args.k, summary.rows
    product_s, topk_s = numpy_floor(U, V, b, args.k)
    als_s = als_time(spark, U, V, args.k)
    naive_s = naive_time(spark, U[:args.naive_users], V, b.astype(np.float64), args.k)

    pairs = args.users * args.items
    print(f"\nbench-score: {args.users:,} users x {args.items:,} candidates, dim {args.dim}, K={args.k}, "
          f"Spark {spark.sparkContext.master}, {os.cpu_count()} CPUs")
    rows = [("(a) scoring job (Spark, table written)", job_s, pairs),
            ("(b) numpy product alone, one process", product_s, pairs),
            ("    numpy product + argpartition top-K", topk_s, pairs),
            ("(c) MLlib ALS recommendForAllUsers", als_s, pairs),
            (f"(d) crossJoin + window ({args.naive_users:,} users)", naive_s, args.naive_users * args.items)]
    for name, seconds, n in rows:
        print(f"  {name:42s} {seconds:8.1f} s {n / seconds:14,.0f} pairs/s")
    print(f"  job / product alone = {job_s / product_s:.1f}x;  ALS / job = {als_s / job_s:.1f}x;  "
          f"job pairs/s / crossJoin pairs/s = {(pairs / job_s) / (args.naive_users * args.items / naive_s):.1f}x")


if __name__ == "__main__":
    main()
