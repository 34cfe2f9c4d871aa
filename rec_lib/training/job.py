"""The training stage: feature tables -> training_examples -> Horovod workers fed by Petastorm ->
a versioned model folder (training.fit) -> new items adapted from their first users ->
user_embeddings and item_embeddings (Delta) -> MLflow.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from rec_lib.core import faults
from rec_lib.core.clock import run_identity, utc_naive
from rec_lib.core.config import MlflowSection, TrainJobConfig
from rec_lib.core.progress import timed
from rec_lib.core.schema import ITEM_EMBEDDINGS, ITEM_TEXT_EMBEDDINGS_TUNED, USER_EMBEDDINGS
from rec_lib.platform import io
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.columns import timestamp_lit
from rec_lib.platform.tracking import flat_params, log_model_folder, mlflow_run
from rec_lib.training.blend import Blend
from rec_lib.training.catalogue import FIRST_INTERACTION, LAUNCH
from rec_lib.training.few_shot import FewShotSettings
from rec_lib.training.fit import FittedModel, fit_model
from rec_lib.training.model_folder import ModelFolder
from rec_lib.training.sides import ItemSides
from rec_lib.training.worker import WorkerResult, run_worker

log = logging.getLogger(__name__)


def write_embeddings(spark: SparkSession, warehouse: str, version: str, created_at: datetime, fitted: "FittedModel",
                     items: ItemSides, tag: str) -> None:
    """Overwrite both tables (one Delta commit each), users first: scoring checks that both carry
    the same model_version. The rows are the served score's (training.sides); the users' are
    computed by Spark tasks (FittedModel.user_rows_frame), the items' (catalogue-sized) here."""
    created = utc_naive(created_at)
    catalogue = fitted.data.catalogue
    users = (fitted.user_rows_frame()
             .select("user_id", F.lit(version).alias("model_version"), "embedding", "source", "n_history",
                     timestamp_lit(created).alias("created_at"), "history_items"))
    item_rows = fitted.item_table(items).assign(
        model_version=version, n_users=catalogue.n_users.astype(np.int64), source=items.source.astype(str),
        created_at=pd.Timestamp(created))
    items_df = spark.createDataFrame(item_rows[list(ITEM_EMBEDDINGS.columns)], schema=ITEM_EMBEDDINGS.schema)  # by position
    for spec, df in ((USER_EMBEDDINGS, users), (ITEM_EMBEDDINGS, items_df)):
        io.overwrite_table(df, spec, warehouse, user_metadata=tag)  # overwrite_table orders and casts the columns
        faults.point(f"train.{spec.name}_written")
    tuning = fitted.model.params.encoder_tuning
    if tuning != "frozen":  # the tuned text every part of this model's score reads (schema.ITEM_TEXT_EMBEDDINGS_TUNED)
        tuned = pd.DataFrame({"item_id": catalogue.item_ids.astype(str), "model_version": version,
                              "encoder_tuning": tuning, "embedding": list(catalogue.text.astype(np.float32)),
                              "created_at": pd.Timestamp(created)})
        io.overwrite_table(spark.createDataFrame(tuned[list(ITEM_TEXT_EMBEDDINGS_TUNED.columns)],
                                                 schema=ITEM_TEXT_EMBEDDINGS_TUNED.schema),
                           ITEM_TEXT_EMBEDDINGS_TUNED, warehouse, user_metadata=tag)


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------


def log_to_mlflow(settings: MlflowSection, version: str, params: Dict[str, str], result: Optional[WorkerResult],
                  metrics: Dict[str, float], model_folder: ModelFolder) -> Tuple[Optional[str], Optional[str]]:
    """One MLflow run per training: parameters, loss and throughput per epoch, the model folder, and
    (with `mlflow.registered_model`) the model registered as a pyfunc. Returns (run id, registered
    version); (None, None) when tracking is off."""
    with mlflow_run(settings, f"train {version}") as mlflow:
        if mlflow is None:
            return None, None
        mlflow.set_tag("model_version", version)
        mlflow.log_params(params)
        if result is not None:
            for i, (loss, rate) in enumerate(zip(result.epoch_loss, result.epoch_examples_per_s)):
                epoch = result.start_epoch + i + 1
                mlflow.log_metric("loss", loss, step=epoch)
                mlflow.log_metric("examples_per_s", rate, step=epoch)
        mlflow.log_metrics(metrics)
        log_model_folder(mlflow, model_folder.artifacts())
        registered = None
        if settings.registered_model:
            from rec_lib.training import registry

            with timed(log, f"register model {version} as {settings.registered_model}"):
                registered = registry.register(mlflow, settings, model_folder, version)
        return mlflow.active_run().info.run_id, registered


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


