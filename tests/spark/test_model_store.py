"""A model folder on a URI: copied through the session's Hadoop FileSystem (a `file:` URI here runs
the same calls an `s3a:` or `dbfs:` one does, with Hadoop's local file system behind them), brought
back only when complete, and read by Spark tasks through the session's files."""
from __future__ import annotations

from pathlib import Path

import pytest

from rec_lib.core.config import TrainJobConfig, load_config
from rec_lib.platform import remote
from rec_lib.training.model_folder import ModelFolder
from rec_lib.training.store import ModelStore, default_local_dir
from tests.helpers import REPO

# relative path -> contents of a model folder as a finished training leaves it
FILES = {
    "model.json": b'{"model_version": "v1"}',
    "params.json": b'{"embedding_dim": 4}',
    "catalogue.npz": bytes(range(256)) * 3,
    "weights/model.index": b"index",
    "weights/model.data-00000-of-00001": b"\x00\x01weights",
    "checkpoints/ckpt-2.index": b"transient",
    "failures/rank-1.txt": b"transient",
    ".lock": b"pid 1",
    ".blend.json.abc.tmp": b"half",
}
KEPT = {"model.json", "params.json", "catalogue.npz", "weights/model.index", "weights/model.data-00000-of-00001"}


def model_folder(root: Path, files=FILES) -> ModelFolder:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return ModelFolder(root)


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
            and not p.name.endswith(".crc")}  # Hadoop's local file system keeps a checksum beside each file


def store(tmp_path: Path, local: str) -> ModelStore:
    return ModelStore("file://" + str(tmp_path / "remote"), str(tmp_path / local))


def test_the_artifacts_of_a_folder_leave_out_the_transient_training_state(tmp_path):
    folder = model_folder(tmp_path / "v1")
    assert {f for f in FILES if folder.is_artifact(f)} == KEPT
    assert [p.name for p in folder.artifacts()] == ["catalogue.npz", "model.json", "params.json", "weights"]


def test_the_completion_marker_is_copied_last():
    assert remote.marker_last(["model.json", "weights/a", "blend.json"], "model.json") == \
        ["blend.json", "weights/a", "model.json"]
    assert remote.marker_last(["b", "a"], "model.json") == ["a", "b"]


def test_a_store_builds_on_its_folder_or_on_the_local_folder_of_its_uri(tmp_path):
    def of(*settings):
        return ModelStore.of(load_config(TrainJobConfig, REPO / "conf" / "local.yaml", list(settings)).train)

    plain = of("train.model_dir=/dbfs/m", f"train.local_model_dir={tmp_path}")
    assert not plain.on_uri and plain.uri("v1") == "/dbfs/m/v1" and plain.folder("v1").root == Path("/dbfs/m/v1")
    on_s3 = of("train.model_dir=s3a://b/m/", f"train.local_model_dir={tmp_path}")
    assert on_s3.on_uri and on_s3.uri("v1") == "s3a://b/m/v1" and on_s3.folder("v1").root == tmp_path / "v1"
    assert of("train.model_dir=dbfs:/m").folder("v1").root == Path(default_local_dir()) / "v1"


def test_a_version_goes_to_the_uri_without_its_transient_files_and_comes_back_whole(spark, tmp_path):
    s = store(tmp_path, "driver-a")
    folder = model_folder(s.folder("v1").root)
    s.publish(spark, folder)
    assert tree(tmp_path / "remote" / "v1") == {name: FILES[name] for name in KEPT}

    other = store(tmp_path, "driver-b")  # a later run on another machine: nothing local yet
    fetched = other.fetch(spark, "v1")
    assert fetched.root == tmp_path / "driver-b" / "v1" and fetched.is_complete()
    assert tree(fetched.root) == {name: FILES[name] for name in KEPT}
    assert not [p for p in (tmp_path / "driver-b").iterdir() if p.name != "v1"]  # no temporary folder left


def test_an_incomplete_version_on_the_uri_is_not_brought(spark, tmp_path):
    s = store(tmp_path, "driver-a")
    unfinished = {k: v for k, v in FILES.items() if k != "model.json"}
    remote.upload(spark, model_folder(tmp_path / "staged", unfinished).root, s.uri("v2"), lambda f: True, "model.json")
    folder = store(tmp_path, "driver-b").fetch(spark, "v2")
    assert not folder.is_complete() and not folder.root.exists()


def test_a_complete_version_on_the_uri_fills_an_unfinished_local_one(spark, tmp_path):
    s = store(tmp_path, "driver-a")
    s.publish(spark, model_folder(s.folder("v3").root))
    killed = model_folder(tmp_path / "driver-b" / "v3", {"checkpoints/ckpt-1.index": b"old", "params.json": b"old"})
    folder = store(tmp_path, "driver-b").fetch(spark, "v3")
    assert folder.root == killed.root and folder.is_complete()
    assert tree(folder.root)["params.json"] == FILES["params.json"]
    assert tree(folder.root)["checkpoints/ckpt-1.index"] == b"old"  # left to the next training's clean-up


def test_spark_tasks_read_a_version_on_a_uri_through_the_sessions_files(spark, tmp_path):
    s = store(tmp_path, "driver-a")
    folder = model_folder(s.folder("v4").root)
    s.publish(spark, folder)
    opened = s.task_folder(spark, folder)
    assert isinstance(opened, remote.SparkFilesFolder) and opened.name == "v4"

    def read(rows):
        path = Path(opened())
        for _ in rows:
            yield (path / "weights" / "model.index").read_bytes().decode()

    assert spark.sparkContext.parallelize([1, 2], 2).mapPartitions(read).collect() == ["index", "index"]
    local = ModelStore(str(tmp_path / "plain"), str(tmp_path / "plain"))
    assert local.task_folder(spark, local.folder("v4")) == str((tmp_path / "plain" / "v4").resolve())


def test_a_uri_no_file_system_reads_is_a_clear_error(spark, tmp_path):
    with pytest.raises(remote.RemoteFolderError, match="nosuchfs://bucket/m.*Hadoop file systems"):
        remote.exists(spark, "nosuchfs://bucket/m")
