"""The training data on the feature job's small example, worked out by hand; the cutoff holds."""
import dataclasses
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from rec_lib.core.errors import RecError
from rec_lib.training.catalogue import CatalogueSettings
from rec_lib.training.data import DataSettings, build_training_data
from tests.helpers import CUTOFF, fake_text_embeddings

# the small example's settings: histories of 3, an id embedding from 1 user, 2 price buckets, no cohorts
SMALL = DataSettings(history_length=3, catalogue=CatalogueSettings(min_item_interactions=1, price_buckets=2),
                     launch_cohorts=0)


def test_training_data_by_hand_and_nothing_after_the_cutoff(spark, small_warehouse):
    fake_text_embeddings(spark, small_warehouse, ["I1", "I2", "I3"])
    data = build_training_data(spark, small_warehouse, CUTOFF, SMALL)
    cat = data.catalogue
    assert list(cat.item_ids) == ["I1", "I2", "I3"]
    assert cat.categories == ["books", "kitchen"] and cat.brands == ["Cucina", "Inkwell"]
    assert list(cat.category) == [2, 2, 1] and list(cat.brand) == [1, 1, 2]
    # prices 9.5, 25, 12: the median of log1p is log(13) -> I1 below, I2 and I3 at or above
    assert cat.price_edges == pytest.approx([math.log(13)])
    assert list(cat.price_bucket) == [1, 2, 2]
    # the u3 click on I3 is after the cutoff: I3 has no users and no id embedding; I2 launches on the
    # cutoff day, within launch_days (14) of it: a launch, placed by content and its first users, no id
    assert list(cat.n_users) == [1, 1, 0] and list(cat.id_slot) == [1, 0, 0]
    assert data.as_of == datetime(2026, 10, 14, 17, 46, 40)
    # I1 launched 2026-09-01: 43.74 days before as_of; I2 and I3 launch after it: unknown exposure
    assert cat.exposure_days[0] == pytest.approx(43.7407407, rel=1e-6)
    assert np.isnan(cat.exposure_days[1]) and np.isnan(cat.exposure_days[2])
    # the text embeddings [0, 1], [1, 1], [2, 1] centred on their mean [1, 1], unit length (I2's is 0)
    np.testing.assert_allclose(cat.text, [[-1, 0], [0, 0], [1, 0]], atol=1e-6)
    # launches: launch_ts where known (all three have one), epoch seconds
    assert cat.launched_s[0] == datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp()
    # attribute tokens: brand, category, price bucket per item (every field weighs 1)
    assert cat.attribute_scheme["types"] == {"brand": "categorical", "category": "categorical", "price": "numeric"}
    assert (cat.attr_weights.sum(axis=1) == 3.0).all()
    np.testing.assert_allclose(np.linalg.norm(cat.attr_vectors, axis=1), 1.0, rtol=1e-6)

    examples = {(r.user_id, r.item_index): r for r in data.examples.collect()}
    assert data.n_examples == 2 and set(examples) == {("u1", 0), ("u2", 1)}
    u1 = examples[("u1", 0)]
    assert u1.weight == pytest.approx(math.log(1 + 1.0 + 8.0))  # view 1 + purchase 8
    assert u1.history == [0, -1, -1]
    # 2 events, 1 item, last at 2026-10-01T10:05, 13.3206 days before as_of
    np.testing.assert_allclose(u1.user_numeric, [math.log(3), math.log(2), math.log1p(13.3206018)], rtol=1e-5)
    assert examples[("u2", 1)].weight == pytest.approx(math.log(2.0))
    # no user-id embedding by default (train.user_id_buckets: 0): every slot is the "none" row
    assert {r.user_slot for r in examples.values()} == {0} and data.n_user_slots == 0

    assert (data.n_users, data.n_users_with_history) == (3, 2)
    users = data.users.toPandas().set_index("user_id")
    assert users.loc["u3", "user_slot"] == 0 and users.loc["u3", "n_history"] == 0  # only post-cutoff
    assert list(users.loc["u3", "history"]) == [-1, -1, -1]
    assert list(users.loc["u1", "history"]) == [0, -1, -1] and users.loc["u1", "user_slot"] == 0
    assert list(users.loc["u3", "user_numeric"]) == [0.0, 0.0, 0.0]
    # the launch I2 (row 1, no id embedding): its first user u2 comes to the driver with its inputs
    first = data.first_users
    assert list(zip(first.item_index, first.user_id)) == [(1, "u2")]
    assert list(first.history[0]) == [1, -1, -1] and first.history[0].dtype == np.int32


def test_user_id_rows_are_hashed_into_a_fixed_number_of_buckets(spark, small_warehouse):
    """Each user with a history gets row 1 + (xxhash64(user_id) mod 5) of a 6-row table (row 0 is
    'none'), whatever the number of users; a user without one keeps row 0."""
    fake_text_embeddings(spark, small_warehouse, ["I1", "I2", "I3"])
    data = build_training_data(spark, small_warehouse, CUTOFF, dataclasses.replace(SMALL, user_id_buckets=5))
    hashes = {r.u: r.h for r in spark.sql("SELECT stack(2, 'u1', xxhash64('u1'), 'u2', xxhash64('u2')) AS (u, h)")
              .collect()}
    want = {u: 1 + h % 5 for u, h in hashes.items()}  # Python's % of a negative hash is Spark's pmod
    assert all(1 <= s <= 5 for s in want.values())
    users = data.users.toPandas().set_index("user_id")["user_slot"]
    assert {u: users[u] for u in want} == want and users["u3"] == 0
    assert {(r.user_id, r.user_slot) for r in data.examples.collect()} == set(want.items())
    assert data.n_user_slots == 5


