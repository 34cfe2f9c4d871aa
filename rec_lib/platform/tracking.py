"""MLflow runs for the jobs: one place for the tracking set-up, off when no URI is configured."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Iterable, Iterator, Mapping, Optional

from rec_lib.core.config import MlflowSection


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


def flat_params(sections: Mapping[str, object], **extra: object) -> Dict[str, str]:
    """MLflow parameters: each config section's fields as `section.field`, then `extra`; values as
    text cut at 500 characters (the longest value every MLflow server accepts)."""
    params = {f"{name}.{k}": v for name, section in sections.items() for k, v in asdict(section).items()}
    return {k: str(v)[:500] for k, v in {**params, **extra}.items()}


def log_model_folder(mlflow, artifacts: Iterable[Path]) -> None:
    """Log a model folder's artifacts (`ModelFolder.artifacts()`: weights, vocabularies, description)
    as the run's `model` artifacts, so the run that produced or measured a model carries it."""
    for path in artifacts:
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=f"model/{path.name}")
        else:
            mlflow.log_artifact(str(path), artifact_path="model")
