"""Fitting a model version on the feature tables: the training table, Horovod workers fed by Petastorm
(Spark tasks), the versioned model folder, and every user's and item's vectors. The training job
and the evaluation job (which fits on its cutoff) both call `fit_model`.

The model version is a hash of what the model is trained from (the Delta versions of the input
tables, the cutoff, the training settings), so a re-run after a crash finds the same folder and
resumes from its last checkpoint, and a re-run after success trains nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from rec_lib.core.clock import resolve_now
from rec_lib.core.config import FewShotSection, TrainJobConfig
from rec_lib.core.errors import ConfigError, RecError
from rec_lib.core.progress import timed
from rec_lib.core.schema import INTERACTIONS, ITEM_TEXT_EMBEDDINGS, ITEMS, TRAINING_EXAMPLES, USERS, TableSpec
from rec_lib.platform import io
from rec_lib.training import few_shot
from rec_lib.training.catalogue import USER_NUMERIC
from rec_lib.training.data import TrainingData, build_training_data, write_examples
from rec_lib.training.embed import item_vectors, user_text_profiles, user_vectors
from rec_lib.training.model_folder import ModelFolder
from rec_lib.training.worker import PetastormFeed, ReportingWorker, WorkerResult, WorkerSpec, read_reports, run_worker

log = logging.getLogger(__name__)


class TrainingError(RecError):
    """Training stopped (a worker failed, the loss diverged); no embedding table was written."""


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------

# Settings that do not change the trained weights, left out of the model version.
_NOT_IN_VERSION = ("model_dir", "petastorm_cache_dir", "start_timeout_s", "tf_threads")
# Part of the model version: changes whenever the model's layers change, so a model folder is
# never loaded by code that builds a different model.
ARCHITECTURE = "two-tower/4: text profile in the user tower, text dropout, fixed text-affinity term"


def model_version(spark: SparkSession, cfg: TrainJobConfig, cutoff: Optional[datetime]) -> str:
    """`<cutoff or 'all'>-<hash>` of the input tables' Delta versions, the cutoff and the settings."""
    warehouse = cfg.paths.warehouse
    inputs = {spec.name: io.table_version(spark, warehouse, spec)
              for spec in (INTERACTIONS, ITEMS, ITEM_TEXT_EMBEDDINGS, USERS)}
    settings = {k: v for k, v in asdict(cfg.train).items() if k not in _NOT_IN_VERSION}
    blob = json.dumps({"inputs": inputs, "cutoff": cutoff.isoformat() if cutoff else None, "train": settings,
                       "architecture": ARCHITECTURE}, sort_keys=True)
    stamp = f"{cutoff:%Y%m%d}" if cutoff else "all"
    return f"{stamp}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def parse_cutoff(value: Optional[str]) -> Optional[datetime]:
    if value is None:
        return None
    try:
        return resolve_now(value)
    except ConfigError as exc:
        raise ConfigError(f"train.cutoff must be ISO-8601 (e.g. 2026-10-15T00:00:00Z), got {value!r}") from exc


def cache_url(folder: str) -> str:
    """Petastorm wants a URL: a plain folder becomes file:///<absolute path>."""
    if "://" in folder:
        return folder
    return "file://" + str(Path(folder).resolve())


# --------------------------------------------------------------------------------------------
# Launching the workers
# --------------------------------------------------------------------------------------------


def check_task_slots(spark: SparkSession, num_proc: int) -> None:
    """Horovod needs all its workers running at once: fail now rather than wait for the timeout."""
    slots = spark.sparkContext.defaultParallelism
    if num_proc > slots:
        raise ConfigError(f"train.num_proc={num_proc} workers need as many Spark task slots, but this session "
                          f"has {slots} (spark.default.parallelism); lower train.num_proc or add executors")


def failure_message(reports: Dict[str, str], num_proc: int, exc: BaseException) -> str:
    """What to tell the user when the workers failed, from the workers' own reports: a diverged
    loss; ranks that died without a report (killed, out of memory), whose loss stops the others;
    or the errors the workers raised."""
    for rank, text in sorted(reports.items()):
        if text.startswith("TrainingDiverged:"):
            return f"training diverged (rank {rank}): {text.split(':', 1)[1].strip()}"
    silent = [str(r) for r in range(num_proc) if str(r) not in reports]
    if silent and reports:
        return (f"training worker rank {', '.join(silent)} died without reporting an error (killed, or out of "
                f"memory?); the other worker(s) stopped with it")
    if reports:
        first_lines = "; ".join(f"rank {r}: {t.splitlines()[0][:300]}" for r, t in sorted(reports.items()))
        return f"training worker(s) failed: {first_lines} (the workers' logs above have the full traceback)"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (f"the training workers died without reporting an error (killed, or out of memory?); "
            f"launcher said: {type(exc).__name__}: {lines[-1][:300] if lines else ''}")


