"""Typed configuration: YAML files in conf/, overridable with `key=value` settings.

Each job declares the sections it reads as a dataclass (`FeatureJobConfig`, ...) and checks them
together in `validate`. The sections are in rec_lib.core.sections, loading in rec_lib.core.loader;
both are re-exported here, the one import path jobs, scripts and users need.
"""
from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Optional

from rec_lib.core.errors import ConfigError
from rec_lib.core.loader import load_config, parse_overrides, read_tree, replace, split_settings
from rec_lib.core.schema import EVENT_TYPES, INPUTS, TEXT_FIELDS
from rec_lib.core.sections import (
    ENCODER_TUNINGS,
    METHODS,
    PSEUDO_LAUNCHES,
    SERVE_MODELS,
    DemoSection,
    EncoderSection,
    EvaluateSection,
    FeaturesSection,
    FewShotSection,
    InputSection,
    MlflowSection,
    PathsSection,
    RunSection,
    ScoreSection,
    SparkSection,
    SqlSection,
    TrainSection,
    at_least,
    one_of,
)
from rec_lib.core.sections import __all__ as SECTIONS


@dataclass(frozen=True)
class FeatureJobConfig:
    spark: SparkSection
    paths: PathsSection
    input: InputSection
    features: FeaturesSection
    run: RunSection

    def validate(self) -> "FeatureJobConfig":
        unknown_sources = set(self.input.columns) - set(INPUTS)
        if unknown_sources:
            raise ConfigError(
                f"input.columns names unknown export(s) {sorted(unknown_sources)}; "
                f"known: {sorted(INPUTS)}"
            )
        for source, mapping in self.input.columns.items():
            unknown = set(mapping) - set(INPUTS[source].columns)
            if unknown:
                raise ConfigError(
                    f"input.columns.{source} remaps unknown column(s) {sorted(unknown)}; "
                    f"contract columns: {list(INPUTS[source].columns)}"
                )
        _check_timestamp("input.min_ts", self.input.min_ts)
        at_least("input", self.input, ("max_text_chars",), 0)
        for source, share in self.input.max_quarantine_share.items():
            if source not in INPUTS or not 0.0 <= share <= 1.0:
                raise ConfigError(f"input.max_quarantine_share.{source} must name an export of {sorted(INPUTS)} and be "
                                  f"a share in [0, 1] (1: never fail), got {share!r}")
        if len(self.input.csv_delimiter) != 1:
            raise ConfigError(f"input.csv_delimiter must be one character, got {self.input.csv_delimiter!r}")
        try:
            "".encode(self.input.encoding)
        except LookupError as exc:
            raise ConfigError(f"input.encoding {self.input.encoding!r} is not a known encoding "
                              "(e.g. UTF-8, ISO-8859-1)") from exc
        bad_ml = set(self.input.multiline_csv) - set(INPUTS)
        if bad_ml:
            raise ConfigError(f"input.multiline_csv names unknown export(s) {sorted(bad_ml)}")
        unknown_types = set(self.features.event_weights) - set(EVENT_TYPES)
        if unknown_types:
            raise ConfigError(
                f"features.event_weights has unknown event type(s) {sorted(unknown_types)}; "
                f"known: {list(EVENT_TYPES)}"
            )
        negative = {k: v for k, v in self.features.event_weights.items() if v < 0}
        if negative:
            raise ConfigError(f"features.event_weights must be >= 0, got {negative}")
        if self.features.decay_half_life_days <= 0:
            raise ConfigError("features.decay_half_life_days must be > 0, "
                              f"got {self.features.decay_half_life_days}")
        at_least("features", self.features, ("recent_items",), 1)
        return self


def _check_timestamp(key: str, value: str) -> None:
    try:
        datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key} must be an ISO-8601 date or time (e.g. 1990-01-01), got {value!r}") from exc


DEMO_REGIMES = ("text", "attributes", "popularity")
DEMO_LANGUAGES = ("en", "zh", "mixed")
TRAIN_DETERMINISM = ("auto", "always", "never")  # rec_lib.training.worker.determinism_wanted
ATTRIBUTE_TYPES = ("categorical", "multi", "numeric", "ignore")


def _check_date(key: str, value: Optional[str]) -> None:
    if value is None:
        return
    try:
        datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{key} must be YYYY-MM-DD, got {value!r}") from exc


