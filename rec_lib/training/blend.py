"""How much each part of the score counts, learned per data set on launches (numpy only).

The score of user u for item i is a weighted sum of components, each a dot product or an item term:
    tower       <u, v_i> / temperature     the two-tower model (content path for a new item)
    text        <p_u, t_i>                 text profile x the item's text embedding (both centred, unit)
    attributes  <a_u, h_i>                 attribute profile x the item's attribute vector
    prior       pi_i                       the launch popularity prior (log users/day), paced by early users
    pace        r_i                        the observed pace log(users / exposure days); 0 before anybody came
Fixed weights tuned on one shop do not carry to another (titles that name rather than describe,
attributes that say more or less, popularity that matters more or less). So the weights are
fitted where the product meets them: on the launches of the last `train.launch_days` before the
training cutoff, scored from what was known when they launched (user histories and the prior as
of the launch window's start), by the same softmax over those launches that the evaluation's
recall rewards: each pair (u, i) of a launch i and a user u who came to it is a positive, and
    loss = mean over positives of -log( exp(s(u, i)) / sum_j exp(s(u, j)) ),   j over the launches.
Components are scaled to unit standard deviation first, so a small L2 penalty treats them alike,
and weights are kept >= 0 (each component is built so that higher means more likely), found by
projected Newton steps (five parameters: a few dozen steps; `_minimise`). A part that is the same for every
launch (the pace at k = 0) carries nothing and weighs 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

COMPONENTS = ("tower", "text", "attributes", "prior", "pace")
L2 = 1e-3
MAX_STEPS = 50
MIN_POSITIVES = 50  # fewer positive pairs on the launch split: the default weights are kept
MIN_LAUNCHES = 3
NEG_INF = -1e9  # the logit of a padded (not a candidate) entry
ROWS_PER_CHUNK = 2048  # users whose rows the fit works on at once (bounds its temporaries)


def users_per_cohort(n_cohorts: int, widest: int, max_users: int, max_cells: int) -> int:
    """Users to sample in each of `n_cohorts` launch cohorts so that the fit's matrices (the
    cohorts' users stacked, each row as wide as the widest cohort's `widest` launches) hold at most
    `max_cells` cells and `max_users` rows in all: the driver's share of the fit is then set by
    these two settings, not by the shop's users or launches. At least one user per cohort."""
    cohorts, width = max(n_cohorts, 1), max(widest, 1)
    return max(1, min(max_users // cohorts, max_cells // (cohorts * width)))


@dataclass(frozen=True)
class BlendWeights:
    """Weights of the raw components (already divided by their scales) and how they were found."""

    weights: Dict[str, float]
    fitted: bool  # False: the defaults (too little launch data), see `reason`
    reason: str = ""
    n_users: int = 0
    n_launches: int = 0
    n_positives: int = 0
    loss: float = float("nan")  # mean loss on the launch split with these weights
    loss_uniform: float = float("nan")  # ... with all scores equal: log(launches)
    scales: Dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return float(self.weights.get(name, 0.0))

    def to_dict(self) -> dict:
        return {"weights": self.weights, "fitted": self.fitted, "reason": self.reason, "n_users": self.n_users,
                "n_launches": self.n_launches, "n_positives": self.n_positives, "loss": self.loss,
                "loss_uniform": self.loss_uniform, "scales": self.scales}

    @classmethod
    def from_dict(cls, data: Mapping) -> "BlendWeights":
        return cls(weights={k: float(v) for k, v in data["weights"].items()}, fitted=bool(data["fitted"]),
                   reason=str(data.get("reason", "")), n_users=int(data.get("n_users", 0)),
                   n_launches=int(data.get("n_launches", 0)), n_positives=int(data.get("n_positives", 0)),
                   loss=float(data.get("loss", float("nan"))), loss_uniform=float(data.get("loss_uniform", float("nan"))),
                   scales={k: float(v) for k, v in data.get("scales", {}).items()})


def default_weights(text_weight: float, reason: str) -> BlendWeights:
    """The fixed blend (the training loss's own score): tower, text at the training's text weight,
    the prior; no attribute term."""
    return BlendWeights({"tower": 1.0, "text": float(text_weight), "attributes": 0.0, "prior": 1.0, "pace": 0.0},
                        False, reason)


def softmax_loss(logits: np.ndarray, positives: np.ndarray) -> float:
    """Mean over positives of -log softmax(logits row)[positive]; rows without a positive count
    nothing (a logit of NEG_INF leaves its entry out)."""
    n_pos = positives.sum(axis=1)
    top = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float((n_pos * lse - (logits * positives).sum(axis=1)).sum() / max(n_pos.sum(), 1))


def _logits(w: np.ndarray, x: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return np.tensordot(w, x, axes=1) + offset


def _row_chunks(n_rows: int) -> List[slice]:
    """The rows of the blend's matrices in blocks of ROWS_PER_CHUNK: the loss, gradient and Hessian
    are sums over rows (users), so working block by block bounds their temporaries by the block."""
    return [slice(s, min(s + ROWS_PER_CHUNK, n_rows)) for s in range(0, n_rows, ROWS_PER_CHUNK)]


def _loss(w: np.ndarray, x: np.ndarray, positives: np.ndarray, offset: np.ndarray) -> float:
    """softmax_loss(sum_c w_c x_c + offset, positives), block by block."""
    total = 0.0
    for rows in _row_chunks(x.shape[1]):
        block = positives[rows]
        total += softmax_loss(_logits(w, x[:, rows], offset[rows]), block) * max(int(block.sum()), 1)
    return total / max(int(positives.sum()), 1)


def _gradient_hessian(w: np.ndarray, x: np.ndarray, positives: np.ndarray, offset: np.ndarray
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """x [C, U, L]: gradient [C] and Hessian [C, C] of softmax_loss(sum_c w_c x_c + offset) + L2 |w|^2,
    summed block by block over the rows."""
    grad, hess = np.zeros(len(w)), np.zeros((len(w), len(w)))
    for rows in _row_chunks(x.shape[1]):
        xr = x[:, rows]
        logits = _logits(w, xr, offset[rows])
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        n_pos = positives[rows].sum(axis=1).astype(np.float64)
        mean_x = (xr * p[None]).sum(axis=2)  # [C, rows]: E_p[x_c] per user
        grad += (n_pos[None] * mean_x).sum(axis=1) - (xr * positives[rows][None]).sum(axis=(1, 2))
        centred = xr - mean_x[:, :, None]
        hess += np.einsum("cul,dul->cd", centred * (p * n_pos[:, None])[None], centred)
    total = max(float(positives.sum()), 1.0)
    return grad / total + 2 * L2 * w, hess / total + 2 * L2 * np.eye(len(w))


def _minimise(x: np.ndarray, positives: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The weights w >= 0 that minimise softmax_loss(sum_c w_c x_c + offset) + L2 |w|^2 (convex),
    from w = 1, by projected Newton steps (Bertsekas): a weight at 0 whose gradient pushes it below
    0 is held there, the Newton step is taken on the others, and where that step (projected) does
    not lower the loss, the gradient's. A full Newton step with the held weights in it, clipped,
    need not go downhill: it stopped at corners far from the minimum (a blend of the pace alone
    where text, attributes and the prior counted at every other k)."""
    w = np.ones(x.shape[0])
    loss = _loss(w, x, positives, offset) + L2 * w @ w
    for _ in range(MAX_STEPS):
        grad, hess = _gradient_hessian(w, x, positives, offset)
        free = (w > 0) | (grad < 0)
        if not free.any():
            break
        newton = np.zeros_like(w)
        newton[free] = np.linalg.solve(hess[np.ix_(free, free)], grad[free])
        moved = False
        for step in (newton, np.where(free, grad, 0.0)):
            scale = 1.0
            while scale > 1e-6:
                trial = np.maximum(w - scale * step, 0.0)
                trial_loss = _loss(trial, x, positives, offset) + L2 * trial @ trial
                if trial_loss < loss - 1e-12:
                    w, loss, moved = trial, trial_loss, True
                    break
                scale /= 2
            if moved:
                break
        if not moved:
            break
    return w


def fit_weights(components: Mapping[str, np.ndarray], positives: np.ndarray, fallback: BlendWeights,
                valid: Optional[np.ndarray] = None, n_launches: Optional[int] = None) -> BlendWeights:
    """Weights of `components` (name -> scores [U, L] of sampled users x the launches) that minimise
    the softmax loss of `positives` [U, L] (see the module doc); `fallback` where the launch split is
    too small to learn from. `valid` [U, L] (default all) marks each row's candidates: several
    launch cohorts stack as rows, each over its own launches padded to a common width;
    `n_launches` counts them (default L)."""
    positives = np.asarray(positives, bool)
    valid = np.ones_like(positives) if valid is None else np.asarray(valid, bool)
    n_users = positives.shape[0]
    n_launches = positives.shape[1] if n_launches is None else n_launches
    n_pos = int(positives.sum())
    if n_launches < MIN_LAUNCHES or n_pos < MIN_POSITIVES:
        reason = f"launch split too small: {n_launches} launches, {n_pos} positive pairs"
        return BlendWeights(fallback.weights, False, reason, n_users, n_launches, n_pos)
    names = [c for c in COMPONENTS if c in components]
    scales = {c: float(np.std(np.asarray(components[c])[valid], dtype=np.float64)) for c in names}
    used = [c for c in names if scales[c] > 1e-9]
    x = np.empty((len(used),) + positives.shape)  # float64, filled one component at a time
    for at, c in enumerate(used):
        x[at] = components[c]
        x[at][~valid] = 0.0
        x[at] /= scales[c]
    offset = np.where(valid, 0.0, NEG_INF)
    w = _minimise(x, positives, offset)
    weights = {c: 0.0 for c in COMPONENTS}
    weights.update({c: float(wc / scales[c]) for c, wc in zip(used, w)})
    final = _loss(w, x, positives, offset)
    uniform = _loss(np.zeros(len(used)), x, positives, offset)
    return BlendWeights(weights, True, "", n_users, n_launches, n_pos, final, uniform, scales)


def nearest_fitted(by_k: Mapping[int, BlendWeights]) -> Dict[int, BlendWeights]:
    """Each k the fit could not learn from takes the weights of the nearest k it could (the lower
    one on a tie), so every item of a list is scored on one scale: the fixed blend's numbers are
    several times the fitted ones, and a launch with 2 users scored by them outranked every
    zero-shot launch by construction. The reason stays, naming the k whose weights it took. With
    no k fitted, every k keeps its own (the fixed blend)."""
    fitted = sorted(k for k, w in by_k.items() if w.fitted)
    if not fitted:
        return dict(by_k)
    out = {}
    for k, w in by_k.items():
        if w.fitted:
            out[k] = w
            continue
        source = min(fitted, key=lambda f: (abs(f - k), f))
        taken = by_k[source]
        out[k] = BlendWeights(dict(taken.weights), False, f"{w.reason}; the weights fitted at k={source}",
                              w.n_users, w.n_launches, w.n_positives, scales=dict(taken.scales))
    return out


def combine(components: Mapping[str, np.ndarray], weights: BlendWeights) -> np.ndarray:
    """sum_c weight_c * component_c (components absent count 0)."""
    total: Optional[np.ndarray] = None
    for name, values in components.items():
        term = weights[name] * np.asarray(values, np.float64)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no component to combine")
    return total




@dataclass(frozen=True)
class Blend:
    """Weights by the number of an item's first users known (k): a launch nobody has seen is placed
    by content and its prior, one with ten users by who they were and how fast they came, so the
    parts weigh differently. An item takes the weights of the largest fitted k at or below its own."""

    by_k: Dict[int, BlendWeights]
    # part -> the weights by k refitted on the same launches without that part (the ablation that says
    # what each part is worth); empty where the blend was not fitted
    without: Dict[str, Dict[int, BlendWeights]] = field(default_factory=dict)

    def ablated(self, part: str) -> Optional["Blend"]:
        """The blend refitted without `part` (None where it was not refitted)."""
        return Blend(self.without[part]) if part in self.without else None

    def same_weights(self, other: "Blend") -> bool:
        return (sorted(self.by_k) == sorted(other.by_k)
                and all(self.by_k[k].weights == other.by_k[k].weights for k in self.by_k))

    def at(self, k: int) -> BlendWeights:
        keys = sorted(self.by_k)
        chosen = keys[0]
        for key in keys:
            if key <= k:
                chosen = key
        return self.by_k[chosen]

    def weights_for(self, ks: np.ndarray) -> Dict[str, np.ndarray]:
        """part -> weight [N] of items whose k are `ks`."""
        keys = np.asarray(sorted(self.by_k))
        position = np.searchsorted(keys, np.asarray(ks), side="right") - 1
        chosen = keys[np.maximum(position, 0)]
        return {name: np.asarray([self.by_k[int(k)][name] for k in keys])[np.searchsorted(keys, chosen)]
                for name in COMPONENTS}

    def __getitem__(self, name: str) -> float:
        """A part's weight at k = 0 (what a launch nobody has seen gets)."""
        return self.at(0)[name]

    @property
    def fitted(self) -> bool:
        return any(w.fitted for w in self.by_k.values())

    def to_dict(self) -> dict:
        out: dict = {"by_k": _by_k_dict(self.by_k)}
        if self.without:
            out["without"] = {part: _by_k_dict(by_k) for part, by_k in self.without.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "Blend":
        return cls(_by_k_of(data["by_k"]), {part: _by_k_of(by_k) for part, by_k in data.get("without", {}).items()})

    @classmethod
    def single(cls, weights: BlendWeights) -> "Blend":
        return cls({0: weights})

    def describe(self) -> str:
        """One line: the weights at each k, and what they were fitted on (or why they were not)."""
        parts = []
        for k, w in sorted(self.by_k.items()):
            weights = ", ".join(f"{n} {v:.3g}" for n, v in w.weights.items())
            where = (f"{w.n_launches} launches, {w.n_positives:,} pairs, loss {w.loss:.3f} vs {w.loss_uniform:.3f}"
                     if w.fitted else f"not fitted: {w.reason}")
            parts.append(f"k>={k}: {weights} ({where})")
        return "; ".join(parts)

    def flat(self) -> Dict[str, float]:
        """blend_k<k>_<part> -> weight (for a tracking server's metrics)."""
        return {f"blend_k{k}_{n}": v for k, w in self.by_k.items() for n, v in w.weights.items()}


def _by_k_dict(by_k: Mapping[int, BlendWeights]) -> dict:
    return {str(k): w.to_dict() for k, w in sorted(by_k.items())}


def _by_k_of(data: Mapping) -> Dict[int, BlendWeights]:
    return {int(k): BlendWeights.from_dict(w) for k, w in data.items()}


def without_part(components: Mapping[str, np.ndarray], positives: np.ndarray, full: BlendWeights, part: str,
                 valid: Optional[np.ndarray] = None, n_launches: Optional[int] = None) -> BlendWeights:
    """The weights refitted on the same launches with `part` left out (weight 0): what the blend
    does without it. A part the full fit gave weight 0, or a k the fit could not learn, changes
    nothing: the full weights, with that part at 0."""
    if not full.fitted or full[part] == 0.0 or part not in components:
        return BlendWeights({**full.weights, part: 0.0}, full.fitted, full.reason, full.n_users, full.n_launches,
                            full.n_positives, full.loss, full.loss_uniform, dict(full.scales))
    rest = {name: values for name, values in components.items() if name != part}
    return fit_weights(rest, positives, full, valid=valid, n_launches=n_launches)


__all__: List[str] = ["Blend", "BlendWeights", "COMPONENTS", "fit_weights", "combine", "default_weights", "nearest_fitted",
                      "softmax_loss", "without_part"]
