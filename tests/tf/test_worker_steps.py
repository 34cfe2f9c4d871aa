"""Each training step reads every column from one batch (the worker's epoch loop, with a stand-in step)."""
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from rec_lib.training.worker import COLUMNS, WorkerResult, _run_epoch, step_inputs


def _batches(n):
    # batch b: every row's item is b and every row's history starts with b, so a step can tell
    # whether its columns came from the same rows
    for b in range(1, n + 1):
        yield {"user_slot": np.zeros(2, np.int32), "item_index": np.full(2, b, np.int32),
               "history": np.full((2, 3), b, np.int32), "user_numeric": np.zeros((2, 3), np.float32),
               "weight": np.full(2, float(b), np.float32)}


def test_step_inputs_keep_the_columns_order_and_rows():
    got = step_inputs(next(_batches(1)))
    assert len(got) == len(COLUMNS) == 5
    np.testing.assert_array_equal(got[COLUMNS.index("history")].numpy(), np.ones((2, 3)))
    assert got[COLUMNS.index("item_index")].dtype == tf.int32


def test_an_epoch_pairs_each_history_with_its_own_rows_items():
    seen = []

    def train_step(user_slot, item_index, history, user_numeric, weight):
        seen.append((int(item_index[0]), int(history[0, 0]), float(weight[0])))
        return tf.constant(1.0)

    run = SimpleNamespace(optimizer_synced=True, rank=1, size=1, manager=None, epoch=tf.Variable(0, dtype=tf.int64))
    spec = SimpleNamespace(epochs=1, log_every_s=1e9, batch_size=2)
    result = WorkerResult(rank=1, size=1, start_epoch=0, steps_per_epoch=3, device="CPU", deterministic=True)
    _run_epoch(run, spec, train_step, iter(_batches(10)), 0, result)
    # three steps, three batches: step s reads batch s's items, histories and weights, not one batch a column
    assert seen == [(1, 1, 1.0), (2, 2, 2.0), (3, 3, 3.0)]
    assert result.epoch_loss == [1.0] and int(run.epoch.numpy()) == 1
