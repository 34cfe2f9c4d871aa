"""Unit tests of the feature transforms on tiny inline data, against hand-worked values."""
from datetime import datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from rec_lib.core.schema import EVENTS_INPUT, ITEMS_INPUT, USERS_INPUT, Reason
from rec_lib.features import transforms as fx
from tests.helpers import raw_export, rows_by


def none_first(row):
    return tuple((x is not None, x if x is not None else "") for x in row)


def now_ts():
    return F.lit(datetime(2026, 11, 1)).cast("timestamp")

WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


def test_parse_timestamp_accepts_iso_text_and_epoch_seconds(spark):
    df = spark.createDataFrame([("2026-01-01T10:00:00Z",), ("1767225600",), ("1767225600.5",),
                                ("2026-01-01 10:00:00+02:00",), ("2026-01-01",), ("yesterday",), ("",)], "raw string")
    got = [r[0] for r in df.select(fx.parse_timestamp(F.col("raw"))).collect()]
    # 1767225600 s after the epoch is 2026-01-01T00:00:00Z; +02:00 is two hours ahead of UTC
    assert got == [datetime(2026, 1, 1, 10), datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 0, 500000),
                   datetime(2026, 1, 1, 8), datetime(2026, 1, 1), None, None]


def test_clean_id_and_clean_text(spark):
    df = spark.createDataFrame([(" 42 ", "  a\n\tb  "), ("42.0", "   "), ("A-1", None)], "id string, txt string")
    got = [(r[0], r[1]) for r in df.select(fx.clean_id(F.col("id")), fx.clean_text(F.col("txt"))).collect()]
    assert got == [("42", "a b"), ("42", None), ("A-1", None)]


def test_parse_number_rejects_text(spark):
    df = spark.createDataFrame([("9.5",), ("-1",), ("1e3",), ("abc",), ("",), ("1,5",), ("infinite",)], "raw string")
    assert [r[0] for r in df.select(fx.parse_number(F.col("raw"))).collect()] == [9.5, -1.0, 1000.0, None, None, None,
                                                                                   None]


def test_validate_items_gives_one_reason_per_bad_row(spark):
    good = {"item_id": "I1", "title": "Red Mug", "description": "Nice\n  mug", "price": "9.5", "launch_ts": "2026-10-01"}
    raw = raw_export(spark, ITEMS_INPUT, [
        good,
        {"item_id": "", "title": "No id"},
        {"item_id": "I3", "title": " "},
        {"item_id": "I4", "title": "X", "price": "abc"},
        {"item_id": "I5", "title": "X", "price": "-1"},
        {"item_id": "I6", "title": "X", "launch_ts": "2099-01-01"},
        {"item_id": "I8", "title": "X", "launch_ts": "soon"},
        dict(good),  # exact copy of the first row
        {"item_id": "I7", "title": "A"},
        {"item_id": "I7", "title": "B"},  # same id, other content
        {"item_id": "I9", "title": "Caf\ufffd"},  # bytes not in the export's encoding
        {"item_id": "I10", "title": "Mug", "brand": "Caf\ufffd Co"},
        {"item_id": "I11", "title": "Antoine de Saint-ExupÃ©ry"},  # decoded, if wrong upstream: kept
    ])
    validated = fx.validate_items(raw, now_ts(), max_future_hours=24)
    reasons = sorted(((r["item_id"], r["title"], r["reason"]) for r in validated.collect()), key=none_first)
    assert reasons == [
        ("", "No id", Reason.MISSING_ITEM_ID),
        ("I1", "Red Mug", None),
        ("I1", "Red Mug", Reason.EXACT_DUPLICATE),
        ("I10", "Mug", Reason.INVALID_ENCODING),
        ("I11", "Antoine de Saint-ExupÃ©ry", None),
        ("I3", None, Reason.MISSING_TITLE),
        ("I4", "X", Reason.BAD_PRICE),
        ("I5", "X", Reason.NEGATIVE_PRICE),
        ("I6", "X", Reason.FUTURE_TS),
        # the kept copy of a conflicting key is the one whose raw row sorts first ("A" < "B")
        ("I7", "A", None),
        ("I7", "B", Reason.DUPLICATE_KEY),
        ("I8", "X", Reason.BAD_TS),
        ("I9", "Caf\ufffd", Reason.INVALID_ENCODING),
    ]
    i1 = [r for r in fx.accepted(validated).collect() if r["item_id"] == "I1"][0]
    assert (i1["description"], i1["price"], i1["launch_ts"]) == ("Nice mug", 9.5, datetime(2026, 10, 1))


