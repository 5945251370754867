"""Chinchilla's three answers to "how should N and D grow with C", with bootstrap intervals.

Hoffmann et al. (2022) estimate the compute-optimal frontier N_opt ∝ C^a, D_opt ∝ C^b
three ways; this module gives each as a tidy table, beside the Bayesian fit:

- approach 1 (:func:`approach1`): for each model size, loss as a function of compute;
  the lower envelope over sizes gives the best size at each compute, and a power law
  through those optima gives a and b;
- approach 2 (:func:`approach2`): a parabola in ln N fitted to each IsoFLOP profile;
  its vertices, regressed on C, give a and b;
- approach 3 (:func:`approach3`): the parametric law fitted with a Huber loss
  (:func:`bayes_scaling.huber.fit_huber`), a = beta / (alpha + beta);
- the posterior of a fitted law (:func:`fit_exponents`).

Every estimator returns an :class:`ApproachResult`; its intervals come from a
nonparametric bootstrap of the runs (resampled with replacement, within each IsoFLOP
budget for approach 2). Compute is C = 6 N D throughout, so D_opt = C / (6 N_opt) and
b = 1 - a.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .allocation import allocation_draws, as_budgets
from .errors import InputError
from .huber import fit_huber
from .tables import check_level

if TYPE_CHECKING:
    from .fitted import Fit
    from .laws import Law

#: (exponent, allocation quantity, intercept column) of the two power laws of the frontier.
_LINES = (("a", "params_opt", "intercept_params"), ("b", "tokens_opt", "intercept_tokens"))


@dataclass(frozen=True)
class ApproachResult:
    """The compute-optimal frontier estimated by one approach.

    Attributes
    ----------
    approach : str
        ``"approach 1"``, ``"approach 2"``, ``"approach 3"`` or ``"<card> (<method>)"``.
    exponents : DataFrame
        Two rows, ``exponent`` ``"a"`` (N_opt ∝ C^a, parameters) and ``"b"``
        (D_opt ∝ C^b, tokens), with columns ``approach``, ``exponent``, ``quantity``,
        ``estimate``, ``lo``, ``hi`` (bootstrap or posterior interval at ``level``) and
        ``intercept`` (ln N_opt or ln D_opt at C = 1 FLOP, so that ln N_opt = intercept + a ln C).
    optima : DataFrame
        The optima the power law was fitted to: ``compute`` (FLOPs), ``params_opt``
        (parameters), ``tokens_opt`` (tokens), ``loss`` (nats/token), plus per-approach columns.
    draws : DataFrame
        One row per bootstrap resample (or posterior draw): ``a``, ``b``, ``intercept_params``,
        ``intercept_tokens``.
    level : float
        Level of the intervals in ``exponents``.
    """

    approach: str
    exponents: pd.DataFrame
    optima: pd.DataFrame
    draws: pd.DataFrame
    level: float

    def frontier(self, budgets: Sequence[float] | np.ndarray | float, level: float | None = None) -> pd.DataFrame:
        """N_opt and D_opt on the fitted power law at given budgets (FLOPs), with intervals.

        Returns
        -------
        DataFrame
            ``approach``, ``compute``, ``params_opt``, ``params_opt_lo``, ``params_opt_hi``,
            ``tokens_opt``, ``tokens_opt_lo``, ``tokens_opt_hi`` (bounds NaN without bootstrap draws).
        """
        level = self.level if level is None else level
        log_c = np.log(as_budgets(budgets))
        table = pd.DataFrame({"approach": self.approach, "compute": np.exp(log_c)})
        point = self.exponents.set_index("exponent")
        for exponent, name, intercept in _LINES:
            line = self.draws[intercept].to_numpy()[:, None] + self.draws[exponent].to_numpy()[:, None] * log_c
            lo, hi = (np.quantile(line, [(1 - level) / 2, (1 + level) / 2], axis=0) if len(line)
                      else np.full((2, log_c.size), np.nan))  # no bootstrap: a point estimate only
            table[name] = np.exp(point.loc[exponent, "intercept"] + point.loc[exponent, "estimate"] * log_c)
            table[f"{name}_lo"], table[f"{name}_hi"] = np.exp(lo), np.exp(hi)
        return table


def budget_groups(flops: Sequence[float] | np.ndarray, resolution: float = 0.25) -> np.ndarray:
    """Assign runs to IsoFLOP budgets by rounding log10 C to a grid.

    Run tables reconstructed from figures (or logged with real FLOP counts) scatter
    around the nominal budgets; rounding log10 C to multiples of ``resolution`` groups
    them. The default 0.25 dex separates Chinchilla's budgets (6e18, 1e19, 3e19, 6e19,
    ..., 3e21 FLOPs, at least 0.22 dex apart).

    Parameters
    ----------
    flops : array
        Training compute of each run, FLOPs.
    resolution : float, default 0.25
        Width of a budget bin in decades.

    Returns
    -------
    array
        For each run, its budget: the geometric mean compute (FLOPs) of its group.
    """
    if resolution <= 0:
        raise InputError(f"resolution must be a positive number of decades but got {resolution}")
    log_c = np.log10(np.asarray(flops, dtype=float))
    key = np.round(log_c / resolution)
    means = pd.Series(log_c).groupby(key).transform("mean").to_numpy()
    return 10.0**means


def _power_law(compute: np.ndarray, optimum: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of ln optimum on ln compute."""
    slope, intercept = np.polyfit(np.log(compute), np.log(optimum), 1)
    return float(slope), float(intercept)


