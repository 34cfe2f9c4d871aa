"""The evaluation job: `python -m jobs.evaluate`, and the file spark-submit runs. The job itself is
`rec_lib.evaluation.job.main`, which the wheel installs as the `rec-evaluate` command."""
import sys

from rec_lib.evaluation.job import CONFIG, main  # noqa: F401  (CONFIG: the config class this job reads)

if __name__ == "__main__":
    sys.exit(main())
