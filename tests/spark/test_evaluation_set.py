"""The evaluation's window on Spark: each new item's users numbered by arrival, a seeded sample of
the test users drawn by Spark, and only the revealed users' and the ranked users' pairs brought to
the driver (a window with many more users than evaluate.max_users moves none of the others)."""
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from rec_lib.core.config import EvaluateJobConfig, load_config
from rec_lib.evaluation.window import evaluation_set, sample_users, window_pairs
from tests.helpers import REPO, RowGuard

T0 = datetime(2026, 10, 20)


def _interactions(spark, rows):
    return spark.createDataFrame(pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "type_weight"]),
                                 "user_id string, item_id string, ts timestamp, type_weight double")


def test_arrivals_are_numbered_by_time_then_user(spark):
    day = timedelta(days=1)
    events = _interactions(spark, [("u2", "A", T0 + 5 * day, 1.0), ("u1", "A", T0 + 5 * day, 2.0),
                                   ("u3", "A", T0 + day, 1.0), ("u3", "A", T0 + 2 * day, 8.0),
                                   ("u1", "B", T0 + 2 * day, 1.0), ("u9", "C", T0 + day, 1.0),
                                   ("u4", "A", T0 - day, 1.0)])  # before the window
    new = spark.createDataFrame(pd.DataFrame({"item_id": ["A", "B"]}))
    got = (window_pairs(events, new, T0, T0 + 7 * day).toPandas().sort_values(["item_id", "arrival"]))
    # A: u3 first (day 1, its first event's weight 1), then u1 and u2 tied at day 5, by user_id
    assert list(zip(got.item_id, got.user_id, got.arrival, got.first_weight)) == [
        ("A", "u3", 0, 1.0), ("A", "u1", 1, 2.0), ("A", "u2", 2, 1.0), ("B", "u1", 0, 1.0)]


def test_the_sample_of_test_users_is_seeded_sorted_and_bounded(spark):
    users = spark.createDataFrame(pd.DataFrame({"user_id": [f"u{i}" for i in range(10)]}))
    assert list(sample_users(users, 0, 1)) == sorted(f"u{i}" for i in range(10))
    a, b, c = sample_users(users, 4, 7), sample_users(users, 4, 7), sample_users(users, 4, 8)
    assert len(a) == 4 and list(a) == list(b) == sorted(a) and set(a) <= {f"u{i}" for i in range(10)}
    assert list(a) != list(c)  # another seed, another sample


def test_a_wide_window_brings_only_the_revealed_and_the_ranked_pairs_to_the_driver(spark, monkeypatch):
    hour = timedelta(hours=1)
    rows = [(f"a{i:03d}", "A", T0 + i * hour, 1.0) for i in range(300)]  # A: 300 users in the window
    rows += [(f"c{i}", "C", T0 + i * hour, 1.0) for i in range(5)]  # C: 5 users
    rows += [("b1", "B", T0, 1.0), ("b2", "B", T0 + hour, 1.0)]  # B: 2 users, not more than max(ks) = 3
    rows += [(f"w{i}", "W", T0 - 30 * hour, 1.0) for i in range(40)]  # W: seen before the cutoff, not new
    events = _interactions(spark, rows)
    items = spark.createDataFrame(pd.DataFrame({"item_id": ["A", "B", "C", "W"],
                                                "launch_ts": [T0 - 24 * hour] * 4}),
                                  "item_id string, launch_ts timestamp")
    ev = load_config(EvaluateJobConfig, REPO / "conf" / "local.yaml",
                     ["evaluate.cutoff=2026-10-20T00:00:00Z", "evaluate.test_days=30", "evaluate.ks=[0, 1, 3]",
                      "evaluate.max_users=50", "evaluate.window=test"]).evaluate
    guard = RowGuard(60)  # the 300 users of A, or the 299 test users, would not pass
    guard.install(monkeypatch)
    ts = evaluation_set(spark, events, items, ev)
    assert list(ts.items) == ["A", "C"] and ts.n_new == 3  # A, B and C are new; B has too few users
    # test pairs: every user after each item's first 3: 297 of A, 2 of C; 50 of them ranked
    assert (ts.n_test_pairs, ts.n_test_users, len(ts.users)) == (299, 299, 50)
    assert list(ts.users) == sorted(ts.users) and list(ts.users) == list(evaluation_set(spark, events, items, ev).users)
    revealed = ts.pairs[ts.pairs.arrival < 3]
    assert sorted(revealed.user_id) == ["a000", "a001", "a002", "c0", "c1", "c2"]
    assert set(ts.test_pairs.user_id) == set(ts.users) and len(ts.test_pairs) == 50
    np.testing.assert_array_equal(ts.popularity, [300, 5])
    assert set(ts.needed) == set(ts.users) | set(revealed.user_id)
    assert guard.largest[0] <= 60
