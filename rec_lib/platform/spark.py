"""The one Spark session factory used by every job and every test.

- Under spark-submit or on Databricks a session (or its launcher's settings) already exists: it is
  taken as it is, and the master is never overridden.
- Locally a `local[*]` session is built with the Delta extension and catalog, and the Delta jars
  that set-up resolved once into `spark.jars_dir` (no Maven round trip at run time).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rec_lib.core.config import SparkSection
from rec_lib.core.errors import EnvironmentSetupError

log = logging.getLogger(__name__)

DELTA_VERSION = "3.2.1"
SCALA_BINARY = "2.12"
DELTA_PACKAGES = (
    f"io.delta:delta-spark_{SCALA_BINARY}:{DELTA_VERSION}",
    f"io.delta:delta-storage:{DELTA_VERSION}",
    "org.antlr:antlr4-runtime:4.9.3",
)
DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Timestamps without a zone in the exports are read as UTC, wherever the job runs.
# Session settings every job relies on, also applied to a session that already exists: UTC
# timestamps, and Arrow for pandas <-> Spark (numpy arrays become array columns directly).
SESSION_SQL_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.execution.arrow.pyspark.enabled": "true"}


# Delta for small local tables: a snapshot in 2 tasks (Delta's default of 50 is for a cluster's logs).
# Set on the local session only; under spark-submit the launcher's settings are the user's.
SMALL_TABLE_CONF = {"spark.databricks.delta.snapshotPartitions": "2"}


def delta_jar_names() -> List[str]:
    """File names that set-up stores in the jars folder (Maven's artifact-version.jar)."""
    return [f"{p.split(':')[1]}-{p.split(':')[2]}.jar" for p in DELTA_PACKAGES]


def local_delta_jars(jars_dir: str) -> List[str]:
    folder = Path(jars_dir).expanduser().resolve()
    wanted = [folder / name for name in delta_jar_names()]
    missing = [p.name for p in wanted if not p.is_file()]
    if missing:
        raise EnvironmentSetupError(
            f"Delta jars {missing} are not in {folder}; run `make setup` once to resolve them "
            "(or set spark.jars_dir to a folder that holds them)"
        )
    return [str(p) for p in wanted]


LOG4J_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "log4j2.properties"


def _local_logging() -> dict:
    """Quiet local JVM logging (conf/log4j2.properties), where the file ships with the checkout."""
    if not LOG4J_CONFIG.is_file():
        return {}
    return {"spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}"}


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the Python driver with a gateway to its own JVM and settings.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(cfg: SparkSection) -> SparkSession:
    """Return the running session, or build a local one with Delta. See the module doc."""
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in SESSION_SQL_CONF.items():
            active.conf.set(key, value)
        return active
    builder = SparkSession.builder.appName(cfg.app_name)
    if _launched_by_spark_submit():
        # The launcher owns the master and the jars (--packages / the cluster's Delta).
        runtime = {"spark.sql.shuffle.partitions": str(cfg.shuffle_partitions)}
        for key, value in {**DELTA_SESSION_CONF, **SESSION_SQL_CONF, **runtime, **cfg.conf}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        log.info("Spark %s from spark-submit, master %s (config's spark.master not used)",
                 spark.version, spark.sparkContext.master)
        return spark

    # Python workers run the driver's interpreter (the project's environment), not whatever
    # `python3` is first on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {
        **DELTA_SESSION_CONF,
        **_local_logging(),
        "spark.jars": ",".join(local_delta_jars(cfg.jars_dir)),
        "spark.driver.memory": cfg.driver_memory,
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        **SESSION_SQL_CONF,
        **SMALL_TABLE_CONF,
        "spark.ui.showConsoleProgress": "false",
        **cfg.conf,
    }
    builder = builder.master(cfg.master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("local Spark %s on %s with Delta %s", spark.version, cfg.master, DELTA_VERSION)
    return spark


def index_frame(spark: SparkSession, ids: np.ndarray, id_column: str, index_column: str) -> DataFrame:
    """A small frame (id_column string, index_column int): row i of `ids` -> i. What a driver-side
    array's order looks like to a join (broadcast it)."""
    return spark.createDataFrame(pd.DataFrame({id_column: np.asarray(ids, dtype=str),
                                               index_column: np.arange(len(ids), dtype=np.int32)}),
                                 f"{id_column} string, {index_column} int")


def sorted_index(ids: DataFrame, id_column: str, index_column: str) -> DataFrame:
    """(id_column string, index_column int): each distinct id of `ids` -> its position in sorted
    order, numbered by Spark (a range-partitioned sort and RDD.zipWithIndex: no window that puts
    every row in one task, no list on the driver). Ids must number fewer than 2^31."""
    ordered = ids.select(F.col(id_column).cast("string")).distinct().orderBy(id_column)
    return (ordered.rdd.zipWithIndex().map(lambda pair: (pair[0][0], int(pair[1])))
            .toDF(f"{id_column} string, {index_column} int"))
