"""Chinchilla "approach 3": Huber loss on log residuals, L-BFGS from a grid, bootstrap.

This is the classic point estimator (Hoffmann et al. 2022; Besiroglu et al. 2024) kept
as the baseline bayes-scaling is measured against, and as the robust point estimate
NUTS starts from. It is written for the Chinchilla law in NumPy/SciPy with an analytic
gradient, parametrised as (e, a, b, alpha, beta) with E = exp(e), A = exp(a), B = exp(b).

Why the care with tolerances: with delta = 1e-3 almost every residual sits in the
linear part of the Huber loss, so gradients are tiny and L-BFGS-B's default ``ftol``
stops far from the optimum; bootstrap intervals then come out far too narrow. Every
refit here runs with tight tolerances and its convergence is checked and counted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from .errors import InputError

PARAMETERS = ("E", "A", "B", "alpha", "beta")
#: Hoffmann et al.'s initialisation grid: 6 × 6 × 5 × 5 × 5 = 4,500 starts over (a, b, e, alpha, beta).
HOFFMANN_GRID = {
    "a": np.arange(0.0, 30.0, 5.0),
    "b": np.arange(0.0, 30.0, 5.0),
    "e": np.arange(-1.0, 1.5, 0.5),
    "alpha": np.arange(0.0, 2.5, 0.5),
    "beta": np.arange(0.0, 2.5, 0.5),
}
_BOUNDS = [(-5.0, 3.0), (-10.0, 40.0), (-10.0, 40.0), (1e-3, 3.0), (1e-3, 3.0)]


@dataclass(frozen=True)
class HuberFit:
    """Result of an approach-3 fit.

    Attributes
    ----------
    point : dict of str to float
        E, A, B, alpha, beta at the best optimum found.
    bootstrap : DataFrame
        One row per bootstrap resample (columns E, A, B, alpha, beta, converged);
        empty when no bootstrap was asked for.
    objective : float
        Huber objective at ``point`` (sum over runs, divided by delta).
    sigma : float
        Robust scale (1.4826 × MAD) of the log residuals at ``point``.
    delta : float
        Huber threshold used, on log residuals.
    n_starts : int
        Number of grid points evaluated.
    """

    point: dict[str, float]
    bootstrap: pd.DataFrame
    objective: float
    sigma: float
    delta: float
    n_starts: int

    @property
    def converged_fraction(self) -> float:
        """Share of bootstrap refits whose gradient test passed (1.0 when none were run)."""
        if self.bootstrap.empty:
            return 1.0
        return float(self.bootstrap["converged"].mean())


def _objective(z: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray,
               delta: float, weights: np.ndarray) -> tuple[float, np.ndarray]:
    e, a, b, alpha, beta = z
    terms = np.stack([np.full_like(log_n, e), a - alpha * log_n, b - beta * log_d])
    pred = logsumexp(terms, axis=0)
    r = pred - log_l
    small = np.abs(r) <= delta
    # Divided by delta so that the objective and its gradient are O(1): same minimiser,
    # tolerances that mean something.
    loss = np.where(small, 0.5 * r**2 / delta, np.abs(r) - 0.5 * delta)
    dr = np.where(small, r / delta, np.sign(r)) * weights
    w = softmax(terms, axis=0)
    grad = np.array([
        dr @ w[0],
        dr @ w[1],
        dr @ w[2],
        -(dr * w[1]) @ log_n,
        -(dr * w[2]) @ log_d,
    ])
    return float(weights @ loss), grad


def _grid_objective(grid: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray,
                    delta: float) -> np.ndarray:
    e, a, b, alpha, beta = (grid[:, i : i + 1] for i in range(5))
    pred = np.logaddexp(np.logaddexp(e, a - alpha * log_n), b - beta * log_d)
    r = np.abs(pred - log_l)
    return np.where(r <= delta, 0.5 * r**2 / delta, r - 0.5 * delta).sum(axis=1)


def _minimise(z0: np.ndarray, args: tuple, gtol: float) -> tuple[np.ndarray, float, bool]:
    res = minimize(_objective, z0, args=args, jac=True, method="L-BFGS-B", bounds=_BOUNDS,
                   options={"maxiter": 5000, "ftol": 1e-15, "gtol": gtol, "maxcor": 20})
    grad = _objective(res.x, *args)[1]
    # Projected gradient: components pushing against an active bound do not count.
    lo = np.array([b[0] for b in _BOUNDS])
    hi = np.array([b[1] for b in _BOUNDS])
    free = ~(((res.x <= lo + 1e-9) & (grad > 0)) | ((res.x >= hi - 1e-9) & (grad < 0)))
    converged = bool(np.max(np.abs(grad[free]), initial=0.0) < 1e3 * gtol * max(1.0, len(args[0]) ** 0.5))
    return res.x, float(res.fun), converged


def _to_params(z: np.ndarray) -> dict[str, float]:
    return {"E": float(np.exp(z[0])), "A": float(np.exp(z[1])), "B": float(np.exp(z[2])),
            "alpha": float(z[3]), "beta": float(z[4])}


def fit_huber(
    runs: pd.DataFrame,
    *,
    delta: float = 1e-3,
    n_best: int = 16,
    bootstrap: int = 0,
    seed: int = 0,
    gtol: float = 1e-9,
) -> HuberFit:
    """Fit the Chinchilla law by approach 3, optionally with bootstrap resamples.

    The full Hoffmann grid (4,500 points) is evaluated at once; L-BFGS-B then starts
    from the ``n_best`` lowest grid points (a multi-start that finds the same optimum as
    starting from all of them, in a fraction of the time). Each bootstrap resample is
    refitted from the full-data optimum and the 3 best grid points, to convergence.

    Parameters
    ----------
    runs : DataFrame
        Validated run table (:func:`bayes_scaling.data.load_runs`).
    delta : float, default 1e-3
        Huber threshold on log-loss residuals.
    n_best : int, default 16
        Grid points used as L-BFGS starts for the full-data fit.
    bootstrap : int, default 0
        Number of bootstrap resamples (runs drawn with replacement).
    seed : int, default 0
        Seed of the bootstrap resampling.
    gtol : float, default 1e-9
        Gradient tolerance of L-BFGS-B on the delta-scaled objective.

    Returns
    -------
    HuberFit
    """
    if delta <= 0:
        raise InputError(f"delta must be positive but got {delta}")
    log_n = np.log(runs["params"].to_numpy(float))
    log_d = np.log(runs["tokens"].to_numpy(float))
    log_l = np.log(runs["loss"].to_numpy(float))
    grid = np.array(list(itertools.product(
        HOFFMANN_GRID["e"], HOFFMANN_GRID["a"], HOFFMANN_GRID["b"],
        HOFFMANN_GRID["alpha"], HOFFMANN_GRID["beta"])))
    grid[:, 3:] = np.maximum(grid[:, 3:], _BOUNDS[3][0])
    grid_obj = _grid_objective(grid, log_n, log_d, log_l, delta)
    starts = grid[np.argsort(grid_obj)[:n_best]]
    ones = np.ones_like(log_n)
    args = (log_n, log_d, log_l, delta, ones)
    fits = [_minimise(z0, args, gtol) for z0 in starts]
    best_z, best_obj, _ = min(fits, key=lambda f: f[1])
    residuals = logsumexp(np.stack([np.full_like(log_n, best_z[0]), best_z[1] - best_z[3] * log_n,
                                    best_z[2] - best_z[4] * log_d]), axis=0) - log_l
    sigma = float(1.4826 * np.median(np.abs(residuals - np.median(residuals))))
    rows = []
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        boot_starts = [best_z, *starts[:3]]
        n = len(log_n)
        for _ in range(bootstrap):
            counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
            bargs = (log_n, log_d, log_l, delta, counts)
            z, _, ok = min((_minimise(z0, bargs, gtol) for z0 in boot_starts), key=lambda f: f[1])
            rows.append({**_to_params(z), "converged": ok})
    boot = pd.DataFrame(rows, columns=[*PARAMETERS, "converged"])
    return HuberFit(point=_to_params(best_z), bootstrap=boot, objective=best_obj,
                    sigma=max(sigma, 1e-6), delta=delta, n_starts=len(grid))
