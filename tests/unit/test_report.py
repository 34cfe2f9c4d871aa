"""The evaluation report from metric rows chosen by hand."""
import pandas as pd
import pytest

from rec_lib.evaluation import report
from tests.helpers import metric_rows_by_hand as rows


def test_metric_table_orders_methods_and_leaves_gaps():
    table = report.metric_table(rows(), "recall@20")
    assert list(table.columns) == ["model", "random", "popular", "content_knn", "als", "oracle"]
    assert pd.isna(table.at[0, "als"]) and table.at[5, "als"] == 0.2


def test_wins_lists_every_tie_or_loss_against_a_baseline():
    # a tie counts as not beating: content_knn equals the model at k = 0 on both metrics
    assert report.model_losses(rows(), 20) == ["recall@20 at k=0: content_knn 0.3000 >= model 0.3000",
                                       "ndcg@20 at k=0: content_knn 0.1500 >= model 0.1500"]
    better = rows()
    better.loc[(better.method == "content_knn") & (better.k == 0), "value"] = 0.01
    assert report.model_losses(better, 20) == []


def with_intervals(low: float, high: float) -> pd.DataFrame:
    """The rows by hand plus the interval of model minus content_knn on recall@20 at k = 0."""
    extra = pd.DataFrame([{"k": 0, "method": "content_knn", "metric": "recall@20_diff_low", "value": low},
                          {"k": 0, "method": "content_knn", "metric": "recall@20_diff_high", "value": high}])
    return pd.concat([rows(), extra], ignore_index=True)


def test_a_loss_shows_the_interval_of_the_difference_and_counts_beyond_chance_only_below_zero():
    tied = with_intervals(-0.05, 0.05)
    assert report.model_losses(tied, 20)[0] == ("recall@20 at k=0: content_knn 0.3000 >= model 0.3000 "
                                                "(model minus content_knn +0.0000, 95% interval -0.0500 to +0.0500)")
    # no interval for ndcg: the line stays as it was
    assert report.model_losses(tied, 20)[1] == "ndcg@20 at k=0: content_knn 0.1500 >= model 0.1500"
    assert report.losses_beyond_chance(tied, 20) == []
    assert "Model behind a baseline beyond chance (the 95% paired bootstrap interval of the difference below 0): no" \
        in report.markdown(tied, 20, {})
    behind = with_intervals(-0.05, -0.01)
    assert report.losses_beyond_chance(behind, 20) == ["recall@20 at k=0: content_knn, -0.0500 to -0.0100"]
    assert "below 0): yes\n- recall@20 at k=0: content_knn, -0.0500 to -0.0100" in report.markdown(behind, 20, {})
    # reports of runs without intervals say nothing about chance
    assert "beyond chance" not in report.markdown(rows(), 20, {})


def test_oracle_ratios_and_markdown():
    assert report.oracle_ratios(rows(), 20) == {0: pytest.approx(0.5), 5: pytest.approx(0.625)}
    text = report.markdown(rows(), 20, {"run": "r1"}, ["a note"])
    assert "- run: r1" in text and "- a note" in text
    assert "**Model beats random, popular, content_knn, attribute_profile, als on Recall@20 and NDCG@20 at every k: no**" in text
    assert "Model / oracle on Recall@20: k=0: 0.50, k=5: 0.62" in text
    assert "| 0 | 0.3000 | 0.1000 | 0.1000 | 0.3000 | n/a | 0.6000 |" in text
    # the oracle (0.60 and 0.80) beats every baseline at both k
    assert "Oracle (the shop's true affinity) beats random, popular, content_knn, attribute_profile, als at every k: yes" \
        in text
    assert "beyond chance" not in text and "oracle" not in report.markdown(rows()[rows().method != "oracle"], 20, {})


def test_where_the_true_affinity_itself_does_not_beat_a_baseline_the_report_says_so():
    # popular at k = 5 raised to 0.85 (ndcg 0.425): above the oracle's 0.80 (0.40) and the model's 0.50 (0.25)
    ceiling = rows()
    ceiling.loc[(ceiling.method == "popular") & (ceiling.k == 5) & (ceiling.metric == "recall@20"), "value"] = 0.85
    ceiling.loc[(ceiling.method == "popular") & (ceiling.k == 5) & (ceiling.metric == "ndcg@20"), "value"] = 0.425
    assert report.model_losses(ceiling, 20, method="oracle") == ["recall@20 at k=5: popular 0.8500 >= oracle 0.8000",
                                                                 "ndcg@20 at k=5: popular 0.4250 >= oracle 0.4000"]
    text = report.markdown(ceiling, 20, {})
    assert ("at every k: no (where it does not, knowing the world's affinity does not beat that baseline either: "
            "no model can be expected to)\n- recall@20 at k=5: popular 0.8500 >= oracle 0.8000\n"
            "- ndcg@20 at k=5: popular 0.4250 >= oracle 0.4000\n") in text


def test_write_report_makes_the_summary_and_png_plots(tmp_path):
    paths = report.write_report(rows(), 20, tmp_path / "r", {"run": "r1"})
    assert paths["summary"].read_text().startswith("# Cold-start evaluation")
    for name in ("recall", "ndcg", "coverage"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ablation_line_gives_every_parts_change_in_order():
    # the lists without the floor found 0.400; without the tower 0.350 (-12.5%), text 0.380 (-5.0%),
    # attributes 0.400 (nothing), prior 0.404 (+1.0%), pace 0.39998 (rounds to nothing)
    served = {"backtest_no_floor": {"recall@20": 0.4},
              report.ABLATION: {"recall@20_without_pace": 0.39998, "recall@20_without_tower": 0.35,
                                "recall@20_without_text": 0.38, "recall@20_without_attributes": 0.4,
                                "recall@20_without_prior": 0.404}}
    assert report.ablation_line(served) == ("ablation (served Recall@20 change without each part): "
                                            "tower -12.5%, text -5.0%, attributes 0.0%, prior +1.0%, pace 0.0%")
    assert report.ablation_changes(served)["tower"] == pytest.approx(-0.125)
    lines = report.served_lines(served)
    assert lines[-1].startswith("ablation (served Recall@20 change without each part): tower -12.5%")
    assert not any(line.startswith("served lists (ablation)") for line in lines)
    assert report.ablation_line({"backtest_no_floor": {"recall@20": 0.4}}) is None
