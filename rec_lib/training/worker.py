"""The training function every Horovod worker runs, and the feeds it reads from.

One function, any launcher: `horovod.spark.run` starts it on Spark tasks (locally on the
`local[n]` session, on a cluster on the executors), and `run_worker` also works under
`horovodrun`. Each worker reads its shard, averages gradients with `hvd.DistributedGradientTape`,
uses a learning rate scaled by the number of workers, starts from rank 0's variables, and resumes
from the newest checkpoint (rank 0's epoch count is every worker's). Only rank 0 writes
checkpoints; it returns the final weights' files in its result, so the driver writes them into the
model folder without sharing a file system with the worker that trained them.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from rec_lib.core.config import TRAIN_DETERMINISM
from rec_lib.core.process import worker_setup
from rec_lib.training.catalogue import USER_NUMERIC, Catalogue
from rec_lib.training.model_folder import ModelFolder

if TYPE_CHECKING:
    from rec_lib.core.config import TrainSection
    from rec_lib.training.data import TrainingData

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
    checkpoint_dir: str  # rank 0 writes it; a worker that can read it resumes, and all run rank 0's epochs; empty: none
    return_weights: bool = True  # rank 0 returns the final weights' files in its result
    log_every_s: float = 10.0
    deterministic: str = "auto"  # train.deterministic: auto | always | never (see determinism_wanted)

    @classmethod
    def of(cls, t: "TrainSection", data: "TrainingData", folder: ModelFolder) -> "WorkerSpec":
        """From the `train` section, for the training data `data`, checkpointing into `folder`."""
        from rec_lib.training.two_tower import ModelParams

        params = ModelParams(embedding_dim=t.embedding_dim, hidden_dim=t.hidden_dim, temperature=t.temperature,
                             item_id_dropout=t.item_id_dropout, user_id_dropout=t.user_id_dropout,
                             text_dropout=t.text_dropout, text_weight=t.text_weight,
                             text_in_item_tower=t.text_in_item_tower, logq_correction=t.logq_correction,
                             encoder_tuning=t.encoder_tuning, adapter_rank=t.adapter_rank,
                             extra_negatives=t.extra_negatives, n_user_slots=data.n_user_slots,
                             n_user_numeric=len(USER_NUMERIC), history_length=t.history_length)
        return cls(catalogue=data.catalogue, params=params, n_examples=data.n_examples, epochs=t.epochs,
                   batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed, tf_threads=t.tf_threads,
                   checkpoint_dir=str(folder.checkpoints), deterministic=t.deterministic)




def gpu_for_rank(n_gpus: int, local_rank: int) -> Optional[int]:
    """The GPU a worker uses: its local rank's (Horovod's one GPU per process on a node), wrapping
    round when a node runs more workers than it has GPUs; None without GPUs."""
    return local_rank % n_gpus if n_gpus > 0 else None


def determinism_wanted(setting: str, on_gpu: bool) -> bool:
    """Whether TensorFlow's op determinism is switched on. `auto`: on CPU only (every op has a
    deterministic CPU kernel; on GPU, determinism makes an op without a deterministic GPU kernel
    raise); `always`: also on GPU (reproducible to the bit, or an error naming the op); `never`."""
    if setting not in TRAIN_DETERMINISM:
        raise ValueError(f"train.deterministic must be one of {list(TRAIN_DETERMINISM)}, got {setting!r}")
    return setting == "always" or (setting == "auto" and not on_gpu)


def place_on_gpu(tf, local_rank: int) -> Optional[str]:
    """Make this worker see only its own GPU (with memory growth, so a node's workers do not each
    take a whole GPU's memory up front); the GPU's name, or None on CPU. Before any TensorFlow op."""
    gpus = tf.config.list_physical_devices("GPU")
    index = gpu_for_rank(len(gpus), local_rank)
    if index is None:
        return None
    tf.config.set_visible_devices(gpus[index], "GPU")
    tf.config.experimental.set_memory_growth(gpus[index], True)
    return gpus[index].name


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


def step_inputs(batch) -> tuple:
    """The train step's tensors (COLUMNS' order) from one batch: every column of a step comes from the
    same rows, so each user's history meets the item that user chose. (Drawing the batch once per
    column paired one batch's histories with the next batch's items, and the towers learned noise.)"""
    import tensorflow as tf

    return tuple(tf.convert_to_tensor(_field(batch, c)) for c in COLUMNS)


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
    device: str = "CPU"  # the GPU this worker trained on (tf.config's name), or CPU
    deterministic: bool = True  # TensorFlow op determinism was on
    weights: Dict[str, bytes] = field(default_factory=dict)  # rank 0: the weights' files, by name in weights/


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


@dataclass
class _Training:
    """One worker's training state: the model, its optimizer and random generator, all in one
    checkpoint with the number of epochs done."""

    hvd: Any
    model: Any
    optimizer: Any
    rng: Any
    epoch: Any  # tf.Variable: epochs done
    checkpoint: Any
    manager: Optional[Any]  # tf.train.CheckpointManager; None: no checkpoints
    rank: int
    size: int
    device: str = "CPU"
    deterministic: bool = True
    optimizer_synced: bool = False  # its slots exist (and are broadcast) after the first step


def _start(spec: WorkerSpec) -> _Training:
    """Join Horovod, build the model and restore the newest readable checkpoint, if any."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    hvd.init()
    gpu = place_on_gpu(tf, hvd.local_rank())
    logging.getLogger("petastorm").setLevel(logging.WARNING)
    tf.random.set_seed(spec.seed)
    deterministic = determinism_wanted(spec.deterministic, gpu is not None)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    log.info("worker %d of %d (local rank %d) on %s, op determinism %s", hvd.rank(), hvd.size(), hvd.local_rank(),
             gpu or "CPU", "on" if deterministic else "off")
    state, restored = restore_newest(spec.checkpoint_dir, lambda: _fresh_state(spec, hvd.size(), hvd.rank()))
    model, optimizer, rng, epoch, checkpoint, manager = state
    if restored and hvd.rank() == 0:
        log.info("resuming from checkpoint %s (epoch %d of %d done)", restored, int(epoch.numpy()), spec.epochs)
    return _Training(hvd, model, optimizer, rng, epoch, checkpoint, manager, hvd.rank(), hvd.size(), gpu or "CPU",
                     deterministic)


