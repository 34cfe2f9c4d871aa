"""The evaluation stage: cold-start quality by k-shot, the model against baselines and an oracle
-> `evaluation_metrics` (Delta), a report folder (Markdown + PNG) and an MLflow run; with
`evaluate.gate`, the decision whether the production model is served.

The job wires the rooms of the stage together:
- `window`: the cutoff, the test window, the new items and their users (`EvaluationSet`)
- `inputs`: a model trained only on what precedes the cutoff (its own model version and
  `evaluation_training_examples`, so production is untouched) and each ranker's inputs, ALS included
- `rankers` / `metrics`: the protocol itself (pure)
- `backtest`: the scoring code's lists on the cutoff model, and their ablation
- `results` / `report`: the metric rows, MLflow, the printed summary, the Markdown report
- `gate` / `publishing`: the decision and what it publishes
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from rec_lib.core.clock import run_identity
from rec_lib.core.config import EvaluateJobConfig
from rec_lib.core.progress import timed
from rec_lib.core.schema import EVALUATION_METRICS, EVALUATION_TRAINING_EXAMPLES, INTERACTIONS, ITEMS
from rec_lib.evaluation import report
from rec_lib.evaluation.backtest import backtest
from rec_lib.evaluation.gate import GateDecision
from rec_lib.evaluation.inputs import build_rankers
from rec_lib.evaluation.publishing import apply_gate, production_model
from rec_lib.evaluation.rankers import evaluate
from rec_lib.evaluation.results import (
    EvaluationRunSummary,
    SkippedEvaluation,
    ablation_rows,
    log_evaluation,
    metric_rows,
    write_metrics,
)
from rec_lib.evaluation.window import EvaluationError, EvaluationSet, evaluation_set, protocol_notes
from rec_lib.platform import io
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.sql_views import apply_sql
from rec_lib.training.facade import fit_model

log = logging.getLogger(__name__)


def run_evaluate_job(spark: SparkSession, cfg: EvaluateJobConfig):
    """The evaluation's summary, or a SkippedEvaluation where the shop cannot be evaluated today
    (no new items, too few users on them) unless `evaluate.required` makes that an error."""
    now, run_id = run_identity(cfg.run)
    production = production_model(spark, cfg)  # what the gate decides on: fixed before the evaluation
    interactions = io.read_table(spark, cfg.paths.warehouse, INTERACTIONS)
    try:
        ts = evaluation_set(spark, interactions, io.read_table(spark, cfg.paths.warehouse, ITEMS), cfg.evaluate)
    except EvaluationError as exc:
        if cfg.evaluate.required:
            raise
        log.warning("nothing evaluated: %s", exc)
        gate = None if production is None else apply_gate(spark, cfg, run_id, now, production,
                                                          GateDecision.not_evaluated(str(exc)), "")
        return SkippedEvaluation(run_id, str(exc), gate)
    summary = _evaluate(spark, cfg, now, run_id, interactions, ts)
    if production is not None:
        decision = GateDecision.of(summary.rows, cfg.evaluate.gate, cfg.evaluate.top_k)
        summary.gate = apply_gate(spark, cfg, run_id, now, production, decision, summary.model_version)
    return summary


def _evaluate(spark: SparkSession, cfg: EvaluateJobConfig, now: datetime, run_id: str, interactions: DataFrame,
              ts: EvaluationSet) -> EvaluationRunSummary:
    start = time.perf_counter()
    ev, warehouse = cfg.evaluate, cfg.paths.warehouse
    log.info("evaluation window %s: %d of %d new items have more than %d users; %d test pairs, %d test users "
             "(%d ranked)", ts.window, len(ts.items), ts.n_new, max(ev.ks), ts.n_test_pairs, ts.n_test_users,
             len(ts.users))

    fitted = fit_model(spark, cfg.train_config(ts.cutoff.isoformat()), examples_table=EVALUATION_TRAINING_EXAMPLES)
    notes = protocol_notes(ts, ev)
    rankers, als = build_rankers(spark, cfg, fitted, ts, interactions, notes)
    try:
        with timed(log, f"evaluate {len(rankers)} methods at k = {ev.ks}"):
            results = evaluate(ts.pairs, ts.items, rankers, list(ev.ks), ev.top_k, ts.users, ev.seed,
                               popularity=ts.popularity)
    finally:
        if als is not None:
            als.close()
    rows = metric_rows(results)
    served = backtest(spark, cfg, fitted, ts, interactions, run_id, now) if ev.backtest else {}
    ablated = ablation_rows(served, cfg.score.k)
    write_metrics(spark, warehouse, pd.concat([rows, ablated], ignore_index=True) if len(ablated) else rows,
                  run_id, fitted.version, ts.cutoff, ts.end, now)
    apply_sql(spark, warehouse, cfg.sql)

    folder = Path(ev.report_dir) / run_id
    header = {"run": run_id, "model version": fitted.version, "window": f"{ev.window} {ts.window}",
              "cutoff": f"{ts.cutoff:%Y-%m-%d %H:%M} UTC", "new items": f"{ts.n_new:,} ({len(ts.items):,} evaluated)",
              "K": str(ev.top_k), "score blend": fitted.blend.describe(),
              "table": io.table_path(warehouse, EVALUATION_METRICS)}
    paths = report.write_report(rows, ev.top_k, folder, header, notes, served)
    summary = EvaluationRunSummary(run_id, fitted.version, ts.cutoff, ts.end, len(ts.items), ts.n_new, len(ts.users),
                                   ev.top_k, rows, {name: str(p) for name, p in paths.items()}, served=served,
                                   window=ev.window, blend=fitted.blend.describe())
    summary.mlflow_run_id = log_evaluation(cfg, run_id, fitted.version, rows, folder, fitted.folder)
    summary.seconds = time.perf_counter() - start
    return summary


# --------------------------------------------------------------------------------------------
# Entry point: `rec-evaluate`, `python -m jobs.evaluate`, spark-submit jobs/evaluate.py
# --------------------------------------------------------------------------------------------

DESCRIPTION = """Evaluate cold-start quality by k-shot: the model against random, popular, content kNN, ALS and
(on the generated shop) an oracle; write evaluation_metrics and a report."""
CONFIG = EvaluateJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_spark_job(argv, DESCRIPTION, CONFIG, run_evaluate_job)
