"""The one place where column names, input contracts and Delta table schemas are declared.

Every job, test and SQL view takes its names from here. Input contracts describe what a shop's
exports must contain; table schemas describe what the pipeline writes to the warehouse.
"""
from __future__ import annotations

import dataclasses
from typing import Dict

from rec_lib.core.table_spec import (
    DT,
    F32,
    I32,
    TS,
    B,
    D,
    InputContract,
    L,
    S,
    TableSpec,
    _struct,
    array,
    map_of,
    struct_of,
)

# ---------------------------------------------------------------------------------------------
# Input contract: the exports a shop provides. All columns are read as text and parsed by the
# feature job, so a value that does not parse becomes a quarantine row instead of a crash.
# ---------------------------------------------------------------------------------------------


ITEMS_INPUT = InputContract(
    name="items",
    required=("item_id", "title"),
    optional=("description", "category", "brand", "price", "launch_ts"),  # any further column: an attribute
    mandatory_source=True,
)
USERS_INPUT = InputContract(
    name="users",
    required=("user_id",),
    optional=("signup_ts",),  # any further column is kept as a categorical attribute
    mandatory_source=False,
)
EVENTS_INPUT = InputContract(
    name="events",
    required=("user_id", "item_id", "event_type", "ts"),
    optional=("value",),
    mandatory_source=True,
)
INPUTS: Dict[str, InputContract] = {c.name: c for c in (ITEMS_INPUT, USERS_INPUT, EVENTS_INPUT)}

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating")

# Bookkeeping columns a read export carries next to its own, so a rejected row can be quarantined
# exactly as exported.
SOURCE_FILE = "_source_file"
RAW_ROW = "_raw_row"  # struct of the row's original columns, as text
RAW_LINE = "_raw_line"  # the raw CSV line, only where the line is malformed
BOOKKEEPING = (SOURCE_FILE, RAW_ROW, RAW_LINE)

# The items columns the text encoder may read (encoder.text_fields names some of them, in order).
TEXT_FIELDS = ("title", "category", "brand", "description")

# ---------------------------------------------------------------------------------------------
# Quarantine reasons: a closed vocabulary, so analysts can group by it.
# ---------------------------------------------------------------------------------------------


class Reason:
    MALFORMED_LINE = "malformed_line"  # CSV line whose field count does not match the header
    MISSING_ITEM_ID = "missing_item_id"
    MISSING_USER_ID = "missing_user_id"
    MISSING_TITLE = "missing_title"
    MISSING_TS = "missing_ts"
    BAD_TS = "unparseable_ts"
    FUTURE_TS = "future_ts"
    OLD_TS = "out_of_range_ts"  # before input.min_ts (an epoch 0, a year 0001 from a broken export)
    BAD_PRICE = "unparseable_price"
    NEGATIVE_PRICE = "negative_price"
    BAD_VALUE = "unparseable_value"
    NON_FINITE = "non_finite_number"  # NaN, Infinity, or a number too large for a double (1e999)
    # a text or id that was not in input.encoding: bytes the reader could not decode, read as U+FFFD
    INVALID_ENCODING = "invalid_encoding"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_ITEM = "unknown_item"
    EXACT_DUPLICATE = "exact_duplicate"
    DUPLICATE_KEY = "conflicting_duplicate_key"


# ---------------------------------------------------------------------------------------------
# Warehouse tables (Delta). Names are public: analysts and later stages query them.
# ---------------------------------------------------------------------------------------------


# Column types are Spark SQL type names (rec_lib.core.table_spec: the schema is built on first use).

ITEMS = TableSpec(
    name="items",
    fields=_struct(
        ("item_id", S, False),
        ("title", S, False),
        ("description", S, True),
        ("category", S, True),
        ("brand", S, True),
        ("price", D, True),
        ("launch_ts", TS, True),
        ("attributes", map_of(S, S), True),  # further export columns, as text (the model reads them)
        ("content_hash", S, False),  # changes when any descriptive field changes
        ("source_file", S, True),
        ("updated_run_id", S, False),
    ),
    keys=("item_id",),
)

USERS = TableSpec(
    name="users",
    fields=_struct(
        ("user_id", S, False),
        ("signup_ts", TS, True),
        ("attributes", map_of(S, S), True),  # further export columns, as categorical text
        ("derived_from_events", B, False),
        ("updated_run_id", S, False),
    ),
    keys=("user_id",),
)

