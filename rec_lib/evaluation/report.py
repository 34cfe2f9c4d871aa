"""The evaluation report: a Markdown summary and PNG plots from the metric rows (pandas only).

Rows are those of the `evaluation_metrics` table: k, method, metric, value.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd

from rec_lib.core.schema import ReasonKind
from rec_lib.evaluation.metrics import difference_names
from rec_lib.scoring.reasons import REASON_METRIC, reason_line
from rec_lib.training.facade import COMPONENTS

# What the model has to beat at every k (on Recall@K and NDCG@K) for the verdict line.
BASELINES = ("random", "popular", "content_knn", "attribute_profile", "als")
METHOD_ORDER = ("model", "random", "popular", "content_knn", "attribute_profile", "als", "oracle", "tower")
ABLATION = "ablation"  # the served figures' entry of the ablation: recall@K_without_<part> -> served Recall@K
ABLATION_NOTE = " (the blend refitted on the launch cohorts without that part; lists without the floor)"
PLOTTED = ("recall", "ndcg", "coverage")


def metric_table(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """k x method table of one metric; methods in METHOD_ORDER, missing values NaN."""
    table = rows[rows["metric"] == metric].pivot_table(index="k", columns="method", values="value", aggfunc="first",
                                                      dropna=False)
    ordered = [m for m in METHOD_ORDER if m in table.columns] + [m for m in table.columns if m not in METHOD_ORDER]
    return table.reindex(columns=ordered).sort_index()


def difference_interval(rows: pd.DataFrame, metric: str, k: int, method: str) -> Optional[Tuple[float, float]]:
    """(low, high) of the 95% interval of model minus `method` on `metric` at k, if evaluated."""
    ends = []
    for name in difference_names(metric):
        value = rows[(rows["metric"] == name) & (rows["k"] == k) & (rows["method"] == method)]["value"]
        if not len(value) or math.isnan(float(value.iloc[0])):
            return None
        ends.append(float(value.iloc[0]))
    return ends[0], ends[1]


def model_losses(rows: pd.DataFrame, top_k: int, baselines: Sequence[str] = BASELINES,
                 method: str = "model") -> List[str]:
    """Where `method` (the model unless named) does not beat a baseline on recall@K or ndcg@K:
    'ndcg@20 at k=3: popular 0.2100 >= model 0.2000 (model minus popular -0.0100, 95% interval
    -0.0200 to +0.0010)', the interval where the model's rows have one; empty when it wins everywhere."""
    losses = []
    for name in ("recall", "ndcg"):
        metric = f"{name}@{top_k}"
        table = metric_table(rows, metric)
        for k, row in table.iterrows():
            for base in baselines:
                if base not in row or method not in row or math.isnan(row[base]):
                    continue
                if not row[method] > row[base]:
                    line = f"{metric} at k={k}: {base} {row[base]:.4f} >= {method} {row[method]:.4f}"
                    interval = difference_interval(rows, metric, k, base) if method == "model" else None
                    if interval is not None:
                        line += (f" (model minus {base} {row['model'] - row[base]:+.4f}, 95% interval "
                                 f"{interval[0]:+.4f} to {interval[1]:+.4f})")
                    losses.append(line)
    return losses


def losses_beyond_chance(rows: pd.DataFrame, top_k: int, baselines: Sequence[str] = BASELINES) -> List[str]:
    """Where the model is behind a baseline beyond chance: the whole 95% interval of model minus it
    on recall@K or ndcg@K below 0 ('recall@20 at k=3: popular, -0.0400 to -0.0100')."""
    out = []
    for name in ("recall", "ndcg"):
        metric = f"{name}@{top_k}"
        for k in sorted(rows.loc[rows["metric"] == metric, "k"].unique()):
            for base in baselines:
                interval = difference_interval(rows, metric, int(k), base)
                if interval is not None and interval[1] < 0:
                    out.append(f"{metric} at k={int(k)}: {base}, {interval[0]:+.4f} to {interval[1]:+.4f}")
    return out


def oracle_ratios(rows: pd.DataFrame, top_k: int, ks: Sequence[int] = (0, 5)) -> Dict[int, float]:
    """model / oracle on recall@K at the given k (those evaluated with an oracle)."""
    table = metric_table(rows, f"recall@{top_k}")
    if "oracle" not in table.columns:
        return {}
    return {k: float(table.at[k, "model"] / table.at[k, "oracle"]) for k in ks
            if k in table.index and table.at[k, "oracle"] > 0}


def fmt(value: float, whole: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.0f}" if whole else f"{value:.4f}"


SERVED_FIGURES = ("recall@10", "recall@20", "ndcg@20", "test_users", "candidates", "new_candidates",
                  "candidate_coverage", "floor_reached", "top3_first_share", "distinct_first_items", "exposure_gini",
                  "mean_pairwise_overlap", "new_item_share")


def ablation_changes(served: Dict[str, Dict[str, float]], k: int = 20) -> Dict[str, float]:
    """part -> relative change of the served Recall@k (lists without the floor) when the blend is
    refitted without that part; empty without an ablation."""
    without, base = served.get(ABLATION, {}), served.get("backtest_no_floor", {})
    full = base.get(f"recall@{k}")
    if not without or not full:
        return {}
    return {part: without[f"recall@{k}_without_{part}"] / full - 1.0 for part in COMPONENTS
            if f"recall@{k}_without_{part}" in without}


def ablation_line(served: Dict[str, Dict[str, float]], k: int = 20) -> Optional[str]:
    """`ablation (served Recall@20 change without each part): tower -12.3%, text -5.0%, ...`"""
    changes = ablation_changes(served, k)
    if not changes:
        return None
    cells = [f"{part} {_percent(change)}" for part, change in changes.items()]
    return f"ablation (served Recall@{k} change without each part): " + ", ".join(cells)


def _percent(change: float) -> str:
    """-12.3%, +1.2%, and 0.0% for what rounds to nothing."""
    value = round(100 * change, 1)
    return "0.0%" if value == 0 else f"{value:+.1f}%"


def served_lines(served: Dict[str, Dict[str, float]]) -> List[str]:
    """The backtest of the served lists (list_metrics sources -> figures) as short lines."""
    out = []
    for source, f in served.items():
        if source == ABLATION:
            continue
        parts = [f"{name} {f[name]:.3f}" if name not in ("test_users", "candidates", "new_candidates",
                                                          "distinct_first_items") else f"{name} {f[name]:,.0f}"
                 for name in SERVED_FIGURES if name in f]
        out.append(f"served lists ({source}): " + ", ".join(parts))
    base, floor = served.get("backtest_no_floor"), served.get("backtest")
    kinds = reason_line(floor or {})
    if kinds:
        out.append(f"reasons of the served lists (backtest): {kinds} of rows")
    if base and floor and base.get("recall@20"):
        out.append(f"the exposure floor changes served Recall@20 by {floor['recall@20'] / base['recall@20'] - 1:+.1%}")
    line = ablation_line(served)
    if line:
        out.append(line + ABLATION_NOTE)
    return out


def served_table(served: Dict[str, Dict[str, float]]) -> List[str]:
    if not served:
        return []
    sources = [s for s in served if s != ABLATION]
    lines = ["", "## Served lists (backtest: the scoring job's code on the cutoff model)", "",
             "| figure | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
    reason_names = [REASON_METRIC + kind for kind in ReasonKind.ALL]
    for name in [*SERVED_FIGURES, *reason_names]:
        if any(name in served[s] for s in sources):
            lines.append(f"| {name} | " + " | ".join(fmt(served[s].get(name, float("nan"))) for s in sources) + " |")
    return lines


def markdown(rows: pd.DataFrame, top_k: int, header: Dict[str, str], notes: Sequence[str] = (),
             served: Optional[Dict[str, Dict[str, float]]] = None) -> str:
    lines = ["# Cold-start evaluation", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines.append("")
    losses = model_losses(rows, top_k)
    verdict = ("yes" if not losses else "no")
    lines.append(f"**Model beats {', '.join(BASELINES)} on Recall@{top_k} and NDCG@{top_k} at every k: {verdict}**")
    lines += [f"- {loss}" for loss in losses]
    if rows["metric"].isin([*difference_names(f"recall@{top_k}"), *difference_names(f"ndcg@{top_k}")]).any():
        behind = losses_beyond_chance(rows, top_k)
        lines += ["", f"Model behind a baseline beyond chance (the 95% paired bootstrap interval of the difference "
                  f"below 0): {'no' if not behind else 'yes'}"]
        lines += [f"- {line}" for line in behind]
    ratios = oracle_ratios(rows, top_k)
    if ratios:
        lines.append("")
        lines.append("Model / oracle on Recall@%d: %s" % (
            top_k, ", ".join(f"k={k}: {r:.2f}" for k, r in sorted(ratios.items()))))
    if "oracle" in set(rows["method"]):
        ceiling = model_losses(rows, top_k, method="oracle")
        lines += ["", f"Oracle (the shop's true affinity) beats {', '.join(BASELINES)} at every k: "
                  f"{'yes' if not ceiling else 'no'}"
                  + ("" if not ceiling else " (where it does not, knowing the world's affinity does not beat that "
                     "baseline either: no model can be expected to)")]
        lines += [f"- {line}" for line in ceiling]
    for metric in (f"recall@{top_k}", f"ndcg@{top_k}", f"hit_rate@{top_k}", f"mrr@{top_k}", f"coverage@{top_k}",
                   f"mean_popularity@{top_k}", "scorable_items", "users"):
        table = metric_table(rows, metric)
        if table.empty:
            continue
        lines += ["", f"## {metric}", "", "| k | " + " | ".join(table.columns) + " |",
                  "|---:|" + "---:|" * len(table.columns)]
        for k, row in table.iterrows():
            lines.append(f"| {k} | " + " | ".join(fmt(v, whole=metric == "users") for v in row) + " |")
    lines += served_table(served or {})
    line = ablation_line(served or {})
    if line:
        lines += ["", line + ABLATION_NOTE]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plot(rows: pd.DataFrame, metric: str, path: Path, title: Optional[str] = None) -> Path:
    """One line per method of `metric` against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = metric_table(rows, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in table.columns:
        style = {"linewidth": 2.5} if method == "model" else {"linestyle": "--" if method == "oracle" else "-"}
        ax.plot(table.index, table[method], marker="o", label=method, **style)
    ax.set_xlabel("k (first interactions of each new item seen)")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} by k")
    ax.set_xticks(list(table.index))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(rows: pd.DataFrame, top_k: int, folder: Path, header: Dict[str, str],
                 notes: Sequence[str] = (), served: Optional[Dict[str, Dict[str, float]]] = None) -> Dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {"summary": folder / "summary.md"}
    out["summary"].write_text(markdown(rows, top_k, header, notes, served), encoding="utf-8")
    for name in PLOTTED:
        out[name] = plot(rows, f"{name}@{top_k}", folder / f"{name}_by_k.png")
    return out
