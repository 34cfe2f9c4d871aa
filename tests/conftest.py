"""One Spark fixture for the whole suite: local[2], few shuffle partitions, UI off, Delta on."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="session")
def spark():
    from rec_lib.config import SparkSection
    from rec_lib.spark import get_spark

    warehouse = tempfile.mkdtemp(prefix="rec-test-spark-")
    section = SparkSection(
        master="local[2]", app_name="rec-tests", shuffle_partitions=2, driver_memory="2g",
        jars_dir=str(REPO / ".cache" / "jars"),
        conf={"spark.ui.enabled": "false", "spark.sql.warehouse.dir": warehouse,
              "spark.default.parallelism": "2", "spark.databricks.delta.snapshotPartitions": "1"},
    )
    session = get_spark(section)
    yield session
    session.stop()
    shutil.rmtree(warehouse, ignore_errors=True)


@pytest.fixture
def feature_config(tmp_path):
    """The feature job's config from conf/local.yaml, pointed at a temporary input and warehouse."""
    from rec_lib.config import FeatureJobConfig, load_config

    (tmp_path / "input").mkdir()
    return load_config(FeatureJobConfig, REPO / "conf" / "local.yaml", [
        f"paths.input={tmp_path / 'input'}", f"paths.warehouse={tmp_path / 'warehouse'}",
        "run.now=2026-11-01T00:00:00Z", "run.run_id=test-run",
        "spark.master=local[2]",
    ])
