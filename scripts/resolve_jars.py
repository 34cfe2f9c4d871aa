"""Resolve Delta Lake's jars once into a local folder, so jobs and tests start offline.

First Spark's own resolver (spark.jars.packages, with its Ivy cache under the folder) is tried;
if it cannot reach the repository, Maven (which honours the machine's Maven settings) fetches the
same artifacts. Either way a one-line Delta write checks what was resolved.

Usage: python scripts/resolve_jars.py <jars_dir>
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rec_lib.platform.spark import DELTA_PACKAGES, DELTA_SESSION_CONF, delta_jar_names  # noqa: E402


def _with_spark_resolver(jars_dir: Path) -> bool:
    from pyspark.sql import SparkSession

    ivy = jars_dir / "ivy"
    builder = SparkSession.builder.master("local[1]").appName("resolve-delta-jars")
    builder = builder.config("spark.jars.packages", DELTA_PACKAGES[0]).config("spark.jars.ivy", str(ivy))
    try:
        spark = builder.getOrCreate()
        spark.stop()
    except Exception as exc:  # the resolver's failure is reported, then Maven is tried
        print(f"resolve_jars: Spark's resolver failed ({type(exc).__name__}); trying Maven", file=sys.stderr)
        return False
    for name in delta_jar_names():
        found = list((ivy / "jars").glob(f"*{name}"))
        if not found:
            print(f"resolve_jars: {name} not among Spark's resolved jars; trying Maven", file=sys.stderr)
            return False
        shutil.copy(found[0], jars_dir / name)
    return True


def _with_maven(jars_dir: Path) -> None:
    for coordinate in DELTA_PACKAGES:
        subprocess.run(
            ["mvn", "-q", "dependency:copy", f"-Dartifact={coordinate}", f"-DoutputDirectory={jars_dir}"],
            check=True,
        )


def _check_delta_write(jars_dir: Path) -> None:
    from pyspark.sql import SparkSession

    jars = ",".join(str(jars_dir / n) for n in delta_jar_names())
    builder = SparkSession.builder.master("local[1]").appName("check-delta-jars").config("spark.jars", jars)
    for key, value in DELTA_SESSION_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    with tempfile.TemporaryDirectory() as tmp:
        spark.range(3).write.format("delta").save(tmp + "/t")
        n = spark.read.format("delta").load(tmp + "/t").count()
    spark.stop()
    if n != 3:
        raise SystemExit(f"resolve_jars: Delta check wrote 3 rows but read back {n}")


def main() -> None:
    jars_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/jars").resolve()
    jars_dir.mkdir(parents=True, exist_ok=True)
    if not all((jars_dir / n).is_file() for n in delta_jar_names()):
        if not _with_spark_resolver(jars_dir):
            _with_maven(jars_dir)
    _check_delta_write(jars_dir)
    print(f"resolve_jars: Delta jars ready in {jars_dir}: {', '.join(delta_jar_names())}")


if __name__ == "__main__":
    main()
