"""Which model the lists come from: the embedding tables' model, and the champion the evaluation
gate published (table `model_gate`). The scoring job reads the champion's embeddings at the Delta
versions its gate row names (time travel), so a model that failed the gate is never served while
the tables already hold it; the evaluation gate records what it decided here.

A champion's vectors stay readable while VACUUM keeps their files: keep
`delta.deletedFileRetentionDuration` on the two embedding tables longer than the longest time
between two passed gates (docs/model.md, "Evaluation gate").
"""
from __future__ import annotations

from datetime import datetime
from typing import Dict, Optional

import pandas as pd
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from rec_lib.core.clock import utc_naive
from rec_lib.core.schema import ITEM_EMBEDDINGS, MODEL_GATE, USER_EMBEDDINGS
from rec_lib.platform import io
from rec_lib.scoring.serve import ScoringError

EMBEDDINGS = (USER_EMBEDDINGS, ITEM_EMBEDDINGS)


class ModelChoiceError(ScoringError):
    """The model to serve cannot be determined: embeddings missing or from two models, or no champion."""


def embedding_model_version(spark: SparkSession, tables: io.Snapshot) -> str:
    """The one model version both embedding tables hold in `tables` (else ModelChoiceError)."""
    for spec in EMBEDDINGS:
        if tables.versions[spec.name] is None:
            raise ModelChoiceError(f"table {spec.name} not found under {tables.warehouse}: run the training job "
                                   "first (make train)")
    # one Spark job for both tables: (table, model_version) pairs, a handful of rows
    tagged = [tables.read(spark, spec).select(F.lit(spec.name).alias("table"), "model_version") for spec in EMBEDDINGS]
    versions: Dict[str, set] = {spec.name: set() for spec in EMBEDDINGS}
    for table, version in tagged[0].unionByName(tagged[1]).distinct().collect():
        versions[table].add(version)
    if len(versions[USER_EMBEDDINGS.name] | versions[ITEM_EMBEDDINGS.name]) != 1:
        raise ModelChoiceError(f"user_embeddings and item_embeddings come from different models {versions}; "
                               "re-run the training job")
    return next(iter(versions[USER_EMBEDDINGS.name]))


def champion_row(spark: SparkSession, warehouse: str) -> Optional[Row]:
    """The newest passed decision of `model_gate`, or None (no table, or nothing passed yet)."""
    gate = io.read_table_if_exists(spark, warehouse, MODEL_GATE)
    if gate is None:
        return None
    rows = gate.where("passed").orderBy(F.col("decided_at").desc(), F.col("run_id").desc()).limit(1).collect()
    return rows[0] if rows else None


def champion_snapshot(spark: SparkSession, tables: io.Snapshot) -> io.Snapshot:
    """`tables` with the two embedding tables at the champion's Delta versions."""
    row = champion_row(spark, tables.warehouse)
    if row is None:
        raise ModelChoiceError(
            f"score.serve is champion but no model has passed the evaluation gate yet (table {MODEL_GATE.name} "
            f"under {tables.warehouse}): run the evaluation with evaluate.gate set (make evaluate), or serve the "
            "latest model (score.serve=latest)")
    versions = dict(tables.versions)
    versions[USER_EMBEDDINGS.name] = int(row["user_embeddings_version"])
    versions[ITEM_EMBEDDINGS.name] = int(row["item_embeddings_version"])
    return io.Snapshot(tables.warehouse, versions, tables.ids)


def record_decision(spark: SparkSession, warehouse: str, run_id: str, decided: io.Snapshot, model_version: str,
                    evaluated_version: str, passed: bool, reason: str, registered_model: Optional[str],
                    registered_version: Optional[str], now: datetime) -> None:
    """Write this evaluation run's row of `model_gate` (a rerun replaces its own row)."""
    row = pd.DataFrame([{
        "run_id": run_id, "model_version": model_version, "evaluated_version": evaluated_version, "passed": passed,
        "reason": reason, "user_embeddings_version": int(decided.versions[USER_EMBEDDINGS.name]),
        "item_embeddings_version": int(decided.versions[ITEM_EMBEDDINGS.name]),
        "registered_model": registered_model or None, "registered_version": registered_version,
        "decided_at": pd.Timestamp(utc_naive(now))}])
    df = spark.createDataFrame(row[list(MODEL_GATE.columns)], schema=MODEL_GATE.schema)
    io.replace_partition(df, MODEL_GATE, warehouse, "run_id", run_id, user_metadata=run_id)


__all__ = ["ModelChoiceError", "embedding_model_version", "champion_row", "champion_snapshot", "record_decision"]
