"""Fault injection: a real job process is killed (SIGKILL, with its JVM) at a point inside its writes
(rec_lib.core.faults), then run again; the tables must equal those of an uninterrupted run, compared
row by row. And two scoring runs of one run date started together."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from pyspark.sql import functions as F

from rec_lib.core import config as rc
from rec_lib.core.schema import (
    FEATURE_RUNS,
    INTERACTIONS,
    ITEM_STATS,
    ITEM_TEXT_EMBEDDINGS,
    ITEMS,
    LIST_METRICS,
    QUARANTINE,
    RECOMMENDATIONS,
    USER_FEATURES,
    USERS,
)
from rec_lib.features.job import run_feature_job
from rec_lib.platform import io
from rec_lib.scoring.job import run_score_job
from rec_lib.text.job import chunk_of, run_embed_job
from tests.helpers import (
    HANG_GUARD_S,
    N_ITEMS,
    N_USERS,
    REPO,
    SCORE_EVENTS,
    SCORE_ITEMS,
    SCORE_USERS,
    hand_made_embeddings,
    table_snapshot,
    write_inputs,
)

FEATURE_TABLES = (ITEMS, USERS, INTERACTIONS, ITEM_STATS, USER_FEATURES, QUARANTINE)
CONF = REPO / "conf" / "local.yaml"


def settings(input_dir, warehouse, *extra):
    return [f"paths.input={input_dir}", f"paths.warehouse={warehouse}", "run.now=2026-11-01T00:00:00Z",
            "run.run_id=test-run", "spark.master=local[2]", "spark.driver_memory=1g",
            "input.max_quarantine_share.items=1.0", "input.max_quarantine_share.users=1.0",
            "input.max_quarantine_share.events=1.0", *extra]


def job_args(module, sets):
    return [sys.executable, "-m", f"jobs.{module}", "--conf-file", str(CONF), "--set", " ".join(sets)]


def run_job(module, sets, kill_at=""):
    """The job as its own process (its own session, so a kill takes its JVM with it)."""
    env = {**os.environ, "REC_KILL_AT": kill_at}
    return subprocess.run(job_args(module, sets), cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S,
                          start_new_session=True)


def snapshots(spark, warehouse, specs):
    return {spec.name: table_snapshot(spark, io.table_path(str(warehouse), spec)) for spec in specs}


@pytest.fixture(scope="module")
def scoring_shop(spark, tmp_path_factory):
    """The scoring shop's exports and its feature tables (tests copy the warehouse)."""
    root = tmp_path_factory.mktemp("faults")
    (root / "input").mkdir()
    write_inputs(root / "input", items=SCORE_ITEMS, users=SCORE_USERS, events=SCORE_EVENTS)
    run_feature_job(spark, rc.load_config(rc.FeatureJobConfig, CONF, settings(root / "input", root / "base")))
    return root


def copy_warehouse(root, name, source="base"):
    shutil.copytree(root / source, root / name)
    return root / name


def test_a_feature_job_killed_between_its_merges_is_completed_by_the_next_run(spark, tmp_path):
    (tmp_path / "input").mkdir()
    write_inputs(tmp_path / "input")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_feature_job(spark, rc.load_config(rc.FeatureJobConfig, CONF, settings(tmp_path / "input", reference)))

    done = run_job("build_features", settings(tmp_path / "input", killed), kill_at="features.merged:users")
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    # items and users were merged, interactions were not; the ledger knows the run did not finish
    assert io.delta_exists(spark, io.table_path(str(killed), USERS))
    assert not io.delta_exists(spark, io.table_path(str(killed), INTERACTIONS))
    ledger = io.read_table(spark, str(killed), FEATURE_RUNS).select("run_id", "status").collect()
    assert [tuple(r) for r in ledger] == [("test-run", "started")]

    again = run_feature_job(spark, rc.load_config(rc.FeatureJobConfig, CONF, settings(tmp_path / "input", killed)))
    assert again.note.startswith("run test-run (started ") and again.note.endswith(
        "did not complete: the same exports are loaded again as run test-run")
    assert again.written["items"] == 0 and again.written["interactions"] > 0  # items were in before the kill
    assert snapshots(spark, killed, FEATURE_TABLES) == snapshots(spark, reference, FEATURE_TABLES)
    row = io.read_table(spark, str(killed), FEATURE_RUNS).collect()[0]
    # events: u1 view, u1 purchase, u2 view, u3 click (a repeat, I4, bad type/time/user, a broken line out)
    assert row["status"] == "complete" and row["accepted"] == {"items": 3, "users": 2, "events": 4}
    assert row["table_versions"]["interactions"] == io.table_version(spark, str(killed), INTERACTIONS)


