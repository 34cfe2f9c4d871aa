"""The feature stage: raw exports -> validated, deduplicated Delta tables + quarantine.

Order of work, so that a bad file never leaves a half-written warehouse:
1. locate and read every export, check required columns (InputError names file and column), list
   its files for the run ledger (features.ledger);
2. validate every row and count accepted/quarantined rows (this reads every file in full, so an
   unreadable file fails here, still before any write); an export with more than
   `input.max_quarantine_share` of its rows rejected stops the run here;
3. record the run in `feature_runs` (started), completing an unfinished run on the same exports;
4. MERGE items, users, interactions and quarantine rows by key (each MERGE is one Delta commit;
   a re-run on the same input changes nothing, so a run killed between them is completed by the next);
5. rebuild the derived tables item_stats and user_features from the merged tables; mark the run complete.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from typing import Dict, Optional, Sequence, Tuple

from py4j.protocol import Py4JJavaError
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from rec_lib.core import faults
from rec_lib.core.clock import new_run_id, resolve_now, run_now, utc_naive
from rec_lib.core.config import FeatureJobConfig
from rec_lib.core.errors import InputError
from rec_lib.core.progress import timed
from rec_lib.core.schema import (
    EVENTS_INPUT,
    FEATURE_RUNS,
    INTERACTIONS,
    ITEM_STATS,
    ITEMS,
    ITEMS_INPUT,
    QUARANTINE,
    USER_FEATURES,
    USERS,
    USERS_INPUT,
    InputContract,
    RunStatus,
)
from rec_lib.features import ledger
from rec_lib.features import transforms as fx
from rec_lib.platform import exports, io
from rec_lib.platform import filesystem as fs
from rec_lib.platform.cli import run_spark_job
from rec_lib.platform.columns import timestamp_lit

log = logging.getLogger(__name__)


@dataclass
class SourceCounts:
    accepted: int = 0
    quarantined: Dict[str, int] = field(default_factory=dict)
    text_cut: int = 0  # accepted rows whose title or description was cut to input.max_text_chars

    @property
    def total_quarantined(self) -> int:
        return sum(self.quarantined.values())


@dataclass
class FeatureRunSummary:
    run_id: str
    sources: Dict[str, SourceCounts]
    written: Dict[str, int]  # rows inserted or updated per table (rows already stored are skipped)
    table_rows: Dict[str, int]
    note: Optional[str] = None  # what the run found of earlier unfinished runs (features.ledger)

    def lines(self):
        yield f"feature job run {self.run_id}"
        if self.note:
            yield f"  {self.note}"
        for source, c in self.sources.items():
            reasons = ", ".join(f"{r}: {n}" for r, n in sorted(c.quarantined.items())) or "none"
            cut = f"; {c.text_cut:,} cut to input.max_text_chars" if c.text_cut else ""
            yield f"  {source:<7} accepted {c.accepted:>10,}  quarantined {c.total_quarantined:>8,}  ({reasons}){cut}"
        yield "  new or changed rows: " + ", ".join(f"{t}={n:,}" for t, n in self.written.items())
        yield "  tables: " + ", ".join(f"{t}={n:,}" for t, n in self.table_rows.items())


def _materialise(df: DataFrame, where: str) -> DataFrame:
    """Persist validated rows and force a full read now, turning a read failure into an InputError."""
    cached = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        cached.count()
    except Py4JJavaError as exc:
        cached.unpersist()
        reason = str(exc.java_exception).splitlines()[0] if exc.java_exception is not None else str(exc)
        raise InputError(f"{where}: cannot be read: {reason}") from exc
    return cached


def _count(validated: DataFrame) -> SourceCounts:
    """Rows by quarantine reason (None: accepted) and, where the export has texts, accepted rows cut."""
    cut = F.col(fx.TEXT_CUT) if fx.TEXT_CUT in validated.columns else F.lit(False)
    counts = validated.groupBy(fx.REASON, cut.alias("_cut")).count().collect()
    by_reason: Dict[Optional[str], int] = {}
    for r in counts:
        by_reason[r[fx.REASON]] = by_reason.get(r[fx.REASON], 0) + r["count"]
    accepted = by_reason.pop(None, 0)
    text_cut = sum(r["count"] for r in counts if r[fx.REASON] is None and r["_cut"])
    return SourceCounts(accepted=accepted, quarantined=by_reason, text_cut=text_cut)


def _read(spark: SparkSession, cfg: FeatureJobConfig, contract: InputContract):
    loc = exports.locate_export(spark, cfg.paths.input, contract)
    if loc is None:
        return None, None
    df = exports.read_export(spark, loc, contract, cfg.input.columns.get(contract.name, {}),
                        multiline=contract.name in cfg.input.multiline_csv, encoding=cfg.input.encoding,
                        delimiter=cfg.input.csv_delimiter)
    return loc, df


@dataclass
class _Validated:
    """Each export's rows with their quarantine reason (None: accepted), persisted; users None
    without a users export."""

    items: DataFrame
    users: Optional[DataFrame]
    events: DataFrame
    files: Tuple[ledger.ExportFile, ...] = ()  # the exports' files, listed before they were read

    def by_source(self) -> Dict[str, DataFrame]:
        return {name: v for name, v in (("items", self.items), ("users", self.users), ("events", self.events))
                if v is not None}

    def unpersist(self) -> None:
        for v in self.by_source().values():
            v.unpersist()


def _validate(spark: SparkSession, cfg: FeatureJobConfig, now_ts: Column) -> Tuple[_Validated, Dict[str, SourceCounts]]:
    """Locate and read every export before any work, then validate and count each. Events of items
    neither in this export nor already stored are refused (unknown_item)."""
    exports.check_marker(spark, cfg.paths.input, cfg.input.require_marker)
    items_loc, raw_items = _read(spark, cfg, ITEMS_INPUT)
    users_loc, raw_users = _read(spark, cfg, USERS_INPUT)
    events_loc, raw_events = _read(spark, cfg, EVENTS_INPUT)
    files = tuple(ledger.ExportFile(loc.source, f.path, f.size, f.mtime, f.checksum)
                  for loc in (items_loc, users_loc, events_loc) if loc is not None
                  for f in fs.list_files(spark, loc.path))
    max_future = cfg.input.max_future_hours
    min_ts = timestamp_lit(datetime.fromisoformat(cfg.input.min_ts))
    with timed(log, "validate items"):
        items_v = _materialise(fx.validate_items(raw_items, now_ts, max_future, exports.extra_columns(raw_items, ITEMS_INPUT),
                                                 min_ts, cfg.input.max_text_chars), items_loc.path)
    known_items = fx.accepted(items_v).select("item_id")
    stored_items = io.read_table_if_exists(spark, cfg.paths.warehouse, ITEMS)
    if stored_items is not None:
        known_items = known_items.unionByName(stored_items.select("item_id"))
    users_v = None
    if raw_users is not None:
        with timed(log, "validate users"):
            attrs = exports.extra_columns(raw_users, USERS_INPUT)
            users_v = _materialise(fx.validate_users(raw_users, attrs, now_ts, max_future, min_ts), users_loc.path)
    with timed(log, "validate events"):
        events_v = _materialise(
            fx.validate_events(raw_events, known_items, cfg.features.event_weights, now_ts, max_future, min_ts),
            events_loc.path)
        counts = {"items": _count(items_v), "users": _count(users_v) if users_v is not None else SourceCounts(),
                  "events": _count(events_v)}
    validated = _Validated(items_v, users_v, events_v, files)
    too_many = ledger.over_quarantine_share({s: (c.accepted, c.quarantined) for s, c in counts.items()},
                                            cfg.input.max_quarantine_share)
    if counts["items"].accepted == 0 and stored_items is None:
        too_many.insert(0, f"{items_loc.path}: no valid item rows (quarantine reasons: {counts['items'].quarantined})")
    if too_many:
        validated.unpersist()
        raise InputError("nothing written: " + "; ".join(too_many))
    return validated, counts


def _merge_base_tables(spark: SparkSession, validated: _Validated, warehouse: str, run_id: str,
                       quarantined_at: Column) -> Dict[str, int]:
    """MERGE the accepted rows into items, users and interactions and the rejected ones into the
    quarantine; rows per table inserted or updated."""
    accepted_events = fx.accepted(validated.events)
    accepted_users = fx.accepted(validated.users) if validated.users is not None else spark.createDataFrame(
        [], "user_id string, signup_ts timestamp, attributes map<string,string>")
    stored_users = io.read_table_if_exists(spark, warehouse, USERS)
    written: Dict[str, int] = {}
    with timed(log, "merge items"):
        written["items"] = io.merge_table(spark, fx.item_rows(fx.accepted(validated.items), run_id), ITEMS, warehouse,
                                          compare=["content_hash"])
    faults.point("features.merged:items")
    with timed(log, "merge users"):
        written["users"] = io.merge_table(
            spark, fx.user_rows(accepted_users, accepted_events, run_id, stored_users), USERS, warehouse,
            compare=["signup_ts", "attributes", "derived_from_events"])
    faults.point("features.merged:users")
    with timed(log, "merge interactions"):
        written["interactions"] = io.merge_table(spark, fx.interaction_rows(accepted_events, run_id), INTERACTIONS,
                                                 warehouse, compare=["value", "type_weight"])
    faults.point("features.merged:interactions")
    with timed(log, "merge quarantine"):
        rejected = [fx.quarantine_rows(fx.rejected(v), name, run_id, quarantined_at)
                    for name, v in validated.by_source().items()]
        written["quarantine"] = io.merge_table(spark, reduce(DataFrame.unionByName, rejected), QUARANTINE,
                                               warehouse)  # insert-only: ids are stable across runs
    faults.point("features.merged:quarantine")
    return written


def _rebuild_derived_tables(spark: SparkSession, cfg: FeatureJobConfig) -> None:
    """item_stats and user_features from the merged state (so incremental runs see all history).
    They are a function of the base tables' versions and two settings; when none changed they are kept."""
    warehouse = cfg.paths.warehouse
    fingerprint = json.dumps({"inputs": {spec.name: io.table_version(spark, warehouse, spec)
                                         for spec in (ITEMS, USERS, INTERACTIONS)},
                              "decay_half_life_days": cfg.features.decay_half_life_days,
                              "recent_items": cfg.features.recent_items}, sort_keys=True)
    if all(io.last_user_metadata(spark, warehouse, spec) == fingerprint for spec in (ITEM_STATS, USER_FEATURES)):
        log.info("item_stats and user_features are up to date (same inputs and settings)")
        return
    items_t = io.read_table(spark, warehouse, ITEMS)
    users_t = io.read_table(spark, warehouse, USERS)
    interactions_t = io.read_table(spark, warehouse, INTERACTIONS)
    newest = interactions_t.agg(F.max("ts")).first()[0]
    as_of_ts = fx.as_of(newest)
    pairs = fx.user_item_pairs(interactions_t, as_of_ts, cfg.features.decay_half_life_days).persist(
        StorageLevel.MEMORY_AND_DISK)
    with timed(log, "rebuild item_stats"):
        io.overwrite_table(fx.item_stats(items_t, pairs, as_of_ts), ITEM_STATS, warehouse, fingerprint)
    with timed(log, "rebuild user_features"):
        io.overwrite_table(fx.user_features(users_t, items_t, pairs, as_of_ts, cfg.features.recent_items),
                           USER_FEATURES, warehouse, fingerprint)
    pairs.unpersist()