def _line(optima: pd.DataFrame) -> dict[str, float]:
    a, ka = _power_law(optima["compute"].to_numpy(), optima["params_opt"].to_numpy())
    b, kb = _power_law(optima["compute"].to_numpy(), optima["tokens_opt"].to_numpy())
    return {"a": a, "b": b, "intercept_params": ka, "intercept_tokens": kb}


def _result(approach: str, point: dict[str, float], optima: pd.DataFrame, draws: pd.DataFrame,
            level: float) -> ApproachResult:
    level = check_level(level)
    rows = []
    for exponent, quantity, intercept in _LINES:
        lo, hi = (np.quantile(draws[exponent], [(1 - level) / 2, (1 + level) / 2]) if len(draws)
                  else (np.nan, np.nan))
        rows.append({"approach": approach, "exponent": exponent, "quantity": quantity, "estimate": point[exponent],
                     "lo": float(lo), "hi": float(hi), "intercept": point[intercept]})
    return ApproachResult(approach, pd.DataFrame(rows), optima.reset_index(drop=True), draws, float(level))


def _check_bootstrap(bootstrap: int) -> int:
    if int(bootstrap) < 0:
        raise InputError(f"bootstrap must be a non-negative number of resamples but got {bootstrap}")
    return int(bootstrap)


# -- approach 1 -----------------------------------------------------------------------------
def _envelope(runs: pd.DataFrame, size_resolution: float, n_grid: int, min_sizes: int) -> pd.DataFrame:
    log_n = np.log10(runs["params"].to_numpy(float))
    size_key = np.round(log_n / size_resolution)
    log_c_all = np.log(runs["flops"].to_numpy(float))
    log_l_all = np.log(runs["loss"].to_numpy(float))
    curves = []
    for key in np.unique(size_key):
        sel = size_key == key
        xs, inverse = np.unique(log_c_all[sel], return_inverse=True)
        if len(xs) < 2:
            continue
        ys = np.bincount(inverse, weights=log_l_all[sel]) / np.bincount(inverse)
        curves.append((float(np.exp(np.log(10.0) * log_n[sel].mean())), xs, ys))
    columns = ["compute", "params_opt", "tokens_opt", "loss", "n_sizes"]
    if len(curves) < min_sizes:
        return pd.DataFrame(columns=columns)
    grid = np.linspace(min(c[1][0] for c in curves), max(c[1][-1] for c in curves), n_grid)
    losses = np.array([np.interp(grid, xs, ys, left=np.nan, right=np.nan) for _, xs, ys in curves])
    sizes = np.array([c[0] for c in curves])
    n_cover = np.sum(np.isfinite(losses), axis=0)
    keep = n_cover >= min_sizes
    best = np.nanargmin(np.where(np.isfinite(losses[:, keep]), losses[:, keep], np.inf), axis=0)
    compute = np.exp(grid[keep])
    params = sizes[best]
    return pd.DataFrame({"compute": compute, "params_opt": params, "tokens_opt": compute / (6 * params),
                         "loss": np.exp(losses[best, np.flatnonzero(keep)]), "n_sizes": n_cover[keep]})


