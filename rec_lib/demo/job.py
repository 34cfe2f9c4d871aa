"""The demo shop job: generate the seeded shop (items, users, events exports + ground truth) into
paths.input. No Spark: the generator writes the CSV files itself."""
from __future__ import annotations

from typing import Optional, Sequence

from rec_lib.core.clock import resolve_now
from rec_lib.core.config import GenerateJobConfig
from rec_lib.demo.generator import generate_shop
from rec_lib.platform.cli import job_parser, load_job_config, parse, run_job

DESCRIPTION = "Generate the seeded demo shop (items, users, events exports + ground truth) into paths.input."
CONFIG = GenerateJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(job_parser(DESCRIPTION), argv)

    def body() -> None:
        cfg = load_job_config(CONFIG, args)
        shop = generate_shop(cfg.demo, cfg.paths.input, now=resolve_now(cfg.run.now))
        print(f"demo shop ({cfg.demo.regime} regime) in {shop.input_dir}: {shop.n_items:,} items, "
              f"{shop.n_users:,} users, {shop.n_events:,} event rows ({shop.n_dirty_rows:,} made invalid on purpose); "
              f"events until {shop.end:%Y-%m-%d %H:%M} UTC; new items launch after {shop.new_item_cutoff:%Y-%m-%d}")

    return run_job(body)
