"""Job entry points: thin `main(argv)` wrappers with one-line errors and exit codes."""
import runpy

from jobs import build_features, generate_data
from tests.helpers import REPO


def test_bad_input_is_one_line_and_exit_code_2(spark, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "items.csv").write_text("item_id,name\n1,x\n")
    (tmp_path / "in" / "events.csv").write_text("user_id,item_id,event_type,ts\n")
    code = build_features.main(["--conf-file", str(REPO / "conf/local.yaml"), "--input", str(tmp_path / "in"),
                                "--warehouse", str(tmp_path / "wh")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and "items.csv: missing required column 'title'" in err[-1]
    assert not (tmp_path / "wh").exists()


def test_unknown_setting_is_exit_code_2(capsys):
    code = build_features.main(["--conf-file", str(REPO / "conf/local.yaml"), "--set", "features.recent=3"])
    assert code == 2
    assert "unknown config key 'features.recent'" in capsys.readouterr().err


def test_generate_then_build_features_through_main(spark, tmp_path, capsys, monkeypatch):
    common = ["--conf-file", str(REPO / "conf/local.yaml"), "--input", str(tmp_path / "shop"),
              "--warehouse", str(tmp_path / "wh")]
    small = ["--set", "demo.n_users=60 demo.n_items=40 demo.n_events=1500 demo.chunk_users=30 demo.dirty_fraction=0.01 "
                      "run.now=2026-11-01T00:00:00Z"]  # the shop ends 2026-10-31: nothing in the feature job's future
    assert generate_data.main(common + small) == 0
    assert build_features.main(common + ["--set", "run.now=2026-11-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "events  accepted" in out and "quarantined" in out
    interactions = spark.read.format("delta").load(str(tmp_path / "wh" / "interactions"))
    stats = spark.read.format("delta").load(str(tmp_path / "wh" / "item_stats"))
    assert interactions.count() > 1000
    assert stats.count() == 40  # every catalogue item, with or without interactions

    # the exploration notebook runs top to bottom on these tables (Databricks source format is Python)
    monkeypatch.setenv("REC_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("REC_CONF", str(REPO / "conf/local.yaml"))
    notebook = runpy.run_path(str(REPO / "notebooks" / "01_explore_features.py"))
    assert notebook["summary"]["items"] == 40
    assert notebook["summary"]["quarantined_rows"] > 0  # the demo shop's planted invalid rows
