"""Build the feature tables (items, users, interactions, item_stats, user_features, quarantine)."""
import sys

from rec_lib.cli import job_parser, load_job_config, parse, run_job
from rec_lib.config import FeatureJobConfig


def main(argv=None) -> int:
    args = parse(job_parser(__doc__), argv)

    def body():
        from rec_lib.feature_job import run_feature_job
        from rec_lib.spark import get_spark

        cfg = load_job_config(FeatureJobConfig, args)
        summary = run_feature_job(get_spark(cfg.spark), cfg)
        print("\n".join(summary.lines()))

    return run_job(body)


if __name__ == "__main__":
    sys.exit(main())
