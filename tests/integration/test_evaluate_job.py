"""The evaluation stage: no leakage past the cutoff (hand-made warehouse), and the whole job on a
small generated shop with the real model, ALS and the ground-truth oracle."""
import dataclasses
import re
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from jobs import evaluate as evaluate_entry
from rec_lib.core import config as rc
from rec_lib.core.config import EvaluateSection
from rec_lib.core.schema import (
    EVALUATION_METRICS,
    EVALUATION_TRAINING_EXAMPLES,
    INTERACTIONS,
    ITEM_EMBEDDINGS,
    ITEMS,
    LIST_METRICS,
    MODEL_GATE,
    RECOMMENDATIONS,
    TRAINING_EXAMPLES,
    USER_EMBEDDINGS,
)
from rec_lib.evaluation.inputs import AlsFitter, history_profiles, raw_text
from rec_lib.evaluation.job import run_evaluate_job
from rec_lib.evaluation.rankers import revealed
from rec_lib.evaluation.window import new_items, resolve_window, window_pairs
from rec_lib.platform import io
from rec_lib.scoring.job import run_score_job
from rec_lib.training.blend import COMPONENTS
from rec_lib.training.catalogue import CatalogueSettings
from rec_lib.training.data import DataSettings, build_training_data
from rec_lib.training.job import run_train_job
from tests.helpers import CUTOFF, REPO, fake_text_embeddings


def _plant(spark, warehouse, user_id, item_id, ts):
    row = [(user_id, item_id, "purchase", ts, None, 8.0, ts.date(), "planted.csv", "planted")]
    spark.createDataFrame(row, INTERACTIONS.schema).write.format("delta").mode("append").partitionBy(
        "event_date").save(io.table_path(warehouse, INTERACTIONS))


def test_no_event_after_the_cutoff_reaches_a_training_input(spark, small_warehouse):
    """Before the cutoff: (u1, I1) and (u2, I2). After it: the warehouse's (u3, I3) click and a
    planted purchase of the old item I2 by u1; neither may reach the model's training data, its
    user histories, ALS's ratings or the content profiles; the new item I3 reaches the methods only
    as a revealed first user at k >= 1."""
    fake_text_embeddings(spark, small_warehouse, ["I1", "I2", "I3"])
    _plant(spark, small_warehouse, "u1", "I2", datetime(2026, 10, 25, 12, 0))
    interactions = io.read_table(spark, small_warehouse, INTERACTIONS)
    cutoff = CUTOFF
    end = datetime(2026, 11, 3, tzinfo=timezone.utc)

    new = new_items(io.read_table(spark, small_warehouse, ITEMS), interactions, cutoff, end).toPandas()
    assert list(new.item_id) == ["I3"]
    pairs = window_pairs(interactions, spark.createDataFrame(new[["item_id"]]), cutoff, end).toPandas()
    assert list(zip(pairs.user_id, pairs.item_id, pairs.arrival)) == [("u3", "I3", 0)]
    assert revealed(pairs, 0).empty and list(revealed(pairs, 1).user_id) == ["u3"]

    data = build_training_data(spark, small_warehouse, cutoff, DataSettings(
        history_length=3, catalogue=CatalogueSettings(min_item_interactions=1, price_buckets=2), launch_cohorts=0))
    got = {(r.user_id, r.item_index) for r in data.examples.collect()}
    assert got == {("u1", 0), ("u2", 1)}  # I1 is row 0, I2 row 1
    users = data.users.toPandas().set_index("user_id")
    assert list(users.loc["u1", "history"]) == [0, -1, -1] and users.loc["u3", "n_history"] == 0
    assert list(data.catalogue.n_users) == [1, 1, 0]

    section = EvaluateSection(cutoff=None, test_days=14, window="test", required=False, backtest=False, ks=[0, 1],
                              top_k=5, methods=["model"], max_users=0, seed=1, ground_truth=None, report_dir="r",
                              als_rank=2, als_reg=0.1, als_alpha=1.0, als_iterations=2)
    als = AlsFitter(spark, interactions, cutoff, section, data.users.select("user_id"),
                    data.catalogue.item_ids, np.array(["u1"]), np.array(["I3"]))
    # users numbered in sorted order by Spark: u1 0, u2 1, u3 2
    assert {r.user_id: r.u for r in als.user_index.collect()} == {"u1": 0, "u2": 1, "u3": 2}
    ratings = {(["u1", "u2", "u3"][r.u], data.catalogue.item_ids[r.i]) for r in als.past.collect()}
    als.close()
    assert ratings == {("u1", "I1"), ("u2", "I2")}
    profiles = history_profiles(data, np.array(["u1", "u2", "u3"]),
                                raw_text(spark, small_warehouse, data.catalogue.item_ids))
    assert set(profiles) == {"u1", "u2"}
    np.testing.assert_array_equal(profiles["u1"], [0.0, 1.0])  # I1's text alone, not I2's [1, 1]

    # the default window: the day after the newest interaction (the planted 2026-10-28 click) minus test_days;
    # the validation window is the test_days before it
    assert resolve_window(interactions, section) == (datetime(2026, 10, 15, tzinfo=timezone.utc),
                                                     datetime(2026, 10, 29, tzinfo=timezone.utc))
    validation = dataclasses.replace(section, window="validation")
    assert resolve_window(interactions, validation) == (datetime(2026, 10, 1, tzinfo=timezone.utc),
                                                        datetime(2026, 10, 15, tzinfo=timezone.utc))