def approach1(runs: pd.DataFrame, *, size_resolution: float = 0.01, n_grid: int = 250, min_sizes: int = 3,
              bootstrap: int = 200, level: float = 0.9, seed: int = 0) -> ApproachResult:
    """Chinchilla approach 1: the lower envelope of loss over fixed-size runs.

    Runs of one model size (sizes equal after rounding log10 N to ``size_resolution``)
    give that size's loss as a function of compute, interpolated linearly in
    (ln C, ln L) between its runs and never extrapolated. At each of ``n_grid`` compute
    levels the size with the lowest loss is N_opt(C); D_opt = C / (6 N_opt). A least-squares
    line through (ln C, ln N_opt) gives a (and through ln D_opt, b).

    Parameters
    ----------
    runs : DataFrame
        Validated run table with ``params``, ``flops`` (FLOPs) and ``loss``.
    size_resolution : float, default 0.01
        Decades of N within which runs count as the same model size.
    n_grid : int, default 250
        Compute levels, evenly spaced in ln C over the range of the runs.
    min_sizes : int, default 3
        Compute levels covered by fewer sizes are skipped (their minimum means little).
    bootstrap : int, default 200
        Resamples of the runs for the intervals (0: point estimate only).
    level : float, default 0.9
    seed : int, default 0

    Returns
    -------
    ApproachResult
        ``optima`` has one row per compute level (``n_sizes``: sizes covering it).
    """
    bootstrap = _check_bootstrap(bootstrap)
    optima = _envelope(runs, size_resolution, n_grid, min_sizes)
    if optima["params_opt"].nunique() < 2:
        raise InputError(f"approach 1 needs {min_sizes}+ model sizes with 2 or more runs each, at overlapping "
                         "compute, and an optimum that moves with compute")
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(bootstrap):
        # A run drawn twice adds nothing to an interpolation: resampling thins the curves.
        opt = _envelope(runs.iloc[rng.integers(0, len(runs), len(runs))].drop_duplicates(), size_resolution,
                        n_grid, min_sizes)
        if opt["params_opt"].nunique() >= 2:
            rows.append(_line(opt))
    draws = pd.DataFrame(rows, columns=["a", "b", "intercept_params", "intercept_tokens"])
    return _result("approach 1", _line(optima), optima, draws, level)


# -- approach 2 -----------------------------------------------------------------------------
def _profiles(runs: pd.DataFrame, budgets: np.ndarray, min_runs: int) -> pd.DataFrame:
    rows = []
    log_n_all = np.log(runs["params"].to_numpy(float))
    loss_all = runs["loss"].to_numpy(float)
    for budget in np.unique(budgets):
        sel = budgets == budget
        log_n, loss = log_n_all[sel], loss_all[sel]
        if sel.sum() < min_runs or np.unique(log_n).size < 3:
            continue
        c2, c1, c0 = np.polyfit(log_n, loss, 2)
        if c2 <= 0:
            continue
        vertex = -c1 / (2 * c2)
        params = float(np.exp(vertex))
        rows.append({"compute": float(budget), "params_opt": params, "tokens_opt": budget / (6 * params),
                     "loss": float(c0 - c1**2 / (4 * c2)), "n_runs": int(sel.sum()), "curvature": float(c2),
                     "inside": bool(log_n.min() <= vertex <= log_n.max())})
    return pd.DataFrame(rows, columns=["compute", "params_opt", "tokens_opt", "loss", "n_runs", "curvature", "inside"])


