"""Few-shot adaptation of new items from their first k interactions, without retraining.

Two signals, both closed-form (numpy only, so scoring and evaluation use them without TensorFlow):

- Who came: the item's content vector is blended with the unit vectors of the users who
  interacted, the content vector counting as `prior_strength` interactions:
      v' = normalize(prior_strength * v + sum_j u_j)
  With k = 0 this is the content vector itself; as k grows the users dominate.

- How fast they came (pace): the bias b predicts, from content, the item's log popularity. It is
  turned into an expected rate r0 = rate_scale * exp(b) (users per day, `rate_scale` fitted on the
  training items), and updated like a Gamma-Poisson posterior after k users in `exposure` days,
  the prior counting as `pace_prior_strength` users:
      rate' = (a + k) / (a / r0 + exposure)      b' = b + log(rate' / r0) = b + log((a + k) / (a + r0 * exposure))
  A hit (k users in little time) rises; an item that got nobody during a long exposure sinks.

- The observed pace on its own: log(k / exposure), the users per day seen so far (what a
  popularity baseline ranks launches by), 0 before anybody came. The posterior above shrinks it
  towards the content prior by a fixed `pace_prior_strength`; the served score also carries it as
  a part of its own, so the blend learns per k how far to trust it (training.blend).

- The text side (the text-affinity term): the item's text embedding is blended the same way with
  its users' text profiles, the text counting as `text_prior_strength` users. A profile is a
  broad summary of everything a user read, so one user says little about the item: the text
  moves slowly (10 by default against 3 for the tower vector).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional, Union

import numpy as np

from rec_lib.core.clock import SECONDS_PER_DAY

MIN_EXPOSURE_DAYS = 1.0 / 24  # an hour: k users "at once" still have a finite pace


@dataclass(frozen=True)
class FewShotSettings:
    method: str  # blend | none
    prior_strength: float
    pace: bool
    pace_prior_strength: float
    text_prior_strength: float = 10.0  # the item's own text counts as this many users on the text side

    @classmethod
    def of(cls, section: Union[Mapping[str, object], object]) -> "FewShotSettings":
        """From the `few_shot` config section (`cfg.few_shot`), or the copy of its fields a model
        folder's model.json keeps."""
        f = section if isinstance(section, Mapping) else dataclasses.asdict(section)
        return cls(str(f["method"]), float(f["prior_strength"]), bool(f["pace"]), float(f["pace_prior_strength"]),
                   float(f["text_prior_strength"]))


def unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def blend_vector(content: np.ndarray, user_vectors: np.ndarray, prior_strength: float) -> np.ndarray:
    """content [d] (unit), user_vectors [k, d] (unit) -> the adapted unit vector [d]."""
    if len(user_vectors) == 0:
        return content.copy()
    return unit(prior_strength * content + user_vectors.sum(axis=0))


def pace_bias(bias: float, k: int, exposure_days: float, rate_scale: float, pace_prior_strength: float) -> float:
    """The bias after k users arrived within `exposure_days` of launch (see the module doc).
    Without a known exposure (no launch date) or a fitted rate scale the bias is left as it is."""
    if not np.isfinite(exposure_days) or exposure_days < 0 or rate_scale <= 0:
        return float(bias)
    r0 = rate_scale * float(np.exp(bias))
    a = pace_prior_strength
    return float(bias + np.log((a + k) / (a + r0 * exposure_days)))


def fit_rate_scale(content_bias: np.ndarray, n_users: np.ndarray, exposure_days: np.ndarray) -> float:
    """rate_scale such that rate_scale * exp(content_bias) matches the items' observed users per
    day in total (items with an interaction and at least one day of exposure)."""
    usable = (n_users > 0) & np.isfinite(exposure_days) & (exposure_days >= 1.0)
    if not usable.any():
        return 0.0
    rates = n_users[usable] / exposure_days[usable]
    return float(rates.sum() / np.exp(content_bias[usable].astype(np.float64)).sum())


def adapt_text(text: np.ndarray, profiles: np.ndarray, settings: FewShotSettings) -> np.ndarray:
    """One item's text side after its first users, of whom `profiles` [k, text_dim] are the text
    profiles known; unchanged without any or when adaptation is off."""
    if settings.method != "blend" or len(profiles) == 0:
        return text.copy()
    return blend_vector(text, profiles, settings.text_prior_strength)


def pace_days(launched_s: np.ndarray, latest_user_s: np.ndarray) -> np.ndarray:
    """Days from each item's launch to its latest user so far (at least MIN_EXPOSURE_DAYS); NaN
    where the launch or a user is unknown. How fast the first k users came is read over this span,
    in the blend's fit, the evaluation and the served tables alike: the span up to today is the
    same for every launch of one day whatever its users' timing."""
    launched_s, latest_user_s = np.asarray(launched_s, np.float64), np.asarray(latest_user_s, np.float64)
    days = (latest_user_s - launched_s) / SECONDS_PER_DAY
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(days), np.maximum(days, MIN_EXPOSURE_DAYS), np.nan)


def observed_pace(k: int, exposure_days: float) -> float:
    """log(k / exposure_days): the users per day seen so far; 0 without a user or a known exposure."""
    if k <= 0 or not np.isfinite(exposure_days) or exposure_days <= 0:
        return 0.0
    return float(np.log(k / exposure_days))


def adapt(content: np.ndarray, bias: float, user_vectors: np.ndarray, exposure_days: Optional[float],
          rate_scale: float, settings: FewShotSettings, k: Optional[int] = None) -> tuple[np.ndarray, float]:
    """One item's (unit vector, bias) after its first k users, of whom `user_vectors` are those
    with a vector (k defaults to their number)."""
    k = len(user_vectors) if k is None else k
    vector = content.copy()
    if settings.method == "blend":
        vector = blend_vector(content, user_vectors, settings.prior_strength)
    if settings.pace and exposure_days is not None:
        bias = pace_bias(bias, k, exposure_days, rate_scale, settings.pace_prior_strength)
    return vector, bias