INTERACTIONS = TableSpec(
    name="interactions",
    fields=_struct(
        ("user_id", S, False),
        ("item_id", S, False),
        ("event_type", S, False),
        ("ts", TS, False),
        ("value", D, True),
        ("type_weight", D, False),  # configured weight of the event type
        ("event_date", DT, False),
        ("source_file", S, True),
        ("run_id", S, False),
    ),
    keys=("user_id", "item_id", "event_type", "ts"),
    partition_by=("event_date",),
)

ITEM_STATS = TableSpec(
    name="item_stats",
    fields=_struct(
        ("item_id", S, False),
        ("launch_ts", TS, True),
        ("first_interaction_ts", TS, True),
        ("last_interaction_ts", TS, True),
        ("n_events", L, False),
        ("n_users", L, False),
        ("n_views", L, False),
        ("n_clicks", L, False),
        ("n_add_to_cart", L, False),
        ("n_purchases", L, False),
        ("n_ratings", L, False),
        ("weighted_interactions", D, False),  # sum of type_weight x time decay at as_of_ts
        ("age_days", D, True),  # as_of_ts - coalesce(launch_ts, first_interaction_ts)
        ("as_of_ts", TS, False),
    ),
    keys=("item_id",),
)

USER_FEATURES = TableSpec(
    name="user_features",
    fields=_struct(
        ("user_id", S, False),
        ("n_events", L, False),
        ("n_items", L, False),
        ("n_purchases", L, False),
        ("first_ts", TS, True),
        ("last_ts", TS, True),
        ("recency_days", D, True),
        ("category_mix", map_of(S, D), True),  # share of time-decayed weight per category
        ("top_category", S, True),
        ("recent_items", array(S), True),  # newest first
        ("as_of_ts", TS, False),
    ),
    keys=("user_id",),
)

QUARANTINE = TableSpec(
    name="quarantine",
    fields=_struct(
        ("quarantine_id", S, False),  # hash of source, file, raw row, occurrence and reason
        ("source", S, False),  # items | users | events
        ("source_file", S, True),
        ("raw_row", S, False),  # the row as the export had it, as JSON text or the raw CSV line
        ("reason", S, False),
        ("run_id", S, False),
        ("quarantined_at", TS, False),
    ),
    keys=("quarantine_id",),
)

# The feature job's run ledger: one row per run, written before its first MERGE (status started)
# and again after its last table (complete). A run that never completed is reported by the next
# one, which completes it when the exports are unchanged (same fingerprint).
FEATURE_RUNS = TableSpec(
    name="feature_runs",
    fields=_struct(
        ("run_id", S, False),
        ("status", S, False),  # started | complete | interrupted (a later run found it unfinished)
        ("input", S, False),  # the exports' folder
        ("fingerprint", S, False),  # sha256 of every export file's path, size, modification time and checksum
        ("files", S, False),  # JSON: [{source, path, size, mtime, checksum}] (checksum where the file system has one)
        ("started_at", TS, False),
        ("finished_at", TS, True),
        ("accepted", map_of(S, L), True),  # per export
        ("quarantined", map_of(S, L), True),  # per export
        ("table_versions", map_of(S, L), True),  # each table's Delta version once the run completed
        ("note", S, True),  # what the run found of an earlier unfinished one
    ),
    keys=("run_id",),
)


class RunStatus:
    STARTED = "started"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"


ITEM_TEXT_EMBEDDINGS = TableSpec(
    name="item_text_embeddings",
    fields=_struct(
        ("item_id", S, False),
        ("text_hash", S, False),  # SHA-256 of the encoded text; a change triggers re-encoding
        ("model_name", S, False),
        ("model_version", S, False),  # content hash of the model's weights and tokenizer
        ("embedding", array(F32), False),  # unit vector [dim]
        ("embedded_at", TS, False),
        ("run_id", S, False),
    ),
    keys=("item_id",),
)


# The large model fine-tuned on the shop (train.encoder_tuning: adapter): every item's text vector as the
# model's score reads it, one row per item of the latest model trained with a tuned encoder (overwritten by
# each such training, earlier versions in the Delta history, like item_embeddings). The vectors are the
# encoder's (item_text_embeddings, untouched) centred on the catalogue's mean, on train.text_dims principal
# directions where set, then through the trained adapter: unit length.
ITEM_TEXT_EMBEDDINGS_TUNED = TableSpec(
    name="item_text_embeddings_tuned",
    fields=_struct(
        ("item_id", S, False),
        ("model_version", S, False),  # the model whose adapter tuned it (item_embeddings.model_version)
        ("encoder_tuning", S, False),  # train.encoder_tuning of that model
        ("embedding", array(F32), False),  # unit vector [text width]
        ("created_at", TS, False),
    ),
    keys=("model_version", "item_id"),
)

