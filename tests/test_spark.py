"""The one Spark session factory: reuses a running session, and says how to fix missing jars."""
import pytest

from rec_lib.errors import EnvironmentSetupError
from rec_lib.spark import delta_jar_names, get_spark, local_delta_jars


def test_running_session_is_reused_with_its_master(spark):
    from rec_lib.config import SparkSection

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
