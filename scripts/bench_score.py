"""Benchmark: the scoring job against the matrix product, the top-K kernel, Spark MLlib ALS and a
naive cross join, at two widths, and at a catalogue-wide size with bounded worker memory.

Usage: python scripts/bench_score.py --users 100000 --items 10000 --dims 64,416 --k 50 --wide 10

For each width in --dims: seeded random user/item factors are written as the embedding tables of a
scratch warehouse (every item a launch of the day before: a candidate; each user with --history
interactions with --history-items established items, which are not candidates: what a similar_to
reason names), then timed in the same run:
  plain    the scoring job (`run_score_job`) with score.reasons=false, table written; run twice
  job      the same with reasons (every row says why: rec_lib.scoring.reasons); run twice
  write    the job's floor in Spark: the same users read and K rows each written to a
           `recommendations` table, without scoring
  product  the matrix product + bias alone, one numpy process (blocks of 4,096 users), no top-K
  kernel   the job's top-K kernel alone (`rec_lib.scoring.kernel.top_k_augmented`), one process, same blocks
  als      Spark MLlib ALSModel `recommendForAllUsers(k)` on the same factors (no bias: ALS has none);
           --als-dims limits the widths
Then --wide N: N x the candidates at the first width, scored in tiles of --items candidates, with
the job, the product and the kernel. For every job the peak resident memory (VmHWM) of the Spark
Python workers is printed: the wide size's must not exceed the small size's (a task holds one tile).
After each job, 1,000 sampled users' written lists are compared with an exact float64 sort.
Finally a naive crossJoin + window top-K on --naive-users users (0: skip).
Pairs scored per second = users x items / seconds.
"""
import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_results  # noqa: E402

from rec_lib.core.config import ScoreJobConfig, load_config  # noqa: E402
from rec_lib.platform.cli import configure_logging  # noqa: E402

BLOCK = 4096


def write_tables(spark, warehouse: str, U: np.ndarray, V: np.ndarray, b: np.ndarray, history: int,
                 history_items: int, rng: np.random.Generator) -> None:
    """The embedding, item, user and interaction tables of a shop whose V rows are launches of the day
    before the run (the candidates) and whose `history_items` further items (random rows, launched
    long before: not candidates) are what each user interacted with, `history` of them per user:
    the items a similar_to reason names. Every column the schema declares and the shop lacks is null."""
    from rec_lib.core.schema import (
        INTERACTIONS,
        ITEM_EMBEDDINGS,
        ITEM_STATS,
        ITEMS,
        USER_EMBEDDINGS,
        USER_FEATURES,
        USERS,
    )
    from rec_lib.platform import io

    now = pd.Timestamp("2026-10-31")
    user_ids = [f"u{i:07d}" for i in range(len(U))]
    old = rng.normal(size=(history_items, V.shape[1])).astype(np.float32)
    item_ids = [f"i{i:07d}" for i in range(len(V))] + [f"h{i:07d}" for i in range(history_items)]
    launched = [now - pd.Timedelta(days=1)] * len(V) + [now - pd.Timedelta(days=300)] * history_items

    def write(spec, pdf):
        pdf = pdf.assign(**{c: None for c in spec.columns if c not in pdf.columns})[list(spec.columns)]
        io.overwrite_table(spark.createDataFrame(pdf, spec.schema), spec, warehouse)

    seen = rng.integers(0, max(history_items, 1), size=(len(U), history)) if history_items else np.zeros((len(U), 0), int)
    write(USER_EMBEDDINGS, pd.DataFrame({  # the history each vector was built from: newest first, as training writes it
        "user_id": user_ids, "model_version": "bench", "embedding": list(U), "source": "id+history",
        "n_history": np.int32(history), "created_at": now,
        "history_items": [list(dict.fromkeys(f"h{i:07d}" for i in row[::-1])) for row in seen]}))
    bias = np.concatenate([b, np.zeros(history_items)])
    write(ITEM_EMBEDDINGS, pd.DataFrame({  # one tower block, the bias the launch prior: reasons similar_to / popular_launch
        "item_id": item_ids, "model_version": "bench", "embedding": list(V) + list(old), "bias": bias,
        "n_users": np.int64(0), "source": "trained", "created_at": now, "parts": [[{"name": "tower", "width": V.shape[1]}]] * len(item_ids),
        "prior_score": bias, "pace_score": 0.0, "pace_days": 1.0, "expected_users_per_day": np.exp(bias),
        "attribute_tokens": [[]] * len(item_ids)}))
    write(ITEMS, pd.DataFrame({"item_id": item_ids, "title": item_ids, "category": "c", "launch_ts": launched,
                               "content_hash": "h", "updated_run_id": "bench"}))
    io.overwrite_table(spark.createDataFrame([], ITEM_STATS.schema), ITEM_STATS, warehouse)
    write(USERS, pd.DataFrame({"user_id": user_ids, "signup_ts": now, "derived_from_events": False,
                               "updated_run_id": "bench"}))
    ts = now - pd.to_timedelta(np.sort(rng.integers(1, 200 * 86400, size=seen.shape), axis=1).ravel(), unit="s")
    write(INTERACTIONS, pd.DataFrame({
        "user_id": np.repeat(user_ids, seen.shape[1]), "item_id": [f"h{i:07d}" for i in seen.ravel()],
        "event_type": "view", "ts": ts, "type_weight": 1.0, "event_date": (now - pd.Timedelta(days=2)).date(),
        "run_id": "bench"}))
    io.overwrite_table(spark.createDataFrame([], USER_FEATURES.schema), USER_FEATURES, warehouse)


