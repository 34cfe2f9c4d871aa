"""The training function every Horovod worker runs, and the feeds it reads from.

One function, any launcher: `horovod.spark.run` starts it on Spark tasks (locally on the
`local[n]` session, on a cluster on the executors), and `run_worker` also works under
`horovodrun`. Each worker reads its shard, averages gradients with `hvd.DistributedGradientTape`,
uses a learning rate scaled by the number of workers, starts from rank 0's variables, and resumes
from the newest checkpoint. Only rank 0 writes checkpoints and the final weights.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from rec_lib.training_data import Catalogue

log = logging.getLogger(__name__)

COLUMNS = ("user_slot", "item_index", "history", "user_numeric", "weight")


class TrainingDiverged(RuntimeError):
    """Raised in a worker when the loss is not finite."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, pickled to it by the launcher."""

    catalogue: Catalogue
    params: Any  # two_tower.ModelParams (kept untyped so the driver need not import TensorFlow)
    n_examples: int
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    tf_threads: int
    checkpoint_dir: str  # shared by all workers; empty: no checkpoints
    weights_dir: str  # rank 0 writes the final weights here; empty: not written
    log_every_s: float = 10.0


class PetastormFeed:
    """Batches from a Petastorm Spark converter, sharded by rank, deterministic given the seed."""

    def __init__(self, converter):
        self.converter = converter

    def open(self, rank: int, size: int, batch_size: int, seed: int):
        return self.converter.make_tf_dataset(
            batch_size=batch_size, num_epochs=None, workers_count=1,
            cur_shard=rank, shard_count=size, seed=seed,
            shuffle_rows=True, shuffle_row_groups=True)


class InMemoryFeed:
    """The same rows from numpy arrays (`tf.data.Dataset.from_tensor_slices`): the benchmark's
    yardstick, and a feed for tests that need no Spark."""

    def __init__(self, columns: Dict[str, np.ndarray]):
        self.columns = columns

    def open(self, rank: int, size: int, batch_size: int, seed: int):
        import contextlib

        import tensorflow as tf

        n = len(self.columns["item_index"])
        rows = np.arange(rank, n, size)
        data = {k: v[rows] for k, v in self.columns.items()}
        dataset = (tf.data.Dataset.from_tensor_slices(data).repeat()
                   .shuffle(min(len(rows), 100_000), seed=seed, reshuffle_each_iteration=True)
                   .batch(batch_size).prefetch(tf.data.AUTOTUNE))
        return contextlib.nullcontext(dataset)


def _field(batch, name: str):
    return batch[name] if isinstance(batch, dict) else getattr(batch, name)


def weights_digest(variables) -> str:
    digest = hashlib.sha256()
    for v in sorted(variables, key=lambda v: v.name):
        digest.update(v.name.encode())
        digest.update(np.ascontiguousarray(v.numpy()).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class WorkerResult:
    rank: int
    size: int
    start_epoch: int  # > 0: resumed from a checkpoint
    epoch_loss: List[float] = field(default_factory=list)  # mean loss of each epoch run here
    epoch_examples_per_s: List[float] = field(default_factory=list)
    epoch_seconds: List[float] = field(default_factory=list)
    steps_per_epoch: int = 0
    weights_digest: str = ""


class ReportingWorker:
    """Wraps a worker function so that an exception in a worker is written, with its rank, to
    `report_dir` (a folder every worker and the driver can open) before the worker exits: the
    launcher itself only learns an exit code."""

    def __init__(self, fn, report_dir: str):
        self.fn = fn
        self.report_dir = report_dir

    def __call__(self, spec: WorkerSpec, feed):
        try:
            return self.fn(spec, feed)
        except BaseException as exc:
            rank = os.environ.get("HOROVOD_RANK", "?")
            Path(self.report_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.report_dir) / f"rank-{rank}.txt").write_text(f"{type(exc).__name__}: {exc}")
            raise


def read_reports(report_dir: str) -> Dict[str, str]:
    """rank -> 'ExceptionType: message' for every worker that reported a failure."""
    folder = Path(report_dir)
    if not folder.is_dir():
        return {}
    return {p.stem.split("-", 1)[1]: p.read_text() for p in sorted(folder.glob("rank-*.txt"))}


