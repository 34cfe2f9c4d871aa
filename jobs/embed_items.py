"""Encode new or changed item texts with the pretrained encoder into item_text_embeddings."""
import sys

from rec_lib.cli import run_spark_job
from rec_lib.config import EmbedJobConfig
from rec_lib.embed_job import run_embed_job


CONFIG = EmbedJobConfig  # the config this job reads


def main(argv=None) -> int:
    return run_spark_job(argv, __doc__, CONFIG, run_embed_job)


if __name__ == "__main__":
    sys.exit(main())
