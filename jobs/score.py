"""The scoring job: `python -m jobs.score`, and the file spark-submit runs. The job itself is
`rec_lib.scoring.job.main`, which the wheel installs as the `rec-score` command."""
import sys

from rec_lib.scoring.job import CONFIG, main  # noqa: F401  (CONFIG: the config class this job reads)

if __name__ == "__main__":
    sys.exit(main())