def min_ts():
    return F.lit(datetime(1990, 1, 1)).cast("timestamp")


def test_non_finite_numbers_old_timestamps_and_long_texts(spark):
    raw = raw_export(spark, ITEMS_INPUT, [
        {"item_id": "I1", "title": "Mug " * 4, "description": "abcdefghijkl", "price": "1e999"},
        {"item_id": "I2", "title": "Cup", "price": "NaN"},
        {"item_id": "I3", "title": "Pot", "price": "-Infinity"},
        {"item_id": "I4", "title": "Jar", "launch_ts": "0"},  # epoch 0: 1970-01-01, before min_ts
        {"item_id": "I5", "title": "Bowl", "launch_ts": "0001-01-01"},
        {"item_id": "I6", "title": "A long title here", "description": "short", "launch_ts": "1990-01-01"},
    ])
    validated = fx.validate_items(raw, now_ts(), 24, min_ts=min_ts(), max_text_chars=10)
    got = {r["item_id"]: (r["reason"], r["title"], r["description"], r[fx.TEXT_CUT])
           for r in validated.select("item_id", "reason", "title", "description", fx.TEXT_CUT).collect()}
    # 1e999 overflows a double: Infinity, quarantined like NaN and -Infinity (not as negative)
    assert [got[i][0] for i in ("I1", "I2", "I3")] == [Reason.NON_FINITE] * 3
    assert got["I4"][0] == got["I5"][0] == Reason.OLD_TS
    # "Mug Mug Mug Mug" folds to 15 characters and is cut to 10; 1990-01-01 itself is in range
    assert got["I6"] == (None, "A long tit", "short", True)
    assert got["I1"][1:] == ("Mug Mug Mu", "abcdefghij", True)
    assert got["I2"][1:] == ("Cup", None, False)
    assert fx.TEXT_CUT not in fx.accepted(validated).columns


def test_validate_events_weights_types_and_catalogue(spark):
    catalogue = spark.createDataFrame([("I1",), ("I2",)], "item_id string")
    raw = raw_export(spark, EVENTS_INPUT, [
        {"user_id": "u1", "item_id": "I1", "event_type": "View", "ts": "2026-10-30T00:00:00Z"},
        {"user_id": "u1", "item_id": "I1", "event_type": "purchase", "ts": "1793318400", "value": "2"},
        {"user_id": "u1", "item_id": "I1", "event_type": "wishlist", "ts": "2026-10-30T00:00:00Z"},
        {"user_id": "u1", "item_id": "I9", "event_type": "view", "ts": "2026-10-30T00:00:00Z"},
        {"user_id": "u1", "item_id": "I2", "event_type": "view", "ts": ""},
        {"user_id": "u1", "item_id": "I2", "event_type": "view", "ts": "2026-10-30", "value": "lots"},
        {"user_id": None, "item_id": "I2", "event_type": "view", "ts": "2026-10-30"},
        {"user_id": "u2", "item_id": "I2", "event_type": "click", "ts": "2026-11-03T00:00:00Z"},
        {"user_id": "u3", "item_id": "I2", "event_type": "view", "ts": "-86400"},
        {"user_id": "u4", "item_id": "I2", "event_type": "view", "ts": "2026-10-30", "value": "inf"},
        {"user_id": "u\ufffd", "item_id": "I2", "event_type": "click", "ts": "2026-10-30"},  # an id not in the encoding
    ])
    validated = fx.validate_events(raw, catalogue, WEIGHTS, now_ts(), max_future_hours=24, min_ts=min_ts())
    got = sorted(((r["item_id"], r["event_type"], r["reason"], r["type_weight"]) for r in validated.collect()),
                 key=none_first)
    assert got == [
        ("I1", "purchase", None, 8.0),  # 1793318400 = 2026-10-30T00:00:00Z
        ("I1", "view", None, 1.0),  # event types are matched case-insensitively
        ("I1", "wishlist", Reason.UNKNOWN_EVENT_TYPE, None),
        ("I2", "click", Reason.FUTURE_TS, 2.0),  # 2 days after now > 24 h allowed
        ("I2", "click", Reason.INVALID_ENCODING, 2.0),
        ("I2", "view", Reason.MISSING_TS, 1.0),
        ("I2", "view", Reason.MISSING_USER_ID, 1.0),
        ("I2", "view", Reason.NON_FINITE, 1.0),
        ("I2", "view", Reason.OLD_TS, 1.0),  # -86400 s: 1969-12-31
        ("I2", "view", Reason.BAD_VALUE, 1.0),
        ("I9", "view", Reason.UNKNOWN_ITEM, 1.0),
    ]
    purchase = [r for r in fx.accepted(validated).collect() if r["event_type"] == "purchase"][0]
    assert (purchase["ts"], purchase["value"], purchase["event_date"]) == (
        datetime(2026, 10, 30), 2.0, datetime(2026, 10, 30).date())


