"""The launch popularity prior: how fast an item's first users will come, predicted from its content
(numpy only).

What the prior is trained for matters: an item's popularity over its whole life mixes in its age
and how it was shown, and ranks launches worse than what it did in its first days. So the target is
the launch rate: y = log((users in the item's first `window_days` after launch + 0.5) / window_days),
over the items whose whole first window lies inside the data (launched after the first interaction
on record and at least `window_days` before the cutoff).

The features are target encodings of the item's attribute tokens (rec_lib.training.attributes),
one per field: the mean launch rate of the items sharing the token, shrunk towards the overall mean
by `SHRINKAGE` pseudo-items, averaged over the field's tokens (the mean where the item has none).
For the items the prior is fitted on, each encoding leaves the item itself out, so its own target
cannot leak into its features. A ridge regression on the fields' encodings then learns how much each
field says, per data set (an author may say much, a colour little):

    prior(i) = mean + sum_f beta_f * (enc_f(i) - mean)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rec_lib.core.clock import SECONDS_PER_DAY

SHRINKAGE = 5.0  # pseudo-items at the overall mean behind every token's mean
RIDGE = 1.0  # L2 penalty of the fields' coefficients
MIN_ITEMS = 10  # fewer launches to learn from: the prior is the overall mean (or 0 without any)


def launch_rate(early_users: np.ndarray, window_days: float) -> np.ndarray:
    """log((users in the first window + 0.5) / window_days), in log users per day."""
    return np.log((np.asarray(early_users, np.float64) + 0.5) / float(window_days))


def relative_to_cohort(rate: np.ndarray, launch_s: np.ndarray, fit: np.ndarray, window_days: float) -> np.ndarray:
    """Each fitted item's rate minus the mean rate of the fitted items launched within
    `window_days` of it (itself included): the target. A shop's traffic grows and shrinks, so
    launches of a busy month all start fast; what a prior must rank is how an item does against
    the items launched with it, which is also all a list of launches compares. NaN where not `fit`."""
    out = np.full(len(rate), np.nan)
    rows = np.flatnonzero(fit)
    if len(rows) == 0:
        return out
    order = rows[np.argsort(launch_s[rows], kind="stable")]
    times, values = launch_s[order], rate[order]
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    half = window_days * SECONDS_PER_DAY
    lo = np.searchsorted(times, times - half, side="left")
    hi = np.searchsorted(times, times + half, side="right")
    out[order] = values - (cumulative[hi] - cumulative[lo]) / (hi - lo)
    return out


@dataclass(frozen=True)
class LaunchPrior:
    mean: float
    fields: Tuple[str, ...]
    coef: np.ndarray  # [len(fields)]
    n_items: int  # launches it was fitted on

    def to_dict(self) -> dict:
        return {"mean": self.mean, "fields": list(self.fields), "coef": self.coef.tolist(), "n_items": self.n_items}


def _token_stats(tokens: Sequence[Sequence[Tuple[str, str, float]]], y: np.ndarray, fit: np.ndarray
                 ) -> Dict[str, Tuple[float, int]]:
    """token -> (sum of targets, count) over the fitted items."""
    stats: Dict[str, List[float]] = {}
    for row in np.flatnonzero(fit):
        for _, token, _ in tokens[row]:
            entry = stats.setdefault(token, [0.0, 0])
            entry[0] += y[row]
            entry[1] += 1
    return {t: (s, int(n)) for t, (s, n) in stats.items()}


def encodings(tokens: Sequence[Sequence[Tuple[str, str, float]]], fields: Sequence[str], y: np.ndarray,
              fit: np.ndarray, mean: float) -> np.ndarray:
    """[N, len(fields)]: each item's field encodings (see the module doc); a fitted item's own
    target is left out of its tokens' means."""
    stats = _token_stats(tokens, y, fit)
    column = {f: j for j, f in enumerate(fields)}
    out = np.full((len(tokens), len(fields)), mean, np.float64)
    for row, item_tokens in enumerate(tokens):
        by_field: Dict[int, List[float]] = {}
        for name, token, _ in item_tokens:
            if name not in column or token not in stats:
                continue
            total, count = stats[token]
            if fit[row]:
                total, count = total - y[row], count - 1
            by_field.setdefault(column[name], []).append((total + SHRINKAGE * mean) / (count + SHRINKAGE))
        for j, values in by_field.items():
            out[row, j] = float(np.mean(values))
    return out


