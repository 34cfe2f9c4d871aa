"""What the tests share: the repository root, the small hand-written inputs several tiers use, and
builders of Spark test data. Spark is imported only inside the builders, so the unit tier can
import this module without starting a JVM."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from rec_lib.core.schema import InputContract

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

REPO = Path(__file__).resolve().parents[1]

# How long a test waits on a job process or a thread before it calls it hung. A guard, not a time
# limit: one job took 1-8 minutes on the slowest 2-core machines the suite has met (a killed-training
# test waited over 300 s for its first checkpoint on one), and what a test asserts never depends on
# how fast a job ran.
HANG_GUARD_S = 1800

# --------------------------------------------------------------------------------------------
# The feature job's small example (every value below is worked through by hand in its tests)
# --------------------------------------------------------------------------------------------

ITEMS_CSV = """item_id,title,description,category,brand,price,launch_ts
I1,Red Mug,"A mug
for tea",kitchen,Cucina,9.5,2026-09-01T00:00:00Z
I2,Blue Pan,Nonstick pan,kitchen,Cucina,25,2026-10-20T00:00:00Z
I3,Crime Novel,A detective story,books,Inkwell,12,2026-10-25T00:00:00Z
I4,Broken,Negative price,books,Inkwell,-3,2026-10-25T00:00:00Z
"""
USERS_CSV = """user_id,signup_ts,country
u1,2026-01-01T00:00:00Z,DE
u2,2026-02-01T00:00:00Z,FR
"""
EVENTS_CSV = """user_id,item_id,event_type,ts,value
u1,I1,view,2026-10-01T10:00:00Z,
u1,I1,purchase,2026-10-01T10:05:00Z,1
u1,I1,purchase,2026-10-01T10:05:00Z,1
u2,I2,view,1792000000,
u3,I3,click,2026-10-28T09:00:00Z,
u2,I4,view,2026-10-28T09:00:00Z,
u2,I2,teleport,2026-10-28T09:00:00Z,
u2,I2,view,not a time,
,I2,view,2026-10-28T09:00:00Z,
u2,I2,view,2026-10-28T09:00:00Z,,unexpected extra field
"""


def write_inputs(folder: Path, items=ITEMS_CSV, users=USERS_CSV, events=EVENTS_CSV):
    for name, text in (("items", items), ("users", users), ("events", events)):
        path = folder / f"{name}.csv"
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text, encoding="utf-8")


# The training data's cutoff on that example: I1 and u2's view of I2 are before it, I3 after.
CUTOFF = datetime(2026, 10, 20, tzinfo=timezone.utc)

# --------------------------------------------------------------------------------------------
# The scoring job's small shop: 30 items, 12 users, hand-made embeddings
# --------------------------------------------------------------------------------------------

N_ITEMS, N_USERS, DIM = 30, 12, 5

SCORE_ITEMS = "item_id,title,category,brand,price,launch_ts\n" + "".join(
    f"I{i:02d},Item {i},{'abc'[i % 3]},B,10,{'2026-10-25' if i % 2 else '2026-06-01'}T00:00:00Z\n" for i in range(N_ITEMS))
# u00 saw I00 and I01; u01 saw I05; u99 is a user without an embedding whose top category is 'b'
SCORE_EVENTS = ("user_id,item_id,event_type,ts,value\n"
          "u00,I00,view,2026-10-26T00:00:00Z,\nu00,I01,view,2026-10-26T00:00:00Z,\n"
          "u01,I05,view,2026-10-26T00:00:00Z,\nu99,I04,purchase,2026-10-27T00:00:00Z,\n"
          "u99,I07,view,2026-10-27T00:00:00Z,\nu02,I07,view,2026-10-27T00:00:00Z,\n")
SCORE_USERS = "user_id\n" + "".join(f"u{u:02d}\n" for u in range(N_USERS)) + "u99\n"


def hand_made_embeddings(spark, warehouse, seed=0, version="v1", explained=False):
    """user_embeddings and item_embeddings of the scoring shop: seeded normal vectors U [N_USERS, DIM],
    V [N_ITEMS, DIM] and biases b (rounded to 1e-3); as a training before reasons wrote them (no
    reason columns), or with `explained` as one that has them: the rows one tower block, the bias the
    launch prior (I03 and I09 carry attribute tokens; no attribute block, so they never win)."""
    import numpy as np
    import pandas as pd

    from rec_lib.core.schema import ITEM_EMBEDDINGS, USER_EMBEDDINGS
    from rec_lib.platform import io

    rng = np.random.default_rng(seed)
    U = rng.normal(size=(N_USERS, DIM)).astype(np.float32)
    V = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    b = np.round(rng.normal(size=N_ITEMS), 3)
    now = pd.Timestamp("2026-10-31")
    users = pd.DataFrame({"user_id": [f"u{u:02d}" for u in range(N_USERS)], "model_version": version,
                          "embedding": list(U), "source": "id+history", "n_history": np.int32(1), "created_at": now})
    if explained:  # the history each vector was built from (SCORE_EVENTS), newest first
        users = users.assign(history_items=[{"u00": ["I01", "I00"], "u01": ["I05"], "u02": ["I07"]}.get(u, [])
                                            for u in users["user_id"]])
    users = users.assign(**{c: None for c in USER_EMBEDDINGS.columns if c not in users.columns})
    items = pd.DataFrame({"item_id": [f"I{i:02d}" for i in range(N_ITEMS)], "model_version": version,
                          "embedding": list(V), "bias": b, "n_users": np.int64(0), "source": "trained", "created_at": now})
    if explained:
        items = items.assign(parts=[[{"name": "tower", "width": DIM}]] * N_ITEMS, prior_score=b, pace_score=0.0,
                             pace_days=5.0, expected_users_per_day=np.exp(b),
                             attribute_tokens=[[{"token": "brand=b", "slot": 0, "weight": 1.0}] if i in (3, 9) else []
                                               for i in range(N_ITEMS)])
    items = items.assign(**{c: None for c in ITEM_EMBEDDINGS.columns if c not in items.columns})
    io.overwrite_table(spark.createDataFrame(users, USER_EMBEDDINGS.schema), USER_EMBEDDINGS, warehouse)
    io.overwrite_table(spark.createDataFrame(items, ITEM_EMBEDDINGS.schema), ITEM_EMBEDDINGS, warehouse)
    return U, V, b


def lists(spark, warehouse, run_date="2026-10-31"):
    """The recommendations table's lists of one run_date: user_id -> its rows in rank order."""
    from rec_lib.core.schema import RECOMMENDATIONS
    from rec_lib.platform import io

    df = io.read_table(spark, warehouse, RECOMMENDATIONS).where(f"run_date = '{run_date}'").toPandas()
    return {u: g.sort_values("rank") for u, g in df.groupby("user_id")}


