"""The SQL views: `python -m jobs.apply_sql`, and the file spark-submit runs. The job itself is
`rec_lib.platform.sql_views.main`, which the wheel installs as the `rec-apply-sql` command."""
import sys

from rec_lib.platform.sql_views import CONFIG, main  # noqa: F401  (CONFIG: the config class this job reads)

if __name__ == "__main__":
    sys.exit(main())