def approach2(runs: pd.DataFrame, *, resolution: float = 0.25, min_runs: int = 5, bootstrap: int = 200,
              level: float = 0.9, seed: int = 0) -> ApproachResult:
    """Chinchilla approach 2: a parabola in ln N through each IsoFLOP profile.

    Runs are grouped into budgets by :func:`budget_groups`; in each budget with at least
    ``min_runs`` runs (and 3 distinct sizes) the loss is fitted as a quadratic in ln N.
    Its vertex is N_opt at that budget. Profiles that curve the wrong way are dropped,
    and only vertices inside the sampled range of N enter the power law (a vertex
    outside it is an extrapolation of the parabola).

    Parameters
    ----------
    runs : DataFrame
        Validated run table with ``params``, ``flops`` (FLOPs) and ``loss``.
    resolution : float, default 0.25
        Width of a budget in decades of compute (see :func:`budget_groups`).
    min_runs : int, default 5
        Profiles with fewer runs are skipped.
    bootstrap : int, default 200
        Resamples of the runs within each budget (0: point estimate only).
    level : float, default 0.9
    seed : int, default 0

    Returns
    -------
    ApproachResult
        ``optima`` has one row per budget with ``n_runs``, ``curvature`` (of loss in ln N),
        ``inside`` (vertex within the profile), and ``params_opt_lo``/``params_opt_hi``
        (bootstrap interval of the vertex).
    """
    bootstrap = _check_bootstrap(bootstrap)
    runs = runs.reset_index(drop=True)
    budgets = budget_groups(runs["flops"], resolution)

    def optima_fn(table: pd.DataFrame) -> pd.DataFrame:
        return _profiles(table, budgets[table.index.to_numpy()], min_runs)

    def usable(opt: pd.DataFrame) -> pd.DataFrame:
        return opt[opt["inside"].astype(bool)]  # an empty object column would select columns, not rows

    optima = optima_fn(runs)
    if usable(optima)["compute"].nunique() < 2:
        raise InputError(f"approach 2 needs at least 2 IsoFLOP budgets with {min_runs}+ runs whose profiles curve "
                         f"up around a minimum; found {len(usable(optima))} (try another --resolution)")
    members = [np.flatnonzero(budgets == b) for b in np.unique(budgets)]

    def resample(rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([rng.choice(idx, idx.size) for idx in members])

    rng = np.random.default_rng(seed)
    boot_rows, vertex_draws = [], []
    for _ in range(bootstrap):
        # Keep duplicates: a parabola fit weighs a run drawn twice twice.
        opt = optima_fn(runs.iloc[resample(rng)])
        vertex_draws.append(opt.set_index("compute")["params_opt"])
        ok = usable(opt)
        if ok["compute"].nunique() >= 2:
            boot_rows.append(_line(ok))
    draws = pd.DataFrame(boot_rows, columns=["a", "b", "intercept_params", "intercept_tokens"])
    if vertex_draws:
        vertices = pd.concat(vertex_draws, axis=1)
        lo, hi = (1 - level) / 2, (1 + level) / 2
        optima["params_opt_lo"] = optima["compute"].map(vertices.quantile(lo, axis=1))
        optima["params_opt_hi"] = optima["compute"].map(vertices.quantile(hi, axis=1))
    return _result("approach 2", _line(usable(optima)), optima, draws, level)


# -- approach 3 and the Bayesian fit ------------------------------------------------------------
def _law_draws(law: Law, theta: dict[str, np.ndarray], flops: pd.Series) -> pd.DataFrame:
    """Slope and intercept of ln N_opt, ln D_opt between the least and most compute of the runs, per draw."""
    lo_hi = np.array([flops.min(), flops.max()], dtype=float)
    if not lo_hi[1] > lo_hi[0]:
        raise InputError("the frontier's exponent needs runs at two or more compute levels")
    opt = allocation_draws(law, theta, lo_hi)
    span = np.log(lo_hi[1]) - np.log(lo_hi[0])
    out = {}
    for name, quantity, intercept in _LINES:
        log_q = np.log(opt[quantity])
        out[name] = (log_q[:, 1] - log_q[:, 0]) / span
        out[intercept] = log_q[:, 0] - out[name] * np.log(lo_hi[0])
    return pd.DataFrame(out)


def _law_optima(law: Law, theta: dict[str, float], budgets: np.ndarray) -> pd.DataFrame:
    opt = allocation_draws(law, {k: np.array([v]) for k, v in theta.items()}, budgets)
    return pd.DataFrame({"compute": budgets, "params_opt": opt["params_opt"][0], "tokens_opt": opt["tokens_opt"][0],
                         "loss": opt["loss_opt"][0]})


def approach3(runs: pd.DataFrame, *, resolution: float = 0.25, bootstrap: int = 200, level: float = 0.9,
              seed: int = 0, delta: float = 1e-3, n_best: int = 16) -> ApproachResult:
    """Chinchilla approach 3: the Huber fit of L(N, D), a = beta / (alpha + beta).

    Parameters
    ----------
    runs : DataFrame
        Validated run table.
    resolution : float, default 0.25
        Budgets (see :func:`budget_groups`) at which ``optima`` evaluates the fitted law.
    bootstrap : int, default 200
        Resamples for the intervals (see :func:`bayes_scaling.huber.fit_huber`).
    level : float, default 0.9
    seed : int, default 0
    delta : float, default 1e-3
        Huber threshold on log-loss residuals.
    n_best : int, default 16
        L-BFGS starts: the lowest points of the initialisation grid.

    Returns
    -------
    ApproachResult
    """
    from .laws import get_law

    bootstrap = _check_bootstrap(bootstrap)
    huber = fit_huber(runs, delta=delta, bootstrap=bootstrap, seed=seed, n_best=n_best)
    law = get_law("chinchilla")
    budgets = np.unique(budget_groups(runs["flops"], resolution))
    point = _law_draws(law, {k: np.array([v]) for k, v in huber.point.items()}, runs["flops"]).iloc[0].to_dict()
    draws = (_law_draws(law, {k: huber.bootstrap[k].to_numpy() for k in law.parameters}, runs["flops"])
             if bootstrap else pd.DataFrame(columns=["a", "b", "intercept_params", "intercept_tokens"]))
    return _result("approach 3", point, _law_optima(law, huber.point, budgets), draws, level)


def fit_exponents(fit: Fit, *, resolution: float = 0.25, level: float = 0.9) -> ApproachResult:
    """The frontier implied by a fitted law's draws, in the same form as the approaches.

    The exponent is the slope of ln N_opt between the smallest and largest budget of
    the fit's runs (exact for the Chinchilla law, whose frontier is a power law); the
    estimate is the posterior median.
    """
    law = fit.card.law
    theta = fit.draws(list(law.parameters))
    runs = fit.runs
    budgets = np.unique(budget_groups(runs["flops"], resolution))
    draws = _law_draws(law, theta, runs["flops"])
    point = draws.median().to_dict()
    median_theta = {k: float(np.median(v)) for k, v in theta.items()}
    return _result(f"{fit.card.name} ({fit.method})", point, _law_optima(law, median_theta, budgets), draws, level)


__all__ = ["ApproachResult", "approach1", "approach2", "approach3", "budget_groups", "fit_exponents"]
