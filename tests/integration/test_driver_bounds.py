"""Nothing user-sized reaches the driver: the training job (training data, Horovod training, every
user's and item's embedding) runs on a shop with many more users than items under a guard on every
row the driver collects (DataFrame.collect / toPandas) or sends (SparkSession.createDataFrame);
and the user rows the Spark tasks write are the rows the driver computes for the same users.

The model folder is on a URI (`file:`, through the same Hadoop FileSystem calls as `s3a:` or
`dbfs:`): the Spark tasks read the model through the session's files, and a second driver with an
empty local folder brings the complete model from the URI instead of training it again."""
from __future__ import annotations

import numpy as np
import pytest

from rec_lib.core.schema import USER_EMBEDDINGS
from rec_lib.platform import io
from rec_lib.training import sides as sides_module
from rec_lib.training.fit import fit_model
from rec_lib.training.job import run_train_job
from tests.helpers import RowGuard, build_small_shop, train_config

N_USERS, N_ITEMS = 1500, 40
# the most rows one collect may bring: the catalogue (40), each launch's first few_shot.max_k users
# (a few launches x 10) and the blend's sample (train.blend_max_users=200) fit; a user-sized frame
# (1,500 rows) does not
ROW_LIMIT = 600


@pytest.fixture(scope="module")
def wide_shop(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("wide-shop")
    return root, build_small_shop(spark, root, n_users=N_USERS, n_items=N_ITEMS, n_events=9000, seed=5)


def test_training_moves_no_user_sized_frame_through_the_driver(spark, wide_shop, monkeypatch):
    root = wide_shop[0]
    on_uri = (f"train.model_dir=file://{root / 'remote-models'}", "train.epochs=1", "train.num_proc=1",
              "train.blend_max_users=200")
    cfg = train_config(wide_shop, *on_uri, f"train.local_model_dir={root / 'driver-a'}")
    guard = RowGuard(ROW_LIMIT)
    guard.install(monkeypatch)
    summary = run_train_job(spark, cfg)
    monkeypatch.undo()
    assert summary.trained and summary.n_users == N_USERS and summary.n_items == N_ITEMS
    # the guard saw real collects (the catalogue at least) and none near the users' size
    assert N_ITEMS <= guard.largest[0] <= ROW_LIMIT, guard.largest

    table = io.read_table(spark, cfg.paths.warehouse, USER_EMBEDDINGS)
    assert table.count() == N_USERS and table.select("user_id").distinct().count() == N_USERS
    kept = sorted(p.relative_to(root / "remote-models").as_posix() for p in (root / "remote-models").rglob("*")
                  if p.is_file() and not p.name.endswith(".crc"))
    assert kept == [f"{summary.model_version}/{name}" for name in
                    ("blend.json", "catalogue.npz", "model.json", "params.json", "vocab.json",
                     "weights/model.data-00000-of-00001", "weights/model.index")]
    # the rows the Spark tasks wrote are the driver's rows for the same users, computed by another
    # driver that brings the complete model from the URI (nothing is retrained)
    fitted = fit_model(spark, train_config(wide_shop, *on_uri, f"train.local_model_dir={root / 'driver-b'}"))
    assert fitted.result is None and fitted.version == summary.model_version
    assert fitted.folder.root == root / "driver-b" / summary.model_version and fitted.folder.is_complete()
    sample = np.sort(table.select("user_id").orderBy("user_id").limit(1000).toPandas()["user_id"].to_numpy(str))[::200]
    known, sides = fitted.sides_of(sample)
    assert list(known["user_id"]) == list(sample)
    want = sides_module.user_rows(sides, fitted.blend, fitted.temperature)
    got = table.where(table.user_id.isin(list(sample))).orderBy("user_id").toPandas()
    assert list(got["user_id"]) == list(sample)
    np.testing.assert_allclose(np.stack(got["embedding"].to_list()), want, rtol=1e-5, atol=1e-6)
