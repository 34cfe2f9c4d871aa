"""Where model versions are kept: `train.model_dir`.

- A folder (local, NFS, a FUSE mount such as /dbfs or /Volumes) that the driver and every worker
  open: versions are built and read there.
- A URI of any file system the Spark session's Hadoop reads (`dbfs:/`, `s3a://`, `abfss://`,
  `hdfs://`, `file:/`): a version is built in a local folder on the driver (`train.local_model_dir`),
  copied to the URI once complete (model.json last, so the URI's copy is complete when it has one),
  and brought back from the URI by a later run (on any machine) that finds it complete there. Spark
  tasks read it through the session's files (`SparkContext.addFile`), each executor fetching it
  from the URI once.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from pyspark.sql import SparkSession

from rec_lib.core.config import TrainSection
from rec_lib.core.files import is_uri
from rec_lib.platform import remote
from rec_lib.training.model_folder import ModelFolder

log = logging.getLogger(__name__)


def default_local_dir() -> str:
    return str(Path(tempfile.gettempdir()) / "rec-models")


@dataclass(frozen=True)
class ModelStore:
    model_dir: str  # train.model_dir: a folder or a URI
    local_dir: str  # where versions are built and read on the driver: model_dir itself when it is a folder

    @classmethod
    def of(cls, train: TrainSection) -> "ModelStore":
        if not is_uri(train.model_dir):
            return cls(train.model_dir, train.model_dir)
        return cls(train.model_dir, train.local_model_dir or default_local_dir())

    @property
    def on_uri(self) -> bool:
        return is_uri(self.model_dir)

    def folder(self, version: str) -> ModelFolder:
        """The version's folder on the driver (not fetched: see `fetch`)."""
        return ModelFolder.of(self.local_dir, version)

    def uri(self, version: str) -> str:
        """Where the version is kept: its URI, or its folder."""
        return remote.child(self.model_dir, version) if self.on_uri else str(self.folder(version))

    def fetch(self, spark: SparkSession, version: str) -> ModelFolder:
        """The version's folder on the driver, brought from the URI first when it is complete there
        and not here (trained by an earlier run, perhaps on another machine)."""
        folder = self.folder(version)
        if self.on_uri and not folder.is_complete():
            if remote.download(spark, self.uri(version), folder.root, folder.description.name):
                log.info("model %s brought from %s to %s", version, self.uri(version), folder)
        return folder

    def publish(self, spark: SparkSession, folder: ModelFolder) -> None:
        """Copy a complete version to the URI (all but its transient files, model.json last), unless
        the URI has it complete already; nothing to do for a folder store."""
        uri = self.uri(folder.root.name)
        if not self.on_uri or remote.exists(spark, remote.child(uri, folder.description.name)):
            return
        remote.upload(spark, folder.root, uri, folder.is_artifact, folder.description.name)

    def task_folder(self, spark: SparkSession, folder: ModelFolder) -> Union[str, Callable[[], str]]:
        """What a Spark task opens to read a complete version: the folder's absolute path where every
        worker opens model_dir (a relative one is the driver's), else the URI's copy shipped to the
        executors (`remote.SparkFilesFolder`, a callable that gives its path in the task)."""
        if not self.on_uri:
            return str(folder.root.resolve())
        return remote.SparkFilesFolder.ship(spark, self.uri(folder.root.name))
