"""The feature job end to end on small files: counts, idempotency, upserts, bad files."""

import dataclasses
import json
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from rec_lib.core import config as rc
from rec_lib.core.errors import InputError
from rec_lib.core.schema import ITEMS, Reason
from rec_lib.features.job import run_feature_job
from rec_lib.platform import io
from tests.helpers import EVENTS_CSV, ITEMS_CSV, rows_by, table_snapshot, write_inputs


def snapshots(spark, warehouse):
    return {t: table_snapshot(spark, str(Path(warehouse) / t))
            for t in ("items", "users", "interactions", "item_stats", "user_features", "quarantine")}


def test_counts_reasons_idempotency_and_next_day_upsert(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs)
    summary = run_feature_job(spark, feature_config)

    # items: I4 has a negative price. events: 10 data lines -> 4 accepted (u1 view, u1 purchase,
    # u2 view at epoch 1792000000, u3 click); the rest each break one rule.
    assert (summary.sources["items"].accepted, summary.sources["items"].quarantined) == (3, {Reason.NEGATIVE_PRICE: 1})
    assert summary.sources["events"].accepted == 4
    assert summary.sources["events"].quarantined == {
        Reason.EXACT_DUPLICATE: 1, Reason.UNKNOWN_ITEM: 1, Reason.UNKNOWN_EVENT_TYPE: 1,
        Reason.BAD_TS: 1, Reason.MISSING_USER_ID: 1, Reason.MALFORMED_LINE: 1}
    assert summary.written == {"items": 3, "users": 3, "interactions": 4, "quarantine": 7}
    assert summary.table_rows == {"items": 3, "users": 3, "interactions": 4, "item_stats": 3,
                                  "user_features": 3, "quarantine": 7}

    warehouse = feature_config.paths.warehouse
    items = rows_by(spark.read.format("delta").load(f"{warehouse}/items"), "item_id")
    assert items["I1"]["description"] == "A mug for tea"  # line break inside a quoted field, folded
    users = rows_by(spark.read.format("delta").load(f"{warehouse}/users"), "user_id")
    assert users["u1"]["attributes"] == {"country": "DE"} and not users["u1"]["derived_from_events"]
    assert users["u3"]["derived_from_events"]  # seen only in events
    quarantine = spark.read.format("delta").load(f"{warehouse}/quarantine")
    malformed = quarantine.where("reason = 'malformed_line'").first()
    assert malformed["raw_row"] == "u2,I2,view,2026-10-28T09:00:00Z,,unexpected extra field"
    assert malformed["source_file"].endswith("events.csv") and malformed["run_id"] == "test-run"
    negative = json.loads(quarantine.where("reason = 'negative_price'").first()["raw_row"])
    assert negative["item_id"] == "I4" and negative["price"] == "-3"

    # Same input again: every table as before, and not even a new Delta version is committed.
    before = snapshots(spark, warehouse)
    versions = {t: DeltaTable.forPath(spark, f"{warehouse}/{t}").history(1).first()["version"] for t in before}
    rerun = run_feature_job(spark, rc.replace(feature_config, run=rc.RunSection(run_id="test-run-2",
                                                                               now=feature_config.run.now)))
    assert rerun.written == {"items": 0, "users": 0, "interactions": 0, "quarantine": 0}
    assert snapshots(spark, warehouse) == before
    assert {t: DeltaTable.forPath(spark, f"{warehouse}/{t}").history(1).first()["version"] for t in before} == versions

    # Next day's exports: I1 renamed, I5 new, one event repeated from yesterday and one new.
    write_inputs(
        inputs,
        items=ITEMS_CSV.replace("I1,Red Mug", "I1,Red Mug XL") + "I5,Garden Hose,,garden,Rootwise,20,2026-10-30\n",
        users=None,
        events="user_id,item_id,event_type,ts,value\nu1,I1,view,2026-10-01T10:00:00Z,\nu2,I5,click,2026-10-30T12:00:00Z,\n",
    )
    day2 = run_feature_job(spark, rc.replace(feature_config, run=rc.RunSection(run_id="day-2", now=feature_config.run.now)))
    assert day2.table_rows["interactions"] == 5  # 4 + 1 new; the repeated event is not duplicated
    # items: I1 changed, I5 new (I2, I3 unchanged); one new event; I4's bad row is quarantined already
    assert day2.written == {"items": 2, "users": 0, "interactions": 1, "quarantine": 0}
    assert day2.table_rows["items"] == 4
    items = rows_by(spark.read.format("delta").load(f"{warehouse}/items"), "item_id")
    assert (items["I1"]["title"], items["I1"]["updated_run_id"]) == ("Red Mug XL", "day-2")
    assert items["I2"]["updated_run_id"] == "test-run"  # unchanged rows are not rewritten
    users = rows_by(spark.read.format("delta").load(f"{warehouse}/users"), "user_id")
    assert users["u1"]["attributes"] == {"country": "DE"}  # exported users are not downgraded to derived
    stats = rows_by(spark.read.format("delta").load(f"{warehouse}/item_stats"), "item_id")
    assert (stats["I5"]["n_clicks"], stats["I1"]["n_events"]) == (1, 2)


