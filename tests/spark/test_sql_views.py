"""The versioned SQL views on Spark SQL: hand-made recommendation and metric rows, the rows each
view must show worked out by hand; a view whose table is missing waits; malformed files fail."""
from datetime import date, datetime

import pandas as pd
import pytest

from jobs import apply_sql
from rec_lib.core.errors import ConfigError
from rec_lib.core.schema import EVALUATION_METRICS, ITEMS, RECOMMENDATIONS
from rec_lib.platform import io
from rec_lib.platform.filesystem import qualified_path
from rec_lib.platform.sql_views import SQL_DIR, SqlViewError, apply_views, view_files

# items of the feature job's example: I1 Red Mug, I2 Blue Pan (kitchen), I3 Crime Novel (books)
RECS = [  # run_date, user, rank, item
    ("2026-10-30", "u1", 1, "I1"), ("2026-10-30", "u1", 2, "I2"),
    ("2026-10-31", "u1", 1, "I2"), ("2026-10-31", "u1", 2, "I3"),
    ("2026-10-31", "u2", 2, "I1"), ("2026-10-31", "u2", 1, "I3"),
]
# the newest run's reasons (kind, item_id, detail, share); the older run's rows have none
REASONS = {
    ("u1", 1): ("similar_to", "I1", "part=text", 0.6),
    ("u1", 2): ("trending", None, "users=12,days=2.0", 0.5),
    ("u2", 2): ("attribute", None, "brand=cucina", 0.7),
    ("u2", 1): ("popular_launch", None, "expected_users_per_day=3.10", 0.4),
}
METRICS = [  # run_id, evaluated_at, k, method, metric, value
    ("r1", "2026-10-01", 0, "model", "recall@20", 0.3), ("r1", "2026-10-01", 0, "model", "ndcg@20", 0.1),
    ("r1", "2026-10-01", 0, "model", "users", 50.0),
    ("r2", "2026-11-01", 0, "model", "recall@20", 0.4), ("r2", "2026-11-01", 5, "popular", "recall@20", 0.2),
    ("r2", "2026-11-01", 5, "popular", "coverage@20", 0.5), ("r2", "2026-11-01", 0, "als", "scorable_items", 0.0),
    # the interval of model minus popular: its own columns, not mixed into recall's or top_k's
    ("r2", "2026-11-01", 5, "popular", "recall@20_diff_low", -0.03), ("r2", "2026-11-01", 5, "popular", "recall@20_diff_high", 0.9),
    ("r2", "2026-11-01", 5, "popular", "ndcg@20_diff_low", -0.02),
]


def write_recommendations(spark, warehouse):
    def reason(d, u, r):
        if d != "2026-10-31":
            return None
        kind, item, detail, share = REASONS[(u, r)]
        return {"kind": kind, "item_id": item, "detail": detail, "share": share}

    rows = pd.DataFrame([{"user_id": u, "rank": r, "item_id": i, "score": 1.0 / r, "source": "model",
                          "model_version": "v1", "run_date": date.fromisoformat(d),
                          "generated_at": datetime(2026, 11, 1), "reason": reason(d, u, r)} for d, u, r, i in RECS])
    io.overwrite_table(spark.createDataFrame(rows, RECOMMENDATIONS.schema), RECOMMENDATIONS, warehouse)


def write_metrics(spark, warehouse):
    rows = pd.DataFrame([{"run_id": run, "model_version": "v1", "k": k, "method": method, "metric": metric,
                          "value": value, "cutoff": datetime(2026, 9, 1), "test_end": datetime(2026, 9, 15),
                          "evaluated_at": datetime.fromisoformat(at)} for run, at, k, method, metric, value in METRICS])
    io.overwrite_table(spark.createDataFrame(rows, EVALUATION_METRICS.schema), EVALUATION_METRICS, warehouse)


def test_view_files_are_numbered_in_order():
    assert [(v.version, v.name) for v in view_files()] == [
        (1, "recommendations_latest"), (2, "recommendations_by_user"), (3, "evaluation_summary"),
        (4, "evaluation_latest"), (5, "recommendations_explained")]
    assert (SQL_DIR.name, SQL_DIR.parent.name, SQL_DIR.parent.parent.name) == ("sql", "platform", "rec_lib")  # in the package


