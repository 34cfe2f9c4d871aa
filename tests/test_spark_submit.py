"""The feature job under a real spark-submit: the launcher's master is kept, Delta comes from --jars."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rec_lib.spark import delta_jar_names
from tests.test_feature_job import write_inputs

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_build_features_through_spark_submit(tmp_path):
    (tmp_path / "in").mkdir()
    write_inputs(tmp_path / "in")
    jars = ",".join(str(REPO / ".cache" / "jars" / n) for n in delta_jar_names())
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", "--jars", jars,
         "--conf", "spark.ui.enabled=false", str(REPO / "jobs" / "build_features.py"),
         "--conf-file", str(REPO / "conf" / "local.yaml"), "--input", str(tmp_path / "in"),
         "--warehouse", str(tmp_path / "wh"), "--set", "run.now=2026-11-01T00:00:00Z"],
        capture_output=True, text=True, env=env, timeout=600)
    output = result.stdout + result.stderr  # spark-submit merges the Python driver's stderr into stdout
    assert result.returncode == 0, output[-3000:]
    # conf/local.yaml says local[*]; the launcher's local[2] wins
    assert "from spark-submit, master local[2]" in output
    assert "events  accepted          4" in output
    assert (tmp_path / "wh" / "interactions" / "_delta_log").is_dir()