def _expect_input_error(spark, cfg, *fragments):
    with pytest.raises(InputError) as err:
        run_feature_job(spark, cfg)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert not Path(cfg.paths.warehouse).exists(), "nothing may be written when an input is bad"
    return message


def test_missing_required_column_stops_before_writing(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs, events="user_id,item_id,event_type,when\nu1,I1,view,2026-10-01\n")
    _expect_input_error(spark, feature_config, "events.csv", "missing required column 'ts'")


def test_columns_named_like_the_bookkeeping_or_apart_only_by_case_stop_before_writing(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs, events="user_id,item_id,event_type,ts,_Source_File\nu1,I1,view,2026-10-01T00:00:00Z,x\n")
    _expect_input_error(spark, feature_config, "events.csv", "column(s) ['_Source_File'] have names the pipeline keeps")
    write_inputs(inputs, items="item_id,title,Title,category\nI1,Red Mug,RED MUG,kitchen\n")
    _expect_input_error(spark, feature_config, "items.csv", "columns 'title' and 'Title' differ only in case (or not at all)")
    write_inputs(inputs, items="item_id,title,colour,colour\nI1,Red Mug,red,blue\n")
    _expect_input_error(spark, feature_config, "items.csv", "columns 'colour' and 'colour' differ only in case")
    # a parquet export with both names is refused by Spark's reader already, naming the column
    write_inputs(inputs, items=None)
    import pandas as pd
    pd.DataFrame({"item_id": ["I1"], "title": ["Red Mug"], "Title": ["RED MUG"]}).to_parquet(inputs / "items.parquet")
    _expect_input_error(spark, feature_config, "items.parquet", "cannot be read as parquet", "`title` already exists")


def test_a_required_completion_marker_must_be_there(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs)
    cfg = rc.replace(feature_config, input=dataclasses.replace(feature_config.input, require_marker="_SUCCESS"))
    _expect_input_error(spark, cfg, "has no completion marker '_SUCCESS' (input.require_marker)")
    (inputs / "_SUCCESS").write_text("")
    assert run_feature_job(spark, cfg).sources["items"].accepted == 3


def test_remapped_column_names(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs, events="user_id,item_id,event_type,event_time\nu1,I1,view,2026-10-01T00:00:00Z\n")
    cfg = rc.replace(feature_config, input=dataclasses.replace(feature_config.input,
                                                               columns={"events": {"ts": "event_time"}}))
    assert run_feature_job(spark, cfg).sources["events"].accepted == 1


def test_further_item_columns_are_attributes_and_other_encodings_read(spark, feature_config):
    """An export in ISO-8859-1 with ';' between fields, as Book-Crossing ships: 'Édition' and 'Müller'
    read right; the items' further columns (author, year, material) become their attributes map,
    blank values left out; a line with too many fields is quarantined as malformed; a title longer
    than input.max_text_chars is cut and counted."""
    inputs = Path(feature_config.paths.input)
    items = ('item_id;title;author;year;material\n'
             'B1;Café crème;Müller;2001;cotton|linen\n'
             'B2;Édition;;1999;silk\n'
             'B3;Broken;x;1;y;extra\n')
    (inputs / "items.csv").write_bytes(items.encode("iso-8859-1"))
    (inputs / "events.csv").write_bytes("user_id;item_id;event_type;ts\nu1;B1;view;2026-10-01T00:00:00Z\n"
                                        .encode("iso-8859-1"))
    (inputs / "users.csv").unlink(missing_ok=True)
    cfg = rc.replace(feature_config, input=dataclasses.replace(feature_config.input, encoding="ISO-8859-1",
                                                               csv_delimiter=";", max_text_chars=8))
    summary = run_feature_job(spark, cfg)
    assert summary.sources["items"].accepted == 2 and summary.sources["items"].quarantined == {"malformed_line": 1}
    assert summary.sources["items"].text_cut == 1 and "1 cut to input.max_text_chars" in "\n".join(summary.lines())
    rows = rows_by(io.read_table(spark, cfg.paths.warehouse, ITEMS), "item_id")
    # 'Café crème' (10 characters) cut to 8; 'Édition' (7) kept
    assert rows["B1"]["title"] == "Café crè" and rows["B2"]["title"] == "Édition"
    assert rows["B1"]["attributes"] == {"author": "Müller", "material": "cotton|linen", "year": "2001"}
    assert rows["B2"]["attributes"] == {"material": "silk", "year": "1999"}
    # a changed attribute changes the content hash, so the next run updates the row
    again = items.replace("cotton|linen", "wool")
    (inputs / "items.csv").write_bytes(again.encode("iso-8859-1"))
    assert run_feature_job(spark, cfg).written["items"] == 1