def brute(U, V, b, user, allowed, seen, k):
    """The top k of `allowed` item rows for one user by U.V + b, seen rows left out, ties by row: by hand."""
    scores = {i: float(U[user] @ V[i]) + b[i] for i in allowed if i not in seen}
    return [f"I{i:02d}" for i, _ in sorted(scores.items(), key=lambda t: (-t[1], t[0]))[:k]]


# --------------------------------------------------------------------------------------------
# The small generated shop of the training and evaluation tests
# --------------------------------------------------------------------------------------------


def build_small_shop(spark: "SparkSession", root: Path, n_users: int = 400, n_items: int = 200,
                     n_events: int = 20000, seed: Optional[int] = None, settings: Sequence[str] = ()) -> List[str]:
    """400 users, 200 items (15% launched in the last 14 days), ~20k events (unless told otherwise),
    generated into root/input, with its feature tables and real text embeddings in root/warehouse.
    Returns the settings every job on it shares (`settings` among them, e.g. the language and the
    encoder)."""
    from rec_lib.core import config as rc
    from rec_lib.demo.generator import generate_shop
    from rec_lib.features.job import run_feature_job
    from rec_lib.text.job import run_embed_job

    common = [f"paths.input={root / 'input'}", f"paths.warehouse={root / 'warehouse'}",
              "run.now=2026-11-01T00:00:00Z", "run.run_id=test-run", *settings]
    demo = rc.load_config(rc.GenerateJobConfig, REPO / "conf/local.yaml", common + [
        f"demo.n_users={n_users}", f"demo.n_items={n_items}", f"demo.n_events={n_events}", "demo.chunk_users=200",
        "demo.dirty_fraction=0", *([f"demo.seed={seed}"] if seed is not None else [])])
    generate_shop(demo.demo, demo.paths.input, now=datetime(2026, 11, 1, tzinfo=timezone.utc))
    run_feature_job(spark, rc.load_config(rc.FeatureJobConfig, REPO / "conf/local.yaml", common))
    run_embed_job(spark, rc.load_config(rc.EmbedJobConfig, REPO / "conf/local.yaml", common))
    return common


