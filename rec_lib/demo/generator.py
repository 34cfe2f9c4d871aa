"""A seeded demo shop with a known ground truth, in one of several worlds (regimes).

The world: categories, each with three styles; every (category, style) has a point in a latent
taste space. Items also carry structured attributes (`material`, multi-valued; `colour`; `year`,
numeric), each value with a latent vector of its own. Users have latent tastes (one or two
favourite styles). An item's appeal to a user is

    affinity(u, i) = beta * <taste_u, vec_i> + popularity_i

with vec_i built from the item's category, style and attribute values plus noise, and
popularity partly from the brand's tier, the price and the model year (so partly predictable from
content) and partly from noise. Each user's views are drawn with probability proportional to
exp(affinity) among the items already launched at the view's time; clicks, add-to-carts and
purchases follow a funnel whose conversion grows with affinity. Launches: each of the final
`launch_windows` windows of `new_item_days` launches `new_item_fraction` of the catalogue (the last
window's are the new items the product recommends; the windows before it hold the evaluation's
validation window and the launches the model's blend is fitted on), the rest launched earlier.

Where taste shows is the regime (`demo.regime`), so one configuration can be checked against
worlds it was not tuned on:
- `text`: titles and descriptions quote the item's style; attributes are drawn regardless of it.
- `attributes`: titles are names (brand, noun, model code) and descriptions generic; the style
  shows only in the attributes (each style favours some materials and colours), which also weigh
  more in the item's vector.
- `popularity`: as `text`, but taste matters less (beta 1.5) and popularity twice as much.
`demo.noise` scales the random parts of every item's vector and popularity (1.0: the default).
`demo.language` (en | zh | mixed) is the language of titles and descriptions: zh draws them from
Chinese vocabularies written for the shop (rec_lib.demo.chinese; brands stay in Latin letters,
categories are Chinese), mixed draws each item's title and description language at even odds
(categories in English). The words differ, the world does not: a seed's shop has the same items,
events and ground truth in every language.

The clock: without `demo.end_date` the shop ends the day before `run.now` (today by default), so
the pipeline run on it that day recommends the items launched in its final days.

Output, under the input folder: `items.csv`, `users.csv` and `events/part-*.csv` (or .parquet), the
input contract's layout, plus `ground_truth/` (item vectors and popularity, user tastes, params)
from which an oracle ranking is computed. Events are written one chunk of users at a time, so
memory stays bounded at millions of events.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from rec_lib.core.clock import SECONDS_PER_DAY
from rec_lib.core.config import DemoSection
from rec_lib.demo.chinese import zh_category, zh_description, zh_title
from rec_lib.demo.vocabulary import (
    AGE_BANDS,
    BETA,
    CATALOGUE_VOCABULARY,
    CHINESE_NOUNS,
    COLOURS,
    COUNTRIES,
    GENERIC_PHRASES,
    MATERIALS,
    REGIMES,
    YEARS,
    Regime,
)

log = logging.getLogger(__name__)

LATENT_DIM = 16
HISTORY_DAYS = 183  # without demo.start_date the shop covers this many days before its end
LANGUAGE_STREAM = 7  # the seed stream of a mixed shop's per-item languages


@dataclass(frozen=True)
class GeneratedShop:
    input_dir: Path
    n_items: int
    n_users: int
    n_events: int
    n_dirty_rows: int
    new_item_cutoff: datetime
    end: datetime  # events happen before this instant (the end of demo.end_date)


def _styles() -> List[Tuple[str, str]]:
    return [(c, s) for c, (_, styles, *_rest) in CATALOGUE_VOCABULARY.items() for s in styles]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _iso(ts: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ISO-8601 UTC text."""
    return np.char.add(np.datetime_as_string(np.asarray(ts).astype("datetime64[s]"), unit="s"), "Z")


def _epoch(d: str) -> float:
    return datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp()


def regime_of(cfg: DemoSection) -> Regime:
    return REGIMES[cfg.regime]


def shop_dates(cfg: DemoSection, now: datetime) -> Tuple[str, str]:
    """(start, end) dates of the shop: as configured, else it ends the day before `now` and starts
    HISTORY_DAYS earlier."""
    end = cfg.end_date or (now.date() - timedelta(days=1)).isoformat()
    start = cfg.start_date or (date.fromisoformat(end) - timedelta(days=HISTORY_DAYS)).isoformat()
    return start, end


