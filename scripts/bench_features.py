"""Benchmark: the feature job against a plain Parquet read + write of the same event rows.

Usage: python scripts/bench_features.py --events 10000000 [--out bench_out/features]
Generates a shop with that many events (Parquet parts), then in the same Spark session times
(a) the feature job on a fresh warehouse, (b) the feature job again on the same input (the
idempotent re-run), (c) spark.read.parquet(events).write.parquet(...), the target's baseline, and
(d) the same read, deduplicated by the interaction key and written partitioned by day: the least
any job that deduplicates (one shuffle) must do, for context.
"""
import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_results  # noqa: E402

from rec_lib.core.config import FeatureJobConfig, GenerateJobConfig, load_config  # noqa: E402
from rec_lib.platform.cli import configure_logging  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--out", default="bench_out/features")
    parser.add_argument("--conf-file", default="conf/local.yaml")
    bench_results.add_argument(parser, "features")
    args = parser.parse_args()
    configure_logging()
    out = Path(args.out).resolve()
    shop_dir, warehouse, plain_dir = out / "shop", out / "warehouse", out / "plain"

    demo = load_config(GenerateJobConfig, args.conf_file).demo
    demo = dataclasses.replace(demo, n_events=args.events, n_users=max(2000, args.events // 50),
                               n_items=max(1000, args.events // 500), format="parquet", chunk_users=2000)
    from rec_lib.demo.generator import generate_shop

    t0 = time.perf_counter()
    shop = generate_shop(demo, shop_dir)
    generate_s = time.perf_counter() - t0

    from rec_lib.features.job import run_feature_job
    from rec_lib.platform.spark import get_spark

    cfg = load_config(FeatureJobConfig, args.conf_file, [
        f"paths.input={shop_dir}", f"paths.warehouse={warehouse}", "run.now=2026-11-01T00:00:00Z"])
    spark = get_spark(cfg.spark)
    shutil.rmtree(warehouse, ignore_errors=True)
    shutil.rmtree(plain_dir, ignore_errors=True)

    from pyspark.sql import functions as F

    from rec_lib.features.transforms import parse_timestamp

    t0 = time.perf_counter()
    spark.read.parquet(str(shop_dir / "events")).write.parquet(str(plain_dir))
    plain_s = time.perf_counter() - t0
    shutil.rmtree(plain_dir, ignore_errors=True)
    t0 = time.perf_counter()
    (spark.read.parquet(str(shop_dir / "events")).dropDuplicates(["user_id", "item_id", "event_type", "ts"])
     .withColumn("event_date", F.to_date(parse_timestamp(F.col("ts")))).repartition("event_date")
     .write.partitionBy("event_date").parquet(str(plain_dir)))
    dedup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = run_feature_job(spark, cfg)
    job_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_feature_job(spark, cfg)
    rerun_s = time.perf_counter() - t0

    rows = shop.n_events
    cores = spark.sparkContext.defaultParallelism
    print("\n".join(summary.lines()))
    report = "\n".join([
        f"bench-features: {rows:,} event rows ({shop.n_users:,} users, {shop.n_items:,} items), "
        f"Spark {spark.sparkContext.master} with {cores} cores; generation took {generate_s:.1f} s",
        f"  plain parquet read+write : {plain_s:8.1f} s  {rows / plain_s:12,.0f} rows/s",
        f"  read+dedupe+write by day : {dedup_s:8.1f} s  {rows / dedup_s:12,.0f} rows/s  ratio {dedup_s / plain_s:.2f}x",
        f"  feature job (fresh)      : {job_s:8.1f} s  {rows / job_s:12,.0f} rows/s  "
        f"ratio {job_s / plain_s:.2f}x the plain rewrite",
        f"  feature job (re-run)     : {rerun_s:8.1f} s  {rows / rerun_s:12,.0f} rows/s  ratio {rerun_s / plain_s:.2f}x"])
    print("\n" + report)
    bench_results.write(args.results, "bench-features: the feature job against a plain Parquet rewrite",
                        "make bench-features", report)

if __name__ == "__main__":
    main()