def run_workers(spec: WorkerSpec, feed, num_proc: int, start_timeout_s: int, report_dir: str,
                worker_fn: Callable = run_worker) -> List[WorkerResult]:
    """Run `worker_fn(spec, feed)` on `num_proc` Horovod workers (Spark tasks of the active
    session, gloo). Workers write their errors to `report_dir` (emptied first)."""
    import horovod.spark

    shutil.rmtree(report_dir, ignore_errors=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        with timed(log, f"train on {num_proc} Horovod worker(s)"):
            return horovod.spark.run(ReportingWorker(worker_fn, report_dir), args=(spec, feed), num_proc=num_proc,
                                     start_timeout=start_timeout_s, use_gloo=True, verbose=0, env=env)
    except Exception as exc:  # Horovod only reports that a worker exited non-zero
        raise TrainingError(failure_message(read_reports(report_dir), num_proc, exc)) from exc


def launch_workers(spark: SparkSession, spec: WorkerSpec, examples: DataFrame, num_proc: int, cache_dir: str,
                   start_timeout_s: int, report_dir: str, worker_fn: Callable = run_worker) -> List[WorkerResult]:
    """`run_workers` fed by a Petastorm converter over `examples`; the converter's cache is
    deleted however training ends."""
    from petastorm.spark import SparkDatasetConverter, make_spark_converter

    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, cache_url(cache_dir))
    with timed(log, "materialise the Petastorm cache"):
        converter = make_spark_converter(examples)
    try:
        return run_workers(spec, PetastormFeed(converter), num_proc, start_timeout_s, report_dir, worker_fn)
    finally:
        converter.delete()


def _worker_spec(cfg: TrainJobConfig, data: TrainingData, folder: ModelFolder):
    from rec_lib.training.two_tower import ModelParams

    t = cfg.train
    params = ModelParams(embedding_dim=t.embedding_dim, hidden_dim=t.hidden_dim, temperature=t.temperature,
                         item_id_dropout=t.item_id_dropout, user_id_dropout=t.user_id_dropout,
                         text_dropout=t.text_dropout, text_weight=t.text_weight,
                         text_in_item_tower=t.text_in_item_tower,
                         extra_negatives=t.extra_negatives, n_user_slots=data.n_user_slots,
                         n_user_numeric=len(USER_NUMERIC), history_length=t.history_length)
    return WorkerSpec(catalogue=data.catalogue, params=params, n_examples=data.n_examples, epochs=t.epochs,
                      batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed, tf_threads=t.tf_threads,
                      checkpoint_dir=str(folder.checkpoints), weights_dir=str(folder))


def few_shot_settings(f: FewShotSection) -> few_shot.FewShotSettings:
    return few_shot.FewShotSettings(f.method, f.prior_strength, f.pace, f.pace_prior_strength, f.text_prior_strength)


@dataclass
class FittedModel:
    """A trained model and the vectors the jobs need from it (rows in `data`'s order)."""

    version: str
    folder: ModelFolder
    data: TrainingData
    trained: Tuple[np.ndarray, np.ndarray]  # unit vectors, bias: with id embeddings where items have one
    content: Tuple[np.ndarray, np.ndarray]  # the same from content alone
    users_vec: np.ndarray  # unit [n_users, d]
    users_text: np.ndarray  # [n_users, text_dim] text profiles (the text-affinity term's user side)
    text_weight: float  # w of the text-affinity term (0: none)
    rate_scale: float
    result: Optional[WorkerResult]  # None: the version was complete already
    digests: List[str]


def fit_model(spark: SparkSession, cfg: TrainJobConfig, worker_fn: Callable = run_worker,
              examples_table: TableSpec = TRAINING_EXAMPLES) -> FittedModel:
    """Build the training data (honouring `train.cutoff`), train the model version unless it is
    complete already (resuming from its last checkpoint), and embed every user and item."""
    cutoff = parse_cutoff(cfg.train.cutoff)
    check_task_slots(spark, cfg.train.num_proc)
    warehouse = cfg.paths.warehouse
    with timed(log, "build the training data"):
        data = build_training_data(spark, warehouse, cutoff, cfg.train.history_length,
                                   cfg.train.min_item_interactions, cfg.train.price_buckets)
    version = model_version(spark, cfg, cutoff)
    folder = ModelFolder.of(cfg.train.model_dir, version)
    spec = _worker_spec(cfg, data, folder)
    result: Optional[WorkerResult] = None
    digests: List[str] = []
    if folder.is_complete():
        log.info("model %s is complete in %s: not retrained", version, folder)
    else:
        folder.root.mkdir(parents=True, exist_ok=True)
        examples = write_examples(data, warehouse, version, partitions=4 * cfg.train.num_proc, table=examples_table)
        results = launch_workers(spark, spec, examples, cfg.train.num_proc, cfg.train.petastorm_cache_dir,
                                 cfg.train.start_timeout_s, str(folder.failures), worker_fn)
        result = next(r for r in results if r.rank == 0)
        digests = [r.weights_digest for r in sorted(results, key=lambda r: r.rank)]

    from rec_lib.training import two_tower  # the driver needs TensorFlow only from here on

    if result is not None:
        two_tower.write_description(data.catalogue, spec.params, folder)
    model = two_tower.read_weights(two_tower.build(data.catalogue, spec.params), folder)
    with timed(log, "embed every user and item"):
        trained = item_vectors(model, len(data.catalogue), use_ids=True)
        content = item_vectors(model, len(data.catalogue), use_ids=False)
        users_vec = user_vectors(model, data.users)
        users_text = user_text_profiles(model, data.users)
    text_weight = float(model.text_weight().numpy())
    rate_scale = few_shot.fit_rate_scale(content[1], data.catalogue.n_users, data.catalogue.exposure_days)
    if result is not None:
        info = {"model_version": version, "cutoff": data.cutoff, "as_of": data.as_of,
                "rate_scale": rate_scale, "text_weight": text_weight, "epoch_loss": result.epoch_loss,
                "examples_per_s": result.epoch_examples_per_s, "n_examples": data.n_examples,
                "num_proc": result.size, "train": asdict(cfg.train), "few_shot": asdict(cfg.few_shot)}
        folder.description.write_text(json.dumps(info, indent=1, default=str))
        shutil.rmtree(folder.checkpoints, ignore_errors=True)
    return FittedModel(version, folder, data, trained, content, users_vec, users_text, text_weight, rate_scale,
                       result, digests)