def test_binary_file_named_csv_is_a_clear_error(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs)
    (inputs / "items.csv").write_bytes(bytes(range(256)) * 8)
    _expect_input_error(spark, feature_config, "items.csv", "missing required column 'item_id'")


def test_corrupt_parquet_is_a_clear_error(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs, events=None)
    (inputs / "events.parquet").write_text("this is not parquet")
    _expect_input_error(spark, feature_config, "events.parquet", "cannot be read as parquet")


def test_missing_export_and_ambiguous_export(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs, events=None)
    _expect_input_error(spark, feature_config, "no events export", "events.csv")
    write_inputs(inputs)
    (inputs / "events").mkdir()
    (inputs / "events" / "part-0.csv").write_text(EVENTS_CSV)
    _expect_input_error(spark, feature_config, "ambiguous")


def test_folder_of_parquet_parts_with_numeric_ids(spark, feature_config, tmp_path):
    import pandas as pd

    inputs = Path(feature_config.paths.input)
    write_inputs(inputs, events=None)
    (inputs / "items.csv").write_text("item_id,title\n1,One\n2,Two\n")
    (inputs / "events").mkdir()
    pd.DataFrame({"user_id": [10, 11], "item_id": [1, 2], "event_type": ["view", "click"],
                  "ts": [1792000000, 1792000100]}).to_parquet(inputs / "events" / "part-0.parquet")
    pd.DataFrame({"user_id": [12], "item_id": [2], "event_type": ["view"],
                  "ts": [1792000200]}).to_parquet(inputs / "events" / "part-1.parquet")
    summary = run_feature_job(spark, feature_config)
    assert summary.sources["events"].accepted == 3
    got = sorted((r["user_id"], r["item_id"]) for r in
                 spark.read.format("delta").load(f"{feature_config.paths.warehouse}/interactions").collect())
    assert got == [("10", "1"), ("11", "2"), ("12", "2")]  # numeric ids become text ids


def test_items_export_with_no_valid_row_is_an_error_only_without_a_catalogue(spark, feature_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs, items="item_id,title,price\nI1,Mug,-1\n")
    _expect_input_error(spark, feature_config, "items.csv", "no valid item rows", "negative_price")
    # once a catalogue is stored, a day without catalogue changes (header only) is fine
    write_inputs(inputs)
    run_feature_job(spark, feature_config)
    write_inputs(inputs, items="item_id,title\n", users=None, events="user_id,item_id,event_type,ts\n")
    summary = run_feature_job(spark, feature_config)
    assert summary.sources["items"].accepted == 0 and summary.table_rows["items"] == 3


def test_a_mostly_rejected_export_stops_the_run_before_any_write(spark, feature_config):
    write_inputs(Path(feature_config.paths.input))  # events: 6 of the 10 lines break a rule
    strict = rc.replace(feature_config, input=dataclasses.replace(
        feature_config.input, max_quarantine_share={"items": 0.5, "users": 0.5, "events": 0.5}))
    with pytest.raises(InputError) as err:
        run_feature_job(spark, strict)
    assert str(err.value).startswith("nothing written: events: 6 of 10 rows (60.0%) would be quarantined (")
    assert str(err.value).endswith("), above input.max_quarantine_share.events=0.5")
    assert not Path(feature_config.paths.warehouse).exists()
    # every row of the events export bad: refused even at the loosest limit below 1
    write_inputs(Path(feature_config.paths.input), events="user_id,item_id,event_type,ts\nu1,I1,view,never\n")
    loose = rc.replace(strict, input=dataclasses.replace(strict.input, max_quarantine_share={"events": 0.99}))
    with pytest.raises(InputError, match=r"events: 1 of 1 rows \(100.0%\) would be quarantined \(unparseable_ts: 1\)"):
        run_feature_job(spark, loose)
    assert not Path(feature_config.paths.warehouse).exists()


def test_headers_with_backticks_dots_and_spaces_are_plain_names(spark, feature_config):
    """A header is data, not SQL: `we`ird`, `size.eu` and `colour name` become attribute keys as
    they are written (a backtick in a header used to crash outside the error handling)."""
    inputs = Path(feature_config.paths.input)
    (inputs / "items.csv").write_text('item_id,title,we`ird,size.eu,colour name\nB1,Boot,x,42,dark red\n')
    (inputs / "events.csv").write_text("user_id,item_id,event_type,ts\nu1,B1,view,2026-10-01T00:00:00Z\n")
    (inputs / "users.csv").unlink(missing_ok=True)
    summary = run_feature_job(spark, feature_config)
    assert summary.sources["items"].accepted == 1 and summary.sources["events"].accepted == 1
    rows = rows_by(io.read_table(spark, feature_config.paths.warehouse, ITEMS), "item_id")
    assert rows["B1"]["attributes"] == {"we`ird": "x", "size.eu": "42", "colour name": "dark red"}
