"""The evaluation gate's decision on metric rows chosen by hand (the report's rows: recall@20 =
the value, ndcg@20 = half of it)."""
from rec_lib.evaluation.gate import GateDecision
from tests.helpers import metric_rows_by_hand as rows


def test_the_gate_passes_when_the_model_beats_every_named_baseline_at_every_k():
    # model 0.30 / 0.50 against random 0.10 / 0.10 and popular 0.10 / 0.40
    decision = GateDecision.of(rows(), ["random", "popular"], 20)
    assert decision == GateDecision(True, "the model beats random, popular on recall@20 and ndcg@20 at k = [0, 5]")


def test_a_tie_fails_the_gate_and_the_reason_names_the_first_loss():
    # content_knn equals the model at k = 0 (0.30 recall, 0.15 ndcg): two losses
    decision = GateDecision.of(rows(), ["random", "content_knn"], 20)
    assert not decision.passed
    assert decision.reason == ("the model does not beat random, content_knn at every k: "
                               "recall@20 at k=0: content_knn 0.3000 >= model 0.3000 (+1 more)")


def test_a_baseline_without_figures_fails_the_gate():
    # ALS has recall only at k = 5 (it scores nothing at k = 0): evaluated, and beaten (0.20 < 0.50)
    assert GateDecision.of(rows(), ["als"], 20).passed
    without_oracle = rows()[lambda r: r.method != "oracle"]
    decision = GateDecision.of(without_oracle, ["random", "oracle"], 20)
    assert decision == GateDecision(False, "baseline(s) oracle of evaluate.gate were not evaluated (no recall@20 "
                                           "value): the gate cannot pass on figures it does not have")
