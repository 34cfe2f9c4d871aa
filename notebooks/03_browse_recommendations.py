# Databricks notebook source
# MAGIC %md
# MAGIC # Browse the recommendations
# MAGIC The views analysts query (`recommendations_latest`, `recommendations_by_user`,
# MAGIC `evaluation_summary`; see `rec_lib/platform/sql/`), a user's history next to their list, and how the
# MAGIC lists spread over the new items. Parameters (widgets on Databricks, `REC_CONF` / `REC_SETTINGS` /
# MAGIC `REC_WAREHOUSE` / `REC_USER` elsewhere): the config file (default `conf/cluster.yaml` on Databricks,
# MAGIC `conf/local.yaml` elsewhere, found from this folder upwards), settings (e.g. `sql.database=...` of
# MAGIC the job), the warehouse, a user to look at. On Databricks the views are the job's; locally they
# MAGIC are created in the session.

# COMMAND ----------

from pyspark.sql import functions as F

from rec_lib.core.config import ScoreJobConfig, load_config
from rec_lib.core.schema import INTERACTIONS, ITEMS
from rec_lib.platform.io import read_table
from rec_lib.platform.notebook import default_conf, parameter, settings
from rec_lib.platform.spark import get_spark
from rec_lib.platform.sql_views import apply_sql

DBUTILS = globals().get("dbutils")
CONF = parameter("conf", default_conf(DBUTILS), DBUTILS)
SETTINGS = parameter("settings", "", DBUTILS)  # as the jobs' --set (on Databricks: the job's, e.g. sql.database=...)
cfg = load_config(ScoreJobConfig, CONF, settings(SETTINGS))
WAREHOUSE = parameter("warehouse", cfg.paths.warehouse, DBUTILS)
USER = parameter("user", "", DBUTILS)
spark = get_spark(cfg.spark)
if DBUTILS is None:  # locally the views live in the session: create them here (on Databricks the jobs did)
    print("\n".join(apply_sql(spark, WAREHOUSE, cfg.sql).lines()))
views = f"{cfg.sql.namespace}." if cfg.sql.namespace else ""

# COMMAND ----------

# MAGIC %md ## The newest run: where the lists come from

# COMMAND ----------

latest = spark.sql(f"SELECT * FROM {views}recommendations_latest")
latest.groupBy("run_date", "model_version", "source").agg(
    F.countDistinct("user_id").alias("users"), F.count("*").alias("rows")).show(truncate=False)

# COMMAND ----------

# MAGIC %md ## One user: what they did, what they get

# COMMAND ----------

user = USER or latest.where("source = 'model'").orderBy("user_id").first()["user_id"]
history = (read_table(spark, WAREHOUSE, INTERACTIONS).where(F.col("user_id") == user)
           .join(read_table(spark, WAREHOUSE, ITEMS).select("item_id", "title", "category"), "item_id")
           .orderBy(F.desc("ts")))
history.select("ts", "event_type", "title", "category").show(10, truncate=60)
# the user id is a value, not SQL: filtered with a column expression, never pasted into a query
(latest.where(F.col("user_id") == user).orderBy("rank")
 .select("rank", "title", "category", F.round("score", 3).alias("score"), "source").show(truncate=60))

# COMMAND ----------

# MAGIC %md ## Why: each row's reason, as the shop's pages can say it (`recommendations_explained`, `sql.language`)

# COMMAND ----------

explained = spark.sql(f"SELECT * FROM {views}recommendations_explained")
(explained.where(F.col("user_id") == user).orderBy("rank")
 .select("rank", "title", "reason_kind", F.round("reason_share", 2).alias("share"), "sentence").show(truncate=60))
kinds = explained.groupBy("reason_kind").agg(F.count("*").alias("rows")).orderBy(F.desc("rows"))
kinds.show(truncate=False)

# COMMAND ----------

# MAGIC %md ## How the lists spread over the candidates

# COMMAND ----------

spread = latest.groupBy("item_id", "title", "category").agg(F.count("*").alias("users")).orderBy(F.desc("users"))
spread.show(10, truncate=60)
lists = spark.sql(f"SELECT * FROM {views}recommendations_by_user")
summary = {"user": user, "users_with_lists": lists.count(), "distinct_items": spread.count(),
           "rows": latest.count(), "user_list": [x.item_id for x in lists.where(F.col("user_id") == user).first()["items"]],
           "reason_kinds": {r["reason_kind"]: r["rows"] for r in kinds.collect()},
           "user_sentences": [r.sentence for r in explained.where(F.col("user_id") == user).orderBy("rank").collect()]}
print(summary)
