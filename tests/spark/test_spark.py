"""The one Spark session factory: reuses a running session, and says how to fix missing jars."""
import pytest

from rec_lib.core.errors import EnvironmentSetupError
from rec_lib.platform.spark import delta_jar_names, get_spark, local_delta_jars


def test_running_session_is_reused_with_its_master(spark):
    from rec_lib.core.config import SparkSection

    other = SparkSection(master="local[7]", app_name="other", shuffle_partitions=99, driver_memory="1g",
                         jars_dir="/nowhere", conf={})
    again = get_spark(other)
    assert again is spark
    assert again.sparkContext.master == "local[2]"  # never overridden by the config
    assert again.conf.get("spark.sql.session.timeZone") == "UTC"


def test_delta_is_usable_in_the_session(spark, tmp_path):
    spark.range(5).write.format("delta").save(str(tmp_path / "t"))
    assert spark.sql(f"SELECT count(*) FROM delta.`{tmp_path / 't'}`").first()[0] == 5


def test_missing_jars_say_how_to_fix(tmp_path):
    assert delta_jar_names() == ["delta-spark_2.12-3.2.1.jar", "delta-storage-3.2.1.jar", "antlr4-runtime-4.9.3.jar"]
    with pytest.raises(EnvironmentSetupError, match="run `make setup`"):
        local_delta_jars(str(tmp_path))


def test_replace_partition_checks_rows_unless_they_match_by_construction(spark, tmp_path):
    from pyspark.sql import functions as F
    from pyspark.sql.utils import AnalysisException

    from rec_lib.core.schema import TableSpec
    from rec_lib.platform import io

    spec = TableSpec("t", (("day", "string", True), ("n", "bigint", True)), keys=("day", "n"), partition_by=("day",))
    warehouse = str(tmp_path)
    io.replace_partition(spark.createDataFrame([("a", 1), ("a", 2)], spec.schema), spec, warehouse, "day", "a")
    io.replace_partition(spark.createDataFrame([("b", 3)], spec.schema), spec, warehouse, "day", "b")
    # a row outside the condition is refused, and nothing changes
    with pytest.raises(AnalysisException, match="(?i)replaceWhere|does not conform|constraint"):
        io.replace_partition(spark.createDataFrame([("a", 9), ("c", 9)], spec.schema), spec, warehouse, "day", "a")
    # rows that carry the value as a literal: day a is replaced (2 rows -> 1), day b untouched
    io.replace_partition(spark.range(1).select(F.lit("a").alias("day"), F.lit(7).cast("long").alias("n")), spec,
                         warehouse, "day", "a", rows_match=True)
    got = sorted(tuple(r) for r in io.read_table(spark, warehouse, spec).collect())
    assert got == [("a", 7), ("b", 3)]
    assert spark.conf.get(io.REPLACE_WHERE_CHECK) == "true"  # the session's setting is back