# The training stage's input, one row per (user, item) pair seen before the cutoff. Integer ids
# index the model's vocabularies (models/<version>/); the table is rebuilt for every model.
TRAINING_EXAMPLES = TableSpec(
    name="training_examples",
    fields=_struct(
        ("user_id", S, False),
        ("user_slot", I32, False),  # the user's id-embedding row: 1..train.user_id_buckets (hashed), 0: none
        ("item_index", I32, False),  # the item's row in the model's catalogue (0..n_items-1)
        ("history", array(I32), False),  # the user's latest items (catalogue rows), -1 padded
        ("user_numeric", array(F32), False),  # log1p(events), log1p(items), log1p(days since last)
        ("weight", F32, False),  # log1p(sum of event-type weights of the pair)
    ),
    keys=("user_id", "item_index"),
)

# Trained embeddings, for every user and every catalogue item, new ones included.
# score(user, item) = dot(user.embedding, item.embedding) + item.bias
# (user embeddings: the user tower's unit vector, then sqrt(w) x the user's text profile; item
# embeddings: the item's unit vector divided by the temperature, then sqrt(w) x its text embedding;
# without the text-affinity term, the first parts alone).
USER_EMBEDDINGS = TableSpec(
    name="user_embeddings",
    fields=_struct(
        ("user_id", S, False),
        ("model_version", S, False),
        ("embedding", array(F32), False),
        ("source", S, False),  # id+history | history | features_only
        ("n_history", I32, False),  # items in the history the vector was built from
        ("created_at", TS, False),
        ("history_items", array(S), True),  # those items, newest first (what a similar_to reason names)
    ),
    keys=("user_id",),
)

ITEM_EMBEDDINGS = TableSpec(
    name="item_embeddings",
    fields=_struct(
        ("item_id", S, False),
        ("model_version", S, False),
        ("embedding", array(F32), False),
        ("bias", D, False),  # popularity prior: predicted from content, adapted by early pace
        ("n_users", L, False),  # users who interacted before the cutoff
        ("source", S, False),  # trained | few_shot | content
        ("created_at", TS, False),
        # what the reasons of a recommendation read (null in tables trained before them):
        ("parts", array(struct_of(("name", S), ("width", I32))), True),  # the blocks of `embedding`, in order
        ("prior_score", D, True),  # the launch prior's term of `bias` (weighted)
        ("pace_score", D, True),  # the pace's term of `bias` (weighted): bias = prior_score + pace_score
        ("pace_days", D, True),  # the days the pace was read over (launch -> latest user, or -> cutoff)
        ("expected_users_per_day", D, True),  # the launch prior as an absolute rate
        # the item's attribute tokens: where each sits in the attribute block and its signed weight there
        ("attribute_tokens", array(struct_of(("token", S), ("slot", I32), ("weight", F32))), True),
    ),
    keys=("item_id",),
)


# The output the business consumes: top-K per user and run date.
RECOMMENDATIONS = TableSpec(
    name="recommendations",
    fields=_struct(
        ("user_id", S, False),
        ("rank", I32, False),  # 1 = best
        ("item_id", S, False),
        ("score", D, False),  # model score; for fallback rows the item's popularity among candidates
        ("source", S, False),  # model | fallback_category | fallback_popular
        ("model_version", S, False),
        ("run_date", DT, False),
        ("generated_at", TS, False),
        # why the item is in the list (ReasonKind; null with score.reasons false or a model trained before
        # reasons): kind, item_id (similar_to: the user's history item closest to it in that part's terms),
        # detail (brand=cucina, users=12,days=2.0, ...), share (the part's share of what lifts the item above
        # the average candidate for this user; null for fallback rows)
        ("reason", struct_of(("kind", S), ("item_id", S), ("detail", S), ("share", D)), True),
    ),
    keys=("run_date", "user_id", "rank"),
    partition_by=("run_date",),
)
RECOMMENDATIONS_LATEST_VIEW = "recommendations_latest"

# Cold-start quality by k-shot: one row per evaluation run, k, method and metric.
EVALUATION_METRICS = TableSpec(
    name="evaluation_metrics",
    fields=_struct(
        ("run_id", S, False),
        ("model_version", S, False),  # the model trained on what precedes the cutoff
        ("k", I32, False),  # first interactions of each new item the methods could use
        ("method", S, False),  # model | random | popular | content_knn | attribute_profile | als | oracle | tower;
        # served (k -1): the served lists' ablation, recall@K and recall@K_without_<part> / _change_without_<part>
        ("metric", S, False),  # recall@K, ndcg@K, hit_rate@K, mrr@K, coverage@K, mean_popularity@K, users, scorable_items;
        # on a baseline's rows also recall@K_diff_low/_high, ndcg@K_diff_low/_high: 95% interval of model minus it
        ("value", D, True),
        ("cutoff", TS, False),
        ("test_end", TS, False),
        ("evaluated_at", TS, False),
    ),
    keys=("run_id", "k", "method", "metric"),
)