def test_views_show_the_newest_run_and_metrics_by_run(spark, small_warehouse):
    write_recommendations(spark, small_warehouse)
    write_metrics(spark, small_warehouse)
    result = apply_views(spark, small_warehouse)
    assert [v.name for v in result.applied] == [v.name for v in view_files()] and not result.waiting

    latest = spark.sql("SELECT user_id, rank, item_id, title, category FROM recommendations_latest "
                       "ORDER BY user_id, rank").collect()
    assert [tuple(r) for r in latest] == [("u1", 1, "I2", "Blue Pan", "kitchen"), ("u1", 2, "I3", "Crime Novel", "books"),
                                          ("u2", 1, "I3", "Crime Novel", "books"), ("u2", 2, "I1", "Red Mug", "kitchen")]

    lists = {r.user_id: r for r in spark.sql("SELECT * FROM recommendations_by_user").collect()}
    assert set(lists) == {"u1", "u2"}
    assert lists["u2"].item_ids == ["I3", "I1"] and lists["u2"].n_items == 2  # rank order, not row order
    assert [x.title for x in lists["u1"].items] == ["Blue Pan", "Crime Novel"]
    assert lists["u1"].run_date == date(2026, 10, 31)

    summary = {(r.run_id, r.k, r.method): r for r in spark.sql("SELECT * FROM evaluation_summary").collect()}
    assert set(summary) == {("r1", 0, "model"), ("r2", 0, "model"), ("r2", 5, "popular"), ("r2", 0, "als")}
    r1 = summary[("r1", 0, "model")]
    assert (r1.recall, r1.ndcg, r1.top_k, r1.users, r1.coverage) == (0.3, 0.1, 20, 50.0, None)
    popular = summary[("r2", 5, "popular")]
    assert (popular.recall, popular.coverage, popular.top_k) == (0.2, 0.5, 20)
    assert (popular.recall_diff_low, popular.recall_diff_high, popular.ndcg_diff_low, popular.ndcg_diff_high) == \
        (-0.03, 0.9, -0.02, None)
    assert summary[("r2", 0, "als")].scorable_items == 0.0 and summary[("r2", 0, "als")].recall is None
    newest = spark.sql("SELECT DISTINCT run_id FROM evaluation_latest").collect()
    assert [r.run_id for r in newest] == ["r2"]


def test_explained_view_renders_each_reason_in_the_shop_language(spark, small_warehouse):
    write_recommendations(spark, small_warehouse)
    apply_views(spark, small_warehouse)
    query = ("SELECT user_id, rank, reason_kind, because_item_id, because_title, sentence FROM recommendations_explained "
             "ORDER BY user_id, rank")
    got = [tuple(r) for r in spark.sql(query).collect()]
    # u1 interacted with I1 (Red Mug); I1's brand is Cucina (the token is lower case, the view shows the catalogue's)
    assert got == [
        ("u1", 1, "similar_to", "I1", "Red Mug", "because you liked Red Mug"),
        ("u1", 2, "trending", None, None, "selling fast: 12 buyers in 2 days"),
        ("u2", 1, "popular_launch", None, None, "a promising launch: about 3.10 buyers a day expected"),
        ("u2", 2, "attribute", None, None, "new from Cucina")]
    # sql.language=zh, with a Chinese title and brand
    path = qualified_path(spark, io.table_path(small_warehouse, ITEMS))
    spark.sql(f"UPDATE delta.`{path}` SET title = '红色马克杯', brand = '厨房家' WHERE item_id = 'I1'")
    apply_views(spark, small_warehouse, language="zh")
    sentences = [r.sentence for r in spark.sql(query).collect()]
    assert sentences == ["因为你喜欢《红色马克杯》", "热卖中：2天内12位买家", "热门新品：预计每天3.10位买家", "来自厨房家的新品"]


