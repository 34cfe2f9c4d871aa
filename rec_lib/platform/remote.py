"""Folders on any file system Hadoop reads (`dbfs:/`, `s3a://`, `abfss://`, `hdfs://`, `file:/`),
copied to and from a local folder through the Spark session's own Hadoop FileSystem API, so the
cluster's credentials and connectors apply and no other client library is needed.

- `upload`: every file of a local folder to the URI, the folder's completion marker last, so a
  reader that finds the marker finds every other file.
- `download`: a complete folder (one with its marker) into a local folder: fetched whole into a
  temporary sibling, then renamed into place file by file, the marker last.
- `SparkFilesFolder`: what a Spark task opens to read the folder: the session ships it to every
  executor (`SparkContext.addFile(..., recursive=True)`), each fetching it from the storage once.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

from pyspark.sql import SparkSession

from rec_lib.core.errors import RecError

log = logging.getLogger(__name__)


class RemoteFolderError(RecError):
    """A folder on a Hadoop file system could not be read or written."""


def _hadoop(spark: SparkSession, uri: str):
    """(the Hadoop Path class, the path, its FileSystem) of `uri`."""
    jvm = spark.sparkContext._jvm
    path_class = jvm.org.apache.hadoop.fs.Path
    path = path_class(uri)
    try:
        return path_class, path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    except Exception as exc:  # py4j wraps the JVM's error (no FileSystem for the scheme, credentials...)
        raise RemoteFolderError(f"cannot open {uri} with the session's Hadoop file systems: "
                                f"{str(exc).splitlines()[0][:300]}") from exc


def child(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def exists(spark: SparkSession, uri: str) -> bool:
    _, path, fs = _hadoop(spark, uri)
    return bool(fs.exists(path))


def marker_last(files: List[str], marker: str) -> List[str]:
    """The files (paths relative to the folder) in the order they are copied: sorted, the marker last."""
    return sorted(f for f in files if f != marker) + ([marker] if marker in files else [])


def upload(spark: SparkSession, local: Path, uri: str, keep: Callable[[str], bool], marker: str) -> int:
    """Copy every file under `local` whose relative path `keep` accepts to the same relative path
    under `uri` (replacing what is there), `marker` last. Returns the number of files copied."""
    path_class, _, fs = _hadoop(spark, uri)
    files = [p.relative_to(local).as_posix() for p in sorted(local.rglob("*")) if p.is_file()]
    copied = marker_last([f for f in files if keep(f)], marker)
    try:
        for name in copied:
            fs.copyFromLocalFile(False, True, path_class(str((local / name).resolve())), path_class(child(uri, name)))
    except Exception as exc:
        raise RemoteFolderError(f"copying {local} to {uri} failed: {str(exc).splitlines()[0][:300]}") from exc
    log.info("copied %d file(s) of %s to %s", len(copied), local, uri)
    return len(copied)


def download(spark: SparkSession, uri: str, local: Path, marker: str) -> bool:
    """Copy the folder at `uri` to `local` when it holds `marker` (else copy nothing and return
    False): fetched whole into a temporary sibling of `local`, then each file renamed into `local`
    (replacing one there), `marker` last."""
    path_class, root, fs = _hadoop(spark, uri)
    if not fs.exists(path_class(child(uri, marker))):
        return False
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{local.name}.", suffix=".part", dir=local.parent))
    try:
        files = fs.listFiles(root, True)
        prefix = len(fs.makeQualified(root).toUri().getPath().rstrip("/")) + 1
        count = 0
        while files.hasNext():
            status = files.next()
            name = status.getPath().toUri().getPath()[prefix:]
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            fs.copyToLocalFile(False, status.getPath(), path_class(str(staging / name)), True)
            count += 1
        for name in marker_last([p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()],
                                 marker):  # into place file by file, the marker last
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, local / name)
    except Exception as exc:
        raise RemoteFolderError(f"copying {uri} to {local} failed: {str(exc).splitlines()[0][:300]}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("copied %d file(s) of %s to %s", count, uri, local)
    return True


@dataclass(frozen=True)
class SparkFilesFolder:
    """A folder shipped to the executors with `ship`; calling it in a Spark task gives the folder's
    local path there. Picklable: it holds only the folder's name."""

    name: str

    @classmethod
    def ship(cls, spark: SparkSession, uri: str) -> "SparkFilesFolder":
        """Register `uri` with the session's files (each executor fetches it before its first task
        that asks for it); the same URI twice is registered once."""
        spark.sparkContext.addFile(uri, recursive=True)
        return cls(uri.rstrip("/").rsplit("/", 1)[-1])

    def __call__(self) -> str:
        from pyspark import SparkFiles

        return SparkFiles.get(self.name)
