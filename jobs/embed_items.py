"""The text-embedding job: `python -m jobs.embed_items`, and the file spark-submit runs. The job itself is
`rec_lib.text.job.main`, which the wheel installs as the `rec-embed-items` command."""
import sys

from rec_lib.text.job import CONFIG, main  # noqa: F401  (CONFIG: the config class this job reads)

if __name__ == "__main__":
    sys.exit(main())
