"""The demo shop: seeded, structured as the input contract, and carrying the planted signal."""
import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rec_lib.core.config import DEMO_REGIMES, GenerateJobConfig, load_config
from rec_lib.demo.chinese import ZH_GENERIC_PHRASES, ZH_VOCABULARY, zh_description, zh_title
from rec_lib.demo.generator import generate_shop, shop_dates, text_languages
from rec_lib.demo.vocabulary import CATALOGUE_VOCABULARY, GENERIC_PHRASES, REGIMES
from rec_lib.evaluation import truth
from tests.helpers import REPO


@pytest.fixture(scope="module")
def demo():
    cfg = load_config(GenerateJobConfig, REPO / "conf" / "local.yaml").demo
    return dataclasses.replace(cfg, n_users=300, n_items=150, n_events=12000, chunk_users=100, dirty_fraction=0.0,
                               start_date="2026-05-01", end_date="2026-10-31")


def _events(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, dtype={"ts": str}) for p in sorted((folder / "events").glob("*.csv"))])


def _timestamps(events: pd.DataFrame) -> pd.Series:
    """ISO text or epoch seconds -> UTC timestamps (only the digit rows go through unit="s": pandas
    2.2 reads uninitialised memory for NaN there)."""
    digits = events["ts"].str.isdigit()
    text = events["ts"].copy()
    text[digits] = pd.to_datetime(events.loc[digits, "ts"].astype("int64"), unit="s", utc=True).astype(str)
    return pd.to_datetime(text, utc=True, format="mixed")


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
    ts = _timestamps(events)
    launch = pd.to_datetime(events["item_id"].map(items.set_index("item_id")["launch_ts"]), utc=True)
    assert (ts >= launch).all(), "no item is interacted with before it launches"
    counts = events["event_type"].value_counts()
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    # new items: launched within new_item_days of the end, about new_item_fraction of the catalogue
    # (the shop covers end_date whole: it ends at the midnight after it)
    end = pd.Timestamp(demo.end_date, tz="UTC") + pd.Timedelta(days=1)
    assert ts.max() < end
    new = pd.to_datetime(items["launch_ts"], utc=True) > end - pd.Timedelta(days=demo.new_item_days)
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
    # the contract the evaluation's oracle reads (rec_lib.evaluation.truth), with the world's beta
    beta = json.loads((tmp_path / "ground_truth" / "params.json").read_text())["beta"]
    affinity = truth.affinity(truth_users, truth_items, beta)
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


def test_without_dates_the_shop_ends_the_day_before_now(demo, tmp_path):
    """run.now 2026-12-02 02:00: the shop's last day is 2026-12-01 (events before 2026-12-02
    00:00), its first 183 days earlier (2026-06-01), so a pipeline run that day scores the day after it."""
    undated = dataclasses.replace(demo, start_date=None, end_date=None)
    now = datetime(2026, 12, 2, 2, 0, tzinfo=timezone.utc)
    assert shop_dates(undated, now) == ("2026-06-01", "2026-12-01")
    shop = generate_shop(undated, tmp_path, now=now)
    assert shop.end == datetime(2026, 12, 2, tzinfo=timezone.utc)
    ts = _timestamps(_events(tmp_path))
    assert ts.max() < pd.Timestamp("2026-12-02", tz="UTC") and ts.max() > pd.Timestamp("2026-11-30", tz="UTC")
    assert ts.min() >= pd.Timestamp("2026-06-01", tz="UTC")


def test_items_carry_structured_attributes(demo, tmp_path):
    generate_shop(demo, tmp_path)
    items = pd.read_csv(tmp_path / "items.csv")
    assert {"material", "colour", "year"} <= set(items.columns)
    assert items["material"].str.contains("|", regex=False).any()  # multi-valued
    assert items["year"].between(2019, 2026).all()


