"""Benchmark: training throughput fed by Petastorm from the Delta table vs. fed from memory,
with 1 and 2 Horovod workers, same rows, same model, same run.

Usage: python scripts/bench_train.py --events 1000000 [--epochs 3] [--out bench_out/train]
Generates a demo shop (2,000 items, events/50 users), builds its feature tables and text
embeddings, builds `training_examples`, then runs the same training function four times on the
local Spark session (`horovod.spark.run`, gloo):
  Petastorm (make_spark_converter over the Delta table) x {1, 2} workers, and
  in-memory (tf.data.Dataset.from_tensor_slices of the same rows) x {1, 2} workers.
Throughput is examples/s over all workers, averaged over the epochs after the first (the first
includes graph tracing and the readers' start).
"""
import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_results  # noqa: E402

from rec_lib.core.config import EmbedJobConfig, FeatureJobConfig, GenerateJobConfig, TrainJobConfig, load_config  # noqa: E402
from rec_lib.platform.cli import configure_logging  # noqa: E402


def steady_rate(results) -> float:
    rank0 = next(r for r in results if r.rank == 0)
    rates = rank0.epoch_examples_per_s[1:] or rank0.epoch_examples_per_s
    return float(np.mean(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="bench_out/train")
    parser.add_argument("--conf-file", default="conf/local.yaml")
    bench_results.add_argument(parser, "train")
    args = parser.parse_args()
    configure_logging()
    out = Path(args.out).resolve()
    shop, warehouse = out / "shop", out / "warehouse"
    shutil.rmtree(out, ignore_errors=True)


    from rec_lib.demo.generator import generate_shop
    from rec_lib.features.job import run_feature_job
    from rec_lib.platform.spark import get_spark
    from rec_lib.text.job import run_embed_job
    from rec_lib.training.data import DataSettings, build_training_data, write_examples
    from rec_lib.training.fit import launch_workers, run_workers
    from rec_lib.training.model_folder import ModelFolder
    from rec_lib.training.worker import COLUMNS, InMemoryFeed, WorkerSpec

    demo = load_config(GenerateJobConfig, args.conf_file).demo
    generate_shop(dataclasses.replace(demo, n_items=2000, n_users=max(args.events // 50, 100), n_events=args.events,
                                      dirty_fraction=0.0, format="parquet"), shop)
    settings = [f"paths.input={shop}", f"paths.warehouse={warehouse}", "run.now=2026-11-01T00:00:00Z",
                f"train.epochs={args.epochs}", f"train.petastorm_cache_dir={out / 'petastorm'}",
                f"train.model_dir={out / 'models'}"]
    spark = get_spark(load_config(FeatureJobConfig, args.conf_file, settings).spark)
    run_feature_job(spark, load_config(FeatureJobConfig, args.conf_file, settings))
    run_embed_job(spark, load_config(EmbedJobConfig, args.conf_file, settings))
    cfg = load_config(TrainJobConfig, args.conf_file, settings)
    t = cfg.train
    data = build_training_data(spark, str(warehouse), None, DataSettings.of(t, cfg.few_shot.max_k))
    examples = write_examples(data, str(warehouse), "bench", partitions=8)
    spec = dataclasses.replace(WorkerSpec.of(cfg.train, data, ModelFolder(out / "models" / "bench")), checkpoint_dir="", return_weights=False)

    pdf = examples.toPandas()
    columns = {c: (np.stack(pdf[c].map(lambda v: np.asarray(v)).to_list()) if c in ("history", "user_numeric")
                   else pdf[c].to_numpy()) for c in COLUMNS}
    columns = {k: v.astype(np.float32 if k in ("user_numeric", "weight") else np.int32) for k, v in columns.items()}
    in_memory = InMemoryFeed(columns)

    rates = {}
    for num_proc in (1, 2):
        report = str(out / f"failures-{num_proc}")
        rates[("petastorm", num_proc)] = steady_rate(launch_workers(
            spark, spec, examples, num_proc, str(out / "petastorm"), t.start_timeout_s, report))
        rates[("in-memory", num_proc)] = steady_rate(run_workers(spec, in_memory, num_proc, t.start_timeout_s, report))

    lines = [f"bench-train: {data.n_examples:,} training examples ({args.events:,} events, {len(data.catalogue):,} "
             f"items, {data.n_users:,} users), batch {t.batch_size}/worker, {args.epochs} epochs, "
             f"Spark {spark.sparkContext.master}, {os.cpu_count()} CPUs"]
    for num_proc in (1, 2):
        p, m = rates[("petastorm", num_proc)], rates[("in-memory", num_proc)]
        lines.append(f"  {num_proc} worker(s): Petastorm from Delta {p:9,.0f} examples/s | in-memory tf.data {m:9,.0f} "
                     f"examples/s | Petastorm/in-memory {p / m:.2f}x")
    for feed in ("petastorm", "in-memory"):
        lines.append(f"  {feed:9s}: 2 workers / 1 worker = {rates[(feed, 2)] / rates[(feed, 1)]:.2f}x")
    print("\n" + "\n".join(lines))
    bench_results.write(args.results, "bench-train: Petastorm against an in-memory feed, 1 and 2 Horovod workers",
                        "make bench-train", "\n".join(lines))


if __name__ == "__main__":
    main()
