"""How much training on the test suite's small shop moves with the seed: held-out Recall@10 of one
and of two Horovod workers, per seed. The tolerance of
tests/integration/test_train_job.py::test_one_worker_matches_two_within_tolerance comes from here.

    .venv/bin/python scripts/seed_spread.py --seeds 1,2,3,4,5

Builds the same shop as the suite's `shop` fixture (tests/helpers.py: build_small_shop) in a
temporary folder, then trains with `train.seed=<s>` at `train.num_proc` 2 and 1.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rec_lib.core.config import SparkSection  # noqa: E402
from rec_lib.platform.cli import configure_logging  # noqa: E402
from rec_lib.platform.spark import get_spark  # noqa: E402
from rec_lib.training.job import run_train_job  # noqa: E402
from tests.helpers import build_small_shop, heldout_recall, train_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    args = parser.parse_args()
    configure_logging()
    logging.getLogger("rec_lib").setLevel(logging.WARNING)
    spark = get_spark(SparkSection(master="local[2]", app_name="seed-spread", shuffle_partitions=2,
                                   driver_memory="2g", jars_dir=str(REPO / ".cache" / "jars"),
                                   conf={"spark.ui.enabled": "false", "spark.default.parallelism": "2"}))
    root = Path(tempfile.mkdtemp(prefix="seed-spread-"))
    shop = (root, build_small_shop(spark, root))
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        row = {"seed": seed}
        for workers in (2, 1):
            cfg = train_config(shop, f"train.seed={seed}", f"train.num_proc={workers}", "mlflow.tracking_uri=''")
            run_train_job(spark, cfg)
            row[workers], row["random"] = heldout_recall(spark, cfg.paths.warehouse)
        rows.append(row)
        print(f"seed {seed}: Recall@10 two workers {row[2]:.4f}, one worker {row[1]:.4f}, "
              f"|gap| {abs(row[2] - row[1]):.4f}, random {row['random']:.4f}", flush=True)
    gaps = [abs(r[2] - r[1]) for r in rows]
    for workers in (2, 1):
        values = [r[workers] for r in rows]
        print(f"{workers} worker(s): mean {statistics.mean(values):.4f}, sd {statistics.stdev(values):.4f}, "
              f"range {min(values):.4f}..{max(values):.4f}")
    print(f"|one - two|: mean {statistics.mean(gaps):.4f}, max {max(gaps):.4f} over {len(rows)} seeds")


if __name__ == "__main__":
    main()
