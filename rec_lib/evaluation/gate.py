"""The evaluation gate (`evaluate.gate`): whether the production model may be published (pandas only).

The production model is trained on everything up to today, so nothing can test it on the future;
the evaluation trains its twin (the same settings and code) on what precedes the cutoff and ranks
the test window. The gate reads that twin's figures: the model must beat each named baseline on
Recall@K and NDCG@K at every k evaluated. A baseline that was not evaluated at all (no ground
truth for the oracle, ALS off) fails the gate rather than passing it unseen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import pandas as pd

from rec_lib.core.errors import RecError
from rec_lib.evaluation import report


class GateFailed(RecError):
    """The evaluation gate kept the production model from being published (the champion stays)."""

    exit_code = 4


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str  # one line: what the model beat, or where it lost
    evaluated: bool = True  # False: the shop could not be evaluated today (not published, not a failure)

    @classmethod
    def of(cls, rows: pd.DataFrame, baselines: Sequence[str], top_k: int) -> "GateDecision":
        """The decision on the metric rows of one evaluation (k, method, metric, value)."""
        missing = [b for b in baselines if not _evaluated(rows, b, top_k)]
        if missing:
            return cls(False, f"baseline(s) {', '.join(missing)} of evaluate.gate were not evaluated "
                              f"(no recall@{top_k} value): the gate cannot pass on figures it does not have")
        losses: List[str] = report.model_losses(rows, top_k, baselines)
        if losses:
            more = f" (+{len(losses) - 1} more)" if len(losses) > 1 else ""
            return cls(False, f"the model does not beat {', '.join(baselines)} at every k: {losses[0]}{more}")
        ks = sorted(int(k) for k in rows["k"].unique())
        return cls(True, f"the model beats {', '.join(baselines)} on recall@{top_k} and ndcg@{top_k} at k = {ks}")

    @classmethod
    def not_evaluated(cls, why: str) -> "GateDecision":
        return cls(False, f"not evaluated: {why}", evaluated=False)


@dataclass(frozen=True)
class GateOutcome:
    """What the gate did: the production model it decided on, and the champion afterwards."""

    decision: GateDecision
    model_version: str  # the production model (in the embedding tables) the decision is about
    champion: Optional[str]  # the champion's model version after the decision (None: none yet)
    registered_version: Optional[str] = None  # the registry's version of a published model

    def lines(self) -> List[str]:
        if self.decision.passed:
            registered = f" (registered version {self.registered_version})" if self.registered_version else ""
            return [f"  gate: passed, {self.decision.reason}; model {self.model_version} is the champion{registered}"]
        return [f"  gate: FAILED, {self.decision.reason}; model {self.model_version} is not published; "
                f"the lists stay with {self.stays_with()}"]

    def stays_with(self) -> str:
        return f"the champion {self.champion}" if self.champion else "no model (none has passed the gate yet)"

    def failure(self) -> Optional[GateFailed]:
        """The error a failed gate ends the job with (one line), or None."""
        if self.decision.passed or not self.decision.evaluated:
            return None
        return GateFailed(f"evaluation gate: model {self.model_version} is not published: {self.decision.reason}; "
                          f"the lists stay with {self.stays_with()}")


def _evaluated(rows: pd.DataFrame, method: str, top_k: int) -> bool:
    values = rows[(rows["method"] == method) & (rows["metric"] == f"recall@{top_k}")]["value"]
    return any(not math.isnan(v) for v in values)


__all__ = ["GateDecision", "GateOutcome", "GateFailed"]
