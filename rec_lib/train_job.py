"""The training stage: feature tables -> training_examples -> Horovod workers fed by Petastorm ->
a versioned model folder -> user_embeddings and item_embeddings (Delta) -> MLflow.

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
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from rec_lib import few_shot, io
from rec_lib.config import FewShotSection, MlflowSection, TrainJobConfig
from rec_lib.errors import ConfigError, RecError
from rec_lib.progress import timed
from rec_lib.runs import resolve_now, run_identity, utc_naive
from rec_lib.schema import (INTERACTIONS, ITEM_EMBEDDINGS, ITEM_TEXT_EMBEDDINGS, ITEMS, TRAINING_EXAMPLES,
                            USER_EMBEDDINGS, USERS, EmbeddingSource, TableSpec)
from rec_lib.tracking import log_model_folder, mlflow_run
from rec_lib.trainer import PetastormFeed, ReportingWorker, WorkerResult, WorkerSpec, read_reports, run_worker
from rec_lib.training_data import USER_NUMERIC, Catalogue, TrainingData, build_training_data, write_examples

log = logging.getLogger(__name__)

COMPLETE_MARKER = "model.json"
EMBED_BATCH = 4096


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


# --------------------------------------------------------------------------------------------
# Embeddings for every user and item
# --------------------------------------------------------------------------------------------


def user_vectors(model, users: pd.DataFrame) -> np.ndarray:
    import tensorflow as tf

    out = []
    for start in range(0, len(users), EMBED_BATCH):
        part = users.iloc[start:start + EMBED_BATCH]
        out.append(model.encode_users(
            tf.constant(np.stack(part["history"].to_list()), tf.int32),
            tf.constant(np.stack(part["user_numeric"].to_list()), tf.float32),
            tf.constant(part["user_slot"].to_numpy(np.int32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.params.embedding_dim), np.float32)


def user_text_profiles(model, users: pd.DataFrame) -> np.ndarray:
    """[n_users, text_dim]: each user's normalised mean history text (zeros without a history)."""
    import tensorflow as tf

    out = [model.text_profile(tf.constant(np.stack(users["history"].iloc[start:start + EMBED_BATCH].to_list()),
                                          tf.int32)).numpy()
           for start in range(0, len(users), EMBED_BATCH)]
    return np.concatenate(out) if out else np.zeros((0, int(model.text.shape[1])), np.float32)


def with_text(vectors: np.ndarray, text: Optional[np.ndarray], text_weight: float) -> np.ndarray:
    """The vectors the embedding tables hold: [vectors, sqrt(w) * text] with the text-affinity
    term (so one dot product gives both parts of the score), the vectors alone without it."""
    if text is None or text_weight <= 0:
        return vectors.astype(np.float32)
    return np.concatenate([vectors, np.sqrt(text_weight) * text], axis=1).astype(np.float32)


def item_vectors(model, n_items: int, use_ids: bool) -> Tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    vectors, biases = [], []
    for start in range(0, n_items, EMBED_BATCH):
        index = tf.range(start, min(start + EMBED_BATCH, n_items), dtype=tf.int32)
        v, b = model.item_vectors(index, tf.fill(tf.shape(index), use_ids))
        vectors.append(v.numpy())
        biases.append(b.numpy())
    return np.concatenate(vectors), np.concatenate(biases).astype(np.float64)


@dataclass
class ItemEmbeddings:
    vectors: np.ndarray  # unit [N, d]
    bias: np.ndarray  # [N]
    source: np.ndarray  # str [N]
    text: np.ndarray  # [N, text_dim]: the text side of the text-affinity term


def adapt_catalogue(catalogue: Catalogue, trained: Tuple[np.ndarray, np.ndarray],
                    content: Tuple[np.ndarray, np.ndarray], first_users: Dict[int, np.ndarray],
                    settings: few_shot.FewShotSettings, max_k: int, rate_scale: float,
                    first_profiles: Optional[Dict[int, np.ndarray]] = None) -> ItemEmbeddings:
    """Items with an id embedding keep their trained vector; the others start from content and are
    adapted from their users so far (`first_users`: catalogue row -> user vectors, oldest first;
    `first_profiles`: the same users' text profiles, which move the item's text side alike)."""
    vectors, bias, text = trained[0].copy(), trained[1].copy(), catalogue.text.copy()
    source = np.full(len(catalogue), EmbeddingSource.TRAINED, dtype=object)
    for row in np.flatnonzero(catalogue.id_slot == 0):
        users = first_users.get(int(row), np.zeros((0, vectors.shape[1]), np.float32))[:max_k]
        vectors[row], bias[row] = few_shot.adapt(content[0][row], float(content[1][row]), users,
                                                 float(catalogue.exposure_days[row]), rate_scale, settings)
        adapted = len(users) > 0 and settings.method != "none"
        if adapted and first_profiles and int(row) in first_profiles:
            text[row] = few_shot.adapt_text(catalogue.text[row], first_profiles[int(row)][:max_k], settings)
        source[row] = EmbeddingSource.FEW_SHOT if adapted else EmbeddingSource.CONTENT
    return ItemEmbeddings(vectors, bias, source, text)


