"""The point two-step fit of Bhagia et al. 2024: the baseline task predictions are measured against.

Step 1 fits the Chinchilla law x(N, D) = E + A / N^alpha + B / D^beta to the runs'
intermediate metric (a task's bits per byte) by Chinchilla's approach 3 (Huber loss on
log residuals, L-BFGS from a grid; :func:`bayes_scaling.huber.fit_huber`). Step 2 fits the
sigmoid acc(x) = floor + (ceiling - floor) · σ(slope · (midpoint - x)) to the runs'
(observed x, accuracy) pairs by least squares (the paper's a / (1 + e^(-k (x - L0))) + b,
with a = ceiling - floor, b = floor, k = -slope, L0 = midpoint). A prediction at (N, D) is
the sigmoid of the law's x: one number, no interval. The fit also starts NUTS for a task card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from .huber import fit_huber
from .laws.sigmoid import accuracy

#: Starting points of the least-squares sigmoid fit, as (slope, midpoint offset below the
#: smallest x); the best of all is kept (the sum of squares has flat valleys).
_STARTS = [(s, m) for s in (2.0, 6.0, 20.0) for m in (-0.5, 0.0, 0.5)]


@dataclass(frozen=True)
class TwoStepFit:
    """Point estimates of both steps.

    Attributes
    ----------
    law : dict of str to float
        E, A, B, alpha, beta of step 1 (the intermediate metric's law).
    link : dict of str to float
        floor, ceiling, slope, midpoint of step 2.
    sigma : float
        Robust scale of step 1's log residuals.
    sigma_metric : float
        Root mean square of step 2's accuracy residuals.
    """

    law: dict[str, float]
    link: dict[str, float]
    sigma: float
    sigma_metric: float

    def predict(self, log_params: np.ndarray, log_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The law's intermediate metric and the sigmoid's accuracy at (ln N, ln D)."""
        from .laws import get_law

        inter = np.exp(get_law("chinchilla").log_loss({k: np.asarray(v) for k, v in self.law.items()},
                                                      {"log_params": np.asarray(log_params, dtype=float),
                                                       "log_tokens": np.asarray(log_tokens, dtype=float)}))
        return inter, accuracy(self.link, inter)


def fit_sigmoid(inter: np.ndarray, metric: np.ndarray, chance: float) -> tuple[dict[str, float], float]:
    """Least-squares sigmoid from intermediate metric to accuracy; returns (link, RMS residual).

    Bounds keep the fit an accuracy curve: chance - 0.1 <= floor <= ceiling <= 1, slope > 0.
    """
    inter, metric = np.asarray(inter, dtype=float), np.asarray(metric, dtype=float)

    def residuals(z: np.ndarray) -> np.ndarray:
        floor, span, slope, midpoint = z
        return accuracy({"floor": floor, "ceiling": floor + span, "slope": slope, "midpoint": midpoint},
                        inter) - metric

    lower = [max(chance - 0.1, 0.0), 0.0, 1e-3, 0.0]
    upper = [min(chance + 0.1, 1.0), 1.0, 200.0, 10.0 * float(inter.max())]
    best = None
    for slope, shift in _STARTS:
        z0 = np.clip([chance, max(metric.max() - chance, 0.05) * 1.5, slope, float(inter.min()) + shift],
                     np.add(lower, 1e-6), np.subtract(upper, 1e-6))
        res = least_squares(residuals, z0, bounds=(lower, upper), x_scale="jac", max_nfev=5000)
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None  # _STARTS is not empty
    floor, span, slope, midpoint = best.x
    link = {"floor": float(floor), "ceiling": float(min(floor + span, 1.0)), "slope": float(slope),
            "midpoint": float(midpoint)}
    return link, float(np.sqrt(np.mean(best.fun**2)))


def fit_two_step(params: np.ndarray, tokens: np.ndarray, inter: np.ndarray, metric: np.ndarray,
                 chance: float) -> TwoStepFit:
    """Fit both steps by point estimation (see the module docstring).

    Parameters
    ----------
    params, tokens : array
        N (parameters) and D (tokens) per run.
    inter : array
        The runs' intermediate metric (bits per byte, or nats per token).
    metric : array
        The runs' accuracy in [0, 1].
    chance : float
        Chance accuracy; the floor is kept within 0.1 of it.
    """
    table = pd.DataFrame({"params": params, "tokens": tokens, "loss": inter})
    step1 = fit_huber(table, n_best=8)
    link, rms = fit_sigmoid(inter, metric, chance)
    return TwoStepFit(step1.point, link, step1.sigma, rms)


__all__ = ["TwoStepFit", "fit_sigmoid", "fit_two_step"]