@dataclass(frozen=True)
class _World:
    """The latent structure the catalogue and the users are drawn from."""

    cat_centre: Dict[str, np.ndarray]
    style_vec: Dict[Tuple[str, str], np.ndarray]
    material_vec: Dict[Tuple[str, str], np.ndarray]
    colour_vec: Dict[str, np.ndarray]
    favoured_materials: Dict[Tuple[str, str], np.ndarray]  # indices into MATERIALS[category]
    favoured_colours: Dict[Tuple[str, str], np.ndarray]  # indices into COLOURS


def _world(rng: np.random.Generator) -> _World:
    styles = _styles()
    cat_centre = {c: _unit(rng.normal(size=LATENT_DIM)) for c in CATALOGUE_VOCABULARY}
    style_vec = {cs: 0.9 * _unit(rng.normal(size=LATENT_DIM)) for cs in styles}
    material_vec = {(c, m): _unit(rng.normal(size=LATENT_DIM)) for c in CATALOGUE_VOCABULARY for m in MATERIALS[c]}
    colour_vec = {c: _unit(rng.normal(size=LATENT_DIM)) for c in COLOURS}
    favoured_materials = {cs: rng.choice(len(MATERIALS[cs[0]]), size=2, replace=False) for cs in styles}
    favoured_colours = {cs: rng.choice(len(COLOURS), size=2, replace=False) for cs in styles}
    return _World(cat_centre, style_vec, material_vec, colour_vec, favoured_materials, favoured_colours)


def _pick(rng: np.random.Generator, n: int, favoured: np.ndarray, by_style: bool, size: int) -> np.ndarray:
    """`size` distinct indices of n: by style, each is one of the favoured ones three times in four."""
    if not by_style:
        return rng.choice(n, size=size, replace=False)
    picked: List[int] = []
    while len(picked) < size:
        candidate = int(favoured[rng.integers(len(favoured))]) if rng.random() < 0.75 else int(rng.integers(n))
        if candidate not in picked:
            picked.append(candidate)
    return np.asarray(picked)


def _model_code(rng: np.random.Generator) -> str:
    letters = "".join(chr(ord("A") + int(x)) for x in rng.integers(0, 26, size=2))
    return f"{letters}-{int(rng.integers(100, 1000))}"


def _texts(rng: np.random.Generator, regime: Regime, category: str, style: str, brand: str,
           languages: Tuple[str, str] = ("en", "en")) -> Tuple[str, str]:
    """(title, description): quoting the style where the regime's text is informative, else a
    name (brand, noun, model code) and a generic description; `languages`: the title's and the
    description's (en | zh). The draws are the same in either language, so a Chinese shop's item
    says what the English shop's item of its seed says."""
    nouns, style_map, cat_phrases, _, _ = CATALOGUE_VOCABULARY[category]
    adjectives, phrases = style_map[style]
    n, a = int(rng.integers(len(nouns))), int(rng.integers(len(adjectives)))
    c, g = int(rng.integers(len(cat_phrases))), int(rng.integers(len(GENERIC_PHRASES)))
    noun, adjective = nouns[n], adjectives[a]
    cat_phrase, generic = cat_phrases[c].capitalize(), GENERIC_PHRASES[g]
    title_zh, description_zh = (language == "zh" for language in languages)
    if not regime.informative_text:
        code = _model_code(rng)
        quirk = rng.random() < 0.02  # an English shop's few Chinese titles
        title = (zh_title(category, style, brand, n, a, code) if title_zh else
                 f"{brand} {CHINESE_NOUNS[category]} {code}" if quirk else f"{brand} {noun.title()} {code}")
        description = (zh_description(category, style, c, g, code=code) if description_zh else
                       f"{cat_phrase}, {generic}. Model {code}.")
        return title, description
    quirk = rng.random() < 0.02
    title = (zh_title(category, style, brand, n, a) if title_zh else
             f"{brand} {CHINESE_NOUNS[category]}" if quirk else f"{brand} {adjective.title()} {noun.title()}")
    picked = rng.choice(len(phrases), size=2, replace=False)
    description = (zh_description(category, style, c, g, tuple(int(p) for p in picked)) if description_zh else
                   f"{phrases[picked[0]].capitalize()}. {phrases[picked[1]].capitalize()}. {cat_phrase}, {generic}.")
    return title, description


def text_languages(language: str, n_items: int, seed: int) -> List[Tuple[str, str]]:
    """Per item, the (title, description) languages of `demo.language`: all en, all zh, or (mixed)
    each field's language drawn at even odds from a stream of its own (the world's draws stay
    those of the English shop of the seed)."""
    if language in ("en", "zh"):
        return [(language, language)] * n_items
    draws = np.random.default_rng([seed, LANGUAGE_STREAM]).random((n_items, 2)) < 0.5
    return [tuple("zh" if d else "en" for d in row) for row in draws]


