"""How an input export (`InputContract`) and a Delta table are declared (`TableSpec`): its name, columns with Spark SQL type names, keys and
partitioning; the Spark schema is built on first use, so declaring tables needs no Spark. The tables
themselves are declared in rec_lib.core.schema.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Tuple

if TYPE_CHECKING:
    from pyspark.sql import types as T

# Column types are written as Spark SQL type names (what `DESCRIBE TABLE` shows), so this module
# needs no Spark: `TableSpec.schema` builds the Spark schema on first use.
S, D, L, TS, DT, B, F32, I32 = "string", "double", "bigint", "timestamp", "date", "boolean", "float", "int"
Field = Tuple[str, str, bool]  # name, type, nullable


def array(element: str) -> str:
    return f"array<{element}>"


def map_of(key: str, value: str) -> str:
    return f"map<{key},{value}>"


def struct_of(*fields: Tuple[str, str]) -> str:
    """A struct type of (name, type) fields, every field nullable."""
    return "struct<" + ",".join(f"{name}:{kind}" for name, kind in fields) + ">"


def _top_level(text: str, sep: str) -> list:
    """`text` split at each `sep` outside <...>."""
    out, depth, start = [], 0, 0
    for at, char in enumerate(text):
        depth += (char == "<") - (char == ">")
        if char == sep and depth == 0:
            out.append(text[start:at])
            start = at + 1
    return out + [text[start:]]


@dataclass(frozen=True)
class TableSpec:
    name: str
    fields: Tuple[Field, ...]
    keys: Tuple[str, ...]
    partition_by: Tuple[str, ...] = ()

    @property
    def columns(self) -> Tuple[str, ...]:
        return tuple(name for name, _, _ in self.fields)

    @property
    def schema(self) -> "T.StructType":
        """The table's Spark schema (pyspark is imported here, on first use, never by importing core)."""
        return spark_struct(self.fields)


def _struct(*fields: Field) -> Tuple[Field, ...]:
    return tuple(fields)


@lru_cache(maxsize=None)
def spark_struct(fields: Tuple[Field, ...]) -> "T.StructType":
    from pyspark.sql import types as T

    simple = {S: T.StringType(), D: T.DoubleType(), L: T.LongType(), TS: T.TimestampType(), DT: T.DateType(),
              B: T.BooleanType(), F32: T.FloatType(), I32: T.IntegerType()}

    def spark_type(name: str) -> "T.DataType":
        if name.startswith("array<"):
            return T.ArrayType(spark_type(name[len("array<"):-1]))
        if name.startswith("map<"):
            key, value = _top_level(name[len("map<"):-1], ",")
            return T.MapType(spark_type(key), spark_type(value))
        if name.startswith("struct<"):
            pairs = [_top_level(f, ":") for f in _top_level(name[len("struct<"):-1], ",")]
            return T.StructType([T.StructField(n, spark_type(t), True) for n, t in pairs])
        return simple[name]

    return T.StructType([T.StructField(n, spark_type(t), nullable) for n, t, nullable in fields])


@dataclass(frozen=True)
class InputContract:
    """Columns of one raw export: `required` must exist in the file, `optional` may."""

    name: str
    required: Tuple[str, ...]
    optional: Tuple[str, ...]
    mandatory_source: bool  # False: the export may be absent altogether

    @property
    def columns(self) -> Tuple[str, ...]:
        return self.required + self.optional