def run_worker(spec: WorkerSpec, feed) -> WorkerResult:
    """Train on this worker's shard; every worker returns its result (rank 0's is the one used)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if spec.tf_threads > 0:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(spec.tf_threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from rec_lib import two_tower

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker_log = logging.getLogger("rec_lib.trainer.worker")
    logging.getLogger("petastorm").setLevel(logging.WARNING)
    tf.random.set_seed(spec.seed)
    tf.config.experimental.enable_op_determinism()

    params = spec.params
    model = two_tower.build(spec.catalogue, params)
    optimizer = tf.keras.optimizers.Adam(spec.learning_rate * size)
    rng = tf.random.Generator.from_seed(spec.seed * 1000 + rank)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, rng=rng, epoch=epoch_var)
    manager = None
    if spec.checkpoint_dir:
        manager = tf.train.CheckpointManager(checkpoint, spec.checkpoint_dir, max_to_keep=2)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint)
    start_epoch = int(epoch_var.numpy())
    if rank == 0 and start_epoch:
        worker_log.info("resuming from checkpoint %s (epoch %d of %d done)", manager.latest_checkpoint,
                        start_epoch, spec.epochs)

    n_items = spec.catalogue.text.shape[0]
    batch_size, extra = spec.batch_size, params.extra_negatives
    steps = max(1, spec.n_examples // (batch_size * size))

    def keep_item_ids(unique):
        return rng.uniform(tf.shape(unique)) >= params.item_id_dropout

    text_dim = spec.catalogue.text.shape[1]

    def text_mask(index):
        # inverted dropout of the text embedding's dimensions: an item's exact text cannot be
        # memorised as a second id, only what generalises (its style, its kind) is learned
        if params.text_dropout <= 0:
            return None
        keep = rng.uniform([tf.shape(index)[0], text_dim]) >= params.text_dropout
        return tf.cast(keep, tf.float32) / (1.0 - params.text_dropout)

    @tf.function(reduce_retracing=True)
    def train_step(user_slot, item_index, history, user_numeric, weight):
        with tf.GradientTape() as tape:
            keep_users = rng.uniform(tf.shape(user_slot)) >= params.user_id_dropout
            user = model.encode_users(history, user_numeric, user_slot, keep_item_ids, keep_users,
                                      exclude=item_index, text_mask=text_mask)
            negatives = rng.uniform([extra], 0, n_items, dtype=tf.int32)
            cand_index = tf.concat([item_index, negatives], 0)
            cand_vectors, cand_bias = model.item_vectors(cand_index, keep_item_ids(cand_index), text_mask(cand_index))
            log_q = two_tower.candidate_log_q(model.train_q, cand_index, batch_size, extra, n_items)
            text_logits = None
            if params.text_weight > 0:
                profile = model.text_profile(history, exclude=item_index)
                text_logits = model.text_weight() * tf.matmul(profile, tf.gather(model.text, cand_index),
                                                              transpose_b=True)
            loss = two_tower.sampled_softmax_loss(user, cand_vectors, cand_bias, cand_index, item_index,
                                                  log_q, weight, params.temperature, text_logits)
        tape = hvd.DistributedGradientTape(tape)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return hvd.allreduce(loss, op=hvd.Average)

    result = WorkerResult(rank=rank, size=size, start_epoch=start_epoch, steps_per_epoch=steps)
    hvd.broadcast_variables(model.variables, root_rank=0)
    broadcast_optimizer = True
    with feed.open(rank, size, batch_size, spec.seed + start_epoch) as dataset:
        batches = iter(dataset)
        for epoch in range(start_epoch, spec.epochs):
            start, last_log, total = time.perf_counter(), time.perf_counter(), 0.0
            for step in range(steps):
                batch = next(batches)
                loss = train_step(*(tf.convert_to_tensor(_field(batch, c)) for c in COLUMNS))
                if broadcast_optimizer:  # optimizer slots exist only after the first step
                    hvd.broadcast_variables(optimizer.variables(), root_rank=0)
                    broadcast_optimizer = False
                value = float(loss.numpy())
                if not np.isfinite(value):
                    raise TrainingDiverged(f"loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                                           "lower train.learning_rate or check the inputs")
                total += value
                now = time.perf_counter()
                if rank == 0 and now - last_log >= spec.log_every_s:
                    worker_log.info("epoch %d/%d step %d/%d loss %.4f", epoch + 1, spec.epochs, step + 1, steps,
                                    total / (step + 1))
                    last_log = now
            seconds = time.perf_counter() - start
            epoch_var.assign(epoch + 1)
            result.epoch_loss.append(total / steps)
            result.epoch_seconds.append(seconds)
            result.epoch_examples_per_s.append(steps * batch_size * size / seconds)
            if rank == 0:
                if manager is not None:
                    manager.save(checkpoint_number=epoch + 1)
                worker_log.info("epoch %d/%d done: loss %.4f, %.0f examples/s over %d workers",
                                epoch + 1, spec.epochs, result.epoch_loss[-1], result.epoch_examples_per_s[-1], size)
    result.weights_digest = weights_digest(model.variables)
    if rank == 0 and spec.weights_dir:
        two_tower.write_weights(model, Path(spec.weights_dir))
    return result
