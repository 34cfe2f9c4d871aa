"""The embedding stage: items -> item_text_embeddings, encoding only new or changed texts.

Each item's text is built from configured fields (default: title, category, brand, description),
hashed, and compared with what the table holds for the same model; only items whose text hash or
model changed are encoded. Encoding runs inside Spark (`mapInPandas`), one encoder per Python
worker, batches sorted by token length; rows are upserted with MERGE.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from rec_lib.core import faults
from rec_lib.core.clock import run_identity
from rec_lib.core.config import EmbedJobConfig
from rec_lib.core.process import worker_setup
from rec_lib.core.progress import timed
from rec_lib.core.schema import ITEM_TEXT_EMBEDDINGS, ITEMS, TEXT_FIELDS
from rec_lib.platform import io
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.columns import timestamp_lit
from rec_lib.text.encoder import EncoderSource, resolve_encoder

log = logging.getLogger(__name__)

PROGRESS_EVERY = 1024  # texts between progress lines of a worker


def item_text(fields: Sequence[str]) -> Column:
    """The text an item is encoded from: the configured fields that are present, joined by '. '.

    Order matters to the encoder (text past the model's token limit is cut), so the title comes
    first by default and the long description last."""
    unknown = [f for f in fields if f not in TEXT_FIELDS]
    if unknown:
        raise ValueError(f"unknown text field(s) {unknown}; choose from {list(TEXT_FIELDS)}")
    return F.concat_ws(". ", *[F.col(f) for f in fields])


def text_hash(text: Column) -> Column:
    return F.sha2(text, 256)


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str  # content hash of the weights: a changed model re-encodes every item


def model_identity(source: EncoderSource) -> ModelIdentity:
    """The encoder's name and a hash of its files' contents."""
    digest = hashlib.sha256()
    for path in source.files:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return ModelIdentity(name=source.name, version=digest.hexdigest()[:16])


def items_to_encode(items_text: DataFrame, existing: DataFrame | None, identity: ModelIdentity) -> DataFrame:
    """Items whose (text hash, model) has no embedding yet. Columns: item_id, text, text_hash."""
    if existing is None:
        return items_text
    current = existing.where((F.col("model_name") == identity.name) & (F.col("model_version") == identity.version))
    return items_text.join(current.select("item_id", "text_hash"), ["item_id", "text_hash"], "left_anti")


def _encode_partitions(model: str, batch_size: int, tf_threads: int):
    """A mapInPandas function: encodes each partition with the worker's cached encoder."""

    def encode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        worker_setup(tf_threads)  # a fresh Spark Python worker: progress goes to its stderr
        from rec_lib.text.encoder import cached_encoder

        encoder = cached_encoder(model, batch_size, tf_threads)
        worker_log = logging.getLogger("rec_lib.text.job.worker")
        for pdf in batches:
            start = time.perf_counter()
            vectors = encoder.encode(pdf["text"].tolist(), progress_every=PROGRESS_EVERY)
            elapsed = time.perf_counter() - start
            worker_log.info("worker %d encoded a batch of %d items (%.0f items/s)",
                            os.getpid(), len(pdf), len(pdf) / max(elapsed, 1e-9))
            yield pd.DataFrame({"item_id": pdf["item_id"], "text_hash": pdf["text_hash"],
                                "embedding": list(vectors)})

    return encode


def chunk_count(n_items: int, chunk_items: int) -> int:
    """How many writes `n_items` items take at `chunk_items` a write (0: one)."""
    return 1 if chunk_items <= 0 else max(1, -(-n_items // chunk_items))


def chunk_of(item_id: Column, n_chunks: int) -> Column:
    """The chunk (0 .. n_chunks-1) an item is encoded in: a hash of its id, so a re-run after a
    kill splits the items still to encode the same way whatever their order."""
    return F.pmod(F.xxhash64(item_id), F.lit(n_chunks))


def encode_in_spark(to_encode: DataFrame, model: str, batch_size: int, tf_threads: int, partitions: int) -> DataFrame:
    """item_id, text, text_hash -> item_id, text_hash, embedding array<float>."""
    return (to_encode.repartition(partitions, "item_id")
            .mapInPandas(_encode_partitions(model, batch_size, tf_threads),
                         "item_id string, text_hash string, embedding array<float>"))


@dataclass
class EmbedRunSummary:
    run_id: str
    model: ModelIdentity
    n_items: int
    n_encoded: int
    seconds: float

    def lines(self) -> List[str]:
        rate = self.n_encoded / self.seconds if self.seconds > 0 and self.n_encoded else 0.0
        return [f"embedding job run {self.run_id}: model {self.model.name} ({self.model.version})",
                f"  items {self.n_items:,}; encoded {self.n_encoded:,} new or changed "
                f"({self.n_items - self.n_encoded:,} unchanged) in {self.seconds:.1f} s ({rate:.0f} items/s)"]


def run_embed_job(spark: SparkSession, cfg: EmbedJobConfig) -> EmbedRunSummary:
    now, run_id = run_identity(cfg.run)
    identity = model_identity(resolve_encoder(cfg.encoder.model))  # fails fast on a bad folder or package
    warehouse = cfg.paths.warehouse
    items = io.read_table(spark, warehouse, ITEMS)
    text = item_text(cfg.encoder.text_fields)
    items_text = items.select("item_id", text.alias("text")).withColumn("text_hash", text_hash(F.col("text")))
    existing = io.read_table_if_exists(spark, warehouse, ITEM_TEXT_EMBEDDINGS)

    to_encode = items_to_encode(items_text, existing, identity).cache()
    n_items, n_todo = items.count(), to_encode.count()
    log.info("embedding job %s: %d of %d items have new or changed text for %s", run_id, n_todo, n_items, identity.name)
    start = time.perf_counter()
    if n_todo:
        partitions = cfg.encoder.partitions or spark.sparkContext.defaultParallelism
        n_chunks = chunk_count(n_todo, cfg.encoder.chunk_items)
        for chunk in range(n_chunks):
            part = to_encode if n_chunks == 1 else to_encode.where(chunk_of(F.col("item_id"), n_chunks) == chunk)
            with timed(log, f"encode chunk {chunk + 1} of {n_chunks} ({n_todo} items in all) in {partitions} partitions"):
                encoded = encode_in_spark(part, cfg.encoder.model, cfg.encoder.batch_size,
                                          cfg.encoder.tf_threads, partitions)
                rows = (encoded.withColumn("model_name", F.lit(identity.name))
                        .withColumn("model_version", F.lit(identity.version))
                        .withColumn("embedded_at", timestamp_lit(now))
                        .withColumn("run_id", F.lit(run_id)))
                io.merge_table(spark, rows, ITEM_TEXT_EMBEDDINGS, warehouse,
                               compare=["text_hash", "model_name", "model_version"])
            faults.point("embed.chunk_written")
    seconds = time.perf_counter() - start
    to_encode.unpersist()
    return EmbedRunSummary(run_id, identity, n_items, n_todo, seconds)


# --------------------------------------------------------------------------------------------
# Entry point: `rec-embed-items`, `python -m jobs.embed_items`, spark-submit jobs/embed_items.py
# --------------------------------------------------------------------------------------------

DESCRIPTION = """Encode new or changed item texts with the pretrained encoder into item_text_embeddings."""
CONFIG = EmbedJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_spark_job(argv, DESCRIPTION, CONFIG, run_embed_job)