# The training tests' cutoff on the small shop: what comes after it is held out.
TRAIN_CUTOFF = "2026-10-17T00:00:00Z"


def train_config(shop, *settings):
    """The training job's config on the small shop (root, common settings): 12 epochs of batches
    of 64, the model and caches under the shop's root."""
    from rec_lib.core import config as rc

    root, common = shop
    return rc.load_config(rc.TrainJobConfig, REPO / "conf/local.yaml", common + [
        f"train.model_dir={root / 'models'}", f"train.petastorm_cache_dir={root / 'petastorm'}",
        f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"train.cutoff={TRAIN_CUTOFF}",
        "train.epochs=12", "train.batch_size=64", *settings])


def chance_recall_at_k(seen, relevant, k: int) -> float:
    """Recall@k that a uniformly random order of each user's unseen items gets in expectation
    (recall_at_k's mean over users with something relevant). Of a user's n unseen items a random
    top k holds min(k, n), each relevant one with probability min(k, n) / n: expected recall
    min(1, k / n) whatever the number relevant. Exact, so a test's bar does not move with a draw."""
    import numpy as np

    unseen = (~np.asarray(seen, bool)).sum(axis=1)
    judged = [u for u, items in enumerate(relevant) if items]
    return float(np.mean([min(1.0, k / unseen[u]) for u in judged])) if judged else float("nan")


def heldout_recall(spark, warehouse, k=10):
    """Recall@k of the embedding tables on interactions at or after the cutoff (seen items
    excluded), and the recall a random order gets in expectation (chance_recall_at_k)."""
    import numpy as np
    import pandas as pd

    from rec_lib.core.schema import INTERACTIONS, ITEM_EMBEDDINGS, USER_EMBEDDINGS
    from rec_lib.evaluation.metrics import recall_at_k, top_k
    from rec_lib.platform import io

    # rows in id order: equal scores are then broken the same way whatever order the tables are read in
    users = io.read_table(spark, warehouse, USER_EMBEDDINGS).toPandas().sort_values("user_id", ignore_index=True)
    items = io.read_table(spark, warehouse, ITEM_EMBEDDINGS).toPandas().sort_values("item_id", ignore_index=True)
    events = io.read_table(spark, warehouse, INTERACTIONS).select("user_id", "item_id", "ts").toPandas()
    user_row = {u: i for i, u in enumerate(users.user_id)}
    item_row = {x: i for i, x in enumerate(items.item_id)}
    cutoff = pd.Timestamp(TRAIN_CUTOFF).tz_localize(None)
    before, after = events[events.ts < cutoff], events[events.ts >= cutoff]
    seen = np.zeros((len(users), len(items)), bool)
    seen[before.user_id.map(user_row), before.item_id.map(item_row)] = True
    relevant = [set() for _ in range(len(users))]
    for u, x in zip(after.user_id, after.item_id):
        if not seen[user_row[u], item_row[x]]:
            relevant[user_row[u]].add(item_row[x])
    scores = np.stack(users.embedding) @ np.stack(items.embedding).T + items.bias.to_numpy()[None, :]
    return recall_at_k(top_k(scores, k, seen), relevant, k), chance_recall_at_k(seen, relevant, k)


# --------------------------------------------------------------------------------------------
# Spark builders
# --------------------------------------------------------------------------------------------


def raw_export(spark: SparkSession, contract: InputContract, rows: List[Dict[str, Optional[str]]],
               source_file: str = "file:/in/export.csv") -> DataFrame:
    """Rows as `rec_lib.platform.exports.read_export` returns them: text columns plus bookkeeping columns."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from rec_lib.platform.exports import bookkeeping

    extra = sorted({k for r in rows for k in r} - set(contract.columns))
    columns = list(contract.columns) + extra
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns])
    df = spark.createDataFrame([tuple(r.get(c) for c in columns) for r in rows], schema)
    return df.select("*", *bookkeeping(columns, F.lit(source_file), F.lit(None).cast("string")))


def rows_by(df: DataFrame, key: str) -> Dict[str, dict]:
    return {r[key]: r.asDict(recursive=True) for r in df.collect()}


def table_snapshot(spark: SparkSession, path: str) -> List[str]:
    """A table's rows as sorted text (maps included), for whole-table equality."""
    return sorted(str(sorted(r.asDict(recursive=True).items())) for r in spark.read.format("delta").load(path).collect())


