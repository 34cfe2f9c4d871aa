"""Column expressions every stage's Spark code shares (lazy: building one runs nothing)."""
from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column
from pyspark.sql import functions as F

from rec_lib.core.clock import SECONDS_PER_DAY, utc_naive


def timestamp_lit(ts: datetime) -> Column:
    """`ts` as a Spark timestamp literal (see core.clock.utc_naive)."""
    return F.lit(utc_naive(ts)).cast("timestamp")


def days_between(later: Column, earlier: Column) -> Column:
    """(later - earlier) in days, fractional: a double, negative when `later` is earlier."""
    return (later.cast("double") - earlier.cast("double")) / SECONDS_PER_DAY


def quoted(name: str) -> str:
    """`name` as one SQL identifier: in backticks, a backtick inside doubled (an export header
    such as ``a`b`` or ``price.eur``, a table path)."""
    return "`" + str(name).replace("`", "``") + "`"


def column(name: str) -> Column:
    """The column called `name`, whatever characters it holds (dots, backticks, spaces)."""
    return F.col(quoted(name))
