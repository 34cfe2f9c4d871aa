"""Pure feature transforms: DataFrame in, DataFrame out, parameters passed explicitly.

Validation functions take a raw export (every column as text, see `rec_lib.platform.exports.read_export`) and
return the same rows with parsed columns plus a `reason` column: null for an accepted row, else the
first rule the row broke (a `schema.Reason`). Nothing is dropped here; the caller splits accepted
rows from quarantined ones.
"""
from __future__ import annotations

from datetime import datetime
from functools import reduce
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rec_lib.core.schema import RAW_LINE, RAW_ROW, SOURCE_FILE, Reason
from rec_lib.platform.columns import column, days_between

REASON = "reason"
TEXT_CUT = "_text_cut"  # true where title or description was cut to input.max_text_chars (counted, then dropped)
UNKNOWN_CATEGORY = "unknown"

# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


def blank(col: Column) -> Column:
    """True where a text value is missing or only white space."""
    return col.isNull() | (F.trim(col) == "")


def clean_text(col: Column) -> Column:
    """Trim, fold runs of white space (line breaks included) to one space; blank -> null."""
    folded = F.trim(F.regexp_replace(col, r"\s+", " "))
    return F.when(folded == "", None).otherwise(folded)


def clean_id(col: Column) -> Column:
    """Ids are text; numeric exports such as `123.0` (a float column) become `123`."""
    trimmed = F.trim(col)
    return F.when(trimmed.rlike(r"^-?\d+\.0+$"), F.regexp_extract(trimmed, r"^(-?\d+)\.0+$", 1)).otherwise(trimmed)


def parse_timestamp(col: Column) -> Column:
    """Epoch seconds (`1767225600`, `1767225600.5`) or ISO-8601 text -> timestamp (UTC); else null."""
    trimmed = F.trim(col)
    epoch = F.timestamp_seconds(trimmed.cast("double"))
    return F.when(trimmed.rlike(r"^-?\d+(\.\d+)?$"), epoch).otherwise(trimmed.cast("timestamp"))


