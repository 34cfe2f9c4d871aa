"""Create or replace the SQL views downstream consumers query (rec_lib/sql/V*.sql, in version order)."""
import sys

from rec_lib.cli import run_spark_job
from rec_lib.config import SqlJobConfig
from rec_lib.sql_views import run_sql_job


CONFIG = SqlJobConfig  # the config this job reads


def main(argv=None) -> int:
    return run_spark_job(argv, __doc__, CONFIG, run_sql_job)


if __name__ == "__main__":
    sys.exit(main())