def generate_items(cfg: DemoSection, rng: np.random.Generator, start: float, end: float):
    """Catalogue rows (DataFrame) + ground truth (item vectors [n_items, LATENT_DIM], popularity)
    and the world the users are drawn from."""
    regime = regime_of(cfg)
    styles = _styles()
    world = _world(rng)
    window = cfg.new_item_days * SECONDS_PER_DAY
    season_from = end - cfg.launch_windows * window

    rows, vectors, popularity = [], [], []
    brand_tier = {b: rng.normal(0, 0.6) for c in CATALOGUE_VOCABULARY for b in CATALOGUE_VOCABULARY[c][3]}
    languages = text_languages(cfg.language, cfg.n_items, cfg.seed)
    for i in range(cfg.n_items):
        category, style = styles[rng.integers(len(styles))]
        brands, median_price = CATALOGUE_VOCABULARY[category][3], CATALOGUE_VOCABULARY[category][4]
        brand = brands[rng.integers(len(brands))]
        title, description = _texts(rng, regime, category, style, brand, languages[i])
        materials = _pick(rng, len(MATERIALS[category]), world.favoured_materials[(category, style)],
                          regime.style_attributes, size=1 + int(rng.integers(3)))
        colour = int(_pick(rng, len(COLOURS), world.favoured_colours[(category, style)], regime.style_attributes, 1)[0])
        year = int(rng.integers(YEARS[0], YEARS[1] + 1))
        price = round(float(median_price * np.exp(rng.normal(0, 0.5))), 2)
        draw = rng.random()
        if draw < cfg.new_item_fraction * cfg.launch_windows:  # the launch season: each window its share
            launch = rng.uniform(season_from, end)
        else:
            launch = rng.uniform(start - 180 * SECONDS_PER_DAY, season_from)
        attribute_part = (np.mean([world.material_vec[(category, MATERIALS[category][m])] for m in materials], axis=0)
                          + 0.5 * world.colour_vec[COLOURS[colour]])
        vec = _unit(world.cat_centre[category] + world.style_vec[(category, style)]
                    + regime.attribute_weight * attribute_part + cfg.noise * 0.35 * rng.normal(size=LATENT_DIM))
        # appeal predictable from content (brand tier, cheaper and newer models are more popular) plus noise
        pop = regime.popularity_scale * (brand_tier[brand] - 0.4 * np.log(price / median_price)
                                         + 0.1 * (year - np.mean(YEARS)) + cfg.noise * rng.normal(0, 0.5))
        rows.append({"item_id": f"I{i:06d}", "title": title, "description": description, "category": category,
                     "brand": brand, "price": price, "launch_ts": float(launch),
                     "material": "|".join(MATERIALS[category][m] for m in materials), "colour": COLOURS[colour],
                     "year": year, "style": style})
        vectors.append(vec)
        popularity.append(pop)
    return pd.DataFrame(rows), np.stack(vectors), np.asarray(popularity), world