def test_errors_for_an_empty_training_set_a_missing_text_embedding_and_two_encoders(spark, small_warehouse):
    fake_text_embeddings(spark, small_warehouse, ["I1", "I2"])
    with pytest.raises(RecError, match=r"1 item\(s\) have no text embedding \(e.g. 'I3'\)"):
        build_training_data(spark, small_warehouse, CUTOFF, SMALL)
    # a switch of encoder.model killed half-way: I3 re-encoded at another width, I1 and I2 not yet
    fake_text_embeddings(spark, small_warehouse, ["I1", "I2", "I3"], {"I3": ("usem3", "u1", [0.5, 0.5, 0.5])})
    with pytest.raises(RecError, match=r"holds vectors of more than one encoder: m \(v, 2-d\), usem3 \(u1, 3-d\); "
                                       r"run the embedding job"):
        build_training_data(spark, small_warehouse, CUTOFF, SMALL)
    fake_text_embeddings(spark, small_warehouse, ["I1", "I2", "I3"])
    early = datetime(2026, 9, 1, tzinfo=timezone.utc)
    with pytest.raises(RecError, match="training table would be empty: no interactions before the cutoff 2026-09-01"):
        build_training_data(spark, small_warehouse, early, SMALL)


def test_the_driver_gets_only_each_new_items_first_users(spark):
    """Few-shot adaptation blends an item's first `few_shot.max_k` users; the pace reads its count
    of users. So only those first users come to the driver, not every user of a launch."""
    from types import SimpleNamespace

    from rec_lib.training.data import _first_users

    t = datetime(2026, 10, 1)
    pairs = spark.createDataFrame(
        [(0, "ua", t.replace(hour=3)), (0, "ub", t.replace(hour=1)), (0, "uc", t.replace(hour=2)),
         (0, "ud", t.replace(hour=2)),  # ties with uc: the user id decides
         (1, "ua", t), (1, "ub", t), (2, "ux", t)],
        "item_index int, user_id string, first_ts timestamp")
    # item 1 has an id embedding: it is not adapted; item 3 has no users
    catalogue = SimpleNamespace(id_slot=np.array([0, 1, 0, 0]), n_users=np.array([4, 2, 1, 0]))
    # the users' inputs (one history item each: ua 0, ub 1, ...) ride along
    inputs = spark.createDataFrame([(u, 0, [i, -1], 1, [0.5, 0.0, 0.0]) for i, u in enumerate(["ua", "ub", "uc", "ud", "ux"])],
                                   "user_id string, user_slot int, history array<int>, n_history int, "
                                   "user_numeric array<float>")
    got = _first_users(spark, pairs, inputs, catalogue, per_item=2)
    assert list(zip(got.item_index, got.user_id)) == [(0, "ub"), (0, "uc"), (2, "ux")]
    assert [list(h) for h in got.history] == [[1, -1], [2, -1], [4, -1]]
    assert _first_users(spark, pairs, inputs, catalogue, per_item=0).empty


def test_too_few_launches_in_the_cohorts_span_date_every_item_at_its_first_interaction(spark, small_warehouse):
    fake_text_embeddings(spark, small_warehouse, ["I1", "I2", "I3"])
    # one 14-day launch window before the cutoff (2026-10-06 to 10-20): I1 launched 09-01, I2 on the
    # cutoff day, I3 after it: no launch in it; I2 first interacted with in it (10-14): 0 < 1 <= 1
    auto = dataclasses.replace(SMALL.catalogue, cohort_days=14, min_cohort_launches=1)
    data = build_training_data(spark, small_warehouse, CUTOFF, dataclasses.replace(SMALL, catalogue=auto))
    cat = data.catalogue
    assert cat.dated_at == "first_interaction"
    # I1 at u1's first view, 2026-10-01T10:00; I2 at u2's view (epoch 1792000000, before its launch_ts);
    # I3, found by nobody before the cutoff, at its launch_ts
    assert cat.launched_s[0] == datetime(2026, 10, 1, 10, tzinfo=timezone.utc).timestamp()
    assert cat.launched_s[1] == 1792000000.0
    assert cat.launched_s[2] == datetime(2026, 10, 25, tzinfo=timezone.utc).timestamp()
    # exposure from the first interaction: as_of 2026-10-14T17:46:40 - 10-01T10:00 = 13 days 28,000 s
    assert cat.exposure_days[0] == pytest.approx(13 + 28000 / 86400, rel=1e-9) and cat.exposure_days[1] == 0.0
    # never; no launch needed (0 < 0 is false); or two first interactions needed in the window (only I2's)
    for dated, settings in (("launch", dataclasses.replace(auto, pseudo_launches="never")),
                            ("launch", dataclasses.replace(auto, min_cohort_launches=0)),
                            ("launch", dataclasses.replace(auto, min_cohort_launches=2))):
        other = build_training_data(spark, small_warehouse, CUTOFF, dataclasses.replace(SMALL, catalogue=settings))
        assert other.catalogue.dated_at == dated
        assert other.catalogue.launched_s[0] == datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp()
