"""The feature job: `python -m jobs.build_features`, and the file spark-submit runs. The job itself is
`rec_lib.features.job.main`, which the wheel installs as the `rec-build-features` command."""
import sys

from rec_lib.features.job import CONFIG, main  # noqa: F401  (CONFIG: the config class this job reads)

if __name__ == "__main__":
    sys.exit(main())