def test_validate_users_keeps_extra_columns_as_attributes(spark):
    raw = raw_export(spark, USERS_INPUT, [
        {"user_id": "u1", "signup_ts": "2026-01-01", "country": "DE", "age_band": None},
        {"user_id": "u2", "signup_ts": "never", "country": "FR", "age_band": "25-34"},
        {"user_id": "u3", "signup_ts": "2026-01-01", "country": "M\ufffdnchen", "age_band": None},
    ])
    validated = fx.validate_users(raw, ["country", "age_band"], now_ts(), max_future_hours=24)
    got = rows_by(validated, "user_id")
    assert got["u1"]["attributes"] == {"country": "DE"} and got["u1"]["reason"] is None
    assert got["u2"]["reason"] == Reason.BAD_TS
    assert got["u3"]["reason"] == Reason.INVALID_ENCODING


def test_user_rows_derives_users_seen_only_in_events(spark):
    exported = spark.createDataFrame([("u1", None, {"country": "DE"})],
                                     "user_id string, signup_ts timestamp, attributes map<string,string>")
    events = spark.createDataFrame([("u1",), ("u2",), ("u2",)], "user_id string")
    got = rows_by(fx.user_rows(exported, events, "r1"), "user_id")
    assert {u: r["derived_from_events"] for u, r in got.items()} == {"u1": False, "u2": True}
    assert got["u2"]["attributes"] == {}


INTERACTIONS = [
    # user, item, type, ts, weight
    ("u1", "I1", "view", datetime(2026, 10, 30), 1.0),
    ("u1", "I1", "click", datetime(2026, 10, 1), 2.0),
    ("u2", "I1", "purchase", datetime(2026, 10, 31), 8.0),
    ("u1", "I3", "view", datetime(2026, 10, 31), 1.0),
]


@pytest.fixture
def small_world(spark):
    items = spark.createDataFrame([("I1", "kitchen", datetime(2026, 10, 1)), ("I2", "kitchen", None),
                                   ("I3", "books", datetime(2026, 10, 20))],
                                  "item_id string, category string, launch_ts timestamp")
    interactions = spark.createDataFrame(INTERACTIONS, "user_id string, item_id string, event_type string, "
                                                       "ts timestamp, type_weight double")
    users = spark.createDataFrame([("u1",), ("u2",), ("u3",)], "user_id string")
    return items, interactions, users


