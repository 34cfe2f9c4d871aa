"""The Databricks source-format notebooks run top to bottom (as Python files, which that format
is) on the shared generated shop: explore the features, train, then browse what scoring wrote."""
import runpy
import shutil

from pyspark.sql import functions as F

from rec_lib.core import config as rc
from rec_lib.core.schema import INTERACTIONS, RECOMMENDATIONS
from rec_lib.platform import io
from rec_lib.scoring.job import run_score_job
from tests.helpers import REPO

NOTEBOOKS = REPO / "notebooks"


def test_every_notebook_is_in_databricks_source_format():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.py"))
    assert names == ["01_explore_features.py", "02_train_model.py", "03_browse_recommendations.py"]
    for name in names:
        text = (NOTEBOOKS / name).read_text()
        assert text.startswith("# Databricks notebook source\n") and "\n# COMMAND ----------\n" in text


def test_notebooks_run_top_to_bottom_on_the_demo_shop(spark, shop, tmp_path, monkeypatch):
    root, common = shop
    warehouse = tmp_path / "warehouse"  # a copy: the notebooks' tables stay out of the other tests' way
    shutil.copytree(root / "warehouse", warehouse)
    monkeypatch.setenv("REC_CONF", str(REPO / "conf/local.yaml"))
    monkeypatch.setenv("REC_WAREHOUSE", str(warehouse))

    explore = runpy.run_path(str(NOTEBOOKS / "01_explore_features.py"))["summary"]
    assert explore["items"] == 200 and explore["new_items"] > 0

    monkeypatch.setenv("REC_SETTINGS", f"run.now=2026-11-01T00:00:00Z run.run_id=notebook train.epochs=2 "
                                       f"train.model_dir={tmp_path / 'models'} mlflow.tracking_uri=''")
    trained = runpy.run_path(str(NOTEBOOKS / "02_train_model.py"))["summary"]
    assert trained["trained"] and len(trained["epoch_loss"]) == 2
    assert trained["users"] == 400 and trained["items"] == 200
    assert sum(trained["item_sources"].values()) == 200

    # the scoring job runs between training and browsing, as in the pipeline
    scored = run_score_job(spark, rc.load_config(rc.ScoreJobConfig, REPO / "conf/local.yaml", [
        f"paths.warehouse={warehouse}", "run.now=2026-11-01T00:00:00Z", "run.run_id=notebook", "score.k=5"]))
    monkeypatch.setenv("REC_USER", "U0000007")
    browse = runpy.run_path(str(NOTEBOOKS / "03_browse_recommendations.py"))["summary"]
    assert browse["user"] == "U0000007" and len(browse["user_list"]) == 5
    assert browse["rows"] == scored.rows and browse["users_with_lists"] == 400
    assert 5 <= browse["distinct_items"] <= scored.n_candidates
    # a trained model's lists say why, every row: the kinds count every row, the user's sentences are there
    assert None not in browse["reason_kinds"] and sum(browse["reason_kinds"].values()) == scored.rows
    assert len(browse["user_sentences"]) == 5 and all(browse["user_sentences"])
    # every similar_to names an item that user interacted with before (none is made up)
    recs = io.read_table(spark, str(warehouse), RECOMMENDATIONS).where("reason.kind = 'similar_to'")
    named = recs.where("reason.item_id IS NOT NULL")
    assert named.count() > 0
    seen = io.read_table(spark, str(warehouse), INTERACTIONS).select("user_id", F.col("item_id").alias("because"))
    assert named.select("user_id", F.col("reason.item_id").alias("because")).join(
        seen, ["user_id", "because"], "left_anti").count() == 0
