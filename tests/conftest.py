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


@pytest.fixture(scope="session")
def shop(spark, tmp_path_factory):
    """A small generated shop, its feature tables and real text embeddings, shared by the training
    and evaluation tests (each writes only its own tables and model folders): 400 users, 200 items
    (15% launched in the last 14 days), ~20k events. Returns (root folder, common settings)."""
    from rec_lib import config as rc
    from rec_lib.embed_job import run_embed_job
    from rec_lib.feature_job import run_feature_job
    from rec_lib.generator import generate_shop

    root = tmp_path_factory.mktemp("shop")
    common = [f"paths.input={root / 'input'}", f"paths.warehouse={root / 'warehouse'}",
              "run.now=2026-11-01T00:00:00Z", "run.run_id=test-run"]
    demo = rc.load_config(rc.GenerateJobConfig, REPO / "conf/local.yaml", common + [
        "demo.n_users=400", "demo.n_items=200", "demo.n_events=20000", "demo.chunk_users=200",
        "demo.dirty_fraction=0"])
    generate_shop(demo.demo, demo.paths.input)
    run_feature_job(spark, rc.load_config(rc.FeatureJobConfig, REPO / "conf/local.yaml", common))
    run_embed_job(spark, rc.load_config(rc.EmbedJobConfig, REPO / "conf/local.yaml", common))
    return root, common


@pytest.fixture
def small_warehouse(spark, feature_config):
    """The feature job's small example: interactions (u1, I1) view + purchase on 2026-10-01, (u2, I2)
    view at 2026-10-14T17:46:40 and (u3, I3) click on 2026-10-28."""
    from rec_lib.feature_job import run_feature_job
    from tests.test_feature_job import write_inputs

    write_inputs(Path(feature_config.paths.input))
    run_feature_job(spark, feature_config)
    return feature_config.paths.warehouse


@pytest.fixture(scope="session")
def built_package(tmp_path_factory):
    """`scripts/package.py`'s wheel and --py-files zip, built once into a temporary folder."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(REPO / "scripts" / "package.py"), "--out", str(out)], check=True,
                   capture_output=True, text=True, timeout=600)
    wheels, zips = sorted(out.glob("rec_lib-*.whl")), sorted(out.glob("rec_lib-*.zip"))
    assert len(wheels) == 1 and len(zips) == 1, sorted(out.iterdir())
    return {"wheel": wheels[0], "zip": zips[0]}