def evaluate_settings(shop, *settings):
    root, common = shop
    return common + [
        f"train.model_dir={root / 'eval-models'}", f"train.petastorm_cache_dir={root / 'eval-petastorm'}",
        f"mlflow.tracking_uri=sqlite:///{root / 'eval-mlflow.db'}", f"evaluate.report_dir={root / 'reports'}",
        "evaluate.cutoff=2026-10-17T00:00:00Z", "evaluate.ks=[0,1,3]", "evaluate.top_k=5",
        "train.epochs=12", "train.batch_size=64", "evaluate.als_iterations=5", *settings]


def evaluate_config(shop, *settings):
    return rc.load_config(rc.EvaluateJobConfig, REPO / "conf/local.yaml", evaluate_settings(shop, *settings))


@pytest.fixture(scope="module")
def evaluated(spark, shop):
    cfg = evaluate_config(shop, "run.run_id=eval-1")
    warehouse = cfg.paths.warehouse
    before = {spec.name: io.table_version(spark, warehouse, spec) for spec in (TRAINING_EXAMPLES, USER_EMBEDDINGS)}
    summary = run_evaluate_job(spark, cfg)
    after = {spec.name: io.table_version(spark, warehouse, spec) for spec in (TRAINING_EXAMPLES, USER_EMBEDDINGS)}
    return cfg, summary, before, after


