"""Fitting a model version on the feature tables: the training table, Horovod workers fed by Petastorm
(Spark tasks), the versioned model folder, and every user's and item's vectors. The training job
and the evaluation job (which fits on its cutoff) both call `fit_model`.

The model version is a hash of what the model is trained from (the Delta versions of the input
tables, the cutoff, the training settings), so a re-run after a crash finds the same folder and
resumes from its last checkpoint, and a re-run after success trains nothing.
"""
from __future__ import annotations

import contextlib
import dataclasses
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
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from rec_lib.core.clock import resolve_now
from rec_lib.core.config import TrainJobConfig
from rec_lib.core.errors import ConfigError, RecError
from rec_lib.core.files import FolderLock, atomic_write
from rec_lib.core.progress import timed
from rec_lib.core.schema import INTERACTIONS, ITEM_TEXT_EMBEDDINGS, ITEMS, TRAINING_EXAMPLES, USERS, TableSpec
from rec_lib.platform import io
from rec_lib.training import few_shot, sides
from rec_lib.training.attributes import signed_slots
from rec_lib.training.blend import Blend, default_weights
from rec_lib.training.data import DataSettings, TrainingData, build_training_data, users_of, write_examples
from rec_lib.training.embed import USER_ROW_COLUMNS, UserRowsTask, fit_blend, item_vectors, user_sides
from rec_lib.training.model_folder import ModelFolder
from rec_lib.training.sides import ItemSides, UserSides
from rec_lib.training.store import ModelStore
from rec_lib.training.worker import (
    COLUMNS,
    PetastormFeed,
    ReportingWorker,
    WorkerResult,
    WorkerSpec,
    read_reports,
    run_worker,
)

log = logging.getLogger(__name__)


class TrainingError(RecError):
    """Training stopped (a worker failed, the loss diverged); no embedding table was written."""


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------

# Settings that do not change the trained weights, left out of the model version.
# (the cutoff is in the version parsed, so 2026-10-17T00:00:00Z and ...+00:00 are one model)
_NOT_IN_VERSION = ("model_dir", "local_model_dir", "petastorm_cache_dir", "start_timeout_s", "tf_threads", "deterministic", "cutoff")
# Part of the model version: changes whenever the model's layers change, so a model folder is
# never loaded by code that builds a different model.
ARCHITECTURE = ("two-tower/6: hashed user-id rows, centred text, attribute bag in the item tower, launches without id embeddings, "
                "launch prior and a blend fitted on launch cohorts")


# The tables a model is trained from: read at the versions the job found at its start.
INPUTS = (INTERACTIONS, ITEMS, ITEM_TEXT_EMBEDDINGS, USERS)


def input_snapshot(spark: SparkSession, warehouse: str) -> io.Snapshot:
    return io.Snapshot.take(spark, warehouse, INPUTS, with_ids=True)


def model_version(spark: SparkSession, cfg: TrainJobConfig, cutoff: Optional[datetime],
                  tables: Optional[io.Snapshot] = None) -> str:
    """`<cutoff or 'all'>-<hash>` of the input tables' identities (Delta table id and version: two
    warehouses, or a table re-created in one, never share a version), the cutoff and the settings.
    `tables`: the snapshot the training data is read from (taken now where not given)."""
    inputs = (tables or input_snapshot(spark, cfg.paths.warehouse)).identity()
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
    """`run_workers` fed by a Petastorm converter over the columns of `examples` the workers read;
    the converter's cache is deleted however training ends."""
    from petastorm.spark import SparkDatasetConverter, make_spark_converter

    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, cache_url(cache_dir))
    with timed(log, "materialise the Petastorm cache"):
        converter = make_spark_converter(examples.select(*COLUMNS))
    try:
        return run_workers(spec, PetastormFeed(converter), num_proc, start_timeout_s, report_dir, worker_fn)
    finally:
        converter.delete()


