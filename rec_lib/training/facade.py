"""What other stages use of training, in one place: fit a model on what precedes a cutoff, read its
parts (the training data's catalogue and users, the two sides of the served score, the blend, the
few-shot settings), and publish a model version to the registry.

The evaluation imports training only through this module (tests/unit/test_architecture.py holds
it), so training's own modules can change shape without the evaluation following them. Importing it
loads no Spark, TensorFlow or MLflow: the pure parts (the blend, few-shot, the score's sides) come in
at once, the Spark-side ones (fitting, the training data, the registry) when they are called, so the
evaluation's pure modules stay pure.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from rec_lib.core.config import MlflowSection, TrainJobConfig, TrainSection
from rec_lib.core.errors import RecError
from rec_lib.training.blend import COMPONENTS, Blend, BlendWeights
from rec_lib.training.few_shot import FewShotSettings, pace_days, unit
from rec_lib.training.sides import ItemSides, UserSides, adapt_item, scores, take

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from rec_lib.core.schema import TableSpec
    from rec_lib.training.data import TrainingData
    from rec_lib.training.fit import FittedModel


def fit_model(spark: "SparkSession", cfg: TrainJobConfig, examples_table: "TableSpec") -> "FittedModel":
    """A model trained (Horovod on Spark tasks) on what precedes `cfg.train.cutoff`, with its parts
    (rec_lib.training.fit.FittedModel)."""
    from rec_lib.training.fit import fit_model as fit

    return fit(spark, cfg, examples_table=examples_table)


def before_cutoff(interactions: "DataFrame", cutoff: Optional[datetime]) -> "DataFrame":
    """The interactions the training data may see: before `cutoff` (all of them for None)."""
    from rec_lib.training.pairs import before_cutoff as before

    return before(interactions, cutoff)


def pair_weights(interactions: "DataFrame") -> "DataFrame":
    """user_id, item_id, weight_sum: each pair's event-type weights summed, as training weighs them."""
    from rec_lib.training.pairs import pair_weights as weights

    return weights(interactions)


def users_of(data: "TrainingData", user_ids: np.ndarray) -> pd.DataFrame:
    """The training data's rows (history, n_history, ...) of the users of `user_ids` (a bounded lookup)."""
    from rec_lib.training.data import users_of as rows

    return rows(data, user_ids)


class UnpublishableModel(RecError):
    """A model version the registry cannot take: its folder is missing or incomplete."""


def register_version(spark: "SparkSession", mlflow_settings: MlflowSection, train: TrainSection, version: str) -> str:
    """The registry's version of model `version`, registered from its model folder now if training
    did not (tracking was off, or the version was complete already); a model on a URI is brought
    to the driver first."""
    from rec_lib.platform.tracking import mlflow_run
    from rec_lib.training import registry
    from rec_lib.training.store import ModelStore

    registered = registry.registered_version(mlflow_settings, version)
    if registered is not None:
        return registered
    store = ModelStore.of(train)
    folder = store.fetch(spark, version)
    if not folder.is_complete():
        raise UnpublishableModel(f"the production model {version} has no complete folder at {store.uri(version)} to "
                                 "register; run the training job with this train.model_dir")
    with mlflow_run(mlflow_settings, f"register {version}") as mlflow:
        mlflow.set_tag("model_version", version)
        return registry.register(mlflow, mlflow_settings, folder, version)


def set_champion(mlflow_settings: MlflowSection, registered: Optional[str]) -> None:
    """Point the registry's `champion` alias at a registered version."""
    from rec_lib.training import registry

    registry.set_champion(mlflow_settings, registered)


# FittedModel, TrainingData and ModelFolder are annotations only: import them under TYPE_CHECKING
__all__ = ["COMPONENTS", "Blend", "BlendWeights", "FewShotSettings", "ItemSides", "UnpublishableModel", "UserSides", "adapt_item", "before_cutoff", "fit_model", "pace_days",
           "pair_weights", "register_version", "scores", "set_champion", "take", "unit", "users_of"]
