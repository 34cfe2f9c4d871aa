"""The pipeline on a real data set it was not tuned on: Book-Crossing as an item-cold-start shop
(scripts/book_crossing.py), through `make run INPUT=...`, and the served `recommendations` scored
against the launches' held-out ratings next to the baselines an analyst would try first.

For each k (first ratings of each launch in the input): Recall@10 and NDCG@10 of the served lists
(the run date's partition, as written) over the users with a held-out rating of a launch, and of
random, popularity among the launches (k = 0: nothing to go by, the seeded order; k > 0: how fast
their first k raters came), content kNN (the user's mean text embedding, cosine) and the
attribute-profile heuristic (the user's share of each attribute value - author, publisher, year -
in their history, dotted with the launch's values), each ranking the launches for the same users,
without the launches' raters already in the input. Then the served lists' ablation (each part's
blend refit served again; Recall@20 without the exposure floor, as the evaluation job's line) and
the tower alone as a ranker (the lists with the tower's part only).

    python scripts/bench_external.py [--out bench_out/external] [--k 0 5] [--catalogue-dates launch|old] [--no-ablation]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pipeline_settings(shop: Path, warehouse: Path, extra: str) -> str:
    """The SET of the benchmark's `make run`: the shop's own settings, the run's folders, `extra`."""
    settings = (shop / "settings.txt").read_text().strip()
    # the pipeline's own evaluation looks at the launches' window, whose later ratings are held out of
    # the export (this benchmark scores them): it reports that it cannot evaluate, and make run goes on
    launch_at = json.loads((shop / "truth" / "facts.json").read_text())["launch_at"]
    settings += f" evaluate.cutoff={launch_at}"
    models = warehouse.parent / f"models_{warehouse.name}"
    return (f"{settings} train.model_dir={models} train.petastorm_cache_dir={warehouse.parent}/petastorm "
            f"evaluate.report_dir={warehouse.parent}/reports mlflow.tracking_uri=sqlite:///{warehouse.parent}/mlflow.db "
            f"{extra}")