@dataclass
class FittedModel:
    """A trained model and the vectors the jobs need from it: every item's (rows in the catalogue's
    order) and each launch's first users' (bounded); every user's are computed by Spark tasks
    (`user_rows_frame`), a bounded set of them on the driver (`sides_of`)."""

    version: str
    folder: ModelFolder  # on the driver
    store: ModelStore  # where the version is kept (train.model_dir)
    data: TrainingData
    model: object  # the TwoTower model, on the driver (its size does not grow with users)
    trained: np.ndarray  # unit [n_items, d]: with id embeddings where items have one
    content: np.ndarray  # unit [n_items, d]: from content alone
    first: Dict[int, UserSides]  # catalogue row of an item without an id -> its first users' sides, oldest first
    blend: Blend  # how much each part counts, by k (training.blend)
    temperature: float
    tf_threads: int  # TensorFlow threads of each embedding task (train.tf_threads)
    result: Optional[WorkerResult]  # None: the version was complete already
    digests: List[str]

    def item_sides(self, settings: few_shot.FewShotSettings, max_k: int) -> ItemSides:
        """Every catalogue item's sides of the served score, new ones adapted from their users
        before the cutoff (training.sides.item_sides)."""
        return sides.item_sides(self.data.catalogue, self.trained, self.content, self.first, settings, max_k)

    def item_table(self, items: ItemSides) -> pd.DataFrame:
        """item_id and the served columns of `item_embeddings` (training.sides.item_table) of
        every catalogue item, whose sides are `items` (`item_sides`)."""
        catalogue, content = self.data.catalogue, self.data.content
        slots = (None if content is None or not catalogue.attr_vectors.shape[1]
                 else signed_slots(content.tokens, catalogue.attr_vectors.shape[1]))
        return pd.DataFrame({"item_id": catalogue.item_ids.astype(str),
                             **sides.item_table(items, self.blend, catalogue, slots)})

    def sides_of(self, user_ids: np.ndarray) -> Tuple[pd.DataFrame, UserSides]:
        """(their inputs, their sides) of the users of `user_ids` the training data knows, sorted by
        user_id: embedded on the driver, so only for a bounded set (an evaluation's sample)."""
        users = users_of(self.data, user_ids)
        return users, user_sides(self.model, users, self.data.catalogue)

    def user_rows_frame(self) -> DataFrame:
        """USER_ROW_COLUMNS of every user, computed by Spark tasks that load the model from its
        folder (embed.UserRowsTask): the served user side, never on the driver."""
        task = UserRowsTask(self.store.task_folder(self.data.users.sparkSession, self.folder), self.blend,
                            self.temperature, self.tf_threads)
        return self.data.users.mapInPandas(task, USER_ROW_COLUMNS)


def first_user_sides(model, data: TrainingData) -> Dict[int, UserSides]:
    """Catalogue row -> the sides of the item's first users before the cutoff, oldest first, for
    items without an id (data.first_users: items x few_shot.max_k rows at most)."""
    first = data.first_users
    if not len(first):
        return {}
    theirs = user_sides(model, first, data.catalogue)
    return {int(item_index): sides.take(theirs, rows)
            for item_index, rows in first.groupby("item_index", sort=False).indices.items()}


def fit_model(spark: SparkSession, cfg: TrainJobConfig, worker_fn: Callable = run_worker,
              examples_table: TableSpec = TRAINING_EXAMPLES) -> FittedModel:
    """Build the training data (honouring `train.cutoff`), train the model version unless it is
    complete already (resuming from its last checkpoint), embed every user and item, and fit the
    score's blend on the launch cohorts (kept in the model folder). A version being completed holds
    its folder's lock (a second training of it stops at once with LockedError), and its files are
    written whole or not at all, model.json last."""
    cutoff = parse_cutoff(cfg.train.cutoff)
    check_task_slots(spark, cfg.train.num_proc)
    warehouse = cfg.paths.warehouse
    tables = input_snapshot(spark, warehouse)  # fixed before any data is read, and the version with it
    version = model_version(spark, cfg, cutoff, tables)
    with timed(log, "build the training data"):
        data = build_training_data(spark, warehouse, cutoff, DataSettings.of(cfg.train, cfg.few_shot.max_k), tables)
    store = ModelStore.of(cfg.train)
    folder = store.fetch(spark, version)
    spec = WorkerSpec.of(cfg.train, data, folder)
    with contextlib.ExitStack() as held:
        if not folder.is_complete():
            held.enter_context(FolderLock(folder.root, f"the training of model {version}"))
        result: Optional[WorkerResult] = None
        digests: List[str] = []
        if folder.is_complete():  # complete already, or completed by another run while the data was built
            log.info("model %s is complete in %s: not retrained", version, folder)
        else:
            examples = write_examples(data, warehouse, version, partitions=4 * cfg.train.num_proc, table=examples_table)
            results = launch_workers(spark, spec, examples, cfg.train.num_proc, cfg.train.petastorm_cache_dir,
                                     cfg.train.start_timeout_s, str(folder.failures), worker_fn)
            result = next(r for r in results if r.rank == 0)
            digests = [r.weights_digest for r in sorted(results, key=lambda r: r.rank)]
        fitted = _embedded(version, store, folder, data, spec, cfg, result, digests)
        store.publish(spark, folder)
        return fitted


