"""`python -m jobs.train`, and the file spark-submit runs: train the two-tower model on Horovod workers fed by Petastorm; write user/item embeddings

The job is `rec_lib.training.job` (also the `rec-train` command of the wheel)."""
import sys

from rec_lib.training.job import CONFIG, main  # noqa: F401  (CONFIG: the config this job reads)

if __name__ == "__main__":
    sys.exit(main())