def _fresh_state(spec: WorkerSpec, size: int, rank: int):
    """A new model, optimizer, random generator and epoch counter, their checkpoint and its manager."""
    import tensorflow as tf

    from rec_lib.training import two_tower

    model = two_tower.build(spec.catalogue, spec.params)
    optimizer = tf.keras.optimizers.Adam(spec.learning_rate * size)
    rng = tf.random.Generator.from_seed(spec.seed * 1000 + rank)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, rng=rng, epoch=epoch)
    manager = (tf.train.CheckpointManager(checkpoint, spec.checkpoint_dir, max_to_keep=2)
               if spec.checkpoint_dir else None)
    return model, optimizer, rng, epoch, checkpoint, manager


def restore_newest(checkpoint_dir: str, fresh):
    """`fresh()`'s state (a tuple whose last two are the checkpoint and its manager, or None) restored
    from the newest checkpoint in `checkpoint_dir` that reads; a checkpoint that does not (a kill
    during its write, a corrupt file) is reported and the one before it tried, each on new state so
    no half-restored variable survives. Returns (state, the checkpoint restored or None)."""
    state = fresh()
    manager = state[-1]
    if manager is None:
        return state, None
    for path in reversed(manager.checkpoints):  # oldest first in the manager's list
        try:
            state[-2].restore(path).assert_existing_objects_matched()
            return state, path
        except Exception as exc:  # DataLossError, NotFoundError, a mismatched object graph...
            log.warning("checkpoint %s cannot be restored (%s: %s); trying the one before it", path,
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            state = fresh()
    if manager.checkpoints:
        log.warning("no checkpoint in %s can be restored: training starts from the first epoch", checkpoint_dir)
    return state, None


def _train_step(run: _Training, batch_size: int):
    import tensorflow as tf

    from rec_lib.training.loss import RetrievalLoss

    model, hvd, loss_of = run.model, run.hvd, RetrievalLoss()

    @tf.function(reduce_retracing=True)
    def train_step(user_slot, item_index, history, user_numeric, weight):
        with tf.GradientTape() as tape:
            loss = loss_of(model, user_slot, item_index, history, user_numeric, weight, run.rng, batch_size)
        tape = hvd.DistributedGradientTape(tape)
        gradients = tape.gradient(loss, model.trainable_variables)
        run.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return hvd.allreduce(loss, op=hvd.Average)

    return train_step


def _run_epoch(run: _Training, spec: WorkerSpec, train_step, batches, epoch: int, result: WorkerResult) -> None:
    """`result.steps_per_epoch` steps; the epoch's mean loss and speed go into `result`; rank 0
    checkpoints. A loss that is not finite stops training."""
    steps = result.steps_per_epoch
    start, last_log, total = time.perf_counter(), time.perf_counter(), 0.0
    for step in range(steps):
        loss = train_step(*step_inputs(next(batches)))
        if not run.optimizer_synced:
            run.hvd.broadcast_variables(run.optimizer.variables(), root_rank=0)
            run.optimizer_synced = True
        value = float(loss.numpy())
        if not np.isfinite(value):
            raise TrainingDiverged(f"loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                                   "lower train.learning_rate or check the inputs")
        total += value
        now = time.perf_counter()
        if run.rank == 0 and now - last_log >= spec.log_every_s:
            log.info("epoch %d/%d step %d/%d loss %.4f", epoch + 1, spec.epochs, step + 1, steps,
                            total / (step + 1))
            last_log = now
    seconds = time.perf_counter() - start
    run.epoch.assign(epoch + 1)
    result.epoch_loss.append(total / steps)
    result.epoch_seconds.append(seconds)
    result.epoch_examples_per_s.append(steps * spec.batch_size * run.size / seconds)
    if run.rank == 0:
        if run.manager is not None:
            run.manager.save(checkpoint_number=epoch + 1)
        log.info("epoch %d/%d done: loss %.4f, %.0f examples/s over %d workers",
                        epoch + 1, spec.epochs, result.epoch_loss[-1], result.epoch_examples_per_s[-1], run.size)


def run_worker(spec: WorkerSpec, feed) -> WorkerResult:
    """Train on this worker's shard; every worker returns its result (rank 0's is the one used)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    worker_setup(spec.tf_threads)

    run = _start(spec)
    run.hvd.broadcast_variables([run.epoch], root_rank=0)  # a worker that restored no checkpoint runs rank 0's epochs
    start_epoch = int(run.epoch.numpy())
    steps = max(1, spec.n_examples // (spec.batch_size * run.size))
    result = WorkerResult(rank=run.rank, size=run.size, start_epoch=start_epoch, steps_per_epoch=steps,
                          device=run.device, deterministic=run.deterministic)
    train_step = _train_step(run, spec.batch_size)
    run.hvd.broadcast_variables(run.model.variables, root_rank=0)
    with feed.open(run.rank, run.size, spec.batch_size, spec.seed + start_epoch) as dataset:
        batches = iter(dataset)
        for epoch in range(start_epoch, spec.epochs):
            _run_epoch(run, spec, train_step, batches, epoch, result)
    result.weights_digest = weights_digest(run.model.variables)
    if run.rank == 0 and spec.return_weights:
        result.weights = weight_files(run.model)
    return result


def weight_files(model) -> Dict[str, bytes]:
    """The files `two_tower.write_weights` writes for `model`, by name (written to a temporary
    folder on this worker and read back)."""
    from rec_lib.training import two_tower

    with tempfile.TemporaryDirectory(prefix="rec-weights-") as tmp:
        folder = ModelFolder(Path(tmp))
        two_tower.write_weights(model, folder)
        weights = Path(folder.weights).parent
        return {p.name: p.read_bytes() for p in sorted(weights.iterdir()) if p.is_file()}
