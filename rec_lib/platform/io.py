"""Storage: files through Hadoop's FileSystem, and reading/writing Delta tables (the exports are read by
rec_lib.platform.exports on top of it); with it, the only modules that touch storage.

Paths go through Hadoop's FileSystem API, so the same code reads a local folder, `dbfs:/`, `s3a://`
or `abfss://` locations.
"""
from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from functools import reduce
from typing import Callable, Dict, List, Mapping, Optional, Sequence, TypeVar

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rec_lib.core.errors import ConfigError, InputError, RecError
from rec_lib.core.schema import TableSpec
from rec_lib.platform.columns import quoted
from rec_lib.platform.filesystem import join_path, path_exists, qualified_path

log = logging.getLogger(__name__)
T_ = TypeVar("T_")

REPLACE_WHERE_CHECK = "spark.databricks.delta.replaceWhere.constraintCheck.enabled"


# --------------------------------------------------------------------------------------------
# Delta tables
# --------------------------------------------------------------------------------------------


def table_path(warehouse: str, spec: TableSpec) -> str:
    return join_path(warehouse, spec.name)


def delta_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return path_exists(spark, path) and DeltaTable.isDeltaTable(spark, path)


def _load(spark: SparkSession, path: str, version: Optional[int] = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    return reader.load(path)


def read_table_if_exists(spark: SparkSession, warehouse: str, spec: TableSpec) -> Optional[DataFrame]:
    """The table, or None where no run has created it yet (a first run)."""
    path = table_path(warehouse, spec)
    return _load(spark, path) if delta_exists(spark, path) else None


def read_table(spark: SparkSession, warehouse: str, spec: TableSpec) -> DataFrame:
    path = table_path(warehouse, spec)
    if not delta_exists(spark, path):
        raise InputError(f"Delta table {spec.name!r} not found at {path}; run the stage that builds it first")
    return _load(spark, path)


@dataclass(frozen=True)
class Snapshot:
    """The versions of a warehouse's tables that one job decided on at its start. Every read
    through it is `versionAsOf` that version, so a job sees one state of its inputs from start to
    end, whatever other jobs commit meanwhile (a table absent at the start stays absent)."""

    warehouse: str
    versions: Mapping[str, Optional[int]]  # table name -> Delta version (None: the table did not exist)
    ids: Mapping[str, str] = field(default_factory=dict)  # table name -> Delta table id (`with_ids`)

    @classmethod
    def take(cls, spark: SparkSession, warehouse: str, specs: Sequence[TableSpec], with_ids: bool = False) -> "Snapshot":
        if not with_ids:
            return cls(warehouse, {spec.name: table_version(spark, warehouse, spec) for spec in specs}, {})
        identities = {spec.name: table_identity(spark, warehouse, spec) for spec in specs}
        return cls(warehouse, {n: None if i is None else i[1] for n, i in identities.items()},
                   {n: i[0] for n, i in identities.items() if i is not None})

    def identity(self) -> Dict[str, Optional[List]]:
        """table name -> [Delta table id, version] (None where absent): what a model version hashes.
        The id is created with the table, so equal versions of two tables (two warehouses, or a
        table dropped and re-created) differ."""
        return {n: None if v is None else [self.ids.get(n), v] for n, v in self.versions.items()}

    def _version(self, spec: TableSpec) -> Optional[int]:
        if spec.name not in self.versions:
            raise KeyError(f"table {spec.name!r} is not part of this job's snapshot {sorted(self.versions)}")
        return self.versions[spec.name]

    def read_if_exists(self, spark: SparkSession, spec: TableSpec) -> Optional[DataFrame]:
        version = self._version(spec)
        return None if version is None else _load(spark, table_path(self.warehouse, spec), version)

    def read(self, spark: SparkSession, spec: TableSpec) -> DataFrame:
        df = self.read_if_exists(spark, spec)
        if df is None:
            raise InputError(f"Delta table {spec.name!r} not found at {table_path(self.warehouse, spec)}; "
                             "run the stage that builds it first")
        return df


def conform(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Select the table's columns in order, cast to its declared types."""
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise ValueError(f"rows for table {spec.name!r} lack column(s) {missing}")
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in spec.schema.fields])


