"""A run's now and run date: a replayed day is in the past; one ahead of the wall clock is refused."""
from datetime import date, datetime, timezone

import pytest

from rec_lib.core.clock import check_not_ahead, run_identity, run_now
from rec_lib.core.config import RunSection
from rec_lib.core.errors import ConfigError

WALL = datetime(2026, 12, 7, 16, 0, tzinfo=timezone.utc)


def test_a_day_up_to_one_day_ahead_passes_and_later_ones_are_refused_naming_the_key():
    check_not_ahead(datetime(2026, 12, 8, 16, 0, tzinfo=timezone.utc), "run.now", WALL)  # exactly one day ahead
    check_not_ahead(date(2026, 12, 8), "score.run_date", WALL)  # the day's start: 8 hours ahead
    with pytest.raises(ConfigError, match="score.run_date 2026-12-09 00:00 UTC lies ahead of the wall clock "
                                          r"\(2026-12-07 16:00 UTC\)"):
        check_not_ahead(date(2026, 12, 9), "score.run_date", WALL)  # 32 hours ahead
    with pytest.raises(ConfigError, match="run.now 2026-12-08 16:01 UTC lies ahead"):
        check_not_ahead(datetime(2026, 12, 8, 16, 1), "run.now", WALL)  # naive: taken as UTC


def test_run_now_replays_the_past_and_refuses_the_far_future():
    now, run_id = run_identity(RunSection(now="2026-11-01T00:00:00Z", run_id="r1"))
    assert (now, run_id) == (datetime(2026, 11, 1, tzinfo=timezone.utc), "r1")
    with pytest.raises(ConfigError, match="run.now 2099-01-01 00:00 UTC lies ahead of the wall clock"):
        run_now(RunSection(now="2099-01-01T00:00:00Z", run_id=None))
    assert run_now(RunSection(now=None, run_id=None)).tzinfo is timezone.utc  # the wall clock itself
