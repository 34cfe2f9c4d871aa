"""The evaluation gate's publishing (`evaluate.gate`): the production model as the job found it, the
decision recorded in `model_gate` (what scoring serves with `score.serve: champion`), and a passed
model registered and given the registry's `champion` alias last.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Optional, Tuple

from pyspark.sql import SparkSession

from rec_lib.core.config import EvaluateJobConfig
from rec_lib.evaluation.gate import GateDecision, GateOutcome
from rec_lib.platform import io
from rec_lib.scoring.published import EMBEDDINGS, champion_row, embedding_model_version, record_decision
from rec_lib.training.facade import register_version, set_champion

log = logging.getLogger(__name__)


def production_model(spark: SparkSession, cfg: EvaluateJobConfig) -> Optional[Tuple[io.Snapshot, str]]:
    """With a gate: the embedding tables' versions and the model they hold, taken at the job's
    start (a training that lands while the evaluation runs is not published by it); else None."""
    if not cfg.evaluate.gate:
        return None
    tables = io.Snapshot.take(spark, cfg.paths.warehouse, EMBEDDINGS)
    return tables, embedding_model_version(spark, tables)


def apply_gate(spark: SparkSession, cfg: EvaluateJobConfig, run_id: str, now: datetime,
               production: Tuple[io.Snapshot, str], decision: GateDecision, evaluated_version: str) -> GateOutcome:
    """Record the decision in `model_gate` (what scoring serves with score.serve: champion); a
    passed model is registered first (when a registry is configured) and gets the alias
    `champion` last, so the alias never names a model the table does not serve."""
    tables, version = production
    registered = None
    publish = decision.passed and bool(cfg.mlflow.tracking_uri and cfg.mlflow.registered_model)
    if publish:
        registered = register_version(spark, cfg.mlflow, cfg.train, version)
    record_decision(spark, cfg.paths.warehouse, run_id, tables, version, evaluated_version, decision.passed,
                    decision.reason, cfg.mlflow.registered_model, registered, now)
    if publish:
        set_champion(cfg.mlflow, registered)
    champion = champion_row(spark, cfg.paths.warehouse)
    outcome = GateOutcome(decision, version, None if champion is None else champion["model_version"], registered)
    log.info("evaluation gate: %s", " ".join(line.strip() for line in outcome.lines()))
    return outcome

