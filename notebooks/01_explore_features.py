# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the feature tables
# MAGIC Reads the Delta tables written by `jobs/build_features.py` and looks at what the cold-start
# MAGIC problem looks like in this shop: how many items are new, how many interactions they have,
# MAGIC and why rows were quarantined. Parameters (widgets on Databricks, `REC_CONF` / `REC_SETTINGS` /
# MAGIC `REC_WAREHOUSE` elsewhere): the config file (default `conf/cluster.yaml` on Databricks,
# MAGIC `conf/local.yaml` elsewhere, found from this folder upwards), settings, the warehouse folder or URI.

# COMMAND ----------

from pyspark.sql import functions as F

from rec_lib.core.config import FeatureJobConfig, load_config
from rec_lib.core.schema import ITEM_STATS, ITEMS, QUARANTINE, USER_FEATURES
from rec_lib.platform.io import read_table
from rec_lib.platform.notebook import default_conf, parameter, settings
from rec_lib.platform.spark import get_spark

DBUTILS = globals().get("dbutils")
CONF = parameter("conf", default_conf(DBUTILS), DBUTILS)
SETTINGS = parameter("settings", "", DBUTILS)  # as the jobs' --set (on Databricks: the job's, e.g. sql.database=...)
cfg = load_config(FeatureJobConfig, CONF, settings(SETTINGS))
WAREHOUSE = parameter("warehouse", cfg.paths.warehouse, DBUTILS)
spark = get_spark(cfg.spark)

# COMMAND ----------

# MAGIC %md ## How many items are new, and how much have they been seen?

# COMMAND ----------

item_stats = read_table(spark, WAREHOUSE, ITEM_STATS)
by_age = item_stats.select(
    F.when(F.col("age_days") <= 14, "launched in the last 14 days").otherwise("older").alias("cohort"),
    "n_events", "n_users",
).groupBy("cohort").agg(F.count("*").alias("items"), F.expr("percentile(n_users, 0.5)").alias("median_users"),
                        F.sum(F.when(F.col("n_events") == 0, 1).otherwise(0)).alias("items_without_events"))
by_age.show(truncate=False)

# COMMAND ----------

# MAGIC %md ## Users: history length and favourite categories

# COMMAND ----------

user_features = read_table(spark, WAREHOUSE, USER_FEATURES)
user_features.groupBy("top_category").count().orderBy(F.desc("count")).show()
user_features.select(F.expr("percentile(n_events, array(0.1, 0.5, 0.9))").alias("n_events p10/p50/p90")).show(truncate=False)

# COMMAND ----------

# MAGIC %md ## Quarantine: what was rejected, and why

# COMMAND ----------

quarantine = read_table(spark, WAREHOUSE, QUARANTINE)
quarantine.groupBy("source", "reason").count().orderBy("source", F.desc("count")).show(truncate=False)
quarantine.select("source", "reason", "raw_row").show(5, truncate=80)

# COMMAND ----------

items = read_table(spark, WAREHOUSE, ITEMS)
summary = {"items": items.count(), "new_items": by_age.where("cohort != 'older'").first()["items"],
           "quarantined_rows": quarantine.count()}
print(summary)
