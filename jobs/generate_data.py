"""Generate the seeded demo shop (items, users, events exports + ground truth) into paths.input."""
import sys

from rec_lib.cli import job_parser, load_job_config, parse, run_job
from rec_lib.config import GenerateJobConfig


CONFIG = GenerateJobConfig  # the config this job reads


def main(argv=None) -> int:
    parser = job_parser(__doc__)
    args = parse(parser, argv)

    def body():
        from rec_lib.generator import generate_shop

        cfg = load_job_config(CONFIG, args)
        shop = generate_shop(cfg.demo, cfg.paths.input)
        print(f"demo shop in {shop.input_dir}: {shop.n_items:,} items, {shop.n_users:,} users, "
              f"{shop.n_events:,} event rows ({shop.n_dirty_rows:,} made invalid on purpose); "
              f"new items launch after {shop.new_item_cutoff:%Y-%m-%d}")

    return run_job(body)


if __name__ == "__main__":
    sys.exit(main())
