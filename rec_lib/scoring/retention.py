"""How many run dates `recommendations` keeps (`score.keep_run_dates`): the newest N by date,
whatever order they were written in (a replayed past date does not push out a newer one), and
never the date the run has just written (a deliberate backfill of an old date stays until a
later run's retention)."""
from __future__ import annotations

from datetime import date
from typing import Iterable, List, Optional


def run_dates_to_drop(run_dates: Iterable[date], keep: int, written: Optional[date] = None) -> List[date]:
    """The run dates beyond the `keep` newest, oldest first, but not `written`; none when `keep`
    is 0 (keep all)."""
    if keep <= 0:
        return []
    newest_first = sorted(set(run_dates), reverse=True)
    return sorted(d for d in newest_first[keep:] if d != written)


__all__ = ["run_dates_to_drop"]