@dataclass(frozen=True)
class GenerateJobConfig:
    paths: PathsSection
    demo: DemoSection
    run: RunSection

    def validate(self) -> "GenerateJobConfig":
        d = self.demo
        at_least("demo", d, ("n_users", "n_items", "n_events", "chunk_users"), 1)
        if d.regime not in DEMO_REGIMES:
            raise ConfigError(f"demo.regime must be one of {list(DEMO_REGIMES)}, got {d.regime!r}")
        if d.language not in DEMO_LANGUAGES:
            raise ConfigError(f"demo.language must be one of {list(DEMO_LANGUAGES)}, got {d.language!r}")
        if not 0 <= d.noise <= 5:
            raise ConfigError(f"demo.noise must be in [0, 5], got {d.noise}")
        _check_date("demo.start_date", d.start_date)
        _check_date("demo.end_date", d.end_date)
        if d.start_date and d.end_date and d.start_date >= d.end_date:
            raise ConfigError(f"demo.start_date ({d.start_date}) must be before demo.end_date ({d.end_date})")
        if d.format not in ("csv", "parquet"):
            raise ConfigError(f"demo.format must be csv or parquet, got {d.format!r}")
        if not 0 <= d.dirty_fraction < 0.5:
            raise ConfigError(f"demo.dirty_fraction must be in [0, 0.5), got {d.dirty_fraction}")
        at_least("demo", d, ("launch_windows",), 1)
        if not 0 < d.new_item_fraction * d.launch_windows < 1:
            raise ConfigError(f"demo.new_item_fraction x demo.launch_windows must be in (0, 1), got "
                              f"{d.new_item_fraction} x {d.launch_windows}")
        return self


@dataclass(frozen=True)
class EmbedJobConfig:
    spark: SparkSection
    paths: PathsSection
    encoder: EncoderSection
    run: RunSection

    def validate(self) -> "EmbedJobConfig":
        e = self.encoder
        unknown = [f for f in e.text_fields if f not in TEXT_FIELDS]
        if unknown or not e.text_fields:
            raise ConfigError(f"encoder.text_fields must name some of {list(TEXT_FIELDS)}, got {e.text_fields}")
        at_least("encoder", e, ("batch_size",), 1)
        at_least("encoder", e, ("tf_threads", "partitions", "chunk_items"), 0)
        return self


@dataclass(frozen=True)
class TrainJobConfig:
    spark: SparkSection
    paths: PathsSection
    train: TrainSection
    few_shot: FewShotSection
    mlflow: MlflowSection
    run: RunSection

    def validate(self) -> "TrainJobConfig":
        t, f = self.train, self.few_shot
        at_least("train", t, ("num_proc", "epochs", "batch_size", "embedding_dim", "hidden_dim",
                               "min_item_interactions", "history_length", "price_buckets",
                               "start_timeout_s"), 1)
        at_least("train", t, ("extra_negatives", "tf_threads", "launch_cohorts", "attribute_dims", "user_id_buckets",
                               "text_dims", "min_cohort_launches"), 0)
        at_least("train", t, ("launch_days", "adapter_rank", "blend_max_users", "blend_max_cells", "attribute_slots"), 1)
        if not t.blend_ks or 0 not in t.blend_ks or any(k < 0 for k in t.blend_ks):
            raise ConfigError(f"train.blend_ks must hold 0 and whole numbers >= 0, got {t.blend_ks}")
        if t.blend not in ("learned", "fixed"):
            raise ConfigError(f"train.blend must be learned or fixed, got {t.blend!r}")
        one_of("train", t, "pseudo_launches", PSEUDO_LAUNCHES)
        one_of("train", t, "encoder_tuning", ENCODER_TUNINGS)
        one_of("train", t, "deterministic", TRAIN_DETERMINISM)
        bad_types = {k: v for k, v in t.attribute_types.items() if v not in ATTRIBUTE_TYPES}
        if bad_types:
            raise ConfigError(f"train.attribute_types must map fields to one of {list(ATTRIBUTE_TYPES)}, got {bad_types}")
        if t.text_weight < 0:
            raise ConfigError(f"train.text_weight must be >= 0, got {t.text_weight}")
        for name in ("learning_rate", "temperature"):
            if getattr(t, name) <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(t, name)}")
        for name in ("item_id_dropout", "user_id_dropout", "text_dropout"):
            value, closed = getattr(t, name), name == "item_id_dropout"  # an item-id dropout of 1: no id embedding
            if not (0 <= value <= 1 if closed else 0 <= value < 1):
                top = "1] (1: no item-id embedding)" if closed else "1)"
                raise ConfigError(f"train.{name} must be in [0, {top}, got {value}")
        if f.method not in ("blend", "none"):
            raise ConfigError(f"few_shot.method must be blend or none, got {f.method!r}")
        if f.prior_strength <= 0 or f.pace_prior_strength <= 0 or f.text_prior_strength <= 0:
            raise ConfigError("few_shot.prior_strength, pace_prior_strength and text_prior_strength must be > 0")
        at_least("few_shot", f, ("max_k",), 0)
        return self