def _embedded(version: str, store: ModelStore, folder: ModelFolder, data: TrainingData, spec, cfg: TrainJobConfig,
              result: Optional[WorkerResult], digests: List[str]) -> FittedModel:
    """The trained model's vectors for every item and each launch's first users, and its blend;
    where it was trained just now (`result`), its weights (rank 0's), its description and then
    model.json, which marks it complete."""
    from rec_lib.training import two_tower  # the driver needs TensorFlow only from here on

    if result is not None:
        folder.write_weight_files(result.weights)
        two_tower.write_description(data.catalogue, spec.params, folder)
    model = two_tower.read_weights(two_tower.build(data.catalogue, spec.params), folder)
    # a tuned encoder's text is every part's from here on (the folder keeps the frozen text it was built from)
    data = dataclasses.replace(data, catalogue=two_tower.served_catalogue(model, data.catalogue))
    with timed(log, "embed every item and the launches' first users"):
        trained = item_vectors(model, len(data.catalogue), use_ids=True)[0]
        content = item_vectors(model, len(data.catalogue), use_ids=False)[0]
        first = first_user_sides(model, data)
    blend = _blend(model, data, cfg, folder)
    if result is not None:
        info = {"model_version": version, "cutoff": data.cutoff, "as_of": data.as_of,
                "blend": blend.to_dict(), "rate_offset": data.catalogue.rate_offset, "epoch_loss": result.epoch_loss,
                "examples_per_s": result.epoch_examples_per_s, "n_examples": data.n_examples,
                "num_proc": result.size, "device": result.device, "deterministic": result.deterministic,
                "train": asdict(cfg.train), "few_shot": asdict(cfg.few_shot)}
        atomic_write(folder.description, json.dumps(info, indent=1, default=str))
        shutil.rmtree(folder.checkpoints, ignore_errors=True)
    return FittedModel(version, folder, store, data, model, trained, content, first, blend, cfg.train.temperature,
                       cfg.train.tf_threads, result, digests)


def _blend(model, data: TrainingData, cfg: TrainJobConfig, folder: ModelFolder) -> Blend:
    """The folder's blend when it has one (a complete version), else fitted on the launch cohorts
    at each of `train.blend_ks` (`train.blend: learned`) or the training loss's own weights
    (`fixed`), and written there."""
    if folder.blend.exists():
        return Blend.from_dict(json.loads(folder.blend.read_text()))
    t = cfg.train
    fallback = default_weights(t.text_weight, "train.blend is fixed")
    if t.blend == "learned":
        with timed(log, f"fit the blend on {len(data.cohorts)} launch cohort(s) at k = {t.blend_ks}"):
            blend = fit_blend(model, data, t.launch_days, t.temperature, t.blend_ks, few_shot.FewShotSettings.of(cfg.few_shot),
                              fallback)
    else:
        blend = Blend.single(fallback)
    for k, w in sorted(blend.by_k.items()):
        log.info("blend at k=%d %s: %s%s", k, "fitted" if w.fitted else "not fitted",
                 ", ".join(f"{n} {v:.3g}" for n, v in w.weights.items()), f" ({w.reason})" if w.reason else "")
    atomic_write(folder.blend, json.dumps(blend.to_dict(), indent=1))
    return blend
