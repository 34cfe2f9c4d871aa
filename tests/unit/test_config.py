"""Config loading is strict: unknown and missing keys are named; settings override the file; files
are layered (a base and overlays that hold only what differs)."""
import typing
from pathlib import Path

import pytest

from rec_lib.core import config as rc
from rec_lib.core.config import (
    EvaluateJobConfig,
    FeatureJobConfig,
    GenerateJobConfig,
    ScoreJobConfig,
    TrainJobConfig,
    load_config,
    parse_overrides,
    read_tree,
    split_settings,
)
from rec_lib.core.errors import ConfigError
from tests.helpers import REPO

LOCAL = REPO / "conf" / "local.yaml"


def test_local_cluster_and_yarn_files_load_for_every_job():
    for conf in ("local.yaml", "cluster.yaml", "yarn.yaml"):
        for job in (FeatureJobConfig, GenerateJobConfig, TrainJobConfig, ScoreJobConfig, EvaluateJobConfig):
            load_config(job, REPO / "conf" / conf)
        assert load_config(FeatureJobConfig, REPO / "conf" / conf).features.recent_items == 20
        assert load_config(GenerateJobConfig, REPO / "conf" / conf).demo.seed == 42


def test_the_yarn_file_is_the_cluster_file_without_databricks():
    """conf/yarn.yaml differs from conf/cluster.yaml only where Databricks' places and services are
    named: the model folder is a URI, nothing points at /dbfs, Unity Catalog or Databricks' MLflow."""
    from rec_lib.core.files import is_uri

    cluster = load_config(EvaluateJobConfig, REPO / "conf" / "cluster.yaml")
    yarn = load_config(EvaluateJobConfig, REPO / "conf" / "yarn.yaml")
    assert is_uri(yarn.train.model_dir) and yarn.train.petastorm_cache_dir.startswith("hdfs://")
    assert yarn.mlflow.tracking_uri == "" and yarn.mlflow.registry_uri == "" and yarn.sql.catalog is None
    text = (REPO / "conf" / "yarn.yaml").read_text().split("\n")
    assert not [line for line in text if ("/dbfs" in line or "databricks" in line) and not line.startswith("#")]
    differ = {f"{section}.{key}" for section in ("train", "evaluate", "mlflow", "sql", "score", "paths", "spark")
              for key, value in vars(getattr(cluster, section)).items() if vars(getattr(yarn, section))[key] != value}
    assert differ == {"train.model_dir", "train.petastorm_cache_dir", "evaluate.report_dir", "mlflow.tracking_uri",
                      "mlflow.experiment", "mlflow.registered_model", "mlflow.registry_uri", "sql.catalog"}


# --------------------------------------------------------------------------------------------
# Layered files: conf/base.yaml and the overlays that extend it
# --------------------------------------------------------------------------------------------

OVERLAYS = {"local.yaml": "base.yaml", "cluster.yaml": "base.yaml", "yarn.yaml": "cluster.yaml"}


def test_each_overlay_extends_its_base_and_repeats_no_value_of_it():
    import yaml

    for overlay, base in OVERLAYS.items():
        own = yaml.safe_load((REPO / "conf" / overlay).read_text())
        assert own.pop("extends") == base
        under = read_tree(REPO / "conf" / base)
        repeated = [f"{section}.{key}" for section, body in own.items() for key, value in body.items()
                    if key in under.get(section, {}) and (
                        value == under[section][key] or (isinstance(value, dict) and isinstance(under[section][key], dict)
                                                         and any(under[section][key].get(k) == v for k, v in value.items())))]
        assert repeated == [], f"conf/{overlay} repeats conf/{base}'s values"


def test_no_file_sets_a_key_to_its_default():
    """A default lives in one place, the config class (docs/config.md shows it): a file repeating it
    would keep the old value when the default changes. An overlay may restore a default its base
    changed (conf/yarn.yaml's empty registry over conf/cluster.yaml's)."""
    import dataclasses

    import yaml

    classes = {}
    for job in (EvaluateJobConfig, FeatureJobConfig, GenerateJobConfig, rc.EmbedJobConfig, rc.SqlJobConfig):
        classes.update(typing.get_type_hints(job))
    found = []
    for name in ("base.yaml", *OVERLAYS):
        tree = yaml.safe_load((REPO / "conf" / name).read_text())
        tree.pop("extends", None)
        under = read_tree(REPO / "conf" / OVERLAYS[name]) if name in OVERLAYS else {}
        for section, body in tree.items():
            defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                        for f in dataclasses.fields(classes[section])
                        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
            found += [f"{name}: {section}.{key}" for key, value in body.items()
                      if key in defaults and value == defaults[key]
                      and under.get(section, {}).get(key, defaults[key]) == defaults[key]]
    assert found == []