def test_item_stats_counts_and_decayed_weight(spark, small_world):
    items, interactions, _ = small_world
    as_of_ts = fx.as_of(newest(interactions))  # newest event: 2026-10-31
    pairs = fx.user_item_pairs(interactions, as_of_ts, half_life_days=30)
    got = rows_by(fx.item_stats(items, pairs, as_of_ts), "item_id")
    i1 = got["I1"]
    assert (i1["n_events"], i1["n_users"], i1["n_views"], i1["n_clicks"], i1["n_purchases"]) == (3, 2, 1, 1, 1)
    # view 1 day old: 0.5 ** (1/30) = 0.97716; click 30 days old: 2 * 0.5 = 1; purchase today: 8
    assert i1["weighted_interactions"] == pytest.approx(0.9771599684 + 1.0 + 8.0, abs=1e-8)
    assert i1["age_days"] == pytest.approx(30.0)  # launched 2026-10-01, as of 2026-10-31
    assert (i1["first_interaction_ts"], i1["last_interaction_ts"]) == (datetime(2026, 10, 1), datetime(2026, 10, 31))
    # a new item without interactions is still listed, with zeros
    assert (got["I2"]["n_events"], got["I2"]["weighted_interactions"], got["I2"]["age_days"]) == (0, 0.0, None)


def test_user_features_mix_recency_and_recent_items(spark, small_world):
    items, interactions, users = small_world
    as_of_ts = fx.as_of(newest(interactions))
    got = rows_by(fx.user_features(users, items, fx.user_item_pairs(interactions, as_of_ts, 30), as_of_ts, 5), "user_id")
    u1 = got["u1"]
    # kitchen: 0.97716 (view) + 1.0 (click) = 1.97716; books: 1.0 -> shares 0.66411 / 0.33589
    assert u1["category_mix"]["kitchen"] == pytest.approx(0.6641094162, abs=1e-8)
    assert u1["category_mix"]["books"] == pytest.approx(0.3358905838, abs=1e-8)
    assert u1["top_category"] == "kitchen"
    assert u1["recent_items"] == ["I3", "I1"]  # I3 seen 10-31, I1 last seen 10-30
    assert (u1["n_events"], u1["n_items"], u1["recency_days"]) == (3, 2, 0.0)
    assert got["u2"]["n_purchases"] == 1
    u3 = got["u3"]
    assert (u3["n_events"], u3["recent_items"], u3["category_mix"]) == (0, None, None)


def test_recent_items_are_capped(spark, small_world):
    items, interactions, users = small_world
    as_of_ts = fx.as_of(newest(interactions))
    got = rows_by(fx.user_features(users, items, fx.user_item_pairs(interactions, as_of_ts, 30), as_of_ts, 1), "user_id")
    assert got["u1"]["recent_items"] == ["I3"]


def test_quarantine_ids_are_stable_and_count_copies(spark):
    raw = raw_export(spark, EVENTS_INPUT, [{"user_id": "", "item_id": "I1", "event_type": "view", "ts": "2026-10-01"}] * 2)
    rejected = fx.rejected(fx.validate_events(raw, spark.createDataFrame([("I1",)], "item_id string"), WEIGHTS, now_ts(), 24))
    first = fx.quarantine_rows(rejected, "events", "r1", now_ts())
    second = fx.quarantine_rows(rejected, "events", "r2", now_ts())
    # two copies of one bad row -> two quarantine rows with different ids, the same in every run
    assert first.select("quarantine_id").distinct().count() == 2
    assertDataFrameEqual(first.select("quarantine_id"), second.select("quarantine_id"))


def test_decayed_weights_do_not_depend_on_row_order(spark, small_world):
    items, interactions, _ = small_world
    many = interactions.union(interactions).union(interactions)  # 12 rows
    as_of_ts = fx.as_of(newest(interactions))

    def weight(df):
        stats = fx.item_stats(items, fx.user_item_pairs(df, as_of_ts, 30), as_of_ts)
        return stats.where("item_id = 'I1'").first()["weighted_interactions"]

    # fixed-point sums: equal to the last bit whatever the partitioning, 3 x 9.97716 by hand
    assert weight(many.repartition(3)) == weight(many.coalesce(1).orderBy(F.desc("ts")))
    assert weight(many.coalesce(1)) == pytest.approx(3 * 9.9771599684, abs=1e-8)


def newest(interactions):
    return interactions.agg(F.max("ts")).first()[0]
