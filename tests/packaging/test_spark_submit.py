"""The feature and scoring jobs under a real `spark-submit --master local[2]`, from the built
package: the library comes from the --py-files zip (not the checkout), the entry file from the
zip's jobs/, Delta from --jars."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import rec_lib
from rec_lib.platform.spark import SMALL_TABLE_CONF, delta_jar_names
from tests.helpers import (
    HANG_GUARD_S,
    N_USERS,
    REPO,
    SCORE_EVENTS,
    SCORE_ITEMS,
    SCORE_USERS,
    brute,
    hand_made_embeddings,
    lists,
    write_inputs,
)


def spark_submit(job: str, package: Path, args: list, cwd: Path) -> str:
    launch = cwd / "launch"
    launch.mkdir(exist_ok=True)
    with zipfile.ZipFile(package) as z:
        (launch / f"{job}.py").write_bytes(z.read(f"jobs/{job}.py"))
    jars = ",".join(str(REPO / ".cache" / "jars" / n) for n in delta_jar_names())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", "--jars", jars,
         "--py-files", str(package), "--conf", "spark.ui.enabled=false",
         # the local session's settings for small tables, which a spark-submit user passes themselves
         *[a for key, value in SMALL_TABLE_CONF.items() for a in ("--conf", f"{key}={value}")],
         str(launch / f"{job}.py"),
         "--conf-file", str(REPO / "conf" / "local.yaml"), *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=HANG_GUARD_S)
    output = result.stdout + result.stderr  # spark-submit merges the Python driver's stderr into stdout
    assert result.returncode == 0, output[-3000:]
    assert f"rec_lib {rec_lib.__version__} from {package}/rec_lib" in output  # the zip, not the checkout
    return output


def test_feature_and_scoring_jobs_through_spark_submit_from_the_package(spark, tmp_path, built_package):
    (tmp_path / "in").mkdir()
    write_inputs(tmp_path / "in", items=SCORE_ITEMS, users=SCORE_USERS, events=SCORE_EVENTS)
    warehouse = str(tmp_path / "wh")
    out = spark_submit("build_features", built_package["zip"],
                       ["--input", str(tmp_path / "in"), "--warehouse", warehouse,
                        "--set", "run.now=2026-10-31T00:00:00Z"], tmp_path)
    assert "from spark-submit, master local[2]" in out  # conf/local.yaml says local[*]; the launcher wins
    assert "events  accepted          6" in out
    assert (tmp_path / "wh" / "interactions" / "_delta_log").is_dir()

    U, V, b = hand_made_embeddings(spark, warehouse)  # the training job's output, made by hand
    out = spark_submit("score", built_package["zip"],
                       ["--warehouse", warehouse, "--set", "run.now=2026-10-31T12:00:00Z score.k=4 score.candidates=all "
                        "score.new_item_quota=0 score.min_new_item_exposure=0 score.order=score"],
                       tmp_path)
    assert "candidates 30 (" in out  # score.candidates=all: the whole catalogue
    got = lists(spark, warehouse)
    seen = {0: {0, 1}, 1: {5}, 2: {7}}
    for u in range(N_USERS):
        assert got[f"u{u:02d}"].item_id.tolist() == brute(U, V, b, u, range(30), seen.get(u, set()), 4)
    assert set(got) == {f"u{u:02d}" for u in range(N_USERS)} | {"u99"}  # u99: fallback list