def run_feature_job(spark: SparkSession, cfg: FeatureJobConfig) -> FeatureRunSummary:
    now = run_now(cfg.run)
    warehouse = cfg.paths.warehouse
    log.info("feature job: input %s -> warehouse %s", cfg.paths.input, warehouse)
    validated, counts = _validate(spark, cfg, timestamp_lit(now))
    run = ledger.resume(_unfinished_runs(spark, warehouse), ledger.fingerprint(validated.files), cfg.run.run_id,
                        new_run_id(now))
    if run.note:
        log.warning("%s", run.note)
    log.info("feature job run %s", run.run_id)
    _record_run(spark, cfg, now, run, validated.files, RunStatus.STARTED)
    written = _merge_base_tables(spark, validated, warehouse, run.run_id, timestamp_lit(now))
    _rebuild_derived_tables(spark, cfg)
    validated.unpersist()
    table_rows = {spec.name: io.read_table(spark, warehouse, spec).count()
                  for spec in (ITEMS, USERS, INTERACTIONS, ITEM_STATS, USER_FEATURES, QUARANTINE)}
    _record_run(spark, cfg, now, run, validated.files, RunStatus.COMPLETE, counts)
    return FeatureRunSummary(run_id=run.run_id, sources=counts, written=written, table_rows=table_rows, note=run.note)


