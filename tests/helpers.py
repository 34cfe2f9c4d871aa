"""Small builders shared by tests."""
from __future__ import annotations

from typing import Dict, List, Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from pyspark.sql import functions as F

from rec_lib.io import bookkeeping
from rec_lib.schema import InputContract


def raw_export(spark: SparkSession, contract: InputContract, rows: List[Dict[str, Optional[str]]],
               source_file: str = "file:/in/export.csv") -> DataFrame:
    """Rows as `rec_lib.io.read_export` returns them: text columns plus bookkeeping columns."""
    extra = sorted({k for r in rows for k in r} - set(contract.columns))
    columns = list(contract.columns) + extra
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns])
    df = spark.createDataFrame([tuple(r.get(c) for c in columns) for r in rows], schema)
    return df.select("*", *bookkeeping(columns, F.lit(source_file), F.lit(None).cast("string")))


def rows_by(df: DataFrame, key: str) -> Dict[str, dict]:
    return {r[key]: r.asDict(recursive=True) for r in df.collect()}


def table_snapshot(spark: SparkSession, path: str) -> List[str]:
    """A table's rows as sorted text (maps included), for whole-table equality."""
    return sorted(str(sorted(r.asDict(recursive=True).items())) for r in spark.read.format("delta").load(path).collect())


def fake_text_embeddings(spark: SparkSession, warehouse: str, item_ids: List[str]) -> None:
    """item_text_embeddings with the vector [i, 1] for the i-th item id."""
    from datetime import datetime

    from rec_lib import io
    from rec_lib.schema import ITEM_TEXT_EMBEDDINGS

    rows = [(item_id, "h", "m", "v", [float(i), 1.0], datetime(2026, 11, 1), "r") for i, item_id in enumerate(item_ids)]
    io.overwrite_table(spark.createDataFrame(rows, ITEM_TEXT_EMBEDDINGS.schema), ITEM_TEXT_EMBEDDINGS, warehouse)
