"""MLflow runs for the jobs: one place for the tracking set-up, off when no URI is configured."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from rec_lib.config import MlflowSection


@contextmanager
def mlflow_run(settings: MlflowSection, run_name: str) -> Iterator[Optional[object]]:
    """Yield the `mlflow` module inside an active run of the configured experiment, or None when
    tracking is off (`mlflow.tracking_uri: ""`)."""
    if not settings.tracking_uri:
        yield None
        return
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment)
    with mlflow.start_run(run_name=run_name):
        yield mlflow


def log_model_folder(mlflow, folder: Path) -> None:
    """Log a model folder (weights, vocabularies, description; not its checkpoints) as the run's
    `model` artifacts, so the run that produced or measured a model carries it."""
    for path in sorted(Path(folder).iterdir()):
        if path.name == "checkpoints":
            continue
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=f"model/{path.name}")
        else:
            mlflow.log_artifact(str(path), artifact_path="model")
