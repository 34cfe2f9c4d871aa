"""The demo shop: seeded, structured as the input contract, and carrying the planted signal."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rec_lib.core.config import GenerateJobConfig, load_config
from rec_lib.demo.generator import CATALOGUE_VOCABULARY, generate_shop, oracle_affinity
from tests.helpers import REPO


@pytest.fixture(scope="module")
def demo():
    cfg = load_config(GenerateJobConfig, REPO / "conf" / "local.yaml").demo
    return dataclasses.replace(cfg, n_users=300, n_items=150, n_events=12000, chunk_users=100, dirty_fraction=0.0)


def _events(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, dtype={"ts": str}) for p in sorted((folder / "events").glob("*.csv"))])


def test_same_seed_same_shop_other_seed_other_shop(demo, tmp_path):
    a = generate_shop(demo, tmp_path / "a")
    b = generate_shop(demo, tmp_path / "b")
    generate_shop(dataclasses.replace(demo, seed=demo.seed + 1), tmp_path / "c")
    for name in ("items.csv", "users.csv", "events/part-00000.csv", "events/part-00002.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "items.csv").read_bytes() != (tmp_path / "c" / "items.csv").read_bytes()
    assert a.n_events == b.n_events
    assert 0.8 * demo.n_events < a.n_events < 1.25 * demo.n_events
    assert len(list((tmp_path / "a" / "events").glob("part-*.csv"))) == 3  # 300 users / 100 per chunk


def test_events_follow_launches_and_the_funnel(demo, tmp_path):
    generate_shop(demo, tmp_path)
    items = pd.read_csv(tmp_path / "items.csv")
    events = _events(tmp_path)
    assert set(events["event_type"]) == {"view", "click", "add_to_cart", "purchase"}
    # timestamps are ISO text or epoch seconds, as the contract allows
    # (only the digit rows go through unit="s": pandas 2.2 reads uninitialised memory for NaN there)
    digits = events["ts"].str.isdigit()
    text = events["ts"].copy()
    text[digits] = pd.to_datetime(events.loc[digits, "ts"].astype("int64"), unit="s", utc=True).astype(str)
    ts = pd.to_datetime(text, utc=True, format="mixed")
    launch = pd.to_datetime(events["item_id"].map(items.set_index("item_id")["launch_ts"]), utc=True)
    assert (ts >= launch).all(), "no item is interacted with before it launches"
    counts = events["event_type"].value_counts()
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    # new items: launched within new_item_days of the end, about new_item_fraction of the catalogue
    new = pd.to_datetime(items["launch_ts"], utc=True) > pd.Timestamp(demo.end_date, tz="UTC") - pd.Timedelta(days=demo.new_item_days)
    assert 0.05 < new.mean() < 0.3


def test_text_and_taste_carry_the_planted_signal(demo, tmp_path):
    generate_shop(demo, tmp_path)
    truth_items = pd.read_parquet(tmp_path / "ground_truth" / "items.parquet")
    truth_users = pd.read_parquet(tmp_path / "ground_truth" / "users.parquet")
    items = pd.read_csv(tmp_path / "items.csv").merge(truth_items[["item_id", "style"]], on="item_id")
    # every description quotes its own style's phrases, so text says who will like the item
    for _, row in items.iterrows():
        phrases = CATALOGUE_VOCABULARY[row["category"]][1][row["style"]][1]
        assert any(p.capitalize() in row["description"] for p in phrases)

    # users view items with higher true affinity than the catalogue average, by a wide margin
    affinity = oracle_affinity(truth_users, truth_items)
    u_index = {u: i for i, u in enumerate(truth_users["user_id"])}
    i_index = {i: j for j, i in enumerate(truth_items["item_id"])}
    views = _events(tmp_path).query("event_type == 'view'")
    chosen = affinity[views["user_id"].map(u_index).to_numpy(), views["item_id"].map(i_index).to_numpy()]
    assert chosen.mean() > affinity.mean() + 1.5
    # and purchases concentrate on even better matches than views
    buys = _events(tmp_path).query("event_type == 'purchase'")
    bought = affinity[buys["user_id"].map(u_index).to_numpy(), buys["item_id"].map(i_index).to_numpy()]
    assert bought.mean() > chosen.mean()


def test_dirty_fraction_adds_invalid_rows(demo, tmp_path):
    shop = generate_shop(dataclasses.replace(demo, dirty_fraction=0.01), tmp_path)
    events = _events(tmp_path)
    assert (events["event_type"] == "wishlist").sum() > 0
    assert events.duplicated().sum() > 0
    assert shop.n_dirty_rows > 0.01 * demo.n_events * 0.9
    assert np.isfinite(shop.n_events)
