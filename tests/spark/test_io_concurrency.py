"""Delta writes under concurrent writers (rec_lib.platform.io): pinned reads, MERGE conditions that
name their partitions, bounded retries and the error after them. The concurrent writer is real: a
MERGE held open inside its transaction (its source waits on a file) while another commits."""
import threading
import time
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rec_lib.core.errors import InputError
from rec_lib.core.schema import L, S, TableSpec
from rec_lib.platform import io
from tests.helpers import HANG_GUARD_S

PARTED = TableSpec(name="parted", fields=(("p", S, False), ("k", S, False), ("v", L, False)), keys=("k",),
                   partition_by=("p",))


def rows(spark, *triples):
    return spark.createDataFrame(list(triples), PARTED.schema)


def stored(spark, warehouse, version=None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(tuple(r) for r in reader.load(io.table_path(warehouse, PARTED)).collect())


def test_a_snapshot_reads_the_versions_it_found_at_its_start(spark, tmp_path):
    warehouse = str(tmp_path)
    io.merge_table(spark, rows(spark, ("a", "a1", 1)), PARTED, warehouse, compare=["v"])
    tables = io.Snapshot.take(spark, warehouse, [PARTED], with_ids=True)
    io.merge_table(spark, rows(spark, ("a", "a1", 2), ("b", "b1", 3)), PARTED, warehouse, compare=["v"])
    assert sorted(tuple(r) for r in tables.read(spark, PARTED).collect()) == [("a", "a1", 1)]
    assert stored(spark, warehouse) == [("a", "a1", 2), ("b", "b1", 3)]
    assert tables.versions == {"parted": 0}
    table_id = DeltaTable.forPath(spark, io.table_path(warehouse, PARTED)).detail().first()["id"]
    assert tables.identity() == {"parted": [table_id, 0]}
    absent = TableSpec(name="absent", fields=PARTED.fields, keys=("k",))
    empty = io.Snapshot.take(spark, warehouse, [absent])
    assert empty.read_if_exists(spark, absent) is None and empty.identity() == {"absent": None}
    with pytest.raises(KeyError, match="not part of this job's snapshot"):
        tables.read(spark, absent)


def test_a_writer_reads_back_its_own_commit_after_another_overwrote_the_table(spark, tmp_path):
    warehouse = str(tmp_path)
    io.overwrite_table(rows(spark, ("a", "a1", 1)), PARTED, warehouse, user_metadata="model-1")
    io.overwrite_table(rows(spark, ("b", "b1", 2)), PARTED, warehouse, user_metadata="model-2")  # another run
    assert sorted(tuple(r) for r in io.read_written(spark, warehouse, PARTED, "model-1").collect()) == [("a", "a1", 1)]
    io.overwrite_table(rows(spark, ("c", "c1", 3)), PARTED, warehouse, user_metadata="model-1")  # model-1 again
    assert sorted(tuple(r) for r in io.read_written(spark, warehouse, PARTED, "model-1").collect()) == [("c", "c1", 3)]
    with pytest.raises(InputError, match="has no commit tagged 'model-3'"):
        io.read_written(spark, warehouse, PARTED, "model-3")


def held_merge(spark, warehouse, tmp_path, condition, outcome):
    """A MERGE of ('a', 'a1', 10) whose source waits, inside the MERGE's transaction, until the
    file `go` exists; it signals `started` first. Its result (None or the exception) goes to `outcome`."""
    started, go = str(tmp_path / "started"), str(tmp_path / "go")
    guard_s = HANG_GUARD_S  # a plain int travels with the UDF to its Python worker

    @F.udf(T.LongType())
    def wait_then(v):
        import os
        import time as t

        open(started, "w").close()
        deadline = t.time() + guard_s
        while not os.path.exists(go) and t.time() < deadline:
            t.sleep(0.05)
        return v

    source = rows(spark, ("a", "a1", 10)).coalesce(1).withColumn("v", wait_then("v"))

    def run():
        try:
            (DeltaTable.forPath(spark, io.table_path(warehouse, PARTED)).alias("t").merge(source.alias("s"), condition)
             .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
            outcome.append(None)
        except Exception as exc:  # the conflict, where there is one
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + HANG_GUARD_S
    while not Path(started).exists():
        assert time.time() < deadline and thread.is_alive(), outcome
        time.sleep(0.05)
    return thread, Path(go)


@pytest.mark.parametrize("name_partitions", [True, False])
def test_merges_into_other_partitions_commit_together_only_when_the_condition_names_them(spark, tmp_path,
                                                                                       name_partitions):
    warehouse = str(tmp_path / "wh")
    io.merge_table(spark, rows(spark, ("a", "a1", 1), ("b", "b1", 2)), PARTED, warehouse, compare=["v"])
    keys_only = F.col("t.p").eqNullSafe(F.col("s.p")) & F.col("t.k").eqNullSafe(F.col("s.k"))
    condition = io.merge_condition(["p", "k"], {"p": ["a"]}) if name_partitions else keys_only
    outcome = []
    thread, go = held_merge(spark, warehouse, tmp_path, condition, outcome)
    # meanwhile another run merges into partition b, and commits first
    io.merge_table(spark, rows(spark, ("b", "b1", 20)), PARTED, warehouse, compare=["v"])
    go.touch()
    thread.join(180)
    if name_partitions:
        assert outcome == [None]
        assert stored(spark, warehouse) == [("a", "a1", 10), ("b", "b1", 20)]
    else:  # the held MERGE read the whole table, so partition b's commit conflicts with it
        assert len(outcome) == 1 and io.is_conflict(outcome[0]), outcome
        assert type(outcome[0]).__name__ == "ConcurrentAppendException"
        assert stored(spark, warehouse) == [("a", "a1", 1), ("b", "b1", 20)]


def test_a_write_that_keeps_meeting_other_commits_stops_with_one_line_naming_the_table(spark, tmp_path):
    warehouse = str(tmp_path)
    io.merge_table(spark, rows(spark, ("a", "a1", 1)), PARTED, warehouse, compare=["v"])
    path = io.table_path(warehouse, PARTED)
    calls = []

    class Conflict(Exception):
        pass

    Conflict.__name__ = "ConcurrentAppendException"

    def always_conflicts():
        calls.append(1)
        raise Conflict("Files were added to the root of the table by a concurrent update.")

    with pytest.raises(io.ConcurrentWriteError) as err:
        io.with_retries(spark, PARTED, path, always_conflicts, attempts=3, wait_s=0.01)
    assert len(calls) == 3
    message = str(err.value)
    assert message.startswith("table parted: another writer committed to it during each of 3 attempts (its newest "
                              "commit: version 0 at ")
    assert "(WRITE" in message and "ConcurrentAppendException); nothing of this write was committed" in message
    assert "\n" not in message and err.value.exit_code == 75

    def fails_otherwise():
        calls.append(1)
        raise ValueError("not a conflict")

    with pytest.raises(ValueError):  # anything else is not retried
        io.with_retries(spark, PARTED, path, fails_otherwise, attempts=3, wait_s=0.01)
    assert len(calls) == 4
    answers = iter([Conflict("x"), None])

    def conflicts_once():
        answer = next(answers)
        if answer is not None:
            raise answer
        return "written"

    assert io.with_retries(spark, PARTED, path, conflicts_once, attempts=2, wait_s=0.01) == "written"


def test_an_s3_warehouse_without_a_commit_arbiter_is_refused(spark, monkeypatch, caplog):
    from rec_lib.core.errors import ConfigError

    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    key = "spark.delta.logStore.s3a.impl"
    assert spark.conf.get(key, None) is None
    with pytest.raises(ConfigError, match=r"^warehouse s3a://shop/wh: on S3, Delta's default log store cannot stop two runs"):
        io.check_commit_safety(spark, "s3a://shop/wh", single_writer=False)
    io.check_commit_safety(spark, "/local/warehouse", single_writer=False)  # a local or HDFS path is atomic already
    io.check_commit_safety(spark, "hdfs://nn/warehouse", single_writer=False)
    io.check_commit_safety(spark, "s3a://shop/wh", single_writer=True)
    assert "safe only while one run at a time writes it" in caplog.text
    spark.conf.set(key, io.S3_LOG_STORE)
    try:
        io.check_commit_safety(spark, "s3a://shop/wh", single_writer=False)
    finally:
        spark.conf.unset(key)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    io.check_commit_safety(spark, "s3://shop/wh", single_writer=False)
