"""Time, and a run's identity: its 'now' (wall clock, or a replayed day) and its id, shared by every stage."""
from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Optional, Tuple

from rec_lib.core.config import RunSection
from rec_lib.core.errors import ConfigError

SECONDS_PER_DAY = 86400.0
# how far a configured day may lie ahead of the wall clock (time zones, a clock a little off): a run
# dated further ahead would stay the newest for good (recommendations_latest, retention, the gate)
MAX_AHEAD = timedelta(days=1)


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def resolve_now(configured: Optional[str]) -> datetime:
    if configured is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(configured.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"run.now must be ISO-8601 (e.g. 2026-11-01T00:00:00Z), got {configured!r}") from exc
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def utc_naive(ts: datetime) -> datetime:
    """The UTC wall time without a zone, as Spark timestamps and the Delta tables hold it (the
    sessions run in UTC); a naive value is taken as UTC already."""
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


def epoch_s(ts: datetime) -> float:
    """Seconds since the epoch; a naive value is taken as UTC (as Spark hands timestamps back here)."""
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()


def check_not_ahead(when: datetime | date, key: str, wall: Optional[datetime] = None) -> None:
    """A ConfigError when the configured `when` (a time, or a day from its start) lies more than
    MAX_AHEAD after the wall clock (`wall`: now)."""
    wall = wall or datetime.now(timezone.utc)
    if not isinstance(when, datetime):
        when = datetime.combine(when, time(), timezone.utc)
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    if when - wall > MAX_AHEAD:
        raise ConfigError(f"{key} {when:%Y-%m-%d %H:%M} UTC lies ahead of the wall clock ({wall:%Y-%m-%d %H:%M} UTC): "
                          "a replayed day must be in the past, or its run would stay the newest for good")


def run_now(run: RunSection) -> datetime:
    """The run's now (`resolve_now` of run.now), refused where it lies ahead of the wall clock."""
    now = resolve_now(run.now)
    if run.now is not None:
        check_not_ahead(now, "run.now")
    return now


def run_identity(run: RunSection) -> Tuple[datetime, str]:
    """(now in UTC, run id): the configured values, else the wall clock and a fresh id."""
    now = run_now(run)
    return now, run.run_id or new_run_id(now)