# What the served lists look like beyond accuracy (rec_lib.scoring.list_metrics): one row per
# figure of one set of lists, written by every scoring run (source 'production') and by the
# evaluation's backtest of the scoring code (sources 'backtest', 'backtest_no_floor', with its
# recall and ndcg on the test window).
LIST_METRICS = TableSpec(
    name="list_metrics",
    fields=_struct(
        ("run_id", S, False),
        ("run_date", DT, False),  # the lists' run date
        ("source", S, False),  # production | backtest | backtest_no_floor
        ("model_version", S, False),
        ("metric", S, False),  # candidate_coverage, top3_first_share, exposure_gini, mean_pairwise_overlap, ...
        ("value", D, True),
        ("computed_at", TS, False),
    ),
    keys=("run_id", "source", "metric"),
)


# The evaluation gate's decisions (evaluate.gate): one row per gated evaluation run. A passed row
# names the production model it published (the champion) and the Delta versions of the two
# embedding tables that hold its vectors, which scoring reads by time travel (score.serve: champion).
MODEL_GATE = TableSpec(
    name="model_gate",
    fields=_struct(
        ("run_id", S, False),  # the evaluation run that decided
        ("model_version", S, False),  # the production model decided on (in the embedding tables)
        ("evaluated_version", S, False),  # the model of the evaluation's cutoff, trained the same way
        ("passed", B, False),
        ("reason", S, False),  # what it beat, or where it lost
        ("user_embeddings_version", L, False),  # Delta versions holding the decided model's vectors
        ("item_embeddings_version", L, False),
        ("registered_model", S, True),  # MLflow registered model and version (null: no registry)
        ("registered_version", S, True),
        ("decided_at", TS, False),
    ),
    keys=("run_id",),
)


class ListSource:
    PRODUCTION = "production"
    BACKTEST = "backtest"
    BACKTEST_NO_FLOOR = "backtest_no_floor"


# The evaluation's own model input (same layout as training_examples, which stays the production
# model's input).
EVALUATION_TRAINING_EXAMPLES = dataclasses.replace(TRAINING_EXAMPLES, name="evaluation_training_examples")


class RecommendationSource:
    MODEL = "model"
    FALLBACK_CATEGORY = "fallback_category"  # user without an embedding: popular new items of their top category
    FALLBACK_POPULAR = "fallback_popular"  # ... or popular new items overall


class ReasonKind:
    """recommendations.reason.kind: the part of the score that lifts the item most for this user."""
    SIMILAR_TO = "similar_to"  # the tower or the text part: like an item of the user's history
    ATTRIBUTE = "attribute"  # the attribute part: attribute tokens the user's history shares
    TRENDING = "trending"  # the pace part: the launch's first users came fast
    POPULAR_LAUNCH = "popular_launch"  # the launch prior
    FALLBACK = "fallback"  # a fallback list (a user the model does not know)
    ALL = (SIMILAR_TO, ATTRIBUTE, TRENDING, POPULAR_LAUNCH, FALLBACK)
    OF_PART = {"tower": SIMILAR_TO, "text": SIMILAR_TO, "attributes": ATTRIBUTE, "pace": TRENDING,
               "prior": POPULAR_LAUNCH}


class EmbeddingSource:
    TRAINED = "trained"  # item with an id embedding (enough interactions)
    FEW_SHOT = "few_shot"  # content vector adapted from its first interactions
    CONTENT = "content"  # no interactions yet: content alone
    USER_ID = "id+history"
    USER_HISTORY = "history"
    USER_FEATURES_ONLY = "features_only"


TABLES: Dict[str, TableSpec] = {
    t.name: t for t in (ITEMS, USERS, INTERACTIONS, ITEM_STATS, USER_FEATURES, QUARANTINE, FEATURE_RUNS,
                        ITEM_TEXT_EMBEDDINGS, ITEM_TEXT_EMBEDDINGS_TUNED,
                        TRAINING_EXAMPLES, USER_EMBEDDINGS, ITEM_EMBEDDINGS, RECOMMENDATIONS, EVALUATION_METRICS,
                        EVALUATION_TRAINING_EXAMPLES, LIST_METRICS, MODEL_GATE)
}