def add_missing_columns(spark: SparkSession, path: str, spec: TableSpec) -> List[str]:
    """Columns the table's spec declares and a stored table (written by an earlier release) lacks
    are added, null in old rows (one ALTER TABLE commit); returns their names. Columns are only ever
    added: published names and types do not change."""
    if not delta_exists(spark, path):
        return []
    stored = set(spark.read.format("delta").load(path).columns)
    missing = [f for f in spec.schema.fields if f.name not in stored]
    if missing:
        columns = ", ".join(f"{quoted(f.name)} {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.{quoted(qualified_path(spark, path))} ADD COLUMNS ({columns})")
        log.info("table %s: added column(s) %s", spec.name, [f.name for f in missing])
    return [f.name for f in missing]


# --------------------------------------------------------------------------------------------
# Concurrent writers: Delta arbitrates (optimistic concurrency); a write that lost is retried
# --------------------------------------------------------------------------------------------

COMMIT_ATTEMPTS = 4  # attempts of one write that meets other writers' commits
RETRY_WAIT_S = 2.0  # waits 2, 4, 8 s (each up to 50% longer, at random) between attempts
# Delta's commit-conflict exceptions (io.delta.exceptions.*; delta.exceptions in Python)
CONFLICTS = ("ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
             "ConcurrentWriteException", "ConcurrentTransactionException", "MetadataChangedException",
             "ProtocolChangedException", "DeltaConcurrentModificationException")


S3_SCHEMES = ("s3", "s3a", "s3n")
S3_LOG_STORE = "io.delta.storage.S3DynamoDBLogStore"


def check_commit_safety(spark: SparkSession, warehouse: str, single_writer: bool) -> None:
    """Refuse an S3 warehouse where Delta cannot arbitrate two writers: S3 has no atomic
    put-if-absent, so with open-source Delta's default S3 log store two drivers can both commit a
    table's next version and one commit is silently lost. Safe: Databricks (its own commit service),
    the S3DynamoDBLogStore for the scheme (conf/cluster.yaml), or `paths.single_writer` where the
    scheduler guarantees one run at a time."""
    scheme = warehouse.split("://", 1)[0].lower() if "://" in warehouse else ""
    if scheme not in S3_SCHEMES or os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return
    store = spark.conf.get(f"spark.delta.logStore.{scheme}.impl", None) or spark.conf.get("spark.delta.logStore.class", None)
    if store == S3_LOG_STORE:
        return
    if single_writer:
        log.warning("warehouse %s on S3 without %s: safe only while one run at a time writes it (paths.single_writer)",
                    warehouse, S3_LOG_STORE)
        return
    raise ConfigError(
        f"warehouse {warehouse}: on S3, Delta's default log store cannot stop two runs from committing the same "
        f"table version (one commit would be lost without an error); set spark.conf "
        f"spark.delta.logStore.{scheme}.impl={S3_LOG_STORE} with its DynamoDB table (conf/cluster.yaml, and the "
        f"io.delta:delta-storage-s3-dynamodb package), or paths.single_writer=true if one run at a time is guaranteed")


class ConcurrentWriteError(RecError):
    """Other writers committed to a table this job wrote on every attempt. Nothing of this write is
    in the table; running the job again once the other run ended completes it."""

    exit_code = 75  # EX_TEMPFAIL: a scheduler may retry


def is_conflict(exc: BaseException) -> bool:
    """Whether `exc` is Delta's report that another writer's commit conflicts with this one."""
    text = str(exc)[:4000]
    return type(exc).__name__ in CONFLICTS or any(f"io.delta.exceptions.{name}" in text for name in CONFLICTS)


def describe_last_commit(spark: SparkSession, path: str) -> str:
    """'version N at <time> (<operation>, <userMetadata>)' of a table's newest commit, or ''."""
    from delta.tables import DeltaTable

    try:
        c = DeltaTable.forPath(spark, path).history(1).first()
    except Exception:  # the table may be unreadable for the same reason; the error is still useful
        return ""
    tag = f", {c['userMetadata']}" if c["userMetadata"] else ""
    return f"version {c['version']} at {c['timestamp']} ({c['operation']}{tag})"