@dataclass
class TrainRunSummary:
    run_id: str
    model_version: str
    model_folder: str
    trained: bool  # False: the version was complete already
    n_examples: int
    n_users: int
    n_items: int
    item_sources: Dict[str, int]
    epoch_loss: List[float] = field(default_factory=list)
    examples_per_s: float = 0.0
    device: str = ""  # rank 0's: a GPU's name or CPU ("" when nothing was trained)
    resumed_from_epoch: int = 0
    weights_digests: List[str] = field(default_factory=list)
    blend: Optional[Blend] = None
    dated_at: str = LAUNCH  # what the model took as each item's launch (catalogue.dating)
    mlflow_run_id: Optional[str] = None
    registered_version: Optional[str] = None  # the MLflow registered model's version of this model
    seconds: float = 0.0

    def lines(self) -> List[str]:
        out = [f"training job run {self.run_id}: model {self.model_version} in {self.model_folder}"]
        if not self.trained:
            out.append("  this model version was complete already: nothing retrained")
        else:
            losses = ", ".join(f"{x:.4f}" for x in self.epoch_loss) or "none left to run"
            resumed = f" (resumed after epoch {self.resumed_from_epoch})" if self.resumed_from_epoch else ""
            out.append(f"  {self.n_examples:,} examples; loss by epoch{resumed}: {losses}; "
                       f"{self.examples_per_s:,.0f} examples/s per epoch on {self.device or 'CPU'}")
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.item_sources.items()))
        out.append(f"  embeddings: {self.n_users:,} users, {self.n_items:,} items ({sources}) in {self.seconds:.1f} s")
        if self.blend is not None:
            out.append("  score blend by k (first users of an item known): " + self.blend.describe())
            if self.dated_at == FIRST_INTERACTION:
                out.append("  launches: too few in the launch windows, so the items first found in each window were "
                           "the blend's pseudo-launches (items dated at their first interaction; train.pseudo_launches)")
        if self.mlflow_run_id:
            out.append(f"  MLflow run {self.mlflow_run_id}"
                       + (f"; registered version {self.registered_version}" if self.registered_version else ""))
        return out


def run_train_job(spark: SparkSession, cfg: TrainJobConfig, worker_fn: Callable = run_worker) -> TrainRunSummary:
    start = time.perf_counter()
    now, run_id = run_identity(cfg.run)
    fitted = fit_model(spark, cfg, worker_fn)
    data, version, result = fitted.data, fitted.version, fitted.result
    with timed(log, "adapt new items and write the embedding tables"):
        items = fitted.item_sides(FewShotSettings.of(cfg.few_shot), cfg.few_shot.max_k)
        write_embeddings(spark, cfg.paths.warehouse, version, now, fitted, items, tag=version)

    sources = pd.Series(items.source).value_counts().to_dict()
    summary = TrainRunSummary(
        run_id=run_id, model_version=version, model_folder=str(fitted.folder), trained=result is not None,
        n_examples=data.n_examples, n_users=data.n_users, n_items=len(data.catalogue), item_sources=sources,
        epoch_loss=result.epoch_loss if result else [],
        examples_per_s=float(np.mean(result.epoch_examples_per_s)) if result and result.epoch_loss else 0.0,
        device=result.device if result else "", resumed_from_epoch=result.start_epoch if result else 0, weights_digests=fitted.digests, blend=fitted.blend,
        dated_at=data.catalogue.dated_at)
    if result is not None:
        params = flat_params({"train": cfg.train, "few_shot": cfg.few_shot}, model_version=version,
                             n_examples=data.n_examples, n_items=len(data.catalogue), n_users=data.n_users)
        summary.mlflow_run_id, summary.registered_version = log_to_mlflow(cfg.mlflow, version, params, result,
                                              {"final_loss": result.epoch_loss[-1] if result.epoch_loss else float("nan"),
                                               **fitted.blend.flat()},
                                              fitted.folder)
    summary.seconds = time.perf_counter() - start
    return summary


# --------------------------------------------------------------------------------------------
# Entry point: `rec-train`, `python -m jobs.train`, spark-submit jobs/train.py
# --------------------------------------------------------------------------------------------

DESCRIPTION = """Train the two-tower model on Horovod workers fed by Petastorm; write user/item embeddings."""
CONFIG = TrainJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_spark_job(argv, DESCRIPTION, CONFIG, run_train_job)