def test_the_job_writes_every_method_and_k(spark, evaluated):
    cfg, summary, before, after = evaluated
    rows = io.read_table(spark, cfg.paths.warehouse, EVALUATION_METRICS).toPandas()
    assert set(rows.run_id) == {"eval-1"} and set(rows.model_version) == {summary.model_version}
    assert summary.model_version.startswith("20261017-")
    served = rows[rows.method == "served"]  # the served lists' ablation: k -1, the lists mix every k
    rows = rows[rows.method != "served"]
    assert set(served.k) == {-1} and set(served.metric) == {"recall@20", *[f"recall@20_{kind}_{part}" for part in
                                                                          COMPONENTS for kind in ("without",
                                                                                                  "change_without")]}
    got = served.set_index("metric")["value"]
    assert got["recall@20"] == summary.served["backtest_no_floor"]["recall@20"]
    for part in COMPONENTS:
        assert got[f"recall@20_change_without_{part}"] == pytest.approx(got[f"recall@20_without_{part}"]
                                                                        / got["recall@20"] - 1)
    assert set(rows.k) == {0, 1, 3}
    assert set(rows.method) == {"model", "random", "popular", "content_knn", "attribute_profile", "als", "oracle",
                                "tower"}
    metrics = {"recall@5", "ndcg@5", "hit_rate@5", "mrr@5", "coverage@5", "mean_popularity@5", "users",
               "scorable_items"}
    intervals = {"recall@5_diff_low", "recall@5_diff_high", "ndcg@5_diff_low", "ndcg@5_diff_high"}
    for (k, method), group in rows.groupby(["k", "method"]):
        if (k, method) == (0, "als"):  # ALS cannot score an item nobody interacted with
            assert list(zip(group.metric, group.value)) == [("scorable_items", 0.0)]
        else:  # every other method also has the interval of the model minus it
            assert set(group.metric) == (metrics if method == "model" else metrics | intervals), (k, method)
    value = rows.set_index(["k", "method", "metric"])["value"]
    for (k, method, metric), low in value.items():
        if metric.endswith("_diff_low"):
            name = metric[:-len("_diff_low")]
            difference = value[(k, "model", name)] - value[(k, method, name)]
            assert low <= difference + 1e-12 and difference <= value[(k, method, f"{name}_diff_high")] + 1e-12
    assert value[(1, "als", "scorable_items")] == 1.0
    for k in (0, 1, 3):
        for method in ("model", "random", "popular", "content_knn", "attribute_profile", "oracle", "tower"):
            assert 0.0 <= value[(k, method, "recall@5")] <= 1.0
        # the same test users at every k, and the ground truth ranks far better than chance
        assert value[(k, "model", "users")] == value[(0, "random", "users")] == summary.n_users > 0
        # (about 10 items are evaluated on this small shop: random already finds half of them in a top 5)
        assert value[(k, "oracle", "recall@5")] > 1.4 * value[(k, "random", "recall@5")]
    # popular knows nothing at k = 0: its order is the tie-break, a ranking unrelated to the users
    assert value[(0, "popular", "coverage@5")] == pytest.approx(5 / summary.n_items)
    # the production model's input and embeddings were not touched; the evaluation's own input exists
    assert before == after
    assert io.delta_exists(spark, io.table_path(cfg.paths.warehouse, EVALUATION_TRAINING_EXAMPLES))


def test_the_backtest_serves_the_cutoff_days_lists_with_the_scoring_code(spark, evaluated):
    cfg, summary, _, _ = evaluated
    rows = io.read_table(spark, cfg.paths.warehouse, LIST_METRICS).where("run_id = 'eval-1'").toPandas()
    assert set(rows.source) == {"backtest", "backtest_no_floor"}
    assert set(rows.run_date.astype(str)) == {"2026-10-16"}  # the day that ends at the 2026-10-17 cutoff
    figures = rows.pivot_table(index="metric", columns="source", values="value")
    for source in ("backtest", "backtest_no_floor"):
        assert 0.0 <= figures.at["recall@20", source] <= 1.0 and figures.at["test_users", source] > 0
        assert figures.at["lists", source] == figures.at["lists", "backtest"]  # the same users either way
    # the floor shows more of the candidates
    assert figures.at["candidate_coverage", "backtest"] >= figures.at["candidate_coverage", "backtest_no_floor"]
    assert "floor_reached" in figures.index and summary.served["backtest"]["recall@20"] == figures.at[
        "recall@20", "backtest"]
    assert "served lists (backtest): recall@10 " in "\n".join(summary.lines())
    # the ablation: every part in order, each lists served again with the blend refitted without it
    line = [x for x in summary.lines() if "ablation (served Recall@20 change without each part): " in x]
    pct = r"(0\.0|[-+]\d+\.\d)%"
    assert len(line) == 1 and re.search(rf"tower {pct}, text {pct}, attributes {pct}, prior {pct}, pace {pct} ", line[0])


def test_the_model_ranks_better_than_chance(spark, evaluated):
    # a sanity check only: 12 items and 74 test users here (the demo shop's figures: make run's own evaluation)
    _, summary, _, _ = evaluated
    recall = summary.rows[summary.rows.metric == "recall@5"].pivot(index="k", columns="method", values="value")
    assert recall["model"].mean() > recall["random"].mean(), recall


