"""The feature job's run ledger and quarantine threshold (rec_lib.features.ledger), by hand."""
from datetime import datetime

from rec_lib.features.ledger import ExportFile, Unfinished, fingerprint, over_quarantine_share, resume

A = ExportFile("events", "file:/in/events.csv", 1200, 1_764_000_000_000, None)
B = ExportFile("items", "file:/in/items.csv", 300, 1_764_000_000_000, None)


def test_the_fingerprint_changes_with_any_file_and_not_with_their_order():
    assert fingerprint([A, B]) == fingerprint([B, A])
    assert fingerprint([A, B]) != fingerprint([A])
    grown = ExportFile(A.source, A.path, A.size + 1, A.mtime, None)
    touched = ExportFile(A.source, A.path, A.size, A.mtime + 1, None)
    summed = ExportFile(A.source, A.path, A.size, A.mtime, "MD5-of-0MD5-of-512CRC32C:00ff")
    assert len({fingerprint([A, B]), fingerprint([grown, B]), fingerprint([touched, B]), fingerprint([summed, B])}) == 4


def test_an_unfinished_run_on_the_same_exports_is_completed_under_its_own_id():
    old = Unfinished("20261201T000000Z-aaaaaa", "f1", datetime(2026, 12, 1))
    run = resume([old], "f1", None, "20261202T000000Z-bbbbbb")
    assert run.run_id == "20261201T000000Z-aaaaaa" and run.completes == "20261201T000000Z-aaaaaa"
    assert run.closed == ()
    assert run.note == ("run 20261201T000000Z-aaaaaa (started 2026-12-01 00:00:00) did not complete: the same "
                        "exports are loaded again as run 20261201T000000Z-aaaaaa")


def test_an_unfinished_run_on_other_exports_is_closed_and_reported():
    old = Unfinished("r-old", "f0", datetime(2026, 11, 30, 6, 5, 4))
    same = Unfinished("r-same", "f1", datetime(2026, 12, 1))
    run = resume([same, old], "f1", None, "r-new")
    assert run.run_id == "r-same" and run.closed == (old,)
    assert "run r-old (started 2026-11-30 06:05:04) did not complete and the exports have changed since" in run.note
    # no unfinished run: a fresh id and nothing to say; a configured id is kept and closes the others
    assert resume([], "f1", None, "r-new") == resume([], "f1", None, "r-new")
    assert resume([], "f1", None, "r-new").run_id == "r-new" and resume([], "f1", None, "r-new").note is None
    configured = resume([same], "f1", "nightly", "r-new")
    assert configured.run_id == "nightly" and configured.completes == "r-same" and configured.closed == (same,)


def test_an_export_above_its_quarantine_share_is_named_with_its_reasons():
    counts = {"items": (9, {"missing_title": 1}), "events": (4, {"unknown_item": 4, "bad_ts": 2}), "users": (0, {})}
    lines = over_quarantine_share(counts, {"items": 0.1, "events": 0.5, "users": 0.0})
    # items: 1 of 10 = 10.0%, not above 0.1; events: 6 of 10 = 60.0% > 50%; users: no rows at all
    assert lines == ["events: 6 of 10 rows (60.0%) would be quarantined (unknown_item: 4, bad_ts: 2), above "
                     "input.max_quarantine_share.events=0.5"]
    assert over_quarantine_share({"events": (0, {"bad_ts": 3})}, {"events": 1.0}) == []
    assert len(over_quarantine_share({"events": (0, {"bad_ts": 3})}, {"events": 0.99})) == 1
