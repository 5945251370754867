"""Chinchilla "approach 3": Huber loss on log residuals, L-BFGS from a grid, bootstrap.

This is the classic point estimator (Hoffmann et al. 2022; Besiroglu et al. 2024) kept
as the baseline bayes-scaling is measured against, and as the robust point estimate
NUTS starts from. It is written for the Chinchilla law in NumPy/SciPy with an analytic
gradient, parametrised as (e, a, b, alpha, beta) with E = exp(e), A = exp(a), B = exp(b).

Why the care with tolerances: with delta = 1e-3 almost every residual sits in the
linear part of the Huber loss, so gradients are tiny and L-BFGS-B's default ``ftol``
stops far from the optimum; bootstrap intervals then come out far too narrow. Every
refit here runs with tight tolerances and its convergence is checked and counted.

Why the bootstrap refits are a batched Newton method rather than one L-BFGS-B run per
resample: a resample only reweights the runs, so all refits share one array shape and
are solved together (resamples × runs arrays, analytic Hessian of 5 × 5), warm-started
from the full-data optimum and the other local optima the grid found. That costs about
a dozen NumPy passes over the batch instead of thousands of small scipy calls, in one
thread (no process pool to oversubscribe the cores). The Hessian, dominated by the few
residuals inside the quadratic zone (weight 1/delta), lets Newton reach the gradient
test that L-BFGS-B only approaches; a refit that still fails it is retried with L-BFGS-B
from the same starts and the grid's best points, and counted if it fails again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

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
_LO = np.array([b[0] for b in _BOUNDS])
_HI = np.array([b[1] for b in _BOUNDS])
#: Bootstrap warm starts besides the full-data optimum: up to this many other distinct local optima of the
#: grid fit, those whose objective is within _RIVAL_RATIO of the best (a basin that could win on a resample).
_EXTRA_OPTIMA = 2
_RIVAL_RATIO = 1.5
#: Newton iterations before a refit is handed to L-BFGS-B (from the optimum, a refit takes ~5-15).
_NEWTON_MAX_ITER = 60


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
    """Huber objective of one parameter vector and its gradient (the form scipy's minimize takes)."""
    f, grad = _batch_objective(z[None], log_n, log_d, log_l, delta, weights[None])
    return float(f[0]), grad[0]


def _batch_objective(z: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float,
                     weights: np.ndarray, order: int = 1) -> tuple[np.ndarray, ...]:
    """Huber objective of a batch and its derivatives up to ``order``: f (B,), grad (B, 5), hess (B, 5, 5).

    ``z`` is (B, 5); ``weights`` (B, runs); the runs' log N, log D and log L are (runs,)
    or, when each row of the batch has runs of its own, (B, runs). The objective is
    divided by delta so that it and its gradient are O(1): same minimiser, tolerances
    that mean something. With t = (e, a - alpha log N, b - beta log D) linear in z and
    w = softmax(t), the prediction's gradient is g = J'w and its Hessian
    J'(diag w - ww')J, so the objective's Hessian is sum c (psi' - psi) g g' plus
    sum c psi J' diag(w) J, the last term touching only the (e,e), (a|alpha) and
    (b|beta) blocks.
    """
    # No max-shift before exp: inside _BOUNDS every term lies in [-120, 40] for any run up
    # to 1e15 parameters or tokens, far from float64's overflow and underflow.
    x0 = np.exp(z[:, :1])
    x1 = np.exp(z[:, 1:2] - z[:, 3:4] * log_n)
    x2 = np.exp(z[:, 2:3] - z[:, 4:5] * log_d)
    total = x0 + x1 + x2
    r = np.log(total) - log_l
    # psi = h'(r) = clip(r / delta, -1, 1); then h(r) = psi (r - delta psi / 2) on both sides of delta.
    psi = np.clip(r / delta, -1.0, 1.0)
    f = np.einsum("bn,bn->b", weights, psi * (r - 0.5 * delta * psi))
    if order == 0:
        return (f,)
    psi *= weights
    w0, w1, w2 = x0 / total, x1 / total, x2 / total
    p0, p1, p2 = psi * w0, psi * w1, psi * w2
    p1n, p2d = p1 * log_n, p2 * log_d
    grad = np.stack([p0.sum(1), p1.sum(1), p2.sum(1), -p1n.sum(1), -p2d.sum(1)], axis=1)
    if order == 1:
        return f, grad
    g = np.stack([w0, w1, w2, -w1 * log_n, -w2 * log_d], axis=1)  # (B, 5, runs)
    curvature = np.where(np.abs(r) <= delta, weights / delta, 0.0) - psi
    hess = np.matmul(g * curvature[:, None, :], g.transpose(0, 2, 1))
    hess[:, 0, 0] += grad[:, 0]
    hess[:, 1, 1] += grad[:, 1]
    hess[:, 2, 2] += grad[:, 2]
    hess[:, 1, 3] += grad[:, 3]
    hess[:, 3, 1] += grad[:, 3]
    hess[:, 2, 4] += grad[:, 4]
    hess[:, 4, 2] += grad[:, 4]
    hess[:, 3, 3] += (p1n * log_n).sum(1)
    hess[:, 4, 4] += (p2d * log_d).sum(1)
    return f, grad, hess


def _predict(z: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """Predicted log loss of parameter vectors ``z`` (..., 5) at every run: shape (..., runs)."""
    e, a, b, alpha, beta = (z[..., i : i + 1] for i in range(5))
    return np.logaddexp(np.logaddexp(e, a - alpha * log_n), b - beta * log_d)


def _grid_objective(grid: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray,
                    delta: float) -> np.ndarray:
    r = np.abs(_predict(grid, log_n, log_d) - log_l)
    return np.where(r <= delta, 0.5 * r**2 / delta, r - 0.5 * delta).sum(axis=1)


def _projected_gradient(z: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Largest gradient component (last axis) not pushing against an active bound."""
    blocked = ((z <= _LO + 1e-9) & (grad > 0)) | ((z >= _HI - 1e-9) & (grad < 0))
    return np.max(np.abs(np.where(blocked, 0.0, grad)), axis=-1, initial=0.0)


def _tolerance(gtol: float, n_runs: int) -> float:
    """The convergence test's bound on the projected gradient of the delta-scaled objective."""
    return 1e3 * gtol * max(1.0, n_runs**0.5)


def _minimise(z0: np.ndarray, args: tuple, gtol: float) -> tuple[np.ndarray, float, bool]:
    res = minimize(_objective, z0, args=args, jac=True, method="L-BFGS-B", bounds=_BOUNDS,
                   options={"maxiter": 5000, "ftol": 1e-15, "gtol": gtol, "maxcor": 20})
    grad = _objective(res.x, *args)[1]
    converged = bool(_projected_gradient(res.x, grad) < _tolerance(gtol, len(args[0])))
    return res.x, float(res.fun), converged


def _newton(z0: np.ndarray, data: tuple, weights: np.ndarray, tol: float,
            max_iter: int = _NEWTON_MAX_ITER) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise a batch of objectives from ``z0`` (B, 5); returns z, f, converged (B,).

    ``data`` holds log N, log D, log L as (B, runs) arrays (one row per objective) and
    delta; ``weights`` is (B, runs). Each step solves with the Hessian's eigenvalues
    made positive (|lambda|, so that a saddle is escaped, not approached) plus a
    Levenberg term that grows after a shortened step and shrinks after a full one, in
    the scale of the Hessian's diagonal; a backtracking line search keeps every step a
    descent, inside the bounds (a failed search is retried with a 1000 times stronger
    Levenberg term). A row stops when its projected gradient is 10 times below ``tol``,
    when even a Levenberg term above 1e6 finds no descent, or after ``max_iter`` steps;
    ``converged`` is the test ``projected gradient < tol``.
    """
    log_n, log_d, log_l, delta = data

    def objective(rows: np.ndarray, at: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        if len(rows) < len(z):
            return _batch_objective(at, log_n[rows], log_d[rows], log_l[rows], delta, weights[rows], order)
        return _batch_objective(at, log_n, log_d, log_l, delta, weights, order)

    z = z0.copy()
    f, grad, hess = objective(np.arange(len(z)), z, 2)
    damping = np.full(len(z), 1e-6)
    active = np.ones(len(z), bool)
    for _ in range(max_iter):
        active &= _projected_gradient(z, grad) >= tol / 10
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        zi, fi, gi = z[idx], f[idx], grad[idx]
        scale = np.sqrt(np.maximum(np.abs(np.diagonal(hess[idx], axis1=1, axis2=2)), 1e-12))
        vals, vecs = np.linalg.eigh(hess[idx] / scale[:, :, None] / scale[:, None, :])
        vals = np.abs(vals) + np.maximum(damping[idx, None], 1e-12 * np.abs(vals).max(1, keepdims=True))
        step = -np.einsum("bij,bj,bkj,bk->bi", vecs, 1 / vals, vecs, gi / scale) / scale
        length = np.ones(idx.size)
        moved = np.zeros(idx.size, bool)
        todo = np.arange(idx.size)
        for _ in range(30):
            trial = np.clip(zi[todo] + length[todo, None] * step[todo], _LO, _HI)
            (ft,) = objective(idx[todo], trial, 0)
            ok = (ft <= fi[todo] + 1e-4 * np.einsum("bi,bi->b", gi[todo], trial - zi[todo])) & (ft < fi[todo])
            # At the optimum a gradient of ~1e-5 along the stiff directions (the runs inside the
            # quadratic zone, curvature ~1/delta) is worth less than rounding in f: there a step
            # that leaves f unchanged to rounding counts if it shrinks the projected gradient.
            flat = np.flatnonzero(~ok & (np.abs(ft - fi[todo]) <= 1e-14 * np.abs(fi[todo])))
            if flat.size:
                gt = objective(idx[todo[flat]], trial[flat], 1)[1]
                ok[flat] = _projected_gradient(trial[flat], gt) < _projected_gradient(zi[todo[flat]], gi[todo[flat]])
            zi[todo[ok]] = trial[ok]
            moved[todo[ok]] = True
            todo = todo[~ok]
            if todo.size == 0:
                break
            length[todo] *= 0.25
        damping[idx] *= np.where(moved & (length == 1.0), 0.1, np.where(moved, 10.0, 1e3))
        active[idx[~moved & (damping[idx] > 1e6)]] = False
        done = idx[moved]
        z[done] = zi[moved]
        if done.size:
            f[done], grad[done], hess[done] = objective(done, z[done], 2)
    return z, f, _projected_gradient(z, grad) < tol


def _bootstrap(resamples: int, seed: int, data: tuple, starts: np.ndarray, fallback: np.ndarray,
               gtol: float) -> pd.DataFrame:
    """Refit ``resamples`` bootstrap resamples from each of ``starts``; keep each one's best optimum."""
    *runs, delta = data
    n = len(runs[0])
    rng = np.random.default_rng(seed)
    # Same resamples, drawn in the same order, as one refit at a time would draw them.
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]).astype(float)
    # Each resample holds ~63% of the runs: batch over the runs it drew (padded with weight 0), not all of them.
    order = np.argsort(counts == 0, axis=1, kind="stable")[:, : int((counts > 0).sum(1).max())]
    weights = np.take_along_axis(counts, order, axis=1)
    batch = (*(x[order] for x in runs), delta)
    tol = _tolerance(gtol, n)
    z, f, ok = (np.empty((resamples, 5)), np.full(resamples, np.inf), np.zeros(resamples, bool))
    for start in starts:
        zs, fs, oks = _newton(np.tile(start, (resamples, 1)), batch, weights, tol)
        better = fs < f
        z[better], f[better], ok[better] = zs[better], fs[better], oks[better]
    for i in np.flatnonzero(~ok):
        args = (*data, counts[i])
        tries = [(z[i], f[i], False), _minimise(z[i], args, gtol)]
        if not tries[1][2]:
            tries += [_minimise(z0, args, gtol) for z0 in fallback]
        lowest = min(t[1] for t in tries)
        # The lowest optimum; among equals (to rounding), one that passed the test.
        z[i], f[i], ok[i] = min((t for t in tries if t[1] <= lowest + 1e-12 * abs(lowest)), key=lambda t: not t[2])
    rows = {name: col for name, col in zip(PARAMETERS, (np.exp(z[:, 0]), np.exp(z[:, 1]), np.exp(z[:, 2]),
                                                         z[:, 3], z[:, 4]), strict=True)}
    return pd.DataFrame({**rows, "converged": ok})


def _distinct_optima(fits: list[tuple[np.ndarray, float, bool]], count: int) -> list[np.ndarray]:
    """The best optimum of a multi-start, then up to ``count - 1`` rivals: optima at least 1e-3 (max-norm)
    from every better one, with an objective within ``_RIVAL_RATIO`` of the best."""
    ranked = sorted(fits, key=lambda t: t[1])
    kept: list[np.ndarray] = []
    for z, obj, _ in ranked:
        if obj > _RIVAL_RATIO * ranked[0][1]:
            break
        if all(np.max(np.abs(z - k)) > 1e-3 for k in kept):
            kept.append(z)
        if len(kept) == count:
            break
    return kept


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
    starting from all of them, in a fraction of the time). The bootstrap resamples are
    refitted together, by a batched Newton method started from the full-data optimum
    and the next two distinct local optima of that multi-start; a refit that fails the
    gradient test is retried by L-BFGS-B from there and from the 3 best grid points.

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
        Gradient tolerance of L-BFGS-B on the delta-scaled objective; a refit counts as
        converged when its projected gradient is below ``1e3 · gtol · sqrt(runs)``.

    Returns
    -------
    HuberFit
    """
    if delta <= 0:
        raise InputError(f"delta must be positive but got {delta}")
    # One BLAS thread: L-BFGS-B and the batched refits make many tiny BLAS calls, and
    # OpenBLAS's threads spin-waiting for a busy core made one grid fit 10-30x slower on a
    # loaded 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_huber(runs, delta, n_best, bootstrap, seed, gtol)


def _fit_huber(runs: pd.DataFrame, delta: float, n_best: int, bootstrap: int, seed: int, gtol: float) -> HuberFit:
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
    residuals = _predict(best_z, log_n, log_d) - log_l
    sigma = float(1.4826 * np.median(np.abs(residuals - np.median(residuals))))
    boot = pd.DataFrame(columns=[*PARAMETERS, "converged"])
    if bootstrap > 0:
        boot = _bootstrap(bootstrap, seed, args[:4], np.array(_distinct_optima(fits, 1 + _EXTRA_OPTIMA)),
                          starts[:3], gtol)
    return HuberFit(point=_to_params(best_z), bootstrap=boot, objective=best_obj,
                    sigma=max(sigma, 1e-6), delta=delta, n_starts=len(grid))