def write_floor_time(spark, warehouse: str, item_ids: np.ndarray, k: int) -> float:
    """Read the users as the job does and write K rows per user to a `recommendations` table of
    their own, without scoring: what writing the lists costs (best of two runs)."""
    from pyspark.sql import functions as F

    from rec_lib.core.schema import RECOMMENDATIONS, USER_EMBEDDINGS
    from rec_lib.platform import io

    def rows(frames):
        for pdf in frames:
            n = len(pdf)
            yield pd.DataFrame({"user_id": np.repeat(pdf["user_id"].to_numpy(), k),
                                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
                                "item_id": item_ids[np.tile(np.arange(k), n)], "score": np.zeros(n * k),
                                "source": "model"})

    lists = (io.read_table(spark, warehouse, USER_EMBEDDINGS).select("user_id", "embedding")
             .mapInPandas(rows, "user_id string, rank int, item_id string, score double, source string")
             .select("*", F.lit("bench").alias("model_version"), F.lit("2026-10-31").cast("date").alias("run_date"),
                     F.lit("2026-10-31 12:00:00").cast("timestamp").alias("generated_at"),
                     F.lit(None).cast(RECOMMENDATIONS.schema["reason"].dataType).alias("reason")))
    times = []
    for _ in range(2):
        start = time.perf_counter()
        io.replace_partition(lists, RECOMMENDATIONS, warehouse + "_floor", "run_date", "2026-10-31", rows_match=True)
        times.append(time.perf_counter() - start)
    return min(times)


def exact_check(spark, warehouse: str, U: np.ndarray, V: np.ndarray, b: np.ndarray, k: int, n: int = 1000,
                seed: int = 0) -> Tuple[int, int, float]:
    """The written lists of n sampled users against an exact float64 sort (ties by item): how many
    lists are identical, how many have the same items, and where they differ the largest float64
    score gap between the items at the same rank (a float32 near-tie shows as ~1e-6)."""
    from pyspark.sql import functions as F

    from rec_lib.core.schema import RECOMMENDATIONS
    from rec_lib.platform import io

    users = np.sort(np.random.default_rng(seed).choice(len(U), size=min(n, len(U)), replace=False))
    written = (io.read_table(spark, warehouse, RECOMMENDATIONS)
               .where(F.col("user_id").isin([f"u{u:07d}" for u in users])).toPandas())
    lists = {u: g.sort_values("rank")["item_id"].str[1:].astype(int).tolist() for u, g in written.groupby("user_id")}
    same_list = same_set = 0
    gap = 0.0
    for u in users:
        scores = U[u].astype(np.float64) @ V.T.astype(np.float64) + b
        exact = np.lexsort((np.arange(len(V)), -scores))[:k].tolist()
        got = lists.get(f"u{u:07d}", [])
        same_list += got == exact
        same_set += set(got) == set(exact)
        if got != exact and len(got) == len(exact):  # position by position: how far apart the swapped items score
            gap = max(gap, float(np.max(np.abs(scores[got] - scores[exact]))))
    return same_list, same_set, gap


def product_time(U: np.ndarray, V: np.ndarray, b: np.ndarray) -> float:
    start = time.perf_counter()
    for lo in range(0, len(U), BLOCK):
        U[lo:lo + BLOCK] @ V.T + b[None, :]
    return time.perf_counter() - start


