"""Notebook parameters that work the same on Databricks and off it.

On Databricks a parameter is a text widget (set it at the top of the notebook, or pass it from a
job's notebook task); elsewhere (a local Jupyter, the tests) it is the environment variable
`REC_<NAME>`; failing both, the default.

The config file's default is found, not assumed: a Databricks notebook runs in its own folder (a
Repo's `notebooks/`), a local one wherever Jupyter was started, so `conf/<file>` is looked up from
the working folder upwards. On Databricks the default is the cluster's config, as the bundle's.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from rec_lib.core.config import split_settings


def parameter(name: str, default: str, dbutils: Optional[object] = None) -> str:
    """`dbutils` is the notebook's global of that name (None off Databricks)."""
    if dbutils is not None:
        dbutils.widgets.text(name, default)
        return dbutils.widgets.get(name)
    return os.environ.get(f"REC_{name.upper()}", default)


def default_conf(dbutils: Optional[object] = None, start: Optional[Path] = None) -> str:
    """`conf/cluster.yaml` on Databricks, `conf/local.yaml` elsewhere, in the working folder (or
    `start`) or the nearest folder above it that holds it; the relative name if none does (the
    config loader then says it was not found)."""
    name = Path("conf") / ("cluster.yaml" if dbutils is not None else "local.yaml")
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / name).is_file():
            return str(folder / name)
    return str(name)


def settings(text: str) -> List[str]:
    """A parameter of space-separated key=value settings, as the jobs' --set takes them."""
    return split_settings(text)


__all__ = ["default_conf", "parameter", "settings"]
