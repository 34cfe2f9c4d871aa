"""One default configuration against worlds it was not tuned on: the demo shop in every regime
(`demo.regime`: text, attributes, popularity), several seeds each, evaluated on the validation
window (where settings are chosen) and on the test window (read once), with the served-list
backtest of each. A world's window that finished is not run again (its `<window>.done` file under
--out), so an interrupted benchmark resumes where it stopped; a world whose shop was made with other
--set settings (`shop.done`) is made again from the start.

Per regime, seed and window it generates the shop, builds the features and text embeddings, and
runs the evaluation job (which trains its own model on what precedes the window); the figures come
from the `evaluation_metrics` and `list_metrics` tables. The report (Markdown, and JSON for
scripts) gives per regime and window the mean over seeds of Recall@20 / NDCG@20 by k and method,
the smallest margin of the model over the best baseline, and the served lists' figures.

    python scripts/bench_regimes.py [--regimes text attributes popularity] [--seeds 1 2 3]
                                    [--windows validation test] [--out bench_out/regimes] [--set "k=v ..."]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from rec_lib.core.config import split_settings  # noqa: E402
from rec_lib.evaluation.metrics import difference_names  # noqa: E402
from rec_lib.evaluation.report import BASELINES  # noqa: E402  (what the model has to beat)

NOW = "2026-11-01T00:00:00Z"  # the shops end the day before: the same calendar for every world
# the margin lines: the model's, and the ceiling's (what ranking by the world's true affinity gets)
LABELS = {"model": "Model", "oracle": "Oracle (true affinity)"}


def job(name: str, settings: list, log: Path) -> None:
    cmd = [sys.executable, "-m", f"jobs.{name}", "--conf-file", "conf/local.yaml", "--set", " ".join(settings)]
    with open(log, "a") as out:
        subprocess.run(cmd, cwd=REPO, check=True, stdout=out, stderr=subprocess.STDOUT)


def run_world(out: Path, regime: str, seed: int, windows, extra: list) -> dict:
    root = out / f"{regime}_seed{seed}"
    root.mkdir(parents=True, exist_ok=True)
    common = [f"paths.input={root / 'input'}", f"paths.warehouse={root / 'warehouse'}", f"run.now={NOW}",
              f"train.model_dir={root / 'models'}", f"train.petastorm_cache_dir={root / 'petastorm'}",
              f"evaluate.report_dir={root / 'reports'}", 'mlflow.tracking_uri=""', f"demo.regime={regime}",
              f"demo.seed={seed}", f"train.seed={seed}", *extra]
    log = root / "jobs.log"
    times = {}
    start = time.perf_counter()
    shop = root / "shop.done"  # the shop, features and text embeddings, made with these settings
    if not shop.exists() or shop.read_text() != " ".join(extra):
        for folder in ("input", "warehouse", "models", "petastorm"):  # another shop's (or a half-made one)
            shutil.rmtree(root / folder, ignore_errors=True)
        for done in root.glob("*.done"):
            done.unlink()
        for name in ("generate_data", "build_features", "embed_items"):
            job(name, common, log)
        shop.write_text(" ".join(extra))
    times["shop"] = time.perf_counter() - start
    for window in windows:
        done = root / f"{window}.done"  # a world's window already evaluated (by these settings) is not run again
        settings, _, seconds = done.read_text().partition("\n") if done.exists() else ("", "", "")
        if seconds and settings == " ".join(extra):
            times[window] = float(seconds)
            continue
        start = time.perf_counter()
        job("evaluate", common + [f"evaluate.window={window}", f"run.run_id={regime}-{seed}-{window}"], log)
        times[window] = time.perf_counter() - start
        done.write_text(f"{' '.join(extra)}\n{times[window]:.1f}\n")
    return {"root": str(root), "seconds": times}


def read_figures(spark, root: Path, run_ids) -> tuple:
    from pyspark.sql import functions as F

    from rec_lib.core.schema import EVALUATION_METRICS, LIST_METRICS
    from rec_lib.platform import io

    wh = str(root / "warehouse")
    metrics = (io.read_table(spark, wh, EVALUATION_METRICS).where(F.col("run_id").isin(run_ids))
               .where(F.col("method") != "served")  # the served lists' ablation rows (k -1) are not a ranker's
               .select("run_id", "k", "method", "metric", "value").toPandas())
    served = (io.read_table(spark, wh, LIST_METRICS).where(F.col("run_id").isin(run_ids))
              .select("run_id", "source", "metric", "value").toPandas()
              if io.delta_exists(spark, io.table_path(wh, LIST_METRICS)) else pd.DataFrame())
    return metrics, served


def report(metrics: pd.DataFrame, served: pd.DataFrame, top_k: int = 20) -> str:
    lines = ["# Regimes: one default configuration, worlds it was not tuned on", ""]
    for (regime, window), group in metrics.groupby(["regime", "window"], sort=False):
        seeds = sorted(group["seed"].unique())
        lines += [f"## {regime}, {window} window (seeds {', '.join(map(str, seeds))}; mean)", ""]
        recall = group[group.metric == f"recall@{top_k}"].pivot_table(index="method", columns="k", values="value")
        ndcg = group[group.metric == f"ndcg@{top_k}"].pivot_table(index="method", columns="k", values="value")
        ks = sorted(recall.columns)
        lines += ["| method | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
        for method in recall.index:
            cells = [f"{recall.at[method, k]:.3f} / {ndcg.at[method, k]:.3f}" if pd.notna(recall.at[method, k])
                     else "n/a" for k in ks]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        ceiling = _margins(group, top_k, "oracle")
        lines += ["", _margins(group, top_k)] + (["", ceiling] if ceiling else []) + [""]
        part = served[(served.regime == regime) & (served.window == window)] if len(served) else served
        if len(part):
            table = part.pivot_table(index="metric", columns="source", values="value")
            wanted = [m for m in ("recall@20", "ndcg@20", "floor_reached", "top3_first_share", "distinct_first_items",
                                  "candidate_coverage", "exposure_gini", "mean_pairwise_overlap") if m in table.index]
            lines += ["| served lists (backtest, mean) | " + " | ".join(table.columns) + " |",
                      "|---|" + "---:|" * len(table.columns)]
            lines += [f"| {m} | " + " | ".join(f"{table.at[m, c]:.3f}" if pd.notna(table.at[m, c]) else "-"
                                               for c in table.columns) + " |" for m in wanted]
            lines.append("")
    return "\n".join(lines) + "\n"


def _chance(group: pd.DataFrame, metric: str, table: pd.DataFrame, bases) -> str:
    """', behind beyond chance in B, ahead of every baseline beyond chance in A': the (seed, k)
    cells where the 95% interval of model minus some baseline lies wholly below 0 (B), and those
    where the interval of model minus each baseline evaluated there (a figure in `table`) lies
    wholly above 0 (A); '' for evaluations that wrote no intervals."""
    low_name, high_name = difference_names(metric)
    ends = group[group.metric.isin([low_name, high_name]) & group.method.isin(bases)].pivot_table(
        index=["seed", "k", "method"], columns="metric", values="value")
    if not len(ends):
        return ""
    by_cell = ends.groupby(level=["seed", "k"])
    behind = int(by_cell[high_name].min().lt(0).sum())
    with_interval = by_cell[low_name].count()  # baselines whose interval the cell holds
    evaluated = table[bases].notna().sum(axis=1).reindex(with_interval.index)
    ahead = int((by_cell[low_name].min().gt(0) & with_interval.eq(evaluated)).sum())
    return f", behind beyond chance in {behind}, ahead of every baseline beyond chance in {ahead}"


def _margins(group: pd.DataFrame, top_k: int, method: str = "model") -> str:
    """Per seed, k and metric: `method` minus the best baseline; the smallest, whether all > 0, and
    for the model the cells behind or ahead beyond chance (`_chance`). '' where `method` was not
    evaluated (the oracle needs the generated shop's ground truth)."""
    worst = []
    for metric in (f"recall@{top_k}", f"ndcg@{top_k}"):
        table = group[group.metric == metric].pivot_table(index=["seed", "k"], columns="method", values="value")
        if method not in table.columns:
            return ""
        bases = [b for b in BASELINES if b in table.columns]
        margin = table[method] - table[bases].max(axis=1)
        chance = _chance(group, metric, table, bases) if method == "model" else ""
        worst.append((metric, float(margin.min()), int((margin > 0).sum()), len(margin), chance))
    return f"{LABELS[method]} minus the best baseline, smallest over seeds and k: " + "; ".join(
        f"{m} {w:+.3f} (ahead in {n} of {total}{behind})" for m, w, n, total, behind in worst)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=["text", "attributes", "popularity"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--windows", nargs="+", default=["validation", "test"])
    parser.add_argument("--out", default="bench_out/regimes")
    parser.add_argument("--set", default="", help="settings for every job, e.g. 'train.epochs=4'")
    import bench_results

    bench_results.add_argument(parser, "regimes")
    args = parser.parse_args(argv)
    out = (REPO / args.out).resolve()
    extra = split_settings(args.set)
    runs = []
    for regime in args.regimes:
        for seed in args.seeds:
            info = run_world(out, regime, seed, args.windows, extra)
            runs.append((regime, seed, info))
            print(json.dumps({"regime": regime, "seed": seed, **info["seconds"]}), flush=True)
    from rec_lib.core.config import SparkSection
    from rec_lib.platform.spark import get_spark

    spark = get_spark(SparkSection(master="local[2]", app_name="bench-regimes", shuffle_partitions=4,
                                   driver_memory="2g", jars_dir=str(REPO / ".cache" / "jars"),
                                   conf={"spark.ui.enabled": "false"}))
    all_metrics, all_served = [], []
    for regime, seed, info in runs:
        ids = [f"{regime}-{seed}-{w}" for w in args.windows]
        metrics, served = read_figures(spark, Path(info["root"]), ids)
        for frame in (metrics, served):
            if len(frame):
                frame["regime"], frame["seed"] = regime, seed
                frame["window"] = frame["run_id"].str.rsplit("-", n=1).str[-1]
        all_metrics.append(metrics)
        all_served.append(served)
    metrics = pd.concat(all_metrics, ignore_index=True)
    served = pd.concat([s for s in all_served if len(s)], ignore_index=True) if any(len(s) for s in all_served) \
        else pd.DataFrame()
    text = report(metrics, served)
    (out / "report.md").write_text(text)
    metrics.to_csv(out / "metrics.csv", index=False)
    if len(served):
        served.to_csv(out / "served.csv", index=False)
    print(text)
    bench_results.write(args.results, "bench-regimes: one configuration on worlds it was not tuned on",
                        "make bench-regimes", text, markdown=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.exit(main())