def test_report_summary_lines_and_mlflow(spark, evaluated):
    cfg, summary, _, _ = evaluated
    text = Path(summary.report["summary"]).read_text()
    assert ("Model beats random, popular, content_knn, attribute_profile, als on Recall@5 and NDCG@5 at every k:"
            in text)
    assert "Model / oracle on Recall@5: k=0:" in text
    assert "Oracle (the shop's true affinity) beats random, popular, content_knn, attribute_profile, als at every k:" \
        in text
    for name in ("recall", "ndcg", "coverage"):
        assert Path(summary.report[name]).read_bytes()[:4] == b"\x89PNG"
    lines = "\n".join(summary.lines())
    assert "model beats random, popular, content_knn, attribute_profile, als at every k:" in lines
    assert "oracle (true affinity) beats them at every k: " in lines
    assert "report: " in lines and "score blend: k>=0: " in lines
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    run = mlflow.get_run(summary.mlflow_run_id)
    assert run.data.tags["model_version"] == summary.model_version
    model_recall = summary.rows.query("method == 'model' and metric == 'recall@5' and k == 3")["value"].iloc[0]
    history = mlflow.tracking.MlflowClient().get_metric_history(summary.mlflow_run_id, "model.recall_at_5")
    assert [m.value for m in history if m.step == 3] == [pytest.approx(model_recall)]
    # parameters of the evaluation and of the model, the report and the evaluated model as artifacts
    assert run.data.params["evaluate.top_k"] == "5" and run.data.params["train.text_weight"] == "0.0"
    client = mlflow.tracking.MlflowClient()
    logged = {a.path for a in client.list_artifacts(summary.mlflow_run_id, "model")}
    assert {"model/model.json", "model/weights"} <= logged
    assert "report/summary.md" in {a.path for a in client.list_artifacts(summary.mlflow_run_id, "report")}


def test_a_rerun_replaces_its_own_rows_only(spark, shop, evaluated):
    cfg, first, _, _ = evaluated
    again = evaluate_config(shop, "run.run_id=eval-1", "evaluate.methods=[model,random]", "evaluate.backtest=false")
    other = evaluate_config(shop, "run.run_id=eval-2", "evaluate.methods=[model]", "mlflow.tracking_uri=''",
                            "evaluate.backtest=false")
    run_evaluate_job(spark, again)  # the model version is complete: nothing is retrained
    run_evaluate_job(spark, other)
    rows = io.read_table(spark, cfg.paths.warehouse, EVALUATION_METRICS)
    methods = {r.run_id: sorted(r.methods) for r in rows.where("run_id like 'eval-%'").groupBy("run_id").agg(
        F.collect_set("method").alias("methods")).collect()}
    assert methods == {"eval-1": ["model", "random"], "eval-2": ["model"]}
    # the same model version (not retrained) gives the first run's figures
    model = rows.where("run_id = 'eval-2' and method = 'model'").toPandas().astype({"k": "int64"})
    model = model.set_index(["k", "metric"])["value"]
    expected = first.rows.query("method == 'model'").astype({"k": "int64"}).set_index(["k", "metric"])["value"]
    pd.testing.assert_series_equal(model.sort_index(), expected.sort_index(), check_names=False)


