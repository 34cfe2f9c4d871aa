"""Files through Hadoop's FileSystem API, so the same code reads a local folder, `dbfs:/`, `s3a://`,
`abfss://` or `hdfs://` locations: existence, listing, reading a small text file, joining paths.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession


def fs_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def qualified_path(spark: SparkSession, path: str) -> str:
    """The path with its scheme (file:/..., s3a://...), as SQL's delta.`...` needs: a relative
    path there is not resolved as a Delta table."""
    fs, hpath = fs_path(spark, path)
    return str(fs.makeQualified(hpath).toString())


def path_exists(spark: SparkSession, path: str) -> bool:
    fs, hpath = fs_path(spark, path)
    return bool(fs.exists(hpath))


def is_dir(spark: SparkSession, path: str) -> bool:
    fs, hpath = fs_path(spark, path)
    return bool(fs.exists(hpath) and fs.getFileStatus(hpath).isDirectory())


def list_names(spark: SparkSession, path: str) -> List[str]:
    fs, hpath = fs_path(spark, path)
    return sorted(str(s.getPath().getName()) for s in fs.listStatus(hpath))


@dataclass(frozen=True)
class FileStatus:
    path: str
    size: int  # bytes
    mtime: int  # ms since the epoch
    checksum: Optional[str]  # "<algorithm>:<hex>" where the file system keeps one, else None


def list_files(spark: SparkSession, path: str) -> List[FileStatus]:
    """Every data file at `path` (the file itself, or the files under a folder, recursively;
    hidden `.`/`_` files left out), with size, modification time and the file system's checksum
    where it has one (HDFS; None on local disk). Metadata only: no file is read."""
    fs, hpath = fs_path(spark, path)
    found = fs.listFiles(hpath, True)
    out = []
    while found.hasNext():
        status = found.next()
        if str(status.getPath().getName()).startswith((".", "_")):
            continue
        try:
            checksum = fs.getFileChecksum(status.getPath())
            checksum = None if checksum is None else f"{checksum.getAlgorithmName()}:{bytes(checksum.getBytes()).hex()}"
        except Py4JJavaError:
            checksum = None
        out.append(FileStatus(str(status.getPath()), int(status.getLen()), int(status.getModificationTime()), checksum))
    return sorted(out, key=lambda f: f.path)


def read_text(spark: SparkSession, path: str) -> str:
    """A small text file's whole content (local or cloud paths)."""
    return "".join(r[0] for r in spark.read.text(path, wholetext=True).collect())


def join_path(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts])