def embedding_rows(spark, warehouse):
    return {r["item_id"]: r.asDict() for r in io.read_table(spark, str(warehouse), ITEM_TEXT_EMBEDDINGS).collect()}


def test_an_embedding_job_killed_after_its_first_chunk_keeps_it_and_encodes_only_the_rest(spark, scoring_shop):
    reference, killed = copy_warehouse(scoring_shop, "embed-ref"), copy_warehouse(scoring_shop, "embed-killed")
    embed = ["run.run_id=embed-1", "encoder.chunk_items=10", "encoder.batch_size=8"]
    full = run_embed_job(spark, rc.load_config(rc.EmbedJobConfig, CONF, settings("unused", reference, *embed)))
    assert full.n_encoded == N_ITEMS

    done = run_job("embed_items", settings("unused", killed, *embed), kill_at="embed.chunk_written#1")
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    # 30 items in 3 chunks by a hash of the id: the first chunk's items are in, and only they
    first_chunk = {r[0] for r in io.read_table(spark, str(killed), ITEMS)
                   .where(chunk_of(F.col("item_id"), 3) == 0).select("item_id").collect()}
    assert 0 < len(first_chunk) < N_ITEMS and set(embedding_rows(spark, killed)) == first_chunk

    again = run_embed_job(spark, rc.load_config(rc.EmbedJobConfig, CONF, settings("unused", killed, *embed)))
    assert again.n_encoded == N_ITEMS - len(first_chunk)
    got, want = embedding_rows(spark, killed), embedding_rows(spark, reference)
    assert sorted(got) == sorted(want)
    for item_id, row in want.items():  # batches differ, so vectors agree to float rounding
        np.testing.assert_allclose(got[item_id].pop("embedding"), row.pop("embedding"), atol=1e-5)
        assert got[item_id] == row


SCORE = ["run.now=2026-10-31T12:00:00Z", "run.run_id=score-test", "score.k=4", "score.show_users=0",
         "score.min_new_item_exposure=0", "score.order=score", "score.new_item_quota=0"]


@pytest.fixture(scope="module")
def embedded_shop(spark, scoring_shop):
    hand_made_embeddings(spark, str(copy_warehouse(scoring_shop, "embedded")))
    reference = copy_warehouse(scoring_shop, "score-ref", source="embedded")
    run_score_job(spark, rc.load_config(rc.ScoreJobConfig, CONF, settings("unused", reference, *SCORE)))
    return scoring_shop, snapshots(spark, reference, (RECOMMENDATIONS, LIST_METRICS))


def test_a_scoring_job_killed_after_its_lists_completes_them_on_the_next_run(spark, embedded_shop):
    root, reference = embedded_shop
    killed = copy_warehouse(root, "score-killed", source="embedded")
    done = run_job("score", settings("unused", killed, *SCORE), kill_at="score.lists_written")
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert io.delta_exists(spark, io.table_path(str(killed), RECOMMENDATIONS))
    assert not io.delta_exists(spark, io.table_path(str(killed), LIST_METRICS))  # its figures never came

    run_score_job(spark, rc.load_config(rc.ScoreJobConfig, CONF, settings("unused", killed, *SCORE)))
    assert snapshots(spark, killed, (RECOMMENDATIONS, LIST_METRICS)) == reference


def test_two_scoring_runs_of_one_run_date_started_together_leave_one_list_per_user(spark, embedded_shop):
    root, reference = embedded_shop
    warehouse = copy_warehouse(root, "score-twice", source="embedded")
    env = {**os.environ, "REC_KILL_AT": ""}
    runs = [subprocess.Popen(job_args("score", settings("unused", warehouse, *SCORE)), cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=HANG_GUARD_S) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert "scoring job run score-test: run_date 2026-10-31" in out
    rows = io.read_table(spark, str(warehouse), RECOMMENDATIONS).where(F.col("run_date") == "2026-10-31")
    ranks = rows.groupBy("user_id").agg(F.sort_array(F.collect_list("rank")).alias("ranks")).collect()
    assert len(ranks) == N_USERS + 1 and all(r["ranks"] == [1, 2, 3, 4] for r in ranks)  # 12 users and u99
    assert snapshots(spark, warehouse, (RECOMMENDATIONS, LIST_METRICS)) == reference