def generate_users(cfg: DemoSection, rng: np.random.Generator, world: _World, end: float
                   ) -> Tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Users (DataFrame), tastes [n_users, LATENT_DIM] and activity weights [n_users]."""
    styles = _styles()
    cat_centre, style_vec = world.cat_centre, world.style_vec
    tastes = np.empty((cfg.n_users, LATENT_DIM))
    for u in range(cfg.n_users):
        favourites = rng.choice(len(styles), size=1 + int(rng.random() < 0.5), replace=False)
        mix = sum(_unit(cat_centre[styles[f][0]] + style_vec[styles[f]]) for f in favourites)
        tastes[u] = _unit(mix + 0.3 * rng.normal(size=LATENT_DIM))
    signup = rng.uniform(end - 540 * SECONDS_PER_DAY, end - 7 * SECONDS_PER_DAY, size=cfg.n_users)
    users = pd.DataFrame({
        "user_id": [f"U{u:07d}" for u in range(cfg.n_users)],
        "signup_ts": _iso(signup),
        "country": rng.choice(COUNTRIES, size=cfg.n_users),
        "age_band": rng.choice(AGE_BANDS, size=cfg.n_users),
    })
    activity = np.exp(rng.normal(0, 0.8, size=cfg.n_users))
    return users, tastes, activity


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def sample_events_for_users(
    rng: np.random.Generator,
    user_ids: np.ndarray,
    tastes: np.ndarray,
    n_views: np.ndarray,
    signup: np.ndarray,
    item_ids_by_launch: np.ndarray,
    vectors_by_launch: np.ndarray,
    pop_by_launch: np.ndarray,
    launch_sorted: np.ndarray,
    start: float,
    end: float,
    beta: float = BETA,
) -> pd.DataFrame:
    """Events of one chunk of users. Items are ordered by launch time, so the items available at
    time t are a prefix; one cumulative sum per user then serves every one of its views."""
    n_items = len(item_ids_by_launch)
    affinity = beta * tastes @ vectors_by_launch.T + pop_by_launch  # [users, items]
    weights = np.exp(affinity - affinity.max(axis=1, keepdims=True))
    cdf = np.cumsum(weights, axis=1)
    total = cdf[:, -1:]
    flat = (cdf / total + np.arange(len(user_ids))[:, None]).ravel()

    owner = np.repeat(np.arange(len(user_ids)), n_views)
    lo = np.maximum(start, signup[owner])
    view_ts = lo + rng.random(len(owner)) * (end - lo)
    n_avail = np.searchsorted(launch_sorted, view_ts, side="right")
    has_items = n_avail > 0
    owner, view_ts, n_avail = owner[has_items], view_ts[has_items], n_avail[has_items]
    reach = cdf[owner, n_avail - 1] / total[owner, 0]
    query = owner + rng.random(len(owner)) * reach
    item_pos = np.minimum(np.searchsorted(flat, query, side="left") - owner * n_items, n_items - 1)

    z = affinity[owner, item_pos]
    clicked = rng.random(len(z)) < _sigmoid(0.6 * z - 1.0)
    carted = clicked & (rng.random(len(z)) < _sigmoid(0.6 * z - 1.5))
    bought = carted & (rng.random(len(z)) < _sigmoid(0.6 * z - 0.5))
    click_ts = view_ts + rng.uniform(5, 120, len(z))
    cart_ts = click_ts + rng.uniform(30, 600, len(z))
    buy_ts = cart_ts + rng.uniform(60, 3600, len(z))

    parts = []
    for mask, ts, kind in ((np.ones_like(clicked), view_ts, "view"), (clicked, click_ts, "click"),
                           (carted, cart_ts, "add_to_cart"), (bought, buy_ts, "purchase")):
        idx = np.flatnonzero(mask)
        parts.append(pd.DataFrame({
            "user_id": user_ids[owner[idx]],
            "item_id": item_ids_by_launch[item_pos[idx]],
            "event_type": kind,
            "ts": np.minimum(ts[idx], end - 1.0),
            "value": rng.integers(1, 4, len(idx)).astype(float) if kind == "purchase" else np.nan,
        }))
    events = pd.concat(parts, ignore_index=True).sort_values(["ts", "user_id"], kind="stable")
    return events.reset_index(drop=True)


def _format_ts(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Most timestamps as ISO-8601 text, one in ten as epoch seconds: both are in the contract."""
    epoch_rows = rng.random(len(events)) < 0.1
    text = _iso(events["ts"].to_numpy())
    as_epoch = events["ts"].round().astype(np.int64).astype(str).to_numpy()
    return events.assign(ts=np.where(epoch_rows, as_epoch, text))


