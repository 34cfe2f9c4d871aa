"""The suite's tiers and its shared fixtures.

Tiers are folders, and each test gets its folder's marker (`-m unit`, `-m "not integration"`, ...):
- unit: pure library code; no JVM, no TensorFlow (a unit-only session fails if either was imported)
- tf: TensorFlow models and the text encoder, no JVM
- spark: one stage's Spark code on small hand-made tables (one local[2] session for the suite)
- integration: several stages, Horovod processes, command lines
- packaging: the wheel, the --py-files zip, spark-submit, the Databricks bundle
- gpu: training on a GPU (scripts/gpu_check.sh); collected only with REC_GPU_CHECK=1, so a machine
  without a GPU neither runs nor counts it
A test also gets the marker of each heavy fixture it uses (`spark`, `packaging`), and a unit test
that asks for one is refused at collection.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import HANG_GUARD_S, REPO

TIERS = ("unit", "tf", "spark", "integration", "packaging", "gpu")
collect_ignore = [] if os.environ.get("REC_GPU_CHECK") == "1" else ["gpu"]
# Every JVM the suite starts (the test session's, the jobs run as subprocesses, spark-submit) inherits
# this and collects garbage on one thread: on 2 cores G1's concurrent threads compete with the tests'
# own work (five Spark tests, one worker: 73 and 73 s with G1, 68 and 69 s with the serial collector).
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:+UseSerialGC")
# fixture -> the marker a test using it gets (the fixtures that start a JVM or build the package)
FIXTURE_MARKERS = {"spark": "spark", "shop": "spark", "small_warehouse": "spark", "featured": "spark",
                   "built_package": "packaging"}
HEAVY_MODULES = ("pyspark", "tensorflow")


def tier_of(path: Path) -> str:
    parts = path.resolve().relative_to(REPO / "tests").parts
    if len(parts) < 2 or parts[0] not in TIERS:
        raise pytest.UsageError(f"{path}: a test module belongs in one of tests/{{{','.join(TIERS)}}}/")
    return parts[0]


def xdist_group(path: Path, tier: str) -> str:
    """The group `make test`'s parallel workers keep together (pytest-xdist --dist loadgroup): a
    module, so its module-scoped fixtures are built once; the whole packaging tier, whose tests
    build the package in the checkout and must not build it twice at once."""
    return "packaging" if tier == "packaging" else str(path.resolve().relative_to(REPO))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which turns the xdist_group marks into work units
def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(Path(str(item.fspath)))
        item.add_marker(tier)
        item.add_marker(pytest.mark.xdist_group(xdist_group(Path(str(item.fspath)), tier)))
        heavy = sorted({mark for fixture, mark in FIXTURE_MARKERS.items() if fixture in item.fixturenames})
        for mark in heavy:
            item.add_marker(mark)
        if tier == "unit" and heavy:
            raise pytest.UsageError(f"{item.nodeid} uses a {'/'.join(heavy)} fixture: unit tests start no JVM and "
                                    f"build nothing; move it to tests/{heavy[0]}/")


def pytest_collection_finish(session):
    """Under `--dist loadgroup` each worker's tests must carry their group (xdist appends
    `@<group>` to the node id); where they do not (a pytest that xdist cannot rewrite, see
    docs/STACK.md), module fixtures would be rebuilt for test after test: refuse at once."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    ungrouped = [item.nodeid for item in session.items if "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(f"pytest-xdist's loadgroup did not group {len(ungrouped)} test(s), e.g. "
                                f"{ungrouped[0]}: pin pytest and pytest-xdist as requirements/dev.txt does")


def pytest_sessionfinish(session, exitstatus):
    """A session of unit tests only (`make test-fast`) must not have loaded Spark or TensorFlow."""
    items = getattr(session, "items", None) or []
    if not items or not all(item.get_closest_marker("unit") for item in items):
        return
    loaded = [name for name in HEAVY_MODULES if name in sys.modules]
    if loaded:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"unit tier imported {', '.join(loaded)}: a unit test (or the library code it "
                                "calls) pulled in Spark or TensorFlow; move the test to its tier or the import "
                                "out of the pure module", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def spark():
    from rec_lib.core.config import SparkSection
    from rec_lib.platform.spark import get_spark

    warehouse = tempfile.mkdtemp(prefix="rec-test-spark-")
    section = SparkSection(
        master="local[2]", app_name="rec-tests", shuffle_partitions=2, driver_memory="4g",
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
    from rec_lib.core.config import FeatureJobConfig, load_config

    (tmp_path / "input").mkdir()
    return load_config(FeatureJobConfig, REPO / "conf" / "local.yaml", [
        f"paths.input={tmp_path / 'input'}", f"paths.warehouse={tmp_path / 'warehouse'}",
        "run.now=2026-11-01T00:00:00Z", "run.run_id=test-run",
        "spark.master=local[2]",
        # the hand-made exports reject many of their few rows on purpose
        "input.max_quarantine_share.items=1.0", "input.max_quarantine_share.users=1.0",
        "input.max_quarantine_share.events=1.0",
    ])


@pytest.fixture(scope="session")
def shop(spark, tmp_path_factory):
    """The small generated shop of `tests.helpers.build_small_shop`, shared by the training and
    evaluation tests (each writes only its own tables and model folders). Returns (root folder,
    common settings)."""
    from tests.helpers import build_small_shop

    root = tmp_path_factory.mktemp("shop")
    return root, build_small_shop(spark, root)


@pytest.fixture(scope="session")
def featured(spark, tmp_path_factory):
    """feature_config, **exports (`tests.helpers.write_inputs`) -> its warehouse: the exports
    written to the test's input folder and the feature job's tables for them in the test's
    warehouse, a copy of the tables the job built once in this session for the same exports and
    settings (the job takes 15-30 s; the copy milliseconds). The tables are a test's own to change."""
    import dataclasses

    from rec_lib.features.job import run_feature_job
    from tests.helpers import write_inputs

    built = {}

    def build(cfg, **exports):
        write_inputs(Path(cfg.paths.input), **exports)
        # the tables follow the exports and every setting but the two folders
        settings = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, input="", warehouse=""))
        key = (repr(settings), tuple(sorted(exports.items())))
        if key not in built:
            root = tmp_path_factory.mktemp("features")
            (root / "input").mkdir()
            write_inputs(root / "input", **exports)
            paths = dataclasses.replace(cfg.paths, input=str(root / "input"), warehouse=str(root / "warehouse"))
            run_feature_job(spark, dataclasses.replace(cfg, paths=paths))
            built[key] = root / "warehouse"
        shutil.copytree(built[key], cfg.paths.warehouse)
        return cfg.paths.warehouse

    return build


@pytest.fixture
def small_warehouse(featured, feature_config):
    """The feature job's small example: interactions (u1, I1) view + purchase on 2026-10-01, (u2, I2)
    view at 2026-10-14T17:46:40 and (u3, I3) click on 2026-10-28."""
    return featured(feature_config)


@pytest.fixture(scope="session")
def built_package(tmp_path_factory):
    """`scripts/package.py`'s wheel and --py-files zip, built once into a temporary folder."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(REPO / "scripts" / "package.py"), "--out", str(out)], check=True,
                   capture_output=True, text=True, timeout=HANG_GUARD_S)
    wheels, zips = sorted(out.glob("rec_lib-*.whl")), sorted(out.glob("rec_lib-*.zip"))
    assert len(wheels) == 1 and len(zips) == 1, sorted(out.iterdir())
    return {"wheel": wheels[0], "zip": zips[0]}
