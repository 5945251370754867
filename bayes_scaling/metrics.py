"""Scores of predictive draws against held-out observations: coverage, CRPS, density, PIT.

Pure array functions. ``draws`` always has shape (S, T): S predictive draws for each of
T held-out runs; ``observed`` has shape (T,). Intervals are central (equal-tailed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from .errors import InputError
from .tables import check_level

#: Nominal levels of a calibration curve.
CALIBRATION_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def _check(draws: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    draws = np.asarray(draws, dtype=float)
    observed = np.asarray(observed, dtype=float)
    if draws.ndim != 2 or observed.shape != draws.shape[1:]:
        raise InputError(f"draws must have shape (S, T) and observed (T,) but got {draws.shape} and {observed.shape}")
    return draws, observed


def interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the central ``level`` interval of each column of ``draws``, shape (T,) each."""
    level = check_level(level)
    lo, hi = np.quantile(np.asarray(draws, dtype=float), [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def covered(draws: np.ndarray, observed: np.ndarray, level: float) -> np.ndarray:
    """Whether each observation lies in its central ``level`` predictive interval, shape (T,)."""
    draws, observed = _check(draws, observed)
    lo, hi = interval(draws, level)
    return (observed >= lo) & (observed <= hi)


def coverage(draws: np.ndarray, observed: np.ndarray, level: float) -> float:
    """Share of observations inside their central ``level`` predictive interval.

    Examples
    --------
    >>> draws = np.tile(np.arange(1.0, 101.0)[:, None], (1, 4))
    >>> coverage(draws, np.array([50.0, 60.0, 97.0, 99.5]), 0.9)
    0.5
    """
    return float(np.mean(covered(draws, observed, level)))


def calibration_curve(draws: np.ndarray, observed: np.ndarray,
                      levels: Sequence[float] = CALIBRATION_LEVELS) -> pd.DataFrame:
    """Empirical coverage at each nominal level: columns ``level`` and ``coverage``.

    A calibrated forecast lies on the diagonal; below it, intervals are too narrow.
    """
    return pd.DataFrame({"level": [float(q) for q in levels],
                         "coverage": [coverage(draws, observed, q) for q in levels]})


def crps(draws: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score of each observation, from samples, shape (T,).

    CRPS(F, y) = E|X - y| - E|X - X'| / 2 with X, X' independent draws from F, in the
    units of the observations (lower is better; for a point forecast it is the absolute
    error). The second term uses the sorted-sample identity
    sum_ij |x_i - x_j| = 2 sum_i (2i - S - 1) x_(i), so the cost is O(S log S).
    """
    draws, observed = _check(draws, observed)
    s = draws.shape[0]
    ordered = np.sort(draws, axis=0)
    weights = (2 * np.arange(1, s + 1) - s - 1)[:, None]
    spread = 2 * np.sum(weights * ordered, axis=0) / s**2
    return np.mean(np.abs(draws - observed), axis=0) - spread / 2


def log_predictive_density(log_density: np.ndarray) -> np.ndarray:
    """Log of the posterior predictive density of each observation, shape (T,).

    Parameters
    ----------
    log_density : array of shape (S, T)
        log p(y_t | theta_s): the observation density of each held-out value under each
        posterior draw.

    Returns
    -------
    array of shape (T,)
        log (1/S) sum_s p(y_t | theta_s), computed stably with logsumexp.
    """
    log_density = np.asarray(log_density, dtype=float)
    if log_density.ndim != 2:
        raise InputError(f"log_density must have shape (S, T) but got {log_density.shape}")
    return logsumexp(log_density, axis=0) - np.log(log_density.shape[0])


def pit(draws: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Probability integral transform: share of predictive draws at or below each observation.

    Uniform on [0, 1] for a calibrated forecast; piled at 0 and 1 when intervals are too
    narrow, piled in the middle when they are too wide.
    """
    draws, observed = _check(draws, observed)
    return np.mean(draws <= observed, axis=0)
