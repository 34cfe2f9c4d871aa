"""Encode new or changed item texts with the pretrained encoder into item_text_embeddings."""
import sys

from rec_lib.cli import job_parser, load_job_config, parse, run_job
from rec_lib.config import EmbedJobConfig


def main(argv=None) -> int:
    args = parse(job_parser(__doc__), argv)

    def body():
        from rec_lib.embed_job import run_embed_job
        from rec_lib.spark import get_spark

        cfg = load_job_config(EmbedJobConfig, args)
        summary = run_embed_job(get_spark(cfg.spark), cfg)
        print("\n".join(summary.lines()))

    return run_job(body)


if __name__ == "__main__":
    sys.exit(main())