def kernel_time(U: np.ndarray, V: np.ndarray, b: np.ndarray, k: int) -> float:
    from rec_lib.scoring.kernel import Rules, augment_candidates, augment_users, set_threads, top_k_augmented

    set_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    cands = augment_candidates(V, b)
    for lo in range(0, len(U), BLOCK):
        top_k_augmented(augment_users(U[lo:lo + BLOCK]), cands, [None] * len(U[lo:lo + BLOCK]), Rules(k=k))
    return time.perf_counter() - start


def als_time(spark, U: np.ndarray, V: np.ndarray, k: int, folder: str) -> float:
    """MLlib's ALSModel.recommendForAllUsers(k) on the same factors: a model of the same rank is fitted
    on 4 ratings (fitting 100k users at rank 416 would take hours), saved, its factor tables
    replaced by U and V, and loaded back. ALS has no bias term: the job's extra dimension is left out."""
    from pyspark.ml.recommendation import ALS, ALSModel

    tiny = pd.DataFrame({"user": np.arange(4, dtype=np.int32), "item": np.arange(4, dtype=np.int32),
                         "rating": np.float32(1.0)})
    ALS(rank=U.shape[1], maxIter=1, implicitPrefs=True, seed=0, userCol="user", itemCol="item",
        ratingCol="rating").fit(spark.createDataFrame(tiny)).write().overwrite().save(folder)
    for name, factors in (("userFactors", U), ("itemFactors", V)):
        frame = pd.DataFrame({"id": np.arange(len(factors), dtype=np.int32), "features": list(factors)})
        spark.createDataFrame(frame, "id int, features array<float>").write.mode("overwrite").parquet(f"{folder}/{name}")
    model = ALSModel.load(folder)
    start = time.perf_counter()
    model.recommendForAllUsers(k).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def naive_time(spark, U: np.ndarray, V: np.ndarray, b: np.ndarray, k: int) -> float:
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


def python_workers() -> List[int]:
    """Process ids of the Spark Python workers (children of the JVM that this process launched)."""
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)
            if "python" in p.name() and any("pyspark" in a for a in p.cmdline())]


def reset_peak_rss() -> None:
    for pid in python_workers():  # '5' resets the process's VmHWM (Linux >= 4.0)
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def worker_peak_rss_mb() -> float:
    peaks = []
    for pid in python_workers():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks, default=float("nan"))