def test_a_file_extends_its_base_key_by_key(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("a: {x: 1, y: {p: 1, q: 2}, z: [1, 2]}\nb: {k: v}\n")
    (tmp_path / "mid.yaml").write_text("extends: sub/base.yaml\na: {y: {q: 3}, z: [9]}\n")
    (tmp_path / "top.yaml").write_text("extends: mid.yaml\nb: {k: w, n: 1}\n")
    # mappings merge key by key, a list or a scalar replaces; the path is relative to the file naming it
    assert read_tree(tmp_path / "top.yaml") == {"a": {"x": 1, "y": {"p": 1, "q": 3}, "z": [9]}, "b": {"k": "w", "n": 1}}
    (tmp_path / "loop.yaml").write_text("extends: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        read_tree(tmp_path / "loop.yaml")
    (tmp_path / "bad.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml' not found"):
        read_tree(tmp_path / "bad.yaml")


def test_settings_override_with_typed_values():
    cfg = load_config(FeatureJobConfig, LOCAL, ["features.event_weights.view=0.5", "paths.warehouse=/tmp/w",
                                                "input.multiline_csv=items,users", "run.now=2026-01-01"])
    assert cfg.features.event_weights["view"] == 0.5
    assert cfg.features.event_weights["purchase"] == 8.0  # untouched keys keep the file's value
    assert cfg.paths.warehouse == "/tmp/w"
    assert cfg.input.multiline_csv == ["items", "users"]
    assert cfg.run.now == "2026-01-01"  # YAML would read a date; config keeps the text


@pytest.mark.parametrize("setting, message", [
    ("features.decay_halflife_days=3", "unknown config key 'features.decay_halflife_days'"),
    ("featurez.recent_items=3", "unknown config key 'featurez.recent_items'"),
    ("features.recent_items=many", "config key 'features.recent_items' must be a number"),
    ("features.recent_items=2.5", "must be a whole number"),
    ("features.event_weights.like=1", "unknown event type(s) ['like']"),
    ("input.columns.items.sku=item_id", "remaps unknown column(s) ['sku']"),
    ("demo.format=xml", "demo.format must be csv or parquet"),
    ("demo.regime=fashion", "demo.regime must be one of ['text', 'attributes', 'popularity'], got 'fashion'"),
    ("demo.language=fr", "demo.language must be one of ['en', 'zh', 'mixed'], got 'fr'"),
    ("demo.end_date=31.10.2026", "demo.end_date must be YYYY-MM-DD, got '31.10.2026'"),
    ("demo.new_item_fraction=0.5", "demo.new_item_fraction x demo.launch_windows must be in (0, 1)"),
    ("input.csv_delimiter=;;", "input.csv_delimiter must be one character, got ';;'"),
    ("input.encoding=klingon", "input.encoding 'klingon' is not a known encoding"),
    ("train.blend=average", "train.blend must be learned or fixed, got 'average'"),
    ("train.blend_ks=[1,3]", "train.blend_ks must hold 0"),
    ("train.attribute_types.year=date", "train.attribute_types must map fields to one of"),
    ("train.user_id_buckets=-1", "train.user_id_buckets must be >= 0, got -1"),
    ("score.order=random", "score.order must be score or personal, got 'random'"),
    ("evaluate.window=holdout", "evaluate.window must be test or validation, got 'holdout'"),
    ("evaluate.gate=[popularity]", "evaluate.gate names baselines the model must beat, each one of evaluate.methods"),
    ("evaluate.gate=[model]", "evaluate.gate names baselines the model must beat"),
    ("score.serve=best", "score.serve must be one of ['latest', 'champion'], got 'best'"),
    ("sql.tables=[recomendations]", "sql.tables must name tables of the warehouse"),
    # names spliced into SQL or paths: refused before any work, whatever the job
    ("run.run_id=x' OR '1'='1", "run.run_id must be at most 64 letters, digits, '_', '.' or '-'"),
    ("run.run_id=..", "run.run_id must be at most 64 letters"),
    ("run.run_id=../../etc", "run.run_id must be at most 64 letters"),
    ("run.run_id=" + "a" * 65, "run.run_id must be at most 64 letters"),
    ("sql.database=main.rec", "sql.database must be one database name"),
    ("sql.database=x`; DROP TABLE t; --", "sql.database must be one database name"),
    ("input.min_ts=yesterday", "input.min_ts must be an ISO-8601 date or time"),
    ("input.max_text_chars=-1", "input.max_text_chars must be >= 0"),
    # not a number a job can compute with, whether YAML or Python spells it
    ("features.decay_half_life_days=nan", "config key 'features.decay_half_life_days' must be a finite number, got nan"),
    ("few_shot.prior_strength=.nan", "config key 'few_shot.prior_strength' must be a finite number"),
    ("input.max_future_hours=.inf", "config key 'input.max_future_hours' must be a finite number, got inf"),
    ("score.k=nan", "config key 'score.k' must be a finite number"),
    ("train.encoder_tuning=top:2", "train.encoder_tuning must be one of ['frozen', 'adapter'], got 'top:2'"),
    ("train.adapter_rank=0", "train.adapter_rank must be >= 1, got 0"),
    # YAML's booleans are not text: a path named yes would silently become "True"
    ("paths.warehouse=yes", "config key 'paths.warehouse' must be text, got the YAML boolean true; quote the value"),
])
def test_bad_settings_name_the_key(setting, message):
    cls = {"demo": GenerateJobConfig, "train": TrainJobConfig, "few_shot": TrainJobConfig, "score": ScoreJobConfig, "sql": ScoreJobConfig,
           "evaluate": EvaluateJobConfig}.get(setting.split(".")[0], FeatureJobConfig)
    with pytest.raises(ConfigError) as err:
        load_config(cls, LOCAL, [setting])
    assert message in str(err.value)


def test_plain_run_ids_and_database_names_are_kept():
    cfg = load_config(ScoreJobConfig, LOCAL, ["run.run_id=2026-12-01_daily.v2", "sql.database=rec_new_items"])
    assert (cfg.run.run_id, cfg.sql.database) == ("2026-12-01_daily.v2", "rec_new_items")


def _one_file(tmp_path, edit) -> "Path":
    """conf/local.yaml with its base as one file, changed by `edit(tree)`."""
    import yaml

    tree = read_tree(LOCAL)
    edit(tree)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_missing_key_is_named(tmp_path):
    _one_file(tmp_path, lambda tree: tree["features"].pop("recent_items"))
    with pytest.raises(ConfigError, match="missing config key 'features.recent_items'"):
        load_config(FeatureJobConfig, tmp_path / "c.yaml")


def test_unknown_top_level_section_and_missing_file(tmp_path):
    _one_file(tmp_path, lambda tree: tree.update(sparks={}))
    with pytest.raises(ConfigError, match="unknown config key 'sparks'"):
        load_config(FeatureJobConfig, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(FeatureJobConfig, tmp_path / "absent.yaml")


def test_parse_overrides_rejects_settings_without_equals():
    assert parse_overrides(["a.b=1", "c=x y"]) == {"a.b": 1, "c": "x y"}
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_overrides(["features.recent_items"])


@pytest.mark.parametrize("text, expected", [
    ("a.b=1 c=x", ["a.b=1", "c=x"]),
    ("  evaluate.ks=[0, 1]   sql.database=x ", ["evaluate.ks=[0, 1]", "sql.database=x"]),
    ('run.note="a  b c=d" x={p: [1, 2], q: 3}', ['run.note="a  b c=d"', "x={p: [1, 2], q: 3}"]),
    ("n=it's y='z w'", ["n=it's", "y='z w'"]),  # a quote opens only where a value starts, as in YAML
    ("train.attribute_types.Image-URL-S=ignore input.csv_delimiter=;",  # a column name as a key
     ["train.attribute_types.Image-URL-S=ignore", "input.csv_delimiter=;"]),
    ("", []),
])
def test_a_settings_string_splits_at_spaces_outside_quotes_and_brackets(text, expected):
    assert split_settings(text) == expected


def test_the_views_namespace_is_catalog_and_database_each_quoted():
    from rec_lib.core.config import SqlSection

    assert SqlSection("shop", "main").namespace == "`main`.`shop`"
    assert SqlSection("shop").namespace == "`shop`" and SqlSection(None).namespace is None
    with pytest.raises(ConfigError, match="sql.catalog needs sql.database"):
        SqlSection(None, "main")
    with pytest.raises(ConfigError, match=r"sql.database must be one database name .* \(the catalog goes in sql.catalog\)"):
        SqlSection("main.shop")


def test_a_stray_word_in_settings_is_refused_with_how_to_quote():
    with pytest.raises(ConfigError, match="'b/c' is not of the form key=value .*quote a value"):
        split_settings("paths.input=/a b/c")
    with pytest.raises(ConfigError, match="'evaluate.ks=\\[0, 1': the value is not valid YAML"):
        parse_overrides(split_settings("evaluate.ks=[0, 1"))


def test_a_column_name_with_hyphens_is_a_key_that_reaches_the_config():
    from rec_lib.platform.cli import job_parser, load_job_config

    args = job_parser("").parse_args(["--conf-file", str(LOCAL), "--set",
                                      "train.attribute_types.Year-Of-Publication=numeric "
                                      "train.attribute_types.Image-URL-S=ignore"])
    cfg = load_job_config(TrainJobConfig, args)
    assert cfg.train.attribute_types == {"Year-Of-Publication": "numeric", "Image-URL-S": "ignore"}
    with pytest.raises(ConfigError, match="'-x=1' is not of the form key=value"):
        split_settings("a=1 -x=1")


def test_the_folder_arguments_are_kept_as_written():
    from rec_lib.platform.cli import job_parser, load_job_config

    # YAML would read these as a boolean, a number and nothing; the folders keep their names
    for name in ("yes", "1e3", "null", "a 'b' \\c"):
        args = job_parser("").parse_args(["--conf-file", str(LOCAL), "--warehouse", name, "--input", name])
        cfg = load_job_config(FeatureJobConfig, args)
        assert (cfg.paths.warehouse, cfg.paths.input) == (name, name)
    cfg = load_config(FeatureJobConfig, LOCAL, ['paths.warehouse="yes"'])
    assert cfg.paths.warehouse == "yes"


def test_a_list_with_spaces_reaches_the_config_through_the_job_parser():
    from rec_lib.platform.cli import job_parser, load_job_config

    args = job_parser("").parse_args(["--conf-file", str(LOCAL), "--set", "evaluate.ks=[0, 2] evaluate.top_k=7",
                                      "--set", 'evaluate.report_dir="/tmp/my reports"'])
    cfg = load_job_config(EvaluateJobConfig, args)
    assert (cfg.evaluate.ks, cfg.evaluate.top_k, cfg.evaluate.report_dir) == ([0, 2], 7, "/tmp/my reports")


def test_train_config_loads_and_accepts_exponent_numbers():
    from rec_lib.core.config import TrainJobConfig

    cfg = load_config(TrainJobConfig, LOCAL, ["train.learning_rate=1e-3", "train.epochs=5", "mlflow.tracking_uri=''"])
    assert cfg.train.learning_rate == 0.001 and cfg.train.epochs == 5 and cfg.mlflow.tracking_uri == ""
    assert load_config(TrainJobConfig, LOCAL, ["train.item_id_dropout=1"]).train.item_id_dropout == 1.0  # no ids
    with pytest.raises(ConfigError, match=r"train.item_id_dropout must be in \[0, 1\]"):
        load_config(TrainJobConfig, LOCAL, ["train.item_id_dropout=1.5"])
    with pytest.raises(ConfigError, match=r"train.text_dropout must be in \[0, 1\)"):
        load_config(TrainJobConfig, LOCAL, ["train.text_dropout=1"])
    with pytest.raises(ConfigError, match="few_shot.method must be blend or none"):
        load_config(TrainJobConfig, LOCAL, ["few_shot.method=gradient"])
    with pytest.raises(ConfigError, match="must be a whole number"):
        load_config(TrainJobConfig, LOCAL, ["train.epochs=1e-3"])


def test_run_now_with_an_offset_is_taken_to_utc():
    from datetime import datetime, timezone

    from rec_lib.core.clock import resolve_now, utc_naive

    # 02:00 at +02:00 is midnight UTC; the tables hold naive UTC wall times
    now = resolve_now("2026-11-01T02:00:00+02:00")
    assert now == datetime(2026, 11, 1, tzinfo=timezone.utc) and now.utcoffset().total_seconds() == 0
    assert utc_naive(now) == datetime(2026, 11, 1)
    assert utc_naive(resolve_now("2026-11-01T00:00:00Z")) == datetime(2026, 11, 1)
    assert utc_naive(datetime(2026, 11, 1, 5)) == datetime(2026, 11, 1, 5)  # naive: UTC already


def test_a_config_file_from_before_the_keys_with_defaults_still_loads(tmp_path):
    import yaml

    tree = read_tree(LOCAL)  # conf/local.yaml on conf/base.yaml, as one file
    for key in ("min_ts", "max_text_chars", "max_quarantine_share"):
        tree["input"].pop(key, None)
    tree["paths"].pop("single_writer", None)
    older = tmp_path / "older.yaml"
    older.write_text(yaml.safe_dump(tree))
    cfg = load_config(FeatureJobConfig, older)
    assert (cfg.input.min_ts, cfg.input.max_text_chars, cfg.paths.single_writer) == ("1990-01-01", 10000, False)
    assert cfg.input.max_quarantine_share == {"items": 0.5, "users": 0.5, "events": 0.5}
    assert load_config(FeatureJobConfig, older, ["input.max_text_chars=50"]).input.max_text_chars == 50
    # the gate, the served model, the registry and the registered tables came later too: off by default
    for section, key in (("evaluate", "gate"), ("score", "serve"), ("mlflow", "registered_model"),
                         ("mlflow", "registry_uri"), ("sql", "tables")):
        tree[section].pop(key, None)
    older.write_text(yaml.safe_dump(tree))
    ev = load_config(EvaluateJobConfig, older)
    assert (ev.evaluate.gate, ev.score.serve, ev.mlflow.registered_model, ev.mlflow.registry_uri, ev.sql.tables) == (
        [], "latest", "", "", [])
    tree["train"].pop("user_id_buckets", None)  # the hashed user ids came later too: none by default
    older.write_text(yaml.safe_dump(tree))
    assert load_config(TrainJobConfig, older).train.user_id_buckets == 0
    del tree["input"]["encoding"]  # a key without a default is still required
    older.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match="missing config key 'input.encoding'"):
        load_config(FeatureJobConfig, older)


@pytest.mark.parametrize("share", ["-0.1", "1.5", "many"])
def test_a_quarantine_share_outside_0_1_is_refused(share):
    with pytest.raises(ConfigError, match="input.max_quarantine_share.events"):
        load_config(FeatureJobConfig, LOCAL, [f"input.max_quarantine_share.events={share}"])


def test_a_config_with_a_gate_and_no_serve_key_serves_what_the_gate_passed(tmp_path):
    conf = _one_file(tmp_path, lambda tree: tree["score"].pop("serve", None))
    assert load_config(ScoreJobConfig, conf).score.serve == "latest"  # no gate: the newest model
    assert load_config(ScoreJobConfig, conf, ["evaluate.gate=[random]"]).score.serve == "champion"
    assert load_config(EvaluateJobConfig, conf, ["evaluate.gate=[random]"]).score.serve == "champion"
    # said in so many words, it stands
    assert load_config(ScoreJobConfig, conf, ["evaluate.gate=[random]", "score.serve=latest"]).score.serve == "latest"


def test_a_setting_changes_one_entry_of_a_defaulted_mapping_the_file_leaves_out(tmp_path):
    # conf/local.yaml does not spell out input.max_quarantine_share (its default lives in the class)
    cfg = load_config(FeatureJobConfig, LOCAL, ["input.max_quarantine_share.items=0.9"])
    assert cfg.input.max_quarantine_share == {"items": 0.9, "users": 0.5, "events": 0.5}
    assert load_config(FeatureJobConfig, LOCAL).input.max_quarantine_share == {"items": 0.5, "users": 0.5, "events": 0.5}
    with pytest.raises(ConfigError, match="unknown config key 'input.nope.items'"):
        load_config(FeatureJobConfig, LOCAL, ["input.nope.items=1"])
    # a job that does not read the section still takes the setting (one SET for every job of a run)
    assert load_config(ScoreJobConfig, LOCAL, ["input.max_quarantine_share.items=0.9"]).score.k == 20