def user_sources(users: pd.DataFrame) -> np.ndarray:
    return np.where(users["user_slot"] > 0, EmbeddingSource.USER_ID,
                    np.where(users["n_history"] > 0, EmbeddingSource.USER_HISTORY, EmbeddingSource.USER_FEATURES_ONLY))


def write_embeddings(spark: SparkSession, warehouse: str, version: str, created_at: datetime, fitted: "FittedModel",
                     items: ItemEmbeddings, temperature: float, tag: str) -> None:
    """Overwrite both tables (one Delta commit each), users first: scoring checks that both carry
    the same model_version."""
    created = pd.Timestamp(utc_naive(created_at))
    users, catalogue, w = fitted.data.users, fitted.data.catalogue, fitted.text_weight
    user_rows = pd.DataFrame({
        "user_id": users["user_id"].astype(str), "model_version": version,
        "embedding": list(with_text(fitted.users_vec, fitted.users_text, w)), "source": user_sources(users),
        "n_history": users["n_history"].astype(np.int32), "created_at": created})
    item_rows = pd.DataFrame({
        "item_id": catalogue.item_ids.astype(str), "model_version": version,
        "embedding": list(with_text(items.vectors / temperature, items.text, w)), "bias": items.bias,
        "n_users": catalogue.n_users.astype(np.int64), "source": items.source.astype(str), "created_at": created})
    for spec, rows in ((USER_EMBEDDINGS, user_rows), (ITEM_EMBEDDINGS, item_rows)):
        df = spark.createDataFrame(rows, schema=spec.schema)
        io.overwrite_table(df, spec, warehouse, user_metadata=tag)


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------


def log_to_mlflow(settings: MlflowSection, version: str, params: Dict[str, object], result: Optional[WorkerResult],
                  metrics: Dict[str, float], model_folder: Path) -> Optional[str]:
    """One MLflow run per training: parameters, loss and throughput per epoch, the model folder."""
    with mlflow_run(settings, f"train {version}") as mlflow:
        if mlflow is None:
            return None
        mlflow.set_tag("model_version", version)
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        if result is not None:
            for i, (loss, rate) in enumerate(zip(result.epoch_loss, result.epoch_examples_per_s)):
                epoch = result.start_epoch + i + 1
                mlflow.log_metric("loss", loss, step=epoch)
                mlflow.log_metric("examples_per_s", rate, step=epoch)
        mlflow.log_metrics(metrics)
        log_model_folder(mlflow, model_folder)
        return mlflow.active_run().info.run_id


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
    resumed_from_epoch: int = 0
    weights_digests: List[str] = field(default_factory=list)
    mlflow_run_id: Optional[str] = None
    seconds: float = 0.0

    def lines(self) -> List[str]:
        out = [f"training job run {self.run_id}: model {self.model_version} in {self.model_folder}"]
        if not self.trained:
            out.append("  this model version was complete already: nothing retrained")
        else:
            losses = ", ".join(f"{x:.4f}" for x in self.epoch_loss) or "none left to run"
            resumed = f" (resumed after epoch {self.resumed_from_epoch})" if self.resumed_from_epoch else ""
            out.append(f"  {self.n_examples:,} examples; loss by epoch{resumed}: {losses}; "
                       f"{self.examples_per_s:,.0f} examples/s per epoch")
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.item_sources.items()))
        out.append(f"  embeddings: {self.n_users:,} users, {self.n_items:,} items ({sources}) in {self.seconds:.1f} s")
        if self.mlflow_run_id:
            out.append(f"  MLflow run {self.mlflow_run_id}")
        return out