def job_times(spark, cfg, expected_rows: int) -> Tuple[List[float], float]:
    from rec_lib.scoring.job import run_score_job

    times = []
    reset_peak_rss()
    for _ in range(2):
        start = time.perf_counter()
        summary = run_score_job(spark, cfg)
        times.append(time.perf_counter() - start)
        assert summary.rows == expected_rows, (summary.rows, expected_rows)
    if cfg.score.reasons:  # every row says why: the kinds' shares
        print("bench-score: reasons: " + ", ".join(f"{k[len('reason_share_'):]} {v:.0%}"
                                                   for k, v in summary.figures.items() if k.startswith("reason_share_")))
    return times, worker_peak_rss_mb()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--dims", default="64,416", help="widths to run, comma-separated (416: 32 + MiniLM's 384)")
    parser.add_argument("--als-dims", default=None, help="widths to run ALS at (default: all of --dims)")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--wide", type=int, default=10, help="the catalogue-wide size: this many x the items (0: skip)")
    parser.add_argument("--naive-users", type=int, default=2000)
    parser.add_argument("--history", type=int, default=10, help="items each user interacted with (what reasons name)")
    parser.add_argument("--history-items", type=int, default=5000, help="established items (not candidates) they are from")
    parser.add_argument("--out", default="bench_out/score")
    parser.add_argument("--conf-file", default="conf/local.yaml")
    bench_results.add_argument(parser, "score")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    configure_logging()
    dims = [int(d) for d in args.dims.split(",")]
    als_dims = dims if args.als_dims is None else [int(d) for d in args.als_dims.split(",") if d]
    out = Path(args.out).resolve()
    from rec_lib.platform.spark import get_spark

    rng = np.random.default_rng(42)
    results: Dict[str, Dict[str, object]] = {}
    spark = None
    sizes = [(d, args.items) for d in dims] + ([(dims[0], args.items * args.wide)] if args.wide else [])
    for dim, n_items in sizes:
        shutil.rmtree(out, ignore_errors=True)
        U = rng.normal(size=(args.users, dim)).astype(np.float32)
        V = rng.normal(size=(n_items, dim)).astype(np.float32)
        b = rng.normal(size=n_items).astype(np.float32)
        cfg = load_config(ScoreJobConfig, args.conf_file, [
            f"paths.warehouse={out / 'warehouse'}", "run.now=2026-10-31T12:00:00Z",
            f"score.k={args.k}", f"score.max_tile_items={args.items}", "score.show_users=0", "score.candidates=new",
            "score.long_tail=false", "score.min_new_item_exposure=0", "score.new_item_quota=0", "score.order=score"])
        spark = spark or get_spark(cfg.spark)
        write_tables(spark, cfg.paths.warehouse, U, V, b.astype(np.float64), args.history, args.history_items, rng)
        plain, _ = job_times(spark, dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, reasons=False)),
                             args.users * args.k)
        job, rss = job_times(spark, cfg, args.users * args.k)
        same_list, same_set, gap = exact_check(spark, cfg.paths.warehouse, U, V, b.astype(np.float64), args.k)
        checked = min(1000, args.users)
        print(f"bench-score: exact check on {checked} users: same list {same_list}, same items {same_set}, "
              f"largest score gap at a differing rank {gap:.2g}", flush=True)
        row = {"job": job, "plain": plain, "rss": rss, "product": product_time(U, V, b), "kernel": kernel_time(U, V, b, args.k),
               "write": write_floor_time(spark, cfg.paths.warehouse, np.array([f"i{i:07d}" for i in range(args.k)]),
                                         args.k),
               "tiles": -(-n_items // args.items)}
        if n_items == args.items and dim in als_dims:
            row["als"] = als_time(spark, U, V, args.k, str(out / "als"))
        results[f"{args.users:,} x {n_items:,}, d={dim}"] = row
        print(f"bench-score: {args.users:,} x {n_items:,}, d={dim}: {row}", flush=True)
    naive = naive_time(spark, U[:args.naive_users], V[:args.items], b[:args.items].astype(np.float64), args.k) \
        if args.naive_users else None

    report(args, spark, results, naive, U)


def report(args: argparse.Namespace, spark, results: Dict[str, Dict[str, object]], naive, U: np.ndarray) -> None:
    lines = [f"bench-score: {args.users:,} users, K={args.k}, Spark {spark.sparkContext.master}, {os.cpu_count()} "
             "CPUs; seconds (pairs scored per second)",
             f"  {'size':28s} {'job (1st / 2nd run)':>22s} {'no reasons':>11s} {'reasons':>8s} {'write':>7s} "
             f"{'product':>8s} {'kernel':>8s} {'ALS':>8s} {'job/product':>11s} {'kernel/product':>14s} {'ALS/job':>8s} "
             f"{'worker peak RSS':>16s}"]
    for size, row in results.items():
        job = min(row["job"])
        als = row.get("als")
        lines.append(
            f"  {size:28s} {row['job'][0]:9.1f} / {row['job'][1]:5.1f} s {min(row['plain']):10.1f}s "
            f"{job / min(row['plain']):7.2f}x {row['write']:6.1f}s {row['product']:7.1f}s "
            f"{row['kernel']:7.1f}s {(f'{als:7.1f}s' if als else '      - ')} {job / row['product']:10.1f}x "
            f"{row['kernel'] / row['product']:13.1f}x {(f'{als / job:7.1f}x' if als else '       -')} "
            f"{row['rss']:11.0f} MiB ({row['tiles']} tile{'s' if row['tiles'] > 1 else ''})")
    lines += ["  write: the same users read and K rows each written to a recommendations table, no scoring "
              "(best of 2); job/product uses the job's best run",
              "  no reasons: the job's best of 2 with score.reasons=false; reasons: the job's best run with reasons / it"]
    first = next(iter(results.values()))
    pairs = args.users * args.items
    lines.append(f"  job, best run, {pairs / min(first['job']):,.0f} pairs/s; product {pairs / first['product']:,.0f} pairs/s")
    if naive:
        n = args.naive_users * args.items
        lines.append(f"  crossJoin + window ({args.naive_users:,} users x {args.items:,}, d={U.shape[1]}): {naive:.1f} s, "
                     f"{n / naive:,.0f} pairs/s; the job scores {(pairs / min(first['job'])) / (n / naive):.0f}x more pairs/s")
    if args.wide:
        wide = list(results.values())[-1]
        lines.append(f"  worker peak RSS, {args.wide}x the candidates in tiles vs one tile: {wide['rss']:.0f} vs "
                     f"{first['rss']:.0f} MiB")
    print("\n" + "\n".join(lines))
    bench_results.write(args.results, "bench-score: the scoring job against the product, the kernel, ALS and a cross join",
                        "make bench-score", "\n".join(lines))

if __name__ == "__main__":
    main()