def fake_text_embeddings(spark: SparkSession, warehouse: str, item_ids: List[str],
                         encoders: Optional[Dict[str, tuple]] = None) -> None:
    """item_text_embeddings with the vector [i, 1] for the i-th item id, by encoder ("m", "v")
    unless `encoders` names another (model_name, model_version, vector) for an item."""
    from datetime import datetime

    from rec_lib.core.schema import ITEM_TEXT_EMBEDDINGS
    from rec_lib.platform import io

    encoders = encoders or {}
    rows = [(item_id, "h", *encoders.get(item_id, ("m", "v", [float(i), 1.0])), datetime(2026, 11, 1), "r")
            for i, item_id in enumerate(item_ids)]
    io.overwrite_table(spark.createDataFrame(rows, ITEM_TEXT_EMBEDDINGS.schema), ITEM_TEXT_EMBEDDINGS, warehouse)

# --------------------------------------------------------------------------------------------
# Evaluation metric rows chosen by hand (the report's and the gate's tests)
# --------------------------------------------------------------------------------------------


def metric_rows_by_hand():
    """k, method, metric, value rows: recall@20 as below, ndcg@20 half of it, coverage 1; ALS
    scores nothing at k = 0."""
    import pandas as pd

    data = []
    for k, values in {0: {"model": 0.30, "random": 0.10, "popular": 0.10, "content_knn": 0.30, "oracle": 0.60},
                      5: {"model": 0.50, "random": 0.10, "popular": 0.40, "content_knn": 0.30, "oracle": 0.80,
                          "als": 0.20}}.items():
        for method, value in values.items():
            data.append({"k": k, "method": method, "metric": "recall@20", "value": value})
            data.append({"k": k, "method": method, "metric": "ndcg@20", "value": value / 2})
            data.append({"k": k, "method": method, "metric": "coverage@20", "value": 1.0})
    data.append({"k": 0, "method": "als", "metric": "scorable_items", "value": 0.0})
    return pd.DataFrame(data)


class RowGuard:
    """Wraps collect, toPandas and createDataFrame: records the rows each call moves and fails the
    call that moves more than `limit`."""

    def __init__(self, limit: int):
        self.limit, self.largest = limit, (0, "")

    def check(self, rows: int, what: str) -> None:
        if rows > self.largest[0]:
            self.largest = (rows, what)
        if rows > self.limit:
            raise AssertionError(f"{what} moved {rows} rows between the driver and Spark (limit {self.limit})")

    def install(self, monkeypatch) -> None:
        import numpy as np
        import pandas as pd
        from pyspark.sql import DataFrame, SparkSession

        collect, to_pandas, create = DataFrame.collect, DataFrame.toPandas, SparkSession.createDataFrame
        guard = self

        def guarded_collect(df, *args, **kwargs):
            out = collect(df, *args, **kwargs)
            guard.check(len(out), "DataFrame.collect")
            return out

        def guarded_to_pandas(df, *args, **kwargs):
            out = to_pandas(df, *args, **kwargs)
            guard.check(len(out), "DataFrame.toPandas")
            return out

        def guarded_create(session, data, *args, **kwargs):
            if isinstance(data, (pd.DataFrame, list, np.ndarray)):
                guard.check(len(data), "SparkSession.createDataFrame")
            return create(session, data, *args, **kwargs)

        monkeypatch.setattr(DataFrame, "collect", guarded_collect)
        monkeypatch.setattr(DataFrame, "toPandas", guarded_to_pandas)
        monkeypatch.setattr(SparkSession, "createDataFrame", guarded_create)


# --------------------------------------------------------------------------------------------
# The benchmarks' smoke tests (tests/integration/test_bench_*.py)
# --------------------------------------------------------------------------------------------


def run_bench(script: str, *args: str) -> str:
    """scripts/<script> with `args`, from the repository; its stdout (a failure shows both streams' tails)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    return run.stdout


def bench_results(path: Path, title: str, command: str) -> str:
    """A benchmark's results file, its header checked (title, command, commit, date, machine, time
    taken); returns the whole text."""
    import re

    text = path.read_text()
    assert text.startswith(f"# {title}\n"), text[:200]
    assert f"- command: `python scripts/{command}" in text
    assert re.search(r"- commit: [0-9a-f]{7,}(\+changes)?\n", text), text[:400]
    assert re.search(r"- date: 20\d\d-\d\d-\d\d \d\d:\d\d UTC\n", text)
    assert re.search(r"- machine: .*\d+ CPUs", text)
    assert re.search(r"- took: (\d+ h \d\d min|\d+ min \d\d s|\d+ s)\n", text)
    return text