def _dirty_events(events: pd.DataFrame, fraction: float, rng: np.random.Generator) -> Tuple[pd.DataFrame, int]:
    """Replace a share of rows with the faults real exports have, and add exact duplicates."""
    n_bad = int(round(len(events) * fraction))
    if n_bad == 0:
        return events, 0
    events = events.copy()
    victims = rng.choice(len(events), size=n_bad, replace=False)
    kinds = rng.integers(0, 5, size=n_bad)
    for row, kind in zip(victims, kinds):
        if kind == 0:
            events.iat[row, events.columns.get_loc("user_id")] = ""
        elif kind == 1:
            events.iat[row, events.columns.get_loc("event_type")] = "wishlist"
        elif kind == 2:
            events.iat[row, events.columns.get_loc("ts")] = "yesterday"
        elif kind == 3:
            events.iat[row, events.columns.get_loc("ts")] = "2099-01-01T00:00:00Z"
        else:
            events.iat[row, events.columns.get_loc("item_id")] = "I999999"
    duplicates = events.iloc[rng.choice(len(events), size=max(1, n_bad // 4), replace=False)]
    return pd.concat([events, duplicates], ignore_index=True), n_bad + len(duplicates)


def _write(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


def _write_catalogue(items: pd.DataFrame, cfg: DemoSection, out: Path) -> int:
    """items.<format> as the shop exports it (launch times as text, Chinese category names in a
    Chinese shop, a share of invalid rows and one exact duplicate); returns the rows made invalid."""
    catalogue = items.drop(columns=["style"]).assign(launch_ts=_iso(items["launch_ts"].to_numpy()))
    if cfg.language == "zh":  # a Chinese shop names its categories in Chinese (the ground truth keeps the keys)
        catalogue["category"] = catalogue["category"].map(zh_category)
    n_dirty = 0
    n_bad_items = int(round(len(catalogue) * cfg.dirty_fraction))
    if n_bad_items:
        bad = catalogue.sample(n=n_bad_items, random_state=cfg.seed).copy()
        bad["item_id"] = [f"X{i:06d}" for i in range(n_bad_items)]
        bad["price"] = -bad["price"]  # negative prices: quarantined, the real rows stay intact
        catalogue = pd.concat([catalogue, bad, catalogue.iloc[:1]], ignore_index=True)  # + one exact duplicate
        n_dirty = n_bad_items + 1
    _write(catalogue, out / f"items.{cfg.format}", cfg.format)
    return n_dirty


def generate_shop(cfg: DemoSection, input_dir: str | Path, now: Optional[datetime] = None) -> GeneratedShop:
    """Write the demo shop's exports and ground truth under `input_dir` (replacing what is there).
    The shop covers start_date through end_date (see `shop_dates`: `now` is the pipeline's run.now)."""
    out = Path(input_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "events").mkdir(parents=True)
    (out / "ground_truth").mkdir()
    rng = np.random.default_rng(cfg.seed)
    start_date, end_date = shop_dates(cfg, now or datetime.now(timezone.utc))
    start, end = _epoch(start_date), _epoch(end_date) + SECONDS_PER_DAY  # through the end of end_date
    regime = regime_of(cfg)

    items, vectors, popularity, world = generate_items(cfg, rng, start, end)
    users, tastes, activity = generate_users(cfg, rng, world, end)
    order = np.argsort(items["launch_ts"].to_numpy(), kind="stable")
    launch_sorted = items["launch_ts"].to_numpy()[order]

    # ~1.9 event rows per view on this funnel; views per user follow their activity
    views_total = cfg.n_events / 1.9
    n_views = rng.poisson(views_total * activity / activity.sum())
    signup = np.asarray([_epoch(s[:-1]) for s in users["signup_ts"]])
    user_ids = users["user_id"].to_numpy()

    n_events, n_dirty = 0, 0
    for chunk, lo in enumerate(range(0, cfg.n_users, cfg.chunk_users)):
        hi = min(lo + cfg.chunk_users, cfg.n_users)
        chunk_rng = np.random.default_rng([cfg.seed, chunk])
        events = sample_events_for_users(
            chunk_rng, user_ids[lo:hi], tastes[lo:hi], n_views[lo:hi], signup[lo:hi],
            items["item_id"].to_numpy()[order], vectors[order], popularity[order], launch_sorted, start, end,
            beta=regime.beta)
        events = _format_ts(events, chunk_rng)
        events, dirty = _dirty_events(events, cfg.dirty_fraction, chunk_rng)
        _write(events, out / "events" / f"part-{chunk:05d}.{cfg.format}", cfg.format)
        n_events += len(events)
        n_dirty += dirty
        log.info("generated events for users %d-%d (%d events so far)", lo, hi, n_events)

    n_dirty += _write_catalogue(items, cfg, out)
    _write(users, out / f"users.{cfg.format}", cfg.format)

    truth_items = pd.DataFrame({"item_id": items["item_id"], "category": items["category"],
                                "style": items["style"], "popularity": popularity,
                                "vector": list(vectors.astype(np.float32))})
    truth_users = pd.DataFrame({"user_id": users["user_id"], "taste": list(tastes.astype(np.float32))})
    truth_items.to_parquet(out / "ground_truth" / "items.parquet", index=False)
    truth_users.to_parquet(out / "ground_truth" / "users.parquet", index=False)
    new_item_cutoff = datetime.fromtimestamp(end - cfg.new_item_days * SECONDS_PER_DAY, timezone.utc)
    params = {"beta": regime.beta, "latent_dim": LATENT_DIM, "seed": cfg.seed, "regime": cfg.regime,
              "noise": cfg.noise, "affinity": "beta * dot(taste_u, vector_i) + popularity_i (rec_lib.evaluation.truth)",
              "new_item_cutoff": new_item_cutoff.isoformat(), "start": start_date, "end": end_date}
    (out / "ground_truth" / "params.json").write_text(json.dumps(params, indent=2))
    return GeneratedShop(out, len(items), cfg.n_users, n_events, n_dirty, new_item_cutoff,
                         datetime.fromtimestamp(end, timezone.utc))


__all__ = ["generate_shop", "shop_dates", "GeneratedShop", "REGIMES", "Regime"]
