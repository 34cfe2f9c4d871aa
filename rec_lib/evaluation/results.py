"""What an evaluation run leaves: its `evaluation_metrics` rows (one commit per run), its MLflow run,
and the summary the job prints (`EvaluationRunSummary`, or `SkippedEvaluation` where the shop could
not be evaluated today).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from rec_lib.core.clock import utc_naive
from rec_lib.core.config import EvaluateJobConfig
from rec_lib.core.errors import RecError
from rec_lib.core.schema import EVALUATION_METRICS, ListSource
from rec_lib.evaluation import report
from rec_lib.evaluation.gate import GateOutcome
from rec_lib.evaluation.rankers import MethodResult
from rec_lib.platform import io
from rec_lib.platform.tracking import flat_params, log_model_folder, mlflow_run

if TYPE_CHECKING:
    from rec_lib.training.facade import ModelFolder



@dataclass
class EvaluationRunSummary:
    run_id: str
    model_version: str
    cutoff: datetime
    end: datetime
    n_items: int  # evaluated: new items with more than max(ks) users in the window
    n_new_items: int
    n_users: int
    top_k: int
    rows: pd.DataFrame  # k, method, metric, value
    report: Dict[str, str] = field(default_factory=dict)
    served: Dict[str, Dict[str, float]] = field(default_factory=dict)  # list_metrics source -> figures
    window: str = "test"
    blend: str = ""
    mlflow_run_id: Optional[str] = None
    seconds: float = 0.0
    gate: Optional[GateOutcome] = None  # evaluate.gate's decision (None: no gate)

    @property
    def failure(self) -> Optional[RecError]:
        """What ends the job non-zero once its lines are printed: a failed gate."""
        return None if self.gate is None else self.gate.failure()

    def lines(self) -> List[str]:
        table = report.metric_table(self.rows, f"recall@{self.top_k}")
        ndcg = report.metric_table(self.rows, f"ndcg@{self.top_k}")
        width = max(len(c) for c in table.columns)
        out = [f"evaluation run {self.run_id} ({self.window} window): model {self.model_version}, "
               f"cutoff {self.cutoff:%Y-%m-%d %H:%M}, "
               f"test until {self.end:%Y-%m-%d %H:%M}; {self.n_items} of {self.n_new_items} new items evaluated, "
               f"{self.n_users:,} test users",
               f"  Recall@{self.top_k} / NDCG@{self.top_k} by k (first interactions of each new item seen):",
               "  " + "method".ljust(width) + "".join(f"{f'k={k}':>16}" for k in table.index)]
        for method in table.columns:
            cells = "".join(f"{report.fmt(table.at[k, method]) + ' / ' + report.fmt(ndcg.at[k, method]):>16}"
                            for k in table.index)
            out.append("  " + method.ljust(width) + cells)
        losses = report.model_losses(self.rows, self.top_k)
        out.append(f"  model beats {', '.join(report.BASELINES)} at every k: " + ("yes" if not losses else
                                                                                 f"no ({len(losses)} losses)"))
        ratios = report.oracle_ratios(self.rows, self.top_k)
        if ratios:
            ceiling = report.model_losses(self.rows, self.top_k, method="oracle")
            out.append("  oracle (true affinity) beats them at every k: " + ("yes" if not ceiling else
                                                                             f"no ({len(ceiling)} losses)"))
            out.append("  model / oracle Recall@%d: %s" % (self.top_k, ", ".join(f"k={k} {r:.2f}" for k, r in ratios.items())))
        if self.blend:
            out.append(f"  score blend: {self.blend}")
        out += ["  " + line for line in report.served_lines(self.served)]
        if self.report:
            out.append(f"  report: {self.report['summary']}")
        if self.mlflow_run_id:
            out.append(f"  MLflow run {self.mlflow_run_id}")
        if self.gate is not None:
            out += self.gate.lines()
        out.append(f"  done in {self.seconds:.1f} s")
        return out


def metric_rows(results: List[MethodResult]) -> pd.DataFrame:
    return pd.DataFrame([{"k": r.k, "method": r.method, "metric": name, "value": float(value)}
                         for r in results for name, value in r.metrics.items()],
                        columns=["k", "method", "metric", "value"])


def ablation_rows(served: Dict[str, Dict[str, float]], k: int) -> pd.DataFrame:
    """evaluation_metrics rows of the served lists' ablation (method 'served', k -1: the lists mix
    launches at every k): recall@K of the lists without the floor, and per part recall@K_without_<part>
    and recall@K_change_without_<part> (relative); none without an ablation."""
    without = served.get(report.ABLATION, {})
    if not without:
        return pd.DataFrame(columns=["k", "method", "metric", "value"])
    name = f"recall@{k}"
    values = {name: served[ListSource.BACKTEST_NO_FLOOR][name], **without}
    values.update({f"{name}_change_without_{part}": change for part, change in report.ablation_changes(served, k).items()})
    return pd.DataFrame([{"k": -1, "method": "served", "metric": m, "value": float(v)} for m, v in values.items()])


def write_metrics(spark: SparkSession, warehouse: str, rows: pd.DataFrame, run_id: str, version: str,
                  cutoff: datetime, end: datetime, now: datetime) -> None:
    """Replace this run's rows of `evaluation_metrics` (earlier runs stay) in one commit."""
    table = rows.assign(run_id=run_id, model_version=version, k=rows["k"].astype(np.int32),
                        cutoff=pd.Timestamp(utc_naive(cutoff)), test_end=pd.Timestamp(utc_naive(end)),
                        evaluated_at=pd.Timestamp(utc_naive(now)))
    df = spark.createDataFrame(table[list(EVALUATION_METRICS.columns)], schema=EVALUATION_METRICS.schema)
    io.replace_partition(df, EVALUATION_METRICS, warehouse, "run_id", run_id, user_metadata=run_id)


def log_evaluation(cfg: EvaluateJobConfig, run_id: str, version: str, rows: pd.DataFrame,
                   report_folder: Path, model_folder: ModelFolder) -> Optional[str]:
    """One MLflow run per evaluation: its and the model's parameters, every metric by step k, the
    report and the evaluated model."""
    with mlflow_run(cfg.mlflow, f"evaluate {run_id}") as mlflow:
        if mlflow is None:
            return None
        mlflow.set_tags({"model_version": version, "run_id": run_id, "stage": "evaluate"})
        mlflow.log_params(flat_params({"evaluate": cfg.evaluate, "train": cfg.train, "few_shot": cfg.few_shot}))
        for r in rows.dropna(subset=["value"]).itertuples():
            mlflow.log_metric(f"{r.method}.{r.metric.replace('@', '_at_')}", r.value, step=int(r.k))
        mlflow.log_artifacts(str(report_folder), artifact_path="report")
        log_model_folder(mlflow, model_folder.artifacts())
        return mlflow.active_run().info.run_id


@dataclass
class SkippedEvaluation:
    """An evaluation that could not run on this shop today, and why (the run goes on)."""

    run_id: str
    reason: str
    gate: Optional[GateOutcome] = None

    def lines(self) -> List[str]:
        return [f"evaluation run {self.run_id}: nothing evaluated: {self.reason}",
                "  (evaluate.required is false, so the run goes on; set it to true to make this an error)",
                *(self.gate.lines() if self.gate is not None else [])]