def test_views_wait_for_their_tables_and_go_to_the_configured_database(spark, small_warehouse, tmp_path, capsys):
    write_recommendations(spark, small_warehouse)
    result = apply_views(spark, small_warehouse, database="rec_views_test")
    assert [v.name for v in result.applied] == ["recommendations_latest", "recommendations_by_user",
                                                "recommendations_explained"]
    assert {v.name: missing for v, missing in result.waiting} == {
        "evaluation_summary": ("evaluation_metrics",), "evaluation_latest": ("view evaluation_summary",)}
    assert spark.sql("SELECT count(*) FROM rec_views_test.recommendations_latest").first()[0] == 4

    # the job, as users run it: its summary names what it applied and what waits
    code = apply_sql.main(["--conf-file", "conf/local.yaml", "--warehouse", small_warehouse,
                           "--set", "sql.database=rec_views_test"])
    out = capsys.readouterr().out
    assert code == 0
    assert "SQL views in database rec_views_test: 3 applied, 2 waiting" in out
    assert "view V003 evaluation_summary: waiting for table(s) evaluation_metrics" in out

    # a three-level name (Unity Catalog's <catalog>.<schema>.<view>; locally the session's catalog)
    named = apply_views(spark, small_warehouse, database="rec_views_uc", catalog="spark_catalog")
    assert named.database == "spark_catalog.rec_views_uc" and len(named.applied) == 3
    assert spark.sql("SELECT count(*) FROM spark_catalog.rec_views_uc.recommendations_latest").first()[0] == 4


def test_sql_tables_registers_the_written_tables_by_name_over_their_paths(spark, small_warehouse, capsys):
    write_recommendations(spark, small_warehouse)
    result = apply_views(spark, small_warehouse, database="rec_tables_test", catalog="spark_catalog",
                         tables=["recommendations", "model_gate"])
    assert result.tables == ("recommendations",) and result.tables_waiting == ("model_gate",)
    assert "  table model_gate: waiting (not written yet)" in result.lines()
    by_name = spark.sql("SELECT user_id, rank, item_id FROM spark_catalog.rec_tables_test.recommendations")
    by_path = io.read_table(spark, small_warehouse, RECOMMENDATIONS).select("user_id", "rank", "item_id")
    assert sorted(map(tuple, by_name.collect())) == sorted(map(tuple, by_path.collect())) and by_name.count() == len(RECS)
    # an external table: its location is the warehouse folder (a later write by path shows through the name)
    location = spark.sql("DESCRIBE DETAIL spark_catalog.rec_tables_test.recommendations").first()["location"]
    assert location == qualified_path(spark, io.table_path(small_warehouse, RECOMMENDATIONS))
    # applying again is a no-op for the table; a name that is no table of the warehouse is a config error
    assert apply_views(spark, small_warehouse, database="rec_tables_test", tables=["recommendations"]).tables == (
        "recommendations",)
    with pytest.raises(ConfigError, match=r"sql.tables must name tables of the warehouse .*got \['recomendations'\]"):
        apply_views(spark, small_warehouse, database="rec_tables_test", tables=["recomendations"])


def test_malformed_view_files_are_errors(spark, small_warehouse, tmp_path):
    (tmp_path / "V001__a.sql").write_text("CREATE OR REPLACE VIEW {{view}} AS SELECT * FROM {{table:items}}")
    (tmp_path / "notes.sql").write_text("SELECT 1")
    with pytest.raises(SqlViewError, match="notes.sql: view files are named"):
        view_files(tmp_path)
    (tmp_path / "notes.sql").unlink()
    (tmp_path / "V001__b.sql").write_text("SELECT 1")
    with pytest.raises(SqlViewError, match="repeat the version 1"):
        view_files(tmp_path)
    (tmp_path / "V001__b.sql").rename(tmp_path / "V002__b.sql")
    (tmp_path / "V002__b.sql").write_text("CREATE OR REPLACE VIEW {{view}} AS SELECT * FROM {{view:c}}")
    with pytest.raises(SqlViewError, match=r"V002__b.sql: unknown placeholder \{\{view:c\}\}"):
        apply_views(spark, small_warehouse, folder=tmp_path)
    (tmp_path / "V002__b.sql").write_text("CREATE OR REPLACE VIEW {{view}} AS SELECT * FROM {{table:orders}}")
    with pytest.raises(SqlViewError, match=r"unknown table\(s\) \['orders'\]"):
        apply_views(spark, small_warehouse, folder=tmp_path)
