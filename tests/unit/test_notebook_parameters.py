"""Notebook parameters: the config file is found from the notebook's folder upwards (a Databricks
notebook runs in its own folder), the cluster's config on Databricks; widgets win over defaults."""
from pathlib import Path

from rec_lib.platform.notebook import default_conf, parameter, settings
from tests.helpers import REPO


class FakeWidgets:
    """The part of dbutils.widgets a notebook uses: text(name, default) then get(name)."""

    def __init__(self, values: dict):
        self.values, self.defined = values, {}

    def text(self, name, default):
        self.defined[name] = default

    def get(self, name):
        return self.values.get(name, self.defined[name])


class FakeDbutils:
    def __init__(self, values: dict):
        self.widgets = FakeWidgets(values)


def test_the_config_is_found_from_the_notebooks_folder_upwards(tmp_path, monkeypatch):
    assert default_conf(None, REPO / "notebooks") == str(REPO / "conf" / "local.yaml")
    assert default_conf(FakeDbutils({}), REPO / "notebooks") == str(REPO / "conf" / "cluster.yaml")
    monkeypatch.chdir(REPO / "notebooks")  # where Databricks starts a Repo's notebook
    assert default_conf(None) == str(REPO / "conf" / "local.yaml")
    assert default_conf(None, tmp_path) == str(Path("conf") / "local.yaml")  # none above: the loader says so


def test_widgets_win_on_databricks_and_the_environment_elsewhere(monkeypatch):
    dbutils = FakeDbutils({"settings": "evaluate.ks=[0, 5] sql.database=shop"})
    assert settings(parameter("settings", "", dbutils)) == ["evaluate.ks=[0, 5]", "sql.database=shop"]
    assert parameter("warehouse", "/w", dbutils) == "/w" and dbutils.widgets.defined["warehouse"] == "/w"
    monkeypatch.setenv("REC_WAREHOUSE", "/elsewhere")
    assert parameter("warehouse", "/w") == "/elsewhere" and parameter("user", "U1") == "U1"
