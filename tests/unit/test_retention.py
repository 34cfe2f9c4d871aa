"""score.keep_run_dates: the newest N run dates by date stay, whatever order they were written in,
and the date a run has just written is never the one removed."""
from datetime import date

from rec_lib.scoring.retention import run_dates_to_drop

D = [date(2026, 10, d) for d in (28, 29, 30, 31)]


def test_the_newest_dates_stay_and_the_rest_go_oldest_first():
    assert run_dates_to_drop([D[3], D[0], D[2], D[1]], keep=2) == [D[0], D[1]]
    assert run_dates_to_drop(D, keep=4) == [] and run_dates_to_drop(D, keep=9) == []


def test_zero_keeps_every_date_and_repeats_count_once():
    assert run_dates_to_drop(D, keep=0) == []
    assert run_dates_to_drop([D[1], D[1], D[2]], keep=1) == [D[1]]


def test_the_date_just_written_stays_even_when_older():
    # a backfill of the 28th with 2 kept: the 28th stays now; the next run's retention removes it
    assert run_dates_to_drop(D, keep=2, written=D[0]) == [D[1]]
    assert run_dates_to_drop(D + [date(2026, 11, 1)], keep=2) == [D[0], D[1], D[2]]