# --------------------------------------------------------------------------------------------
# The run ledger (features.ledger): feature_runs
# --------------------------------------------------------------------------------------------

LEDGERED = (ITEMS, USERS, INTERACTIONS, ITEM_STATS, USER_FEATURES, QUARANTINE)  # versions kept once complete


def _unfinished_runs(spark: SparkSession, warehouse: str):
    runs = io.read_table_if_exists(spark, warehouse, FEATURE_RUNS)
    if runs is None:
        return []
    rows = runs.where(F.col("status") == RunStatus.STARTED).select("run_id", "fingerprint", "started_at").collect()
    return [ledger.Unfinished(r["run_id"], r["fingerprint"], r["started_at"]) for r in rows]


def _record_run(spark: SparkSession, cfg: FeatureJobConfig, now: datetime, run: ledger.Resumption,
                files: Sequence[ledger.ExportFile], status: str, counts: Optional[Dict[str, SourceCounts]] = None) -> None:
    """This run's ledger row (and, when it starts, the earlier unfinished runs it closes) in one MERGE."""
    warehouse, started = cfg.paths.warehouse, utc_naive(now)
    complete = status == RunStatus.COMPLETE
    versions = ledger.table_versions({spec.name: io.table_version(spark, warehouse, spec) for spec in LEDGERED}) \
        if complete else None
    rows = [(run.run_id, status, cfg.paths.input, ledger.fingerprint(files), ledger.files_json(files), started,
             utc_naive(resolve_now(None)) if complete else None,
             {s: c.accepted for s, c in counts.items()} if counts else None,
             {s: c.total_quarantined for s, c in counts.items()} if counts else None, versions, run.note)]
    df = spark.createDataFrame(rows, FEATURE_RUNS.schema)
    if run.closed and not complete:  # a closed run keeps what it recorded: only its status and note change
        stored = io.read_table(spark, warehouse, FEATURE_RUNS).where(F.col("run_id").isin([u.run_id for u in run.closed]))
        df = df.unionByName(stored.withColumn("status", F.lit(RunStatus.INTERRUPTED))
                            .withColumn("note", F.lit(f"found unfinished by run {run.run_id}")))
    io.merge_table(spark, df, FEATURE_RUNS, warehouse,
                   compare=["status", "finished_at", "accepted", "quarantined", "table_versions", "note"])


# --------------------------------------------------------------------------------------------
# Entry point: `rec-build-features`, `python -m jobs.build_features`, spark-submit jobs/build_features.py
# --------------------------------------------------------------------------------------------

DESCRIPTION = """Build the feature tables (items, users, interactions, item_stats, user_features, quarantine)."""
CONFIG = FeatureJobConfig  # the config this job reads


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_spark_job(argv, DESCRIPTION, CONFIG, run_feature_job)
