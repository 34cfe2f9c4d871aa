"""scripts/bench_regimes.py's summary of a regime (the benchmark itself runs in `make bench-regimes`):
the margins over the best baseline and the cells behind beyond chance, on rows chosen by hand."""
import importlib.util

import pandas as pd

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("bench_regimes", REPO / "scripts" / "bench_regimes.py")
bench_regimes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_regimes)


def _rows(with_intervals: bool) -> pd.DataFrame:
    """Two seeds at k = 3: the model 0.50 against popular 0.52 (seed 1) and 0.45 (seed 2) on recall@20,
    0.30 against 0.20 on ndcg@20; random far behind."""
    rows = []
    for seed, popular in ((1, 0.52), (2, 0.45)):
        for method, recall, ndcg in (("model", 0.50, 0.30), ("popular", popular, 0.20), ("random", 0.10, 0.05)):
            rows += [(seed, 3, method, "recall@20", recall), (seed, 3, method, "ndcg@20", ndcg)]
        if with_intervals:  # seed 1's -0.02 is behind beyond chance, seed 2's +0.05 ahead beyond chance
            low, high = (-0.03, -0.005) if seed == 1 else (0.01, 0.08)
            rows += [(seed, 3, "popular", "recall@20_diff_low", low), (seed, 3, "popular", "recall@20_diff_high", high),
                     (seed, 3, "random", "recall@20_diff_low", 0.3), (seed, 3, "random", "recall@20_diff_high", 0.5)]
    return pd.DataFrame(rows, columns=["seed", "k", "method", "metric", "value"])


def test_margins_count_cells_ahead_and_cells_behind_beyond_chance():
    assert bench_regimes._margins(_rows(True), 20) == (
        "Model minus the best baseline, smallest over seeds and k: recall@20 -0.020 (ahead in 1 of 2, behind beyond "
        "chance in 1, ahead of every baseline beyond chance in 1); ndcg@20 +0.100 (ahead in 2 of 2)")


def test_a_baseline_without_an_interval_is_not_counted_as_beaten_beyond_chance():
    # seed 2 without random's interval: popular's alone is above 0, but random was evaluated there too
    rows = _rows(True)
    rows = rows[~((rows.seed == 2) & (rows.method == "random") & rows.metric.str.contains("_diff_"))]
    assert "behind beyond chance in 1, ahead of every baseline beyond chance in 0)" in bench_regimes._margins(rows, 20)


def test_margins_of_runs_without_intervals_say_nothing_about_chance():
    assert bench_regimes._margins(_rows(False), 20) == (
        "Model minus the best baseline, smallest over seeds and k: recall@20 -0.020 (ahead in 1 of 2); "
        "ndcg@20 +0.100 (ahead in 2 of 2)")


def test_the_oracle_gets_a_margin_line_of_its_own_without_chance_counts():
    # the oracle at 0.51 on recall@20 (seed 1: popular's 0.52 is higher) and 0.40 on ndcg@20
    rows = _rows(True)
    oracle = [(seed, 3, "oracle", metric, value) for seed in (1, 2) for metric, value in (("recall@20", 0.51),
                                                                                         ("ndcg@20", 0.40))]
    rows = pd.concat([rows, pd.DataFrame(oracle, columns=rows.columns)], ignore_index=True)
    assert bench_regimes._margins(rows, 20, "oracle") == (
        "Oracle (true affinity) minus the best baseline, smallest over seeds and k: recall@20 -0.010 (ahead in 1 of 2); "
        "ndcg@20 +0.200 (ahead in 2 of 2)")
    assert bench_regimes._margins(_rows(True), 20, "oracle") == ""  # no ground truth, no line
    report = bench_regimes.report(rows.assign(regime="popularity", window="test"), pd.DataFrame())
    assert "ndcg@20 +0.100 (ahead in 2 of 2)\n\nOracle (true affinity) minus the best baseline" in report
