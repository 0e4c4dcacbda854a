"""Confidence: the probability that a call turns out a hit, fitted on the model's own
matured calls.

For each action, confidence is a non-decreasing function of the call's *conviction* (how
far its score sits inside the action's band, :func:`scoring.conviction`), fitted by
isotonic regression (pool-adjacent-violators, below) of the observed hits (0/1) on
conviction. Between fitted points the curve is interpolated linearly; beyond them it is
flat. An action with fewer than :data:`MIN_MATURED` matured calls has no fitted curve and
uses the documented prior, :func:`prior_confidence`, which the disclosure says plainly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from services.recommendations.domain.calls import Action

FloatArray = npt.NDArray[np.float64]

MIN_MATURED = 300
PRIOR = "prior-1: 0.5 + 0.2 x (1 - exp(-conviction))"


def prior_confidence(conviction: float) -> float:
    """Before there is history: a coin flip at a band's edge, rising to 0.7 far inside it.
    Deliberately modest, so an uncalibrated call never claims much."""
    return 0.5 + 0.2 * (1.0 - math.exp(-max(conviction, 0.0)))


def isotonic_fit(
    x: Sequence[float] | FloatArray, y: Sequence[float] | FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Least-squares non-decreasing fit of ``y`` on ``x`` (pool adjacent violators).

    Returns the fitted curve as knots ``(xs, ys)``: one per pooled block, at the block's
    mean ``x``, with the block's mean ``y``; ``ys`` is non-decreasing.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("x and y must be one-dimensional and of the same length")
    if len(xa) == 0:
        return np.empty(0), np.empty(0)
    unique, inverse = np.unique(xa, return_inverse=True)
    weight = np.bincount(inverse).astype(np.float64)
    total = np.bincount(inverse, weights=ya)
    # Blocks as a stack of (sum of y, weight, sum of x * weight).
    sums: list[float] = []
    weights: list[float] = []
    xsums: list[float] = []
    for i in range(len(unique)):
        sums.append(float(total[i]))
        weights.append(float(weight[i]))
        xsums.append(float(unique[i] * weight[i]))
        while len(sums) > 1 and sums[-2] / weights[-2] > sums[-1] / weights[-1]:
            ys, w, xs = sums.pop(), weights.pop(), xsums.pop()
            sums[-1] += ys
            weights[-1] += w
            xsums[-1] += xs
    w_arr = np.array(weights)
    return np.array(xsums) / w_arr, np.array(sums) / w_arr


@dataclass(frozen=True)
class Curve:
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    matured: int

    def __call__(self, conviction: float) -> float:
        return float(np.clip(np.interp(conviction, self.xs, self.ys), 0.0, 1.0))


@dataclass(frozen=True)
class Calibration:
    """The confidence map of one run: a fitted curve per action, or the prior."""

    curves: Mapping[Action, Curve] = field(default_factory=dict)

    def confidence(self, action: Action, conviction: float) -> float:
        curve = self.curves.get(action)
        return curve(conviction) if curve is not None else prior_confidence(conviction)

    def is_fitted(self, action: Action) -> bool:
        return action in self.curves

    def describe(self) -> str:
        if not self.curves:
            return (
                "Confidence is not yet calibrated: fewer than "
                f"{MIN_MATURED} matured calls per action exist, so it is a documented prior "
                "(0.5 at the edge of an action's band, rising to at most 0.7 deep inside it), "
                "not an observed hit rate."
            )
        fitted = ", ".join(f"{a.value} on {self.curves[a].matured:,}" for a in self.curves)
        unfitted = [a.value for a in Action if a not in self.curves]
        text = (
            "Confidence is the observed hit rate of past calls at the same conviction, "
            f"fitted by isotonic regression on matured calls ({fitted})."
        )
        if unfitted:
            text += f" {', '.join(unfitted)} calls use the documented prior until enough mature."
        return text

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {
            a.value: {"xs": list(c.xs), "ys": list(c.ys), "matured": c.matured}
            for a, c in self.curves.items()
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, object]]) -> Calibration:
        curves = {}
        for name, curve in data.items():
            xs, ys, matured = curve["xs"], curve["ys"], curve["matured"]
            if not isinstance(xs, list) or not isinstance(ys, list) or not isinstance(matured, int):
                raise ValueError(f"malformed calibration curve for {name}")
            curves[Action(name)] = Curve(
                tuple(float(x) for x in xs), tuple(float(y) for y in ys), matured
            )
        return cls(curves)


def fit_calibration(
    actions: Sequence[Action], convictions: Sequence[float], hits: Sequence[bool]
) -> Calibration:
    """Fit one curve per action that has at least :data:`MIN_MATURED` matured calls."""
    acts = np.array([a.value for a in actions], dtype=object)
    conv = np.asarray(convictions, dtype=np.float64)
    hit = np.asarray(hits, dtype=np.float64)
    curves = {}
    for action in Action:
        mask = acts == action.value
        count = int(mask.sum())
        if count >= MIN_MATURED:
            xs, ys = isotonic_fit(conv[mask], hit[mask])
            curves[action] = Curve(
                tuple(round(float(v), 6) for v in xs), tuple(round(float(v), 6) for v in ys), count
            )
    return Calibration(curves)
