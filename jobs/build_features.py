"""Build the feature tables (items, users, interactions, item_stats, user_features, quarantine)."""
import sys

from rec_lib.cli import run_spark_job
from rec_lib.config import FeatureJobConfig
from rec_lib.feature_job import run_feature_job


CONFIG = FeatureJobConfig  # the config this job reads


def main(argv=None) -> int:
    return run_spark_job(argv, __doc__, CONFIG, run_feature_job)


if __name__ == "__main__":
    sys.exit(main())
