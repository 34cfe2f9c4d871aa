"""Evaluate cold-start quality by k-shot: the model against random, popular, content kNN, ALS and
(on the generated shop) an oracle; write evaluation_metrics and a report."""
import sys

from rec_lib.cli import run_spark_job
from rec_lib.config import EvaluateJobConfig
from rec_lib.evaluate_job import run_evaluate_job


CONFIG = EvaluateJobConfig  # the config this job reads


def main(argv=None) -> int:
    return run_spark_job(argv, __doc__, CONFIG, run_evaluate_job)


if __name__ == "__main__":
    sys.exit(main())
