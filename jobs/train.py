"""Train the two-tower model on Horovod workers fed by Petastorm; write user/item embeddings."""
import sys

from rec_lib.cli import run_spark_job
from rec_lib.config import TrainJobConfig
from rec_lib.train_job import run_train_job


CONFIG = TrainJobConfig  # the config this job reads


def main(argv=None) -> int:
    return run_spark_job(argv, __doc__, CONFIG, run_train_job)


if __name__ == "__main__":
    sys.exit(main())
