"""The trained model as a registered MLflow model: a pyfunc with a signature, one registered version
per model version, and the alias `champion` that the evaluation gate moves (MLflow and TensorFlow;
no Spark).

The pyfunc carries the model folder (catalogue, vocabularies, weights, blend) and this library
(`code_paths`), so `mlflow.pyfunc.load_model("models:/<name>@champion")` works without the
warehouse. Its `predict` takes a frame with an `item_id` column and returns each item's served
row: `embedding` and `bias` as `item_embeddings` holds them (training.sides). An item with an
id embedding gets exactly its served row; a new item gets its row from content and the pace of
the users it had at training time (its few-shot blend with those users' vectors needs the users,
which the scoring job reads from the warehouse, not the model).

The registry is the tracking server's unless `mlflow.registry_uri` says otherwise
(`databricks-uc`: Unity Catalog, where `mlflow.registered_model` is `catalog.schema.model`).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import List, Optional

import mlflow.pyfunc
import numpy as np
import pandas as pd

import rec_lib
from rec_lib.core.config import MlflowSection
from rec_lib.training.model_folder import ModelFolder

CHAMPION = "champion"  # the alias of the version the evaluation gate passed last
VERSION_TAG = "model_version"  # each registered version's tag: the pipeline's model version
ARTIFACT = "model_folder"
# what loading the pyfunc needs besides this library (pinned to the versions that trained it)
REQUIREMENTS = ("tensorflow-cpu", "tensorflow", "numpy", "pandas", "mlflow-skinny")


class ItemEmbeddingModel(mlflow.pyfunc.PythonModel):
    """item_id -> the item's served embedding row and bias, from the model folder alone."""

    def load_context(self, context) -> None:
        from rec_lib.training import sides, two_tower
        from rec_lib.training.blend import Blend
        from rec_lib.training.embed import item_vectors
        from rec_lib.training.few_shot import FewShotSettings

        folder = ModelFolder(Path(context.artifacts[ARTIFACT]))
        model, catalogue, info = two_tower.load(folder)
        blend = Blend.from_dict(json.loads(folder.blend.read_text()))
        n = len(catalogue)
        trained = item_vectors(model, n, use_ids=True)[0]
        content = item_vectors(model, n, use_ids=False)[0]
        few_shot = info["few_shot"]
        items = sides.item_sides(catalogue, trained, content, {}, FewShotSettings.of(few_shot),
                                 int(few_shot["max_k"]))
        self.row_of = pd.Series(np.arange(n), index=catalogue.item_ids.astype(str))
        self.embedding = sides.item_rows(items, blend)
        self.bias = sides.item_bias(items, blend)
        self.source = items.source.astype(str)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        ids = model_input["item_id"].astype(str)
        unknown = sorted(set(ids) - set(self.row_of.index))
        if unknown:
            raise ValueError(f"{len(unknown)} item(s) are not in this model's catalogue, e.g. {unknown[:5]}")
        rows = self.row_of[ids].to_numpy()
        return pd.DataFrame({"item_id": ids.to_numpy(), "embedding": list(self.embedding[rows]),
                             "bias": self.bias[rows], "source": self.source[rows]})


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "item_id")]),
                          outputs=Schema([ColSpec("string", "item_id"), ColSpec(Array("float"), "embedding"),
                                          ColSpec("double", "bias"), ColSpec("string", "source")]))


def requirements() -> List[str]:
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def client(settings: MlflowSection):
    """A client of the configured registry (the tracking URI is set by platform.tracking's run)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri or None)


def registered_version(settings: MlflowSection, version: str) -> Optional[str]:
    """The registered version that carries model version `version`, or None. The registered
    model's versions are listed by name (one per trained model version: a bounded list) and
    filtered here, as every registry (Unity Catalog too) lists by name."""
    try:
        versions = client(settings).search_model_versions(f"name = '{settings.registered_model}'")
    except mlflow.exceptions.MlflowException:
        return None  # the registered model does not exist yet
    found = [v.version for v in versions if v.tags.get(VERSION_TAG) == version]
    return str(max(found, key=int)) if found else None


def register(mlflow_module, settings: MlflowSection, folder: ModelFolder, version: str) -> str:
    """Log the model folder as a pyfunc in the active run and register it (once per model version;
    a version already registered is returned as it is). Returns the registered version."""
    existing = registered_version(settings, version)
    if existing is not None:
        return existing
    if settings.registry_uri:
        mlflow_module.set_registry_uri(settings.registry_uri)
    with tempfile.TemporaryDirectory(prefix="rec-model-") as tmp:
        staged = Path(tmp) / folder.root.name  # what a tracking server keeps: no checkpoints, lock or reports
        staged.mkdir()
        for path in folder.artifacts():
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, staged / path.name)
        info = mlflow_module.pyfunc.log_model(
            name="item_embeddings", python_model=ItemEmbeddingModel(), artifacts={ARTIFACT: str(staged)},
            signature=signature(), code_paths=[str(Path(rec_lib.__file__).parent)],
            pip_requirements=requirements(), registered_model_name=settings.registered_model,
            tags={VERSION_TAG: version})
    registered = str(info.registered_model_version)
    client(settings).set_model_version_tag(settings.registered_model, registered, VERSION_TAG, version)
    return registered


def set_champion(settings: MlflowSection, registered: str) -> None:
    client(settings).set_registered_model_alias(settings.registered_model, CHAMPION, registered)


def champion(settings: MlflowSection) -> Optional[str]:
    """The registered version the alias `champion` names, or None."""
    try:
        return str(client(settings).get_model_version_by_alias(settings.registered_model, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None


def champion_uri(settings: MlflowSection) -> str:
    return f"models:/{settings.registered_model}@{CHAMPION}"


__all__ = ["ItemEmbeddingModel", "register", "registered_version", "set_champion", "champion", "champion_uri",
           "CHAMPION", "VERSION_TAG"]
