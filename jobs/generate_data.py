"""The demo shop generator: `python -m jobs.generate_data`. The job itself is `rec_lib.demo.job.main`,
which the wheel installs as the `rec-generate-data` command."""
import sys

from rec_lib.demo.job import CONFIG, main  # noqa: F401  (CONFIG: the config class this job reads)

if __name__ == "__main__":
    sys.exit(main())