def parse_number(col: Column) -> Column:
    """A decimal or scientific number -> double; NaN / Infinity (and numbers too large for a double)
    parse too, so `non_finite` can name them; anything else -> null."""
    trimmed = F.trim(col)
    number = trimmed.rlike(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    special = F.lower(trimmed).rlike(r"^[+-]?(nan|inf|infinity)$")
    return F.when(number | special, trimmed.cast("double"))


def non_finite(col: Column) -> Column:
    """True where a parsed number is NaN or infinite."""
    return col.isNotNull() & (F.isnan(col) | col.isin(float("inf"), float("-inf")))


# what a reader puts for bytes its encoding cannot decode (a Latin-1 or GBK export read as UTF-8). Text
# that decoded but reads wrong ("CafÃ©": UTF-8 once read as Latin-1 upstream) is the export's own text
# and is kept: 0.9% of Book-Crossing's books, The Little Prince among them, are so written
MISDECODED = "\ufffd"


def misdecoded(*cols: Column, attributes: Optional[Column] = None) -> Column:
    """True where any of the texts, or any value of the `attributes` map, holds a character its
    encoding could not decode (MISDECODED)."""
    if attributes is not None:
        cols = (*cols, F.array_join(F.map_values(attributes), " "))
    found = F.lit(False)
    for col in cols:
        found = found | F.coalesce(col.rlike(MISDECODED), F.lit(False))
    return found


def cap_texts(df: DataFrame, columns: Sequence[str], max_chars: int) -> DataFrame:
    """`columns` (already cleaned) cut to `max_chars` characters (0: no cap), and TEXT_CUT: true
    where any of them was longer."""
    if max_chars <= 0:
        return df.withColumn(TEXT_CUT, F.lit(False))
    longer = [F.coalesce(F.length(F.col(c)) > max_chars, F.lit(False)) for c in columns]
    cut = df.withColumn(TEXT_CUT, reduce(lambda a, b: a | b, longer))
    return cut.select(*[F.rtrim(F.substring(F.col(c), 1, max_chars)).alias(c) if c in columns else F.col(c)
                        for c in cut.columns])


def first_failure(rules: Sequence[Tuple[Column, str]]) -> Column:
    """The reason of the first rule whose condition is true, else null."""
    reason = F.lit(None).cast("string")
    for condition, name in reversed(rules):
        reason = F.when(condition, F.lit(name)).otherwise(reason)
    return reason


def mark_duplicates(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Among rows still accepted, keep one per key; flag the rest.

    A later copy whose raw row equals the kept one is an `exact_duplicate`; one that differs is a
    `conflicting_duplicate_key`. The kept row is the one with the smallest raw row text, so the
    choice does not depend on file order or partitioning.
    """
    window = Window.partitionBy(*keys).orderBy(RAW_ROW)
    ranked = (df.withColumn("_rank", F.row_number().over(window))
              .withColumn("_kept_raw", F.first(RAW_ROW).over(window)))
    dup_reason = F.when(F.col(RAW_ROW) == F.col("_kept_raw"), F.lit(Reason.EXACT_DUPLICATE)).otherwise(
        F.lit(Reason.DUPLICATE_KEY))
    flagged = ranked.withColumn(REASON, F.when(F.col("_rank") > 1, dup_reason))
    return flagged.drop("_rank", "_kept_raw")


def _validate_then_dedupe(df: DataFrame, rules: Sequence[Tuple[Column, str]], keys: Sequence[str]) -> DataFrame:
    checked = df.withColumn(REASON, first_failure([(F.col(RAW_LINE).isNotNull(), Reason.MALFORMED_LINE), *rules]))
    accepted = mark_duplicates(checked.where(F.col(REASON).isNull()), keys)
    return accepted.unionByName(checked.where(F.col(REASON).isNotNull()))


def _future(ts: Column, now_ts: Column, max_future_hours: float) -> Column:
    return ts > now_ts + F.expr(f"INTERVAL {int(round(max_future_hours * 3600))} SECONDS")


def _too_old(ts: Column, min_ts: Optional[Column]) -> Column:
    return F.lit(False) if min_ts is None else ts < min_ts


# --------------------------------------------------------------------------------------------
# Validation of each export
# --------------------------------------------------------------------------------------------


def attribute_map(attribute_columns: Sequence[str]) -> Column:
    """The export's further columns as one map (name -> cleaned text), keys sorted, blank values
    left out, so the map compares equal across exports."""
    attrs = sorted(attribute_columns)
    attributes = F.map_from_arrays(
        F.array(*[F.lit(a) for a in attrs]) if attrs else F.array().cast("array<string>"),
        F.array(*[clean_text(column(a)) for a in attrs]) if attrs else F.array().cast("array<string>"),
    )
    return F.map_filter(attributes, lambda k, v: v.isNotNull())


def validate_items(raw_items: DataFrame, now_ts: Column, max_future_hours: float,
                   attribute_columns: Sequence[str] = (), min_ts: Optional[Column] = None,
                   max_text_chars: int = 0) -> DataFrame:
    """Raw items -> parsed items + `reason` + TEXT_CUT. Columns: items' contract columns parsed
    (title and description cut to `max_text_chars`), `attributes` (the export's further columns,
    see `attribute_map`), plus bookkeeping."""
    parsed = raw_items.select(
        clean_id(F.col("item_id")).alias("item_id"),
        clean_text(F.col("title")).alias("title"),
        clean_text(F.col("description")).alias("description"),
        clean_text(F.col("category")).alias("category"),
        clean_text(F.col("brand")).alias("brand"),
        F.col("price").alias("_price_raw"),
        parse_number(F.col("price")).alias("price"),
        F.col("launch_ts").alias("_launch_raw"),
        parse_timestamp(F.col("launch_ts")).alias("launch_ts"),
        attribute_map(attribute_columns).alias("attributes"),
        SOURCE_FILE, RAW_ROW, RAW_LINE,
    )
    parsed = cap_texts(parsed, ("title", "description"), max_text_chars)
    rules = [
        (blank(F.col("item_id")), Reason.MISSING_ITEM_ID),
        (F.col("title").isNull(), Reason.MISSING_TITLE),
        (misdecoded(F.col("item_id"), F.col("title"), F.col("description"), F.col("category"), F.col("brand"),
                    attributes=F.col("attributes")), Reason.INVALID_ENCODING),
        (~blank(F.col("_price_raw")) & F.col("price").isNull(), Reason.BAD_PRICE),
        (non_finite(F.col("price")), Reason.NON_FINITE),
        (F.col("price") < 0, Reason.NEGATIVE_PRICE),
        (~blank(F.col("_launch_raw")) & F.col("launch_ts").isNull(), Reason.BAD_TS),
        (_future(F.col("launch_ts"), now_ts, max_future_hours), Reason.FUTURE_TS),
        (_too_old(F.col("launch_ts"), min_ts), Reason.OLD_TS),
    ]
    return _validate_then_dedupe(parsed, rules, ["item_id"]).drop("_price_raw", "_launch_raw")


def validate_users(raw_users: DataFrame, attribute_columns: Sequence[str], now_ts: Column,
                   max_future_hours: float, min_ts: Optional[Column] = None) -> DataFrame:
    """Raw users -> user_id, signup_ts, attributes (map of further columns, sorted by name) + `reason`."""
    parsed = raw_users.select(
        clean_id(F.col("user_id")).alias("user_id"),
        F.col("signup_ts").alias("_signup_raw"),
        parse_timestamp(F.col("signup_ts")).alias("signup_ts"),
        attribute_map(attribute_columns).alias("attributes"),
        SOURCE_FILE, RAW_ROW, RAW_LINE,
    )
    rules = [
        (blank(F.col("user_id")), Reason.MISSING_USER_ID),
        (misdecoded(F.col("user_id"), attributes=F.col("attributes")), Reason.INVALID_ENCODING),
        (~blank(F.col("_signup_raw")) & F.col("signup_ts").isNull(), Reason.BAD_TS),
        (_future(F.col("signup_ts"), now_ts, max_future_hours), Reason.FUTURE_TS),
        (_too_old(F.col("signup_ts"), min_ts), Reason.OLD_TS),
    ]
    return _validate_then_dedupe(parsed, rules, ["user_id"]).drop("_signup_raw")


def validate_events(raw_events: DataFrame, known_item_ids: DataFrame, event_weights: Dict[str, float],
                    now_ts: Column, max_future_hours: float, min_ts: Optional[Column] = None) -> DataFrame:
    """Raw events -> parsed events with `type_weight` + `reason`.

    `known_item_ids` (one column `item_id`) is the catalogue: this run's accepted items and those
    already in the warehouse. It is broadcast: catalogues are small next to events.
    """
    weights = F.create_map(*[x for k, v in sorted(event_weights.items()) for x in (F.lit(k), F.lit(float(v)))])
    parsed = raw_events.select(
        clean_id(F.col("user_id")).alias("user_id"),
        clean_id(F.col("item_id")).alias("item_id"),
        F.lower(F.trim(F.col("event_type"))).alias("event_type"),
        F.col("ts").alias("_ts_raw"),
        parse_timestamp(F.col("ts")).alias("ts"),
        F.col("value").alias("_value_raw"),
        parse_number(F.col("value")).alias("value"),
        SOURCE_FILE, RAW_ROW, RAW_LINE,
    ).withColumn("type_weight", weights[F.col("event_type")])
    catalogue = F.broadcast(known_item_ids.select(F.col("item_id").alias("_known_item")).distinct())
    with_catalogue = parsed.join(catalogue, parsed["item_id"] == catalogue["_known_item"], "left")
    rules = [
        (blank(F.col("user_id")), Reason.MISSING_USER_ID),
        (blank(F.col("item_id")), Reason.MISSING_ITEM_ID),
        (misdecoded(F.col("user_id"), F.col("item_id"), F.col("event_type")), Reason.INVALID_ENCODING),
        (blank(F.col("_ts_raw")), Reason.MISSING_TS),
        (F.col("ts").isNull(), Reason.BAD_TS),
        (_future(F.col("ts"), now_ts, max_future_hours), Reason.FUTURE_TS),
        (_too_old(F.col("ts"), min_ts), Reason.OLD_TS),
        (F.col("type_weight").isNull(), Reason.UNKNOWN_EVENT_TYPE),
        (~blank(F.col("_value_raw")) & F.col("value").isNull(), Reason.BAD_VALUE),
        (non_finite(F.col("value")), Reason.NON_FINITE),
        (F.col("_known_item").isNull(), Reason.UNKNOWN_ITEM),
    ]
    validated = _validate_then_dedupe(with_catalogue, rules, ["user_id", "item_id", "event_type", "ts"])
    return validated.drop("_ts_raw", "_value_raw", "_known_item").withColumn("event_date", F.to_date("ts"))


def accepted(validated: DataFrame) -> DataFrame:
    return validated.where(F.col(REASON).isNull()).drop(REASON, RAW_ROW, RAW_LINE, TEXT_CUT)


def rejected(validated: DataFrame) -> DataFrame:
    return validated.where(F.col(REASON).isNotNull())


# --------------------------------------------------------------------------------------------
# Table rows
# --------------------------------------------------------------------------------------------


def content_hash(cols: Iterable[str], maps: Iterable[str] = ()) -> Column:
    """SHA-256 over the given columns as text (null-safe; `maps` as JSON), to detect changed rows cheaply."""
    maps = set(maps)
    text = [F.to_json(F.col(c)) if c in maps else F.col(c).cast("string") for c in cols]
    return F.sha2(F.concat_ws("\u001f", *[F.coalesce(t, F.lit("\u0000")) for t in text]), 256)


ITEM_CONTENT = ("title", "description", "category", "brand", "price", "launch_ts", "attributes")


def item_rows(accepted_items: DataFrame, run_id: str) -> DataFrame:
    return (accepted_items.withColumn("content_hash", content_hash(ITEM_CONTENT, maps=["attributes"]))
            .withColumn("source_file", F.col(SOURCE_FILE)).withColumn("updated_run_id", F.lit(run_id)))


def user_rows(accepted_users: DataFrame, event_user_ids: DataFrame, run_id: str,
              stored_user_ids: Optional[DataFrame] = None) -> DataFrame:
    """Users from the export, plus users seen only in events (flagged `derived_from_events`) that
    neither the export nor the stored table (`stored_user_ids`) knows."""
    exported = accepted_users.select("user_id", "signup_ts", "attributes", F.lit(False).alias("derived_from_events"))
    known = exported.select("user_id")
    if stored_user_ids is not None:
        known = known.unionByName(stored_user_ids.select("user_id"))
    derived = (event_user_ids.select("user_id").distinct()
               .join(known, "user_id", "left_anti")
               .select("user_id", F.lit(None).cast("timestamp").alias("signup_ts"),
                       F.create_map().cast("map<string,string>").alias("attributes"),
                       F.lit(True).alias("derived_from_events")))
    return exported.unionByName(derived).withColumn("updated_run_id", F.lit(run_id))


def interaction_rows(accepted_events: DataFrame, run_id: str) -> DataFrame:
    return accepted_events.withColumn("source_file", F.col(SOURCE_FILE)).withColumn("run_id", F.lit(run_id))


def quarantine_rows(rejected_rows: DataFrame, source: str, run_id: str, quarantined_at: Column) -> DataFrame:
    """Rejected rows -> quarantine rows. The id is stable across runs (source, file, raw row,
    occurrence, reason), so re-running on the same input adds nothing, while a bad row repeated in
    a file keeps one quarantine row per copy."""
    occurrence = F.row_number().over(Window.partitionBy(SOURCE_FILE, "_raw_text", REASON).orderBy(F.lit(1)))
    return (rejected_rows.withColumn("_raw_text", raw_row_text()).withColumn("_occurrence", occurrence)
            .select(
                F.sha2(F.concat_ws("\u001f", F.lit(source), F.coalesce(F.col(SOURCE_FILE), F.lit("")),
                                   F.col("_raw_text"), F.col("_occurrence").cast("string"), F.col(REASON)), 256)
                .alias("quarantine_id"),
                F.lit(source).alias("source"),
                F.col(SOURCE_FILE).alias("source_file"),
                F.col("_raw_text").alias("raw_row"),
                F.col(REASON).alias("reason"),
                F.lit(run_id).alias("run_id"),
                quarantined_at.alias("quarantined_at"),
            ))


# --------------------------------------------------------------------------------------------
# Derived tables
# --------------------------------------------------------------------------------------------


FIXED_POINT = 1e9  # weights are summed as integers of 1e-9: exact, so independent of row order


def raw_row_text() -> Column:
    """The raw row as quarantine stores it: the malformed line, else JSON of the original columns."""
    return F.coalesce(F.col(RAW_LINE), F.to_json(F.col(RAW_ROW)))


def fixed_point(col: Column) -> Column:
    return F.round(col * F.lit(FIXED_POINT)).cast("long")


def decay(ts: Column, as_of_ts: Column, half_life_days: float) -> Column:
    """2 ** (-(as_of - ts) / half_life): 1 at as_of, 0.5 one half-life earlier."""
    age_days = days_between(as_of_ts, ts)
    return F.pow(F.lit(0.5), age_days / F.lit(float(half_life_days)))


def as_of(newest: Optional[datetime]) -> Column:
    """The data's own 'now': the newest interaction (the job reads it), so derived tables depend
    only on the data and a re-run on the same input rewrites them identically."""
    return F.lit(newest).cast("timestamp") if newest is not None else F.current_timestamp()


EVENT_COUNT_COLUMNS = {"view": "n_views", "click": "n_clicks", "add_to_cart": "n_add_to_cart",
                       "purchase": "n_purchases", "rating": "n_ratings"}


def user_item_pairs(interactions: DataFrame, as_of_ts: Column, half_life_days: float) -> DataFrame:
    """One row per (user, item): counts per event type, first/last ts and the decayed weight in
    fixed point. Both derived tables are computed from this (far smaller) aggregate, so the event
    table is shuffled once."""
    return interactions.groupBy("user_id", "item_id").agg(
        F.count(F.lit(1)).alias("n_events"),
        *[F.count(F.when(F.col("event_type") == t, 1)).alias(c) for t, c in EVENT_COUNT_COLUMNS.items()],
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
        F.sum(fixed_point(F.col("type_weight") * decay(F.col("ts"), as_of_ts, half_life_days))).alias("weight_fp"),
    )


def item_stats(items: DataFrame, pairs: DataFrame, as_of_ts: Column) -> DataFrame:
    """One row per catalogue item, interactions or not (new items have zeros)."""
    counts = ["n_events", *EVENT_COUNT_COLUMNS.values()]
    per_item = pairs.groupBy("item_id").agg(
        F.min("first_ts").alias("first_interaction_ts"),
        F.max("last_ts").alias("last_interaction_ts"),
        F.count(F.lit(1)).alias("n_users"),
        *[F.sum(c).alias(c) for c in counts],
        (F.sum("weight_fp") / F.lit(FIXED_POINT)).alias("weighted_interactions"),
    )
    joined = items.select("item_id", "launch_ts").join(per_item, "item_id", "left")
    born = F.coalesce(F.col("launch_ts"), F.col("first_interaction_ts"))
    return joined.select(
        "item_id", "launch_ts", "first_interaction_ts", "last_interaction_ts",
        *[F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c) for c in ["n_users", *counts]],
        F.coalesce(F.col("weighted_interactions"), F.lit(0.0)).alias("weighted_interactions"),
        days_between(as_of_ts, born).alias("age_days"),
        as_of_ts.alias("as_of_ts"),
    )


def user_features(users: DataFrame, items: DataFrame, pairs: DataFrame, as_of_ts: Column, n_recent: int) -> DataFrame:
    """History aggregates per user; users without events get zero counts and null histories."""
    with_category = pairs.join(F.broadcast(items.select("item_id", "category")), "item_id", "left").withColumn(
        "category", F.coalesce(F.col("category"), F.lit(UNKNOWN_CATEGORY)))
    by_user = Window.partitionBy("user_id")
    ranked = with_category.withColumn(
        "_r", F.row_number().over(by_user.orderBy(F.col("last_ts").desc(), F.col("item_id"))))
    totals = ranked.groupBy("user_id").agg(
        F.sum("n_events").alias("n_events"),
        F.count(F.lit(1)).alias("n_items"),
        F.sum("n_purchases").alias("n_purchases"),
        F.min("first_ts").alias("first_ts"),
        F.max("last_ts").alias("last_ts"),
        # newest first: sort (rank, item) pairs and keep the item
        F.transform(F.sort_array(F.collect_list(F.when(F.col("_r") <= n_recent, F.struct("_r", "item_id")))),
                    lambda s: s["item_id"]).alias("recent_items"),
    )
    per_category = with_category.groupBy("user_id", "category").agg(F.sum("weight_fp").alias("_cw"))
    share = per_category.withColumn("_share", F.col("_cw") / F.sum("_cw").over(by_user))
    mix = share.groupBy("user_id").agg(
        F.map_from_entries(F.sort_array(F.collect_list(F.struct("category", "_share")))).alias("category_mix"),
        # top: the largest share, ties to the alphabetically first category
        F.sort_array(F.collect_list(F.struct(-F.col("_share"), F.col("category"))))[0]["category"].alias("top_category"),
    )
    joined = users.select("user_id").join(totals.join(mix, "user_id", "left"), "user_id", "left")
    return joined.select(
        "user_id",
        *[F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c) for c in ("n_events", "n_items", "n_purchases")],
        "first_ts", "last_ts",
        days_between(as_of_ts, F.col("last_ts")).alias("recency_days"),
        "category_mix", "top_category", "recent_items",
        as_of_ts.alias("as_of_ts"),
    )


__all__: List[str] = [
    "validate_items", "validate_users", "validate_events", "accepted", "rejected", "item_rows",
    "user_rows", "interaction_rows", "quarantine_rows", "item_stats", "user_features", "as_of",
    "decay", "user_item_pairs", "parse_timestamp", "parse_number", "clean_text", "clean_id", "mark_duplicates",
    "attribute_map",
]