def with_retries(spark: SparkSession, spec: TableSpec, path: str, write: Callable[[], T_],
                 attempts: Optional[int] = None, wait_s: Optional[float] = None) -> T_:
    """`write()`, again after a growing wait each time Delta reports a conflicting commit; after
    `attempts` (COMMIT_ATTEMPTS) conflicts a ConcurrentWriteError naming the table and the other
    writer's commit."""
    import delta.exceptions  # noqa: F401  (maps Delta's Java conflict exceptions to Python classes)

    attempts = COMMIT_ATTEMPTS if attempts is None else attempts
    wait_s = RETRY_WAIT_S if wait_s is None else wait_s
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            other = describe_last_commit(spark, path)
            if attempt == attempts:
                raise ConcurrentWriteError(
                    f"table {spec.name}: another writer committed to it during each of {attempts} attempts "
                    f"(its newest commit: {other or 'unknown'}; {type(exc).__name__}); nothing of this write "
                    f"was committed: run the job again once the other run has ended") from exc
            pause = wait_s * 2 ** (attempt - 1) * (1 + random.random() / 2)
            log.warning("table %s: conflicting commit by another writer (%s: %s); attempt %d of %d in %.1f s",
                        spec.name, type(exc).__name__, other, attempt + 1, attempts, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


def _create(df: DataFrame, spec: TableSpec, path: str, mode: str, user_metadata: Optional[str] = None,
            replace_where: Optional[str] = None) -> None:
    if spec.partition_by and replace_where is None:
        # one file per partition value rather than one per (task, value): far fewer small files
        df = df.repartition(*spec.partition_by)
    writer = df.write.format("delta").mode(mode)
    if mode == "overwrite" and replace_where is None:
        writer = writer.option("overwriteSchema", "true")  # a derived table is replaced whole, schema included
    if replace_where is not None:
        add_missing_columns(df.sparkSession, path, spec)
        writer = writer.option("replaceWhere", replace_where)
    if user_metadata is not None:
        writer = writer.option("userMetadata", user_metadata)
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    with_retries(df.sparkSession, spec, path, lambda: writer.save(path))


def delete_partitions(spark: SparkSession, spec: TableSpec, warehouse: str, column: str, values: Sequence,
                      user_metadata: Optional[str] = None) -> int:
    """Delete the rows whose partition `column` holds one of `values`, in one Delta commit (their
    files stay for time travel until VACUUM); returns the rows deleted."""
    from delta.tables import DeltaTable

    path = table_path(warehouse, spec)
    if not values or not delta_exists(spark, path):
        return 0
    condition = F.col(column).isin([F.lit(v) for v in values])
    n_rows = _load(spark, path).where(condition).count()
    delete = lambda: with_retries(spark, spec, path, lambda: DeltaTable.forPath(spark, path).delete(condition))  # noqa: E731
    if user_metadata is None:
        delete()
        return n_rows
    key = "spark.databricks.delta.commitInfo.userMetadata"  # what a DeltaTable operation records as userMetadata
    previous = spark.conf.get(key, None)
    spark.conf.set(key, user_metadata)
    try:
        delete()
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
    return n_rows


def overwrite_table(df: DataFrame, spec: TableSpec, warehouse: str, user_metadata: Optional[str] = None) -> None:
    """Replace a derived table in one Delta commit (readers see the old or the new version)."""
    _create(conform(df, spec), spec, table_path(warehouse, spec), "overwrite", user_metadata)


def sql_literal(value: str) -> str:
    """A SQL string literal of `value` (quotes and backslashes escaped), for a replaceWhere condition."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def replace_partition(df: DataFrame, spec: TableSpec, warehouse: str, key_column: str, value: str,
                      user_metadata: Optional[str] = None, rows_match: bool = False,
                      also: Optional[Dict[str, str]] = None) -> None:
    """Replace the rows where `key_column = value` (and each `also` column = its value) in one Delta
    commit (the table is created if absent); other rows are untouched. Every row of `df` must
    match the condition: Delta checks each row, unless `rows_match` says the rows carry the
    values by construction (literal columns), which saves a pass over every row of a large write."""
    spark = df.sparkSession
    previous = spark.conf.get(REPLACE_WHERE_CHECK, "true")
    if rows_match:
        spark.conf.set(REPLACE_WHERE_CHECK, "false")
    condition = " AND ".join(f"{quoted(c)} = {sql_literal(v)}" for c, v in {key_column: value, **(also or {})}.items())
    try:
        _create(conform(df, spec), spec, table_path(warehouse, spec), "overwrite", user_metadata,
                replace_where=condition)
    finally:
        spark.conf.set(REPLACE_WHERE_CHECK, previous)


def _last_commit(spark: SparkSession, warehouse: str, spec: TableSpec):
    from delta.tables import DeltaTable

    path = table_path(warehouse, spec)
    return DeltaTable.forPath(spark, path).history(1).first() if delta_exists(spark, path) else None


def table_version(spark: SparkSession, warehouse: str, spec: TableSpec) -> Optional[int]:
    commit = _last_commit(spark, warehouse, spec)
    return None if commit is None else int(commit["version"])


def table_identity(spark: SparkSession, warehouse: str, spec: TableSpec) -> Optional[List]:
    """[Delta table id, version] of a table (None where absent)."""
    from delta.tables import DeltaTable

    path = table_path(warehouse, spec)
    if not delta_exists(spark, path):
        return None
    table = DeltaTable.forPath(spark, path)
    return [str(table.detail().first()["id"]), int(table.history(1).first()["version"])]


def read_written(spark: SparkSession, warehouse: str, spec: TableSpec, user_metadata: str) -> DataFrame:
    """The table as of the newest commit tagged `user_metadata` (what one writer wrote, whatever
    another wrote since: a later overwrite by a concurrent run does not change what is read)."""
    from delta.tables import DeltaTable

    path = table_path(warehouse, spec)
    version = (DeltaTable.forPath(spark, path).history().where(F.col("userMetadata") == user_metadata)
               .agg(F.max("version")).first()[0])
    if version is None:
        raise InputError(f"Delta table {spec.name!r} at {path} has no commit tagged {user_metadata!r}")
    return _load(spark, path, int(version))


def last_user_metadata(spark: SparkSession, warehouse: str, spec: TableSpec) -> Optional[str]:
    """The userMetadata of the table's newest commit (what built it), or None."""
    commit = _last_commit(spark, warehouse, spec)
    return None if commit is None else commit["userMetadata"]


def _comparable(spec: TableSpec, name: str, alias: str) -> Column:
    # maps cannot be compared in a join condition; their JSON text can (keys are kept sorted)
    data_type = spec.schema[name].dataType
    col = F.col(f"{alias}.{quoted(name)}")
    return F.to_json(col) if isinstance(data_type, T.MapType) else col


def merge_condition(keys: Sequence[str], partitions: Mapping[str, Sequence]) -> Column:
    """The MERGE's join on the keys (null-safe), and on the target side the partition values the
    rows touch as literals: Delta then reads, and checks for conflicts, only those partitions, so
    merges into different partitions by concurrent runs both commit."""
    condition = reduce(lambda a, b: a & b, [F.col(f"t.{quoted(k)}").eqNullSafe(F.col(f"s.{quoted(k)}")) for k in keys])
    for name, values in partitions.items():
        condition = condition & F.col(f"t.{quoted(name)}").isin(list(values))
    return condition


def merge_table(
    spark: SparkSession,
    df: DataFrame,
    spec: TableSpec,
    warehouse: str,
    compare: Optional[Sequence[str]] = None,
) -> int:
    """Upsert rows by the table's keys (MERGE); returns how many rows were inserted or updated.

    Rows that are already stored as they are (same key and, if `compare` is given, the same values in
    those columns) are dropped first, with one anti-join against only the partitions the rows touch,
    so loading rows already loaded makes no commit at all. The rest are MERGEd: a stored row with the
    same key is updated when `compare` is given (insert-only otherwise), a new key is inserted. The
    MERGE condition names the touched partitions' values (`merge_condition`), so concurrent merges
    into different partitions do not conflict; a conflicting commit is retried (`with_retries`). A
    missing table is created with the rows.
    """
    from delta.tables import DeltaTable

    rows = conform(df, spec)
    path = table_path(warehouse, spec)
    if not delta_exists(spark, path):
        rows = rows.persist()
        try:
            _create(rows, spec, path, "errorifexists")
            return rows.count()
        except Exception:
            if not delta_exists(spark, path):
                raise
            log.warning("table %s was created by another writer meanwhile: merging into it", spec.name)
        finally:
            rows.unpersist()
    add_missing_columns(spark, path, spec)
    stored = spark.read.format("delta").load(path)
    touched: Dict[str, list] = {}
    for part in spec.partition_by:
        touched[part] = [r[0] for r in rows.select(part).distinct().collect()]
        stored = stored.where(F.col(part).isin(touched[part]))
    same = list(spec.keys) + [c for c in (compare or ()) if c not in spec.keys]
    identical = reduce(lambda a, b: a & b, [_comparable(spec, c, "s").eqNullSafe(_comparable(spec, c, "t")) for c in same])
    changed = rows.alias("s").join(stored.alias("t"), identical, "left_anti").persist()
    try:
        n_changed = changed.count()
        if n_changed == 0:
            return 0
        keys = [k for k in spec.keys if k not in spec.partition_by]
        condition = merge_condition(list(spec.partition_by) + keys, touched)

        def execute() -> None:
            merge = DeltaTable.forPath(spark, path).alias("t").merge(changed.alias("s"), condition)
            if compare:
                merge = merge.whenMatchedUpdateAll()
            merge.whenNotMatchedInsertAll().execute()

        with_retries(spark, spec, path, execute)
        return n_changed
    finally:
        changed.unpersist()
