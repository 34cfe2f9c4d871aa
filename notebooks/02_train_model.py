# Databricks notebook source
# MAGIC %md
# MAGIC # Train the two-tower model
# MAGIC Runs the training job's stage from a notebook: Petastorm feeds `training_examples` to Horovod
# MAGIC workers (Spark tasks; one per GPU on a GPU cluster), the new items are adapted from their first
# MAGIC interactions, and `user_embeddings` / `item_embeddings` are written. Then looks at what came out.
# MAGIC Parameters (widgets on Databricks, `REC_CONF` / `REC_WAREHOUSE` / `REC_SETTINGS` elsewhere):
# MAGIC the config file, the warehouse, and `key=value` settings such as `train.epochs=4 train.num_proc=4`.

# COMMAND ----------

import numpy as np
from pyspark.sql import functions as F

from rec_lib.core.config import TrainJobConfig, load_config
from rec_lib.core.schema import ITEM_EMBEDDINGS, USER_EMBEDDINGS
from rec_lib.platform.io import read_table
from rec_lib.platform.notebook import default_conf, parameter, settings
from rec_lib.platform.spark import get_spark
from rec_lib.training.job import run_train_job

DBUTILS = globals().get("dbutils")
CONF = parameter("conf", default_conf(DBUTILS), DBUTILS)
WAREHOUSE = parameter("warehouse", "", DBUTILS)
SETTINGS = parameter("settings", "", DBUTILS)
cfg = load_config(TrainJobConfig, CONF, settings(SETTINGS) + ([f"paths.warehouse={WAREHOUSE}"] if WAREHOUSE else []))
spark = get_spark(cfg.spark)
print(f"training on {cfg.paths.warehouse} with {cfg.train.num_proc} workers, {cfg.train.epochs} epochs")

# COMMAND ----------

# MAGIC %md ## Train (a model version that exists already is reused, not retrained)

# COMMAND ----------

result = run_train_job(spark, cfg)
print("\n".join(result.lines()))

# COMMAND ----------

# MAGIC %md ## What the embeddings look like: item sources, and how close new items sit to their neighbours

# COMMAND ----------

items = read_table(spark, cfg.paths.warehouse, ITEM_EMBEDDINGS).where(F.col("model_version") == result.model_version)
users = read_table(spark, cfg.paths.warehouse, USER_EMBEDDINGS).where(F.col("model_version") == result.model_version)
items.groupBy("source").agg(F.count("*").alias("items"), F.avg("n_users").alias("mean_users")).show()

frame = items.select("item_id", "source", "embedding").toPandas()
vectors = np.stack(frame["embedding"].to_numpy())
unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
similarity = unit @ unit.T
np.fill_diagonal(similarity, -np.inf)
frame["nearest_similarity"] = similarity.max(axis=1)
print(frame.groupby("source")["nearest_similarity"].describe())

# COMMAND ----------

summary = {"model_version": result.model_version, "trained": result.trained, "epoch_loss": result.epoch_loss,
           "users": users.count(), "items": len(frame), "item_sources": dict(frame["source"].value_counts())}
print(summary)