def _style_share_of_top_material(items: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Mean over (category, style) of the share of its items listing the group's most common material."""
    merged = items.merge(truth[["item_id", "style"]], on="item_id")
    shares = []
    for _, group in merged.groupby(["category", "style"]):
        values = group["material"].str.split("|").explode()
        shares.append(values.value_counts().iloc[0] / len(group))
    return float(np.mean(shares))


def test_regimes_move_the_signal_between_text_and_attributes(demo, tmp_path):
    """attributes: titles are names and descriptions quote no style phrase, while each style's
    favoured materials dominate its items (text: materials regardless of style, 1 to 3 of 6 each)."""
    assert set(REGIMES) == set(DEMO_REGIMES)
    generate_shop(dataclasses.replace(demo, regime="attributes", n_items=600), tmp_path / "a")
    generate_shop(dataclasses.replace(demo, regime="text", n_items=600), tmp_path / "t")
    shares = {}
    for name in ("a", "t"):
        items = pd.read_csv(tmp_path / name / "items.csv")
        truth = pd.read_parquet(tmp_path / name / "ground_truth" / "items.parquet")
        shares[name] = _style_share_of_top_material(items, truth)
        quoting = [any(p.capitalize() in row.description
                       for p in CATALOGUE_VOCABULARY[row.category][1][style][1])
                   for row, style in zip(items.itertuples(), truth.set_index("item_id").loc[items.item_id, "style"])]
        if name == "a":
            assert not any(quoting)
            assert items["title"].str.match(r"^.+ [A-Z]{2}-\d{3}$").all()
        else:
            assert all(quoting)
    # uniform: about 2 of 6 materials per item -> top share ~0.45; by style: 3 in 4 picks favoured -> > 0.6
    assert shares["a"] > 0.6 > shares["t"]


def test_popularity_regime_weighs_taste_less(demo, tmp_path):
    generate_shop(dataclasses.replace(demo, regime="popularity"), tmp_path)
    import json

    params = json.loads((tmp_path / "ground_truth" / "params.json").read_text())
    assert params["beta"] == REGIMES["popularity"].beta == 1.5 and params["regime"] == "popularity"


def _has_han(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_the_chinese_vocabulary_is_parallel_to_the_english_one():
    assert set(ZH_VOCABULARY) == set(CATALOGUE_VOCABULARY) and len(ZH_GENERIC_PHRASES) == len(GENERIC_PHRASES)
    for category, (nouns, styles, phrases, _, _) in CATALOGUE_VOCABULARY.items():
        _, zh_nouns, zh_styles, zh_phrases = ZH_VOCABULARY[category]
        assert len(zh_nouns) == len(nouns) and len(zh_phrases) == len(phrases) and set(zh_styles) == set(styles)
        for style, (adjectives, style_phrases) in styles.items():
            assert [len(x) for x in zh_styles[style]] == [len(adjectives), len(style_phrases)]
            assert all(_has_han(w) for w in zh_styles[style][0] + zh_styles[style][1])


def test_chinese_titles_and_descriptions_by_hand():
    # books: noun 0 is 小说 (novel), crime's adjective 0 扣人心弦 (gripping), its phrases 0 and 1, category phrase 1 畅销书
    assert zh_title("books", "crime", "Inkwell", 0, 0) == "Inkwell 扣人心弦小说"
    assert zh_title("kitchen", "coffee", "Brewmaster", 4, 1, code="AB-123") == "Brewmaster 磨豆机 AB-123"
    assert zh_description("books", "crime", 1, 0, (0, 1)) == "侦探追捕连环杀手。反转直到最后一页。畅销书，顾客最爱。"
    assert zh_description("garden", "tools", 2, 1, code="QZ-900") == "抗紫外线，超值。型号 QZ-900。"


def test_a_chinese_shop_is_the_english_shop_of_its_seed_in_other_words(demo, tmp_path):
    generate_shop(demo, tmp_path / "en")
    generate_shop(dataclasses.replace(demo, language="zh"), tmp_path / "zh")
    generate_shop(dataclasses.replace(demo, language="mixed"), tmp_path / "mixed")
    for name in ("users.csv", "events/part-00000.csv", "ground_truth/params.json"):
        assert (tmp_path / "en" / name).read_bytes() == (tmp_path / "zh" / name).read_bytes()
    en, zh, mixed = (pd.read_csv(tmp_path / lang / "items.csv") for lang in ("en", "zh", "mixed"))
    for column in ("item_id", "brand", "price", "launch_ts", "material", "colour", "year"):
        assert en[column].equals(zh[column]) and en[column].equals(mixed[column])
    assert zh["title"].map(_has_han).all() and zh["description"].map(_has_han).all()
    assert all(title.startswith(brand + " ") for title, brand in zip(zh["title"], zh["brand"]))  # Latin brands
    assert set(zh["category"]) == {ZH_VOCABULARY[c][0] for c in en["category"]}
    # mixed: each field's language at even odds, English categories; an English field is the English shop's
    languages = pd.DataFrame(text_languages("mixed", demo.n_items, demo.seed), columns=["title", "description"])
    zh_titles = (languages["title"] == "zh").to_numpy()
    assert 0.3 < zh_titles.mean() < 0.7 and 0.3 < (languages["description"] == "zh").mean() < 0.7
    assert mixed["description"].map(_has_han).equals(languages["description"] == "zh")
    assert mixed["category"].equals(en["category"])
    assert mixed.loc[~zh_titles, "title"].equals(en.loc[~zh_titles, "title"])
    assert mixed.loc[zh_titles, "title"].equals(zh.loc[zh_titles, "title"])
    truth = [pd.read_parquet(tmp_path / lang / "ground_truth" / "items.parquet") for lang in ("en", "zh")]
    assert truth[0]["category"].equals(truth[1]["category"])  # the world's keys, whatever the language
