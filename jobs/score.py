"""Score every user against the candidate items; write the recommendations table and its view."""
import sys

from rec_lib.cli import run_spark_job
from rec_lib.config import ScoreJobConfig
from rec_lib.score_job import run_score_job


CONFIG = ScoreJobConfig  # the config this job reads


def main(argv=None) -> int:
    return run_spark_job(argv, __doc__, CONFIG, run_score_job)


if __name__ == "__main__":
    sys.exit(main())