def run_pipeline(shop: Path, warehouse: Path, extra: str) -> float:
    cmd = ["make", "run", f"INPUT={shop}", f"WAREHOUSE={warehouse}", f"SET={pipeline_settings(shop, warehouse, extra)}"]
    start = time.perf_counter()
    with open(warehouse.parent / f"{warehouse.name}.log", "w") as log:
        subprocess.run(cmd, cwd=REPO, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def _served_metrics(served: pd.DataFrame, users: np.ndarray, launches: np.ndarray, relevant: np.ndarray,
                    k: int = 10) -> dict:
    """The served lists, as written: their launches in rank order (other items count as misses)."""
    from rec_lib.evaluation.metrics import per_user_metrics

    position = {x: i for i, x in enumerate(launches)}
    lists = np.full((len(users), k), len(launches), np.int64)  # a column index past the launches: never relevant
    user_row = {u: i for i, u in enumerate(users)}
    for row in served[served["user_id"].isin(user_row) & (served["rank"] <= k)].itertuples():
        lists[user_row[row.user_id], row.rank - 1] = position.get(row.item_id, len(launches))
    padded = np.concatenate([relevant, np.zeros((len(users), 1), bool)], axis=1)
    return _means(per_user_metrics(lists, padded, k), k)


def _means(m: dict, k: int = 10) -> dict:
    return {f"recall@{k}": float(np.nanmean(m["recall"])), f"ndcg@{k}": float(np.nanmean(m["ndcg"]))}


ABLATION_K = 20  # the ablation line's Recall@K, as the evaluation job's


def _ablation(spark, shop: Path, warehouse: Path, extra: str, users: np.ndarray, launches: np.ndarray,
              relevant: np.ndarray) -> dict:
    """Served Recall@20 of the lists without the exposure floor (the evaluation's ablation's), with the
    blend the training fitted and with each part's refit without it (rec_lib.evaluation.backtest:
    unfloored_lists, ablated_lists), on the run date's candidates and the same held-out ratings; and
    the tower alone as a ranker (the same lists with the tower's part only: Recall@10 / NDCG@10).
    The model is the one `make run` trained (the same settings and tables: complete, not retrained)."""
    import dataclasses
    import shutil
    import tempfile
    from datetime import date

    from pyspark.sql import functions as F

    from rec_lib.core.config import EvaluateJobConfig, load_config, split_settings
    from rec_lib.core.schema import INTERACTIONS
    from rec_lib.evaluation import report
    from rec_lib.evaluation.backtest import ablated_lists, unfloored_lists
    from rec_lib.platform import io
    from rec_lib.training.blend import COMPONENTS, Blend, BlendWeights
    from rec_lib.training.fit import fit_model

    settings = split_settings(pipeline_settings(shop, warehouse, extra))
    cfg = load_config(EvaluateJobConfig, REPO / "conf" / "local.yaml",
                      settings + [f"paths.input={shop}", f"paths.warehouse={warehouse}"])
    fitted = fit_model(spark, cfg.train_config(cfg.train.cutoff))
    run_date = date.fromisoformat(json.loads((shop / "truth" / "facts.json").read_text())["run_date"])
    before = io.read_table(spark, str(warehouse), INTERACTIONS)
    wanted = spark.createDataFrame(pd.DataFrame({"user_id": users}))
    name = f"recall@{ABLATION_K}"

    def metrics(lists, k: int) -> dict:
        rows = lists.join(F.broadcast(wanted), "user_id").select("user_id", "rank", "item_id").toPandas()
        return _served_metrics(rows, users, launches, relevant, k)

    folder = tempfile.mkdtemp(prefix="bench-external-")
    try:
        full = metrics(unfloored_lists(spark, cfg, fitted, before, run_date, folder), ABLATION_K)[name]
        without = {f"{name}_without_{part}": full if lists is None else metrics(lists, ABLATION_K)[name]
                   for part, lists in ablated_lists(spark, cfg, fitted, before, run_date, folder)}
        alone = Blend.single(BlendWeights({part: float(part == "tower") for part in COMPONENTS}, True, "the tower alone"))
        tower = metrics(unfloored_lists(spark, cfg, dataclasses.replace(fitted, blend=alone), before, run_date, folder), 10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    served = {"backtest_no_floor": {name: full}, report.ABLATION: without}
    return {name: full, **without, "line": report.ablation_line(served, ABLATION_K), "tower_alone": tower}


def _scores_table(spark, warehouse: Path, shop: Path, k: int, seed: int) -> tuple:
    """(the figures, (users, launches, relevant): what they were computed on)"""
    from pyspark.sql import functions as F

    from rec_lib.core.schema import INTERACTIONS, ITEM_TEXT_EMBEDDINGS, ITEMS, RECOMMENDATIONS
    from rec_lib.evaluation.metrics import per_user_metrics, top_k
    from rec_lib.evaluation.rankers import (
        AttributeProfileRanker,
        ContentKnnRanker,
        PopularRanker,
        epoch_seconds,
        pair_matrix,
    )
    from rec_lib.platform import io
    from rec_lib.training import attributes as attr
    from rec_lib.training.catalogue import item_fields

    facts = json.loads((shop / "truth" / "facts.json").read_text())
    heldout = pd.read_csv(shop / "truth" / "heldout.csv", dtype=str)
    wh = str(warehouse)
    items = io.read_table(spark, wh, ITEMS).toPandas().sort_values("item_id").reset_index(drop=True)
    launches = np.array(sorted(heldout["item_id"].unique()))
    served = (io.read_table(spark, wh, RECOMMENDATIONS).where(F.col("run_date") == F.lit(facts["run_date"]))
              .select("user_id", "rank", "item_id").toPandas())
    events = io.read_table(spark, wh, INTERACTIONS).select("user_id", "item_id", "ts").toPandas()
    users = np.array(sorted(set(heldout["user_id"]) & set(served["user_id"])))
    test = heldout[heldout["user_id"].isin(users)]
    relevant = pair_matrix(test, users, launches)
    shown = events[events["item_id"].isin(launches)]
    exclude = pair_matrix(shown, users, launches)
    out = {"users": int(len(users)), "launches": int(len(launches)), "test_pairs": int(relevant.sum())}

    def record(name, recommended):
        out[name] = _means(per_user_metrics(recommended, relevant, 10))

    user_row = {u: i for i, u in enumerate(users)}
    out["served"] = _served_metrics(served, users, launches, relevant)

    tiebreak = np.argsort(np.random.default_rng(seed).permutation(len(launches)))
    record("random", top_k(np.random.default_rng([seed, k]).random(relevant.shape), 10, exclude, tiebreak))
    popular = PopularRanker(launches, epoch_seconds(pd.to_datetime(items.set_index("item_id").loc[launches, "launch_ts"])))
    popular.prepare(k, shown.rename(columns={"ts": "first_ts"}))  # each launch's pace, as the evaluation's baseline
    record("popular", top_k(popular.scores(users), 10, exclude, tiebreak))

    history = events[~events["item_id"].isin(launches)].sort_values("ts", ascending=False)
    item_row = {x: i for i, x in enumerate(items["item_id"])}
    latest = history.groupby("user_id").head(20)
    rows_by_user = {u: np.asarray([item_row[i] for i in g["item_id"] if i in item_row])
                    for u, g in latest[latest["user_id"].isin(user_row)].groupby("user_id")}
    scheme = attr.scheme_for(item_fields(items), {"Image-URL-S": "ignore", "Image-URL-M": "ignore",
                                                  "Image-URL-L": "ignore", "Year-Of-Publication": "numeric"}, 10)
    tokens = [scheme.item_tokens(r) for r in item_fields(items).to_dict("records")]
    ids, weights = attr.token_arrays(tokens, attr.token_slots(tokens, 1 << 22))
    launch_rows = np.asarray([item_row[x] for x in launches])
    heuristic = AttributeProfileRanker(rows_by_user, ids, weights, launch_rows)
    record("attribute_profile", top_k(heuristic.scores(users), 10, exclude, tiebreak))
    text = io.read_table(spark, wh, ITEM_TEXT_EMBEDDINGS).select("item_id", "embedding").toPandas()
    vectors = np.stack(text.set_index("item_id").loc[items["item_id"], "embedding"].map(np.asarray).to_list())
    profiles = {u: vectors[r].mean(axis=0) for u, r in rows_by_user.items() if len(r)}
    record("content_knn", top_k(ContentKnnRanker(profiles, vectors[launch_rows]).scores(users), 10, exclude, tiebreak))
    return out, (users, launches, relevant)


def results_table(results: dict, ks) -> list:
    lines = ["| method | " + " | ".join(f"k={k} Recall@10 / NDCG@10" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in ("served", "tower_alone", "random", "popular", "content_knn", "attribute_profile"):
        if not all(method in results[k] for k in ks):
            continue
        cells = [f"{results[k][method]['recall@10']:.4f} / {results[k][method]['ndcg@10']:.4f}" for k in ks]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
    for k in ks:
        if results[k].get("ablation", {}).get("line"):
            lines.append(f"- k={k}: {results[k]['ablation']['line']}")
    lines.append("- users / launches / test pairs: " + ", ".join(
        f"k={k}: {results[k]['users']:,} / {results[k]['launches']} / {results[k]['test_pairs']:,}" for k in ks))
    lines.append("- seconds of `make run`: " + ", ".join(f"k={k}: {results[k]['seconds']:.0f}" for k in ks))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_out/external")
    parser.add_argument("--k", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--set", default="", help="further settings for every run")
    parser.add_argument("--no-ablation", action="store_true",
                        help="skip the served lists' ablation (each part's blend refit served again: minutes per part)")
    parser.add_argument("--catalogue-dates", choices=("launch", "old"), default="launch",
                        help="book_crossing.py's: 'old' exports every other book dated at the history's start (no "
                             "launch cohorts; the blend then learns from pseudo-launches)")
    parser.add_argument("--cache", default=".cache/external", help="book_crossing.py's: where the data's wheel is kept")
    parser.add_argument("--launches", type=int, default=300, help="book_crossing.py's: books made launches")
    parser.add_argument("--min-book-ratings", type=int, default=10, help="book_crossing.py's")
    parser.add_argument("--min-launch-ratings", type=int, default=30, help="book_crossing.py's")
    import bench_results

    bench_results.add_argument(parser, "external")
    args = parser.parse_args(argv)
    out = (REPO / args.out).resolve()
    shops = out / "shops"
    if not all((shops / f"bx_k{k}" / "truth" / "heldout.csv").exists() for k in args.k):
        subprocess.run([sys.executable, str(REPO / "scripts" / "book_crossing.py"), "--out", str(shops),
                        "--k", *map(str, args.k), "--catalogue-dates", args.catalogue_dates,
                        "--cache", args.cache, "--launches", str(args.launches), "--min-book-ratings",
                        str(args.min_book_ratings), "--min-launch-ratings", str(args.min_launch_ratings)],
                       check=True, cwd=REPO)
    results = {}
    for k in args.k:
        warehouse = out / f"wh_k{k}"
        seconds = run_pipeline(shops / f"bx_k{k}", warehouse, args.set)
        from rec_lib.core.config import SparkSection
        from rec_lib.platform.spark import get_spark

        spark = get_spark(SparkSection(master="local[2]", app_name="bench-external", shuffle_partitions=8,
                                       driver_memory="4g", jars_dir=str(REPO / ".cache" / "jars"),
                                       conf={"spark.ui.enabled": "false"}))
        table, held = _scores_table(spark, warehouse, shops / f"bx_k{k}", k, args.seed)
        if not args.no_ablation:
            table["ablation"] = _ablation(spark, shops / f"bx_k{k}", warehouse, args.set, *held)
            table["tower_alone"] = table["ablation"].pop("tower_alone")
        results[k] = {"seconds": round(seconds, 1), **table}
        print(json.dumps({f"k={k}": results[k]}), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = "\n".join(results_table(results, args.k))
    print("\n" + text)
    bench_results.write(args.results, "bench-external: Book-Crossing as an item-cold-start shop", "make bench-external",
                        text, markdown=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.exit(main())
