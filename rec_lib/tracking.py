"""MLflow runs for the jobs: one place for the tracking set-up, off when no URI is configured."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
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