def numeric_features(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """[N, 2] of one numeric field: its z-score and its z-scored deviation from its group's mean
    (e.g. a price against its category's: cheap for a sofa is dear for a mug); 0 where missing."""
    x = np.asarray(values, np.float64)
    present = np.isfinite(x)
    out = np.zeros((len(x), 2))
    if present.sum() < 2:
        return out
    mean, std = x[present].mean(), x[present].std() or 1.0
    out[present, 0] = (x[present] - mean) / std
    deviation = np.zeros(len(x))
    for group in np.unique(groups[present]):
        members = present & (groups == group)
        deviation[members] = x[members] - x[members].mean()
    dev_std = deviation[present].std() or 1.0
    out[present, 1] = deviation[present] / dev_std
    return out


def fit_prior(tokens: Sequence[Sequence[Tuple[str, str, float]]], fields: Sequence[str], y: np.ndarray,
              fit: np.ndarray, numeric: Optional[np.ndarray] = None) -> Tuple[LaunchPrior, np.ndarray]:
    """(the prior, its prediction [N] for every item). `y` [N]: launch rates (read where `fit`);
    `fit` [N] bool: the items to learn from; `numeric` [N, F]: further features, centred and
    scaled (`numeric_features`), next to the fields' encodings."""
    fit = np.asarray(fit, bool)
    fields = tuple(fields)
    extra = np.zeros((len(tokens), 0)) if numeric is None else np.asarray(numeric, np.float64)
    n_coef = len(fields) + extra.shape[1]
    n_fit = int(fit.sum())
    if n_fit == 0:
        return LaunchPrior(0.0, fields, np.zeros(n_coef), 0), np.zeros(len(tokens))
    mean = float(np.mean(y[fit]))
    if n_fit < MIN_ITEMS or n_coef == 0:
        return LaunchPrior(mean, fields, np.zeros(n_coef), n_fit), np.full(len(tokens), mean)
    x = np.concatenate([encodings(tokens, fields, y, fit, mean) - mean, extra], axis=1)
    xf, yf = x[fit], y[fit] - mean
    coef = np.linalg.solve(xf.T @ xf + RIDGE * np.eye(n_coef), xf.T @ yf)
    return LaunchPrior(mean, fields, coef, n_fit), mean + x @ coef


__all__ = ["LaunchPrior", "fit_prior", "encodings", "launch_rate", "relative_to_cohort", "numeric_features",
           "prior_as_of", "PriorAt", "SHRINKAGE", "RIDGE"]


@dataclass(frozen=True)
class PriorAt:
    """The prior as known at one time: its prediction for every item and what a launch's
    absolute rate adds to it."""

    values: np.ndarray  # [N] relative log users/day
    rate_offset: float  # mean log users/day of the launches fitted on most recently (a launch's rate = exp(values + offset))
    prior: LaunchPrior


def prior_as_of(launched_s: np.ndarray, tokens: Sequence[Sequence[Tuple[str, str, float]]], fields: Sequence[str],
                numeric: np.ndarray, early_users: np.ndarray, as_of_s: float, data_start_s: float,
                window_days: float) -> PriorAt:
    """The prior fitted on what is known at `as_of_s`: the items whose whole first window lies
    between the first interaction on record and `as_of_s` (see the module doc)."""
    window_s = window_days * SECONDS_PER_DAY
    launched = np.asarray(launched_s, np.float64)
    known = np.isfinite(launched)
    fit = known & (launched >= data_start_s) & (launched + window_s <= as_of_s)
    rate = launch_rate(early_users, window_days)
    target = np.nan_to_num(relative_to_cohort(rate, np.where(known, launched, 0.0), fit, window_days / 2))
    prior, values = fit_prior(tokens, fields, target, fit, numeric)
    recent = fit & (launched >= as_of_s - 2 * window_s)
    base = recent if recent.any() else fit
    offset = float(rate[base].mean()) if base.any() else 0.0
    return PriorAt(values, offset, prior)