@dataclass(frozen=True)
class ScoreJobConfig:
    spark: SparkSection
    paths: PathsSection
    score: ScoreSection
    sql: SqlSection
    run: RunSection

    def validate(self) -> "ScoreJobConfig":
        sc = self.score
        at_least("score", sc, ("k", "new_item_days", "max_tile_items", "users_per_batch"), 1)
        at_least("score", sc, ("max_new_item_users", "max_per_category", "new_item_quota", "show_users",
                                "min_new_item_exposure", "max_floor_slots", "keep_run_dates", "reason_history"), 0)
        if sc.order not in ("score", "personal"):
            raise ConfigError(f"score.order must be score or personal, got {sc.order!r}")
        if sc.candidates not in ("new", "all"):
            raise ConfigError(f"score.candidates must be new or all, got {sc.candidates!r}")
        if sc.serve not in SERVE_MODELS:
            raise ConfigError(f"score.serve must be one of {list(SERVE_MODELS)}, got {sc.serve!r}")
        return self


@dataclass(frozen=True)
class EvaluateJobConfig:
    spark: SparkSection
    paths: PathsSection
    train: TrainSection
    few_shot: FewShotSection
    mlflow: MlflowSection
    evaluate: EvaluateSection
    score: ScoreSection  # the backtest serves lists with the scoring job's settings
    sql: SqlSection
    run: RunSection

    def train_config(self, cutoff: str) -> TrainJobConfig:
        """The training job's config for the evaluation's model: trained on what precedes `cutoff`."""
        return TrainJobConfig(self.spark, self.paths, dataclasses.replace(self.train, cutoff=cutoff),
                              self.few_shot, self.mlflow, self.run).validate()

    def validate(self) -> "EvaluateJobConfig":
        e = self.evaluate
        self.train_config(self.train.cutoff)
        at_least("evaluate", e, ("test_days", "top_k", "als_rank", "als_iterations"), 1)
        at_least("evaluate", e, ("max_users",), 0)
        if not e.ks or any(k < 0 for k in e.ks) or len(set(e.ks)) != len(e.ks):
            raise ConfigError(f"evaluate.ks must be distinct whole numbers >= 0, got {e.ks}")
        unknown = [m for m in e.methods if m not in METHODS]
        if unknown or "model" not in e.methods:
            raise ConfigError(f"evaluate.methods must include model and name only {list(METHODS)}, got {e.methods}")
        bad_gate = [m for m in e.gate if m not in e.methods or m == "model"]
        if bad_gate:
            raise ConfigError(f"evaluate.gate names baselines the model must beat, each one of evaluate.methods "
                              f"{e.methods} but model; got {e.gate}")
        if e.window not in ("test", "validation"):
            raise ConfigError(f"evaluate.window must be test or validation, got {e.window!r}")
        ScoreJobConfig(self.spark, self.paths, self.score, self.sql, self.run).validate()
        if e.als_reg < 0 or e.als_alpha <= 0:
            raise ConfigError("evaluate.als_reg must be >= 0 and evaluate.als_alpha > 0")
        return self


@dataclass(frozen=True)
class SqlJobConfig:
    spark: SparkSection
    paths: PathsSection
    sql: SqlSection


JOB_CONFIGS = ("FeatureJobConfig", "GenerateJobConfig", "EmbedJobConfig", "TrainJobConfig", "ScoreJobConfig",
               "EvaluateJobConfig", "SqlJobConfig")
__all__ = [*SECTIONS, *JOB_CONFIGS, "load_config", "parse_overrides", "read_tree", "replace", "split_settings"]
