"""Notebook parameters that work the same on Databricks and off it.

On Databricks a parameter is a text widget (set it at the top of the notebook, or pass it from a
job's notebook task); elsewhere (a local Jupyter, the tests) it is the environment variable
`REC_<NAME>`; failing both, the default.
"""
from __future__ import annotations

import os
from typing import List, Optional

from rec_lib.core.config import split_settings


def parameter(name: str, default: str, dbutils: Optional[object] = None) -> str:
    """`dbutils` is the notebook's global of that name (None off Databricks)."""
    if dbutils is not None:
        dbutils.widgets.text(name, default)
        return dbutils.widgets.get(name)
    return os.environ.get(f"REC_{name.upper()}", default)


def settings(text: str) -> List[str]:
    """A parameter of space-separated key=value settings, as the jobs' --set takes them."""
    return split_settings(text)


__all__ = ["parameter", "settings"]