def test_entry_point_errors_in_one_line(shop, capsys):
    root, _ = shop
    code = evaluate_entry.main(["--input", str(root / "input"), "--warehouse", str(root / "warehouse"),
                                "--set", "evaluate.ks=[0,0,3]"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: evaluate.ks must be distinct whole numbers >= 0, got [0, 0, 3]")
    # a shop that cannot be evaluated (no new item with more than 500 users) is reported, exit 0 ...
    code = evaluate_entry.main(["--input", str(root / "input"), "--warehouse", str(root / "warehouse"),
                                "--set", "evaluate.cutoff=2026-10-17T00:00:00Z evaluate.ks=[0,500]"])
    assert code == 0
    out = capsys.readouterr().out
    assert "nothing evaluated: no new item has more than 500 users in the test window [2026-10-17 00:00, " in out
    # ... unless evaluate.required says it must be evaluated
    code = evaluate_entry.main(["--input", str(root / "input"), "--warehouse", str(root / "warehouse"),
                                "--set", "evaluate.cutoff=2026-10-17T00:00:00Z evaluate.ks=[0,500] "
                                         "evaluate.required=true"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no new item has more than 500 users in the test window [2026-10-17 00:00, "
                          "2026-10-31 00:00)"), err


# --------------------------------------------------------------------------------------------
# The evaluation gate, the champion it publishes and the registered model
# --------------------------------------------------------------------------------------------

REGISTERED = "rec_test_two_tower"
GATED = ["mlflow.registered_model=" + REGISTERED, "evaluate.methods=[model,random,oracle]", "evaluate.backtest=false",
         "score.serve=champion", "score.run_date=2026-10-16"]


def served(spark, warehouse):
    """The 2026-10-16 lists as (user, rank, item, model version) and the table's Delta version."""
    rows = io.read_table(spark, warehouse, RECOMMENDATIONS).where("run_date = '2026-10-16'")
    return ({tuple(r) for r in rows.select("user_id", "rank", "item_id", "model_version").collect()},
            io.table_version(spark, warehouse, RECOMMENDATIONS))


def test_the_gate_publishes_a_winner_and_keeps_serving_it_when_a_model_loses(spark, shop, evaluated, capsys):
    cfg, first, _, _ = evaluated
    warehouse = cfg.paths.warehouse
    passing = evaluate_config(shop, "run.run_id=gate-1", "evaluate.gate=[random]", *GATED)
    # the production model: the evaluation's own version (complete: its tables written, nothing retrained)
    production = run_train_job(spark, passing.train_config(passing.evaluate.cutoff))
    assert not production.trained and production.model_version == first.model_version

    summary = run_evaluate_job(spark, passing)
    assert summary.gate.decision.passed and summary.failure is None, summary.gate
    assert summary.gate.champion == production.model_version and summary.gate.registered_version == "1"
    gate = io.read_table(spark, warehouse, MODEL_GATE).toPandas().set_index("run_id")
    assert gate.at["gate-1", "passed"] and gate.at["gate-1", "model_version"] == production.model_version
    assert gate.at["gate-1", "item_embeddings_version"] == io.table_version(spark, warehouse, ITEM_EMBEDDINGS)

    # the registered model, loaded back by its alias, gives the served rows of the items it places from the
    # model alone: with an id embedding, or with nobody yet (the shipped towers are content only: the latter)
    mlflow.set_tracking_uri(passing.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED}@champion")
    table = (io.read_table(spark, warehouse, ITEM_EMBEDDINGS).where("source IN ('trained', 'content')")
             .orderBy("item_id").toPandas())
    sample = table.head(4)
    assert len(sample) == 4
    got = model.predict(sample[["item_id"]])
    np.testing.assert_allclose(np.stack(got["embedding"]), np.stack(sample["embedding"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["bias"], sample["bias"], rtol=1e-6, atol=1e-9)

    run_score_job(spark, rc.load_config(rc.ScoreJobConfig, REPO / "conf/local.yaml", shop[1] + GATED))
    lists, _ = served(spark, warehouse)
    assert {version for *_, version in lists} == {production.model_version}

    # a new model lands in the embedding tables and the gate makes it lose (it must beat the ground truth)
    for spec in (USER_EMBEDDINGS, ITEM_EMBEDDINGS):
        loser = io.read_table(spark, warehouse, spec).withColumn("model_version", F.lit("20261101-loser"))
        io.overwrite_table(loser.toPandas().pipe(spark.createDataFrame, schema=spec.schema), spec, warehouse)
    argv = [a for s in evaluate_settings(shop, "run.run_id=gate-2", "evaluate.gate=[oracle]", *GATED)
            for a in ("--set", s)]
    capsys.readouterr()
    assert evaluate_entry.main(argv) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: evaluation gate: model 20261101-loser is not published: the model does not beat "
                          "oracle at every k: recall@5 at k=0: oracle "), err
    assert err.endswith(f"; the lists stay with the champion {production.model_version}"), err
    client = mlflow.tracking.MlflowClient()
    assert str(client.get_model_version_by_alias(REGISTERED, "champion").version) == "1"
    gate = io.read_table(spark, warehouse, MODEL_GATE).toPandas().set_index("run_id")
    assert not gate.at["gate-2", "passed"] and gate.at["gate-2", "model_version"] == "20261101-loser"

    # scoring (the bundle runs it after a failed gate too) keeps serving the champion's lists
    before, version_before = served(spark, warehouse)
    run_score_job(spark, rc.load_config(rc.ScoreJobConfig, REPO / "conf/local.yaml", shop[1] + GATED))
    after, version_after = served(spark, warehouse)
    assert after == before and version_after == version_before + 1
