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