def _worker_spec(cfg: TrainJobConfig, data: TrainingData, folder: Path):
    from rec_lib.two_tower import ModelParams

    t = cfg.train
    params = ModelParams(embedding_dim=t.embedding_dim, hidden_dim=t.hidden_dim, temperature=t.temperature,
                         item_id_dropout=t.item_id_dropout, user_id_dropout=t.user_id_dropout,
                         text_dropout=t.text_dropout, text_weight=t.text_weight,
                         text_in_item_tower=t.text_in_item_tower,
                         extra_negatives=t.extra_negatives, n_user_slots=data.n_user_slots,
                         n_user_numeric=len(USER_NUMERIC), history_length=t.history_length)
    return WorkerSpec(catalogue=data.catalogue, params=params, n_examples=data.n_examples, epochs=t.epochs,
                      batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed, tf_threads=t.tf_threads,
                      checkpoint_dir=str(folder / "checkpoints"), weights_dir=str(folder))


def few_shot_settings(f: FewShotSection) -> few_shot.FewShotSettings:
    return few_shot.FewShotSettings(f.method, f.prior_strength, f.pace, f.pace_prior_strength, f.text_prior_strength)


@dataclass
class FittedModel:
    """A trained model and the vectors the jobs need from it (rows in `data`'s order)."""

    version: str
    folder: Path
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
    folder = Path(cfg.train.model_dir) / version
    spec = _worker_spec(cfg, data, folder)
    result: Optional[WorkerResult] = None
    digests: List[str] = []
    if (folder / COMPLETE_MARKER).exists():
        log.info("model %s is complete in %s: not retrained", version, folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        examples = write_examples(data, warehouse, version, partitions=4 * cfg.train.num_proc, table=examples_table)
        results = launch_workers(spark, spec, examples, cfg.train.num_proc, cfg.train.petastorm_cache_dir,
                                 cfg.train.start_timeout_s, str(folder / "failures"), worker_fn)
        result = next(r for r in results if r.rank == 0)
        digests = [r.weights_digest for r in sorted(results, key=lambda r: r.rank)]

    from rec_lib import two_tower  # the driver needs TensorFlow only from here on

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
        (folder / COMPLETE_MARKER).write_text(json.dumps(info, indent=1, default=str))
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    return FittedModel(version, folder, data, trained, content, users_vec, users_text, text_weight, rate_scale,
                       result, digests)


def run_train_job(spark: SparkSession, cfg: TrainJobConfig, worker_fn: Callable = run_worker) -> TrainRunSummary:
    start = time.perf_counter()
    now, run_id = run_identity(cfg.run)
    fitted = fit_model(spark, cfg, worker_fn)
    data, version, result = fitted.data, fitted.version, fitted.result
    with timed(log, "adapt new items and write the embedding tables"):
        first = _first_user_rows(data)
        items = adapt_catalogue(data.catalogue, fitted.trained, fitted.content,
                                {row: fitted.users_vec[users] for row, users in first.items()},
                                few_shot_settings(cfg.few_shot), cfg.few_shot.max_k, fitted.rate_scale,
                                {row: fitted.users_text[users] for row, users in first.items()})
        write_embeddings(spark, cfg.paths.warehouse, version, now, fitted, items, cfg.train.temperature, tag=version)

    sources = pd.Series(items.source).value_counts().to_dict()
    summary = TrainRunSummary(
        run_id=run_id, model_version=version, model_folder=str(fitted.folder), trained=result is not None,
        n_examples=data.n_examples, n_users=len(data.users), n_items=len(data.catalogue), item_sources=sources,
        epoch_loss=result.epoch_loss if result else [],
        examples_per_s=float(np.mean(result.epoch_examples_per_s)) if result and result.epoch_loss else 0.0,
        resumed_from_epoch=result.start_epoch if result else 0, weights_digests=fitted.digests)
    if result is not None:
        params = {**{f"train.{k}": v for k, v in asdict(cfg.train).items()},
                  **{f"few_shot.{k}": v for k, v in asdict(cfg.few_shot).items()},
                  "model_version": version, "n_examples": data.n_examples, "n_items": len(data.catalogue),
                  "n_users": len(data.users)}
        summary.mlflow_run_id = log_to_mlflow(cfg.mlflow, version, params, result,
                                              {"final_loss": result.epoch_loss[-1] if result.epoch_loss else float("nan"),
                                               "rate_scale": fitted.rate_scale, "text_weight": fitted.text_weight},
                                              fitted.folder)
    summary.seconds = time.perf_counter() - start
    return summary


def _first_user_rows(data: TrainingData) -> Dict[int, np.ndarray]:
    """Catalogue row -> positions in `data.users` of the item's users before the cutoff, oldest
    first, for items without an id (one grouping for both the vectors and the text profiles)."""
    user_row = pd.Series(np.arange(len(data.users)), index=data.users["user_id"].astype(str))
    return {int(item_index): user_row[group["user_id"].astype(str)].to_numpy()
            for item_index, group in data.first_users.groupby("item_index", sort=False)}
