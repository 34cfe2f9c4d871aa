"""The GPU tier (scripts/gpu_check.sh; collected only with REC_GPU_CHECK=1, so a machine without a
GPU never counts it): the training job with one Horovod worker on the GPU learns, as on the CPU,
and says which device it used; so does a run with the encoder tuned (train.encoder_tuning: adapter); op
determinism forced on the GPU either holds or names the op."""
import json
import os
from pathlib import Path

import pytest

from rec_lib.training.job import run_train_job
from tests.helpers import heldout_recall, train_config


@pytest.fixture(scope="module")
def gpus():
    import tensorflow as tf

    found = tf.config.list_physical_devices("GPU")
    if not found:
        pytest.fail("the GPU tier needs a GPU that TensorFlow sees (tensorflow[and-cuda], an NVIDIA driver)")
    return found


def _report(name: str, figures: dict) -> None:
    out = Path(os.environ.get("OUT", "."))
    (out / f"gpu_check_{name}.json").write_text(json.dumps(figures, indent=1))
    print(name, figures)


def test_one_worker_trains_on_its_gpu_and_learns(spark, shop, gpus, tmp_path):
    cfg = train_config(shop, "train.num_proc=1", "mlflow.tracking_uri=''", f"train.model_dir={tmp_path / 'gpu'}")
    summary = run_train_job(spark, cfg)
    recall, random_recall = heldout_recall(spark, cfg.paths.warehouse)
    _report("training", {"device": summary.device, "examples_per_s": summary.examples_per_s,
                         "recall10": recall, "random_recall10": random_recall, "loss": summary.epoch_loss})
    assert summary.device.startswith("/physical_device:GPU:"), summary.device
    description = json.loads((Path(summary.model_folder) / "model.json").read_text())
    assert description["device"] == summary.device and description["deterministic"] is False  # auto: CPU only
    assert summary.epoch_loss[-1] < summary.epoch_loss[0] - 0.1, summary.epoch_loss
    # as the CPU tier's bar for the same shop (tests/integration/test_train_job.py)
    assert recall > 1.5 * random_recall, (recall, random_recall)


def test_a_tuned_encoder_trains_on_the_gpu_and_writes_its_text(spark, shop, gpus, tmp_path):
    from rec_lib.core.schema import ITEM_TEXT_EMBEDDINGS_TUNED
    from rec_lib.platform import io

    cfg = train_config(shop, "train.num_proc=1", "mlflow.tracking_uri=''", "train.encoder_tuning=adapter",
                       f"train.model_dir={tmp_path / 'tuned'}")
    summary = run_train_job(spark, cfg)
    recall, random_recall = heldout_recall(spark, cfg.paths.warehouse)
    _report("tuned", {"device": summary.device, "examples_per_s": summary.examples_per_s,
                      "recall10": recall, "random_recall10": random_recall, "loss": summary.epoch_loss})
    assert summary.device.startswith("/physical_device:GPU:"), summary.device
    assert summary.epoch_loss[-1] < summary.epoch_loss[0] - 0.1, summary.epoch_loss
    tuned = io.read_table(spark, cfg.paths.warehouse, ITEM_TEXT_EMBEDDINGS_TUNED)
    assert {r[0] for r in tuned.select("model_version").distinct().collect()} == {summary.model_version}
    assert tuned.count() == summary.n_items


def test_determinism_always_on_the_gpu_runs_or_names_the_op(spark, shop, gpus, tmp_path):
    # train.deterministic=always: either the model's ops all have deterministic GPU kernels (two runs
    # give the same weights), or TensorFlow names the op that has none; both are reported
    runs = []
    for n in (1, 2):
        cfg = train_config(shop, "train.num_proc=1", "train.epochs=2", "mlflow.tracking_uri=''",
                           "train.deterministic=always", f"train.model_dir={tmp_path / f'always{n}'}")
        try:
            runs.append(run_train_job(spark, cfg).weights_digests)
        except Exception as exc:  # the training error carries the worker's message
            _report("determinism", {"always": "raised", "error": str(exc)[:2000]})
            assert "determinism" in str(exc).lower() or "deterministic" in str(exc).lower(), exc
            return
    _report("determinism", {"always": "ran", "same_weights": runs[0] == runs[1]})
    assert runs[0] == runs[1]
