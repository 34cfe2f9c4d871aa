"""Reading the shop's exports: where each is (`<name>.csv`, `<name>.parquet` or a folder of parts),
its header checked against the input contract, every column read as text with the bookkeeping
columns (source file, raw row, raw line) that let a bad row be quarantined as it was.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from rec_lib.core.errors import InputError
from rec_lib.core.schema import BOOKKEEPING, RAW_LINE, RAW_ROW, SOURCE_FILE, InputContract
from rec_lib.platform.columns import column
from rec_lib.platform.filesystem import is_dir, join_path, list_names, path_exists

log = logging.getLogger(__name__)

_CORRUPT = "_corrupt_record"
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class ExportLocation:
    source: str  # items | users | events
    path: str  # <input>/<source>.csv, <input>/<source>.parquet or the folder <input>/<source>
    fmt: str  # csv | parquet


def check_marker(spark: SparkSession, input_dir: str, marker: str) -> None:
    """An InputError unless the input folder holds the completion marker `marker` ("": none asked)."""
    if marker and not path_exists(spark, join_path(input_dir, marker)):
        raise InputError(f"input folder {input_dir!r} has no completion marker {marker!r} (input.require_marker): "
                         "the export may still be being written; run again once it is complete")


def locate_export(spark: SparkSession, input_dir: str, contract: InputContract) -> Optional[ExportLocation]:
    """Find `<name>.csv`, `<name>.parquet` or a folder `<name>/` of such part files.

    Returns None for an absent optional export; raises InputError for an absent mandatory one or an
    ambiguous/unrecognised layout.
    """
    name = contract.name
    if not is_dir(spark, input_dir):
        raise InputError(f"input folder {input_dir!r} does not exist (set INPUT=<folder> or paths.input)")
    found = [ExportLocation(name, join_path(input_dir, f"{name}.{fmt}"), fmt)
             for fmt in FORMATS if path_exists(spark, join_path(input_dir, f"{name}.{fmt}"))]
    folder = join_path(input_dir, name)
    if is_dir(spark, folder):
        names = [n for n in list_names(spark, folder) if not n.startswith((".", "_"))]
        formats = {fmt for fmt in FORMATS for n in names if n.endswith(f".{fmt}")}
        if len(formats) != 1:
            raise InputError(
                f"export folder {folder!r} must hold .csv or .parquet part files (one kind), "
                f"found: {names[:5]}"
            )
        found.append(ExportLocation(name, folder, formats.pop()))
    if len(found) > 1:
        raise InputError(f"export {name!r} is ambiguous in {input_dir!r}: {[f.path for f in found]}; keep one")
    if not found:
        if contract.mandatory_source:
            raise InputError(
                f"input folder {input_dir!r} has no {name} export "
                f"(expected {name}.csv, {name}.parquet or a folder {name}/)"
            )
        return None
    return found[0]


def _csv_reader(spark: SparkSession, multiline: bool, encoding: str, delimiter: str):
    return (spark.read.option("header", True).option("multiLine", multiline).option("encoding", encoding)
            .option("sep", delimiter))


def _csv_header(spark: SparkSession, loc: ExportLocation, multiline: bool, encoding: str, delimiter: str) -> List[str]:
    header_df = _csv_reader(spark, multiline, encoding, delimiter).option("inferSchema", False).csv(loc.path)
    return list(header_df.columns)


def _as_text(field: T.StructField) -> Column:
    if isinstance(field.dataType, (T.StructType, T.ArrayType, T.MapType)):
        return F.to_json(F.col(field.name))
    return F.col(field.name).cast("string")


def read_export(
    spark: SparkSession,
    loc: ExportLocation,
    contract: InputContract,
    column_map: Dict[str, str],
    multiline: bool,
    encoding: str = "UTF-8",
    delimiter: str = ",",
) -> DataFrame:
    """Read one export with every column as text, renamed to the contract's names.

    The result has the contract columns (absent optional ones as null), any further columns of the
    file, and the bookkeeping columns (see `bookkeeping`). Raises InputError,
    naming the file and column, when the file cannot be read or lacks a required column.
    """
    try:
        if loc.fmt == "csv":
            header = _csv_header(spark, loc, multiline, encoding, delimiter)
            schema = T.StructType([T.StructField(c, T.StringType()) for c in header]
                                  + [T.StructField(_CORRUPT, T.StringType())])
            df = (_csv_reader(spark, multiline, encoding, delimiter).schema(schema)
                  .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT).csv(loc.path))
        else:
            df = spark.read.parquet(loc.path)
            header = list(df.columns)
            df = df.select([_as_text(f).alias(f.name) for f in df.schema.fields]).withColumn(
                _CORRUPT, F.lit(None).cast("string"))
    except (AnalysisException, Py4JJavaError) as exc:
        raise InputError(f"{loc.path}: cannot be read as {loc.fmt}: {str(exc).splitlines()[0]}") from exc

    check_header(loc.path, header)
    contract_file_cols = {column_map.get(c, c) for c in contract.columns}
    for contract_col in contract.required:
        file_col = column_map.get(contract_col, contract_col)
        if file_col not in header:
            hint = "" if file_col != contract_col else f"; remap with input.columns.{contract.name}.{contract_col}=<column>"
            raise InputError(
                f"{loc.path}: missing required column {file_col!r} (columns found: {header[:20]}){hint}"
            )
    selected = []
    for contract_col in contract.columns:
        file_col = column_map.get(contract_col, contract_col)
        selected.append((column(file_col) if file_col in header else F.lit(None).cast("string")).alias(contract_col))
    extra = [column(c).alias(c) for c in header if c not in contract_file_cols and c not in contract.columns]
    return df.select(*selected, *extra, *bookkeeping(header, F.input_file_name(), F.col(_CORRUPT)))


def check_header(path: str, header: Sequence[str]) -> None:
    """An InputError naming the columns of an export the job cannot tell apart from its own (the
    bookkeeping columns, the CSV reader's corrupt-record column) or from each other (Spark matches
    column names regardless of case: `Title` and `title` are one name to it)."""
    own = {c.lower() for c in (*BOOKKEEPING, _CORRUPT)}
    reserved = [c for c in header if c.lower() in own]
    if reserved:
        raise InputError(f"{path}: column(s) {reserved} have names the pipeline keeps for its own bookkeeping "
                         f"({sorted(own)}); rename them in the export")
    # Spark's CSV reader renames names it cannot tell apart to <name><position> (title1, Title2)
    renamed: Dict[str, List[str]] = {}
    for position, name in enumerate(header):
        suffix = str(position)
        if name.endswith(suffix) and len(name) > len(suffix):
            renamed.setdefault(name[:-len(suffix)].lower(), []).append(name[:-len(suffix)])
    seen: Dict[str, str] = {}
    clashes = [names[:2] for names in renamed.values() if len(names) > 1]
    for name in header:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            clashes.append([other, name])
    if clashes:
        first, second = clashes[0]
        raise InputError(f"{path}: columns {first!r} and {second!r} differ only in case (or not at all), which "
                         "Spark does not tell apart; rename one in the export")


def bookkeeping(header: Sequence[str], source_file: Column, corrupt_line: Column) -> List[Column]:
    """The columns that let a rejected row be quarantined exactly as exported: its source file, its
    original columns as a struct (serialised to JSON only for rejected rows, which keeps the cost
    off the accepted majority) and, for a malformed CSV line, the line itself."""
    return [source_file.alias(SOURCE_FILE), F.struct(*[column(c) for c in header]).alias(RAW_ROW),
            corrupt_line.alias(RAW_LINE)]


def extra_columns(df: DataFrame, contract: InputContract) -> List[str]:
    """Columns of a read export beyond the contract and bookkeeping columns."""
    return [c for c in df.columns if c not in contract.columns and c not in BOOKKEEPING]


