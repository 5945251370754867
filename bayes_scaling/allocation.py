"""Compute-optimal allocation and predicted loss, integrated over posterior draws.

Everything here is vectorised over draws × budgets. For C = 6 N D, a law with a closed
form (Chinchilla) uses it; any other law is minimised along the IsoFLOP line by a
vectorised golden-section search in log N, preceded, for a law whose loss along the line
may have several minima (``Law.unimodal`` false: a broken power law with a sharp break), by
a grid that picks the valley of the global one.
Both compute with numpy or JAX, whichever the inputs are. A law without a compute-optimal
allocation (:attr:`~bayes_scaling.laws.Law.no_optimum`, e.g. the routed-model law, which
has no term in tokens) is refused with an :class:`~bayes_scaling.errors.InputError`.

Each answer is computed once, as a :class:`~bayes_scaling.tables.Table`, from a ``Fit``
or from the arrays of a saved fit (:func:`bayes_scaling.fitfile.read_fit`): the Python
API returns it as a DataFrame and the CLI prints it, never importing pandas or JAX.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .discrepancy import UNBOUNDED, FittedRegion, with_discrepancy
from .errors import InputError
from .fitfile import FitArrays, HasArrays, fit_arrays
from .fitted import Fit
from .laws import Law, array_namespace
from .noise import observation_noise
from .posterior import Posterior, PosteriorSource, as_posterior
from .tables import Table, check_level, check_seed, interval_columns, ranked_interval_columns
from .units import COLUMN_MINIMUM, LOG_6, parse_quantity

if TYPE_CHECKING:
    import pandas as pd

QUANTITIES = ("params_opt", "tokens_opt", "tokens_per_param", "loss_opt")
#: Smallest model (parameters) and dataset (tokens) a plan may have: the search range of
#: the golden-section optimum and of every decision's plans.
MIN_COUNT = 1e3
_GOLDEN_ITERATIONS = 90
#: Points of the grid in ln N that brackets the golden-section search.
_GRID_POINTS = 65
#: Most draws x budgets computed at once by :func:`allocation` (8 MB per array).
_BLOCK_VALUES = 2**20


def as_budgets(budgets: Sequence[float | str] | np.ndarray | float | str, what: str = "budget") -> np.ndarray:
    """Budgets (FLOPs) as a 1-d float array; strings like ``"5.76e23"`` are parsed."""
    items: list[Any] = [budgets] if np.isscalar(budgets) else list(np.asarray(budgets, dtype=object).ravel())
    values = np.array([parse_quantity(b, what=what) for b in items], dtype=float)
    if values.size == 0:
        raise InputError(f"give at least one {what}")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        unit = {"params": "parameters", "max_params": "parameters", "tokens": "tokens", "unique_tokens": "tokens",
                "experts": "experts"}.get(what, "FLOPs")
        raise InputError(f"{what} must be a positive number of {unit} but got {values[bad][0]:g}")
    return values


class BudgetRangeWarning(UserWarning):
    """A budget lies where the fitted law says little: far below the runs, or far beyond them."""


#: A budget this many times below the smallest run, or above the largest, gets a warning.
BUDGET_BELOW = 100.0
BUDGET_BEYOND = 1e6


def warn_budget_range(budgets: np.ndarray, flops: np.ndarray, what: str = "budget") -> None:
    """Warn (:class:`BudgetRangeWarning`) about budgets far outside the compute of the fitted runs.

    Parameters
    ----------
    budgets : array
        Compute budgets in FLOPs.
    flops : array
        Compute of the runs the fit saw, in FLOPs.
    """
    lo, hi = float(np.min(flops)), float(np.max(flops))
    for c in np.asarray(budgets, dtype=float):
        if c < lo / BUDGET_BELOW:
            warnings.warn(f"{what} {c:.3g} FLOPs is {math.log10(lo) - math.log10(c):.0f} decades below the smallest "
                          f"fitted run ({lo:.3g} FLOPs): the law says nothing about runs that small, so the answer "
                          "there means nothing (was it meant in other units, e.g. 1e21?)", BudgetRangeWarning,
                          stacklevel=3)
        elif c > hi * BUDGET_BEYOND:
            warnings.warn(f"{what} {c:.3g} FLOPs is {math.log10(c) - math.log10(hi):.0f} decades beyond the largest "
                          f"fitted run ({hi:.3g} FLOPs): the answer rests on the law holding over more than six "
                          "decades of compute beyond the data", BudgetRangeWarning, stacklevel=3)


def optimal_log_params(law: Law, theta: Mapping[str, Any], log_compute: Any) -> Any:
    """ln N_opt for C = 6 N D; closed form when the law has one, else golden section.

    Parameters
    ----------
    law : Law
    theta : mapping of str to array
        Parameter draws, broadcastable against ``log_compute``.
    log_compute : array
        ln C, C in FLOPs.
    """
    check_allocatable(law)
    if law.compute_optimal is not None:
        return law.compute_optimal(theta, log_compute)[0]
    return numeric_optimal_log_params(law, theta, log_compute)


def check_allocatable(law: Law) -> None:
    """Raise :class:`InputError` naming the law if it has no compute-optimal allocation (:attr:`Law.no_optimum`)."""
    if law.no_optimum:
        raise InputError(f"law {law.name!r} has no compute-optimal allocation: {law.no_optimum}")


def numeric_optimal_log_params(law: Law, theta: Mapping[str, Any], log_compute: Any) -> Any:
    """ln N_opt minimising ln L(N, C/(6N)) over ln N (any law) by golden section.

    For a law that is not :attr:`~bayes_scaling.laws.Law.unimodal`, a grid
    (:data:`_GRID_POINTS` points from N = D = :data:`MIN_COUNT`) first picks the valley of the
    global minimum; golden section then pins it down between the grid point's neighbours.
    """
    xp = array_namespace(theta, log_compute)
    log_c6 = xp.asarray(log_compute) - LOG_6
    shape = np.broadcast_shapes(log_c6.shape, *(np.shape(v) for v in theta.values()))
    lo = xp.broadcast_to(xp.log(MIN_COUNT), shape)
    hi = xp.broadcast_to(log_c6 - xp.log(MIN_COUNT), shape)
    ratio = (math.sqrt(5.0) - 1) / 2

    def f(u: Any) -> Any:
        return law.log_loss(theta, {"log_params": u, "log_tokens": log_c6 - u})

    if not law.unimodal:
        step = (hi - lo) / (_GRID_POINTS - 1)
        best, best_value = xp.zeros(shape), xp.full(shape, xp.inf)
        for i in range(_GRID_POINTS):  # a running minimum: one array of draws x budgets at a time
            value = f(lo + i * step)
            better = value < best_value  # False for nan
            best, best_value = xp.where(better, i, best), xp.where(better, value, best_value)
        lo, hi = lo + xp.maximum(best - 1, 0) * step, lo + xp.minimum(best + 1, _GRID_POINTS - 1) * step
    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(_GOLDEN_ITERATIONS):
        left = fc < fd
        hi = xp.where(left, d, hi)
        lo = xp.where(left, lo, c)
        c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        fc, fd = f(c), f(d)
    return (lo + hi) / 2


def allocation_draws(law: Law, theta: Mapping[str, np.ndarray], budgets: np.ndarray, *,
                     slope: np.ndarray | None = None, region: FittedRegion = UNBOUNDED) -> dict[str, np.ndarray]:
    """Draws of the optimum for each budget.

    Parameters
    ----------
    law : Law
    theta : mapping of str to array of shape (S,)
        Posterior draws of the law's parameters.
    budgets : array of shape (K,)
        Compute budgets in FLOPs.
    slope : array of shape (S,), optional
        Draws of the discrepancy slope (:mod:`bayes_scaling.discrepancy`): beyond
        ``region`` the loss at the optimum carries it.
    region : FittedRegion, default unbounded
        Where the fitted runs end (:class:`bayes_scaling.discrepancy.FittedRegion`).

    Returns
    -------
    dict of str to array of shape (S, K)
        ``params_opt`` (parameters), ``tokens_opt`` (tokens), ``tokens_per_param``
        and ``loss_opt`` (nats per token).
    """
    th = {k: np.asarray(theta[k], dtype=float)[:, None] for k in law.parameters}
    log_c = np.log(np.asarray(budgets, dtype=float))[None, :]
    log_n = optimal_log_params(law, th, log_c)
    log_d = log_c - LOG_6 - log_n
    log_l = law.log_loss(th, {"log_params": log_n, "log_tokens": log_d})
    log_l = with_discrepancy(log_l, None if slope is None else np.asarray(slope)[:, None], region,
                             log_n, log_d)
    return {
        "params_opt": np.exp(log_n),
        "tokens_opt": np.exp(log_d),
        "tokens_per_param": np.exp(log_d - log_n),
        "loss_opt": np.exp(log_l),
    }


def allocation(fit: HasArrays | FitArrays, budgets: Sequence[float | str] | np.ndarray | float | str, *,
               level: float = 0.9, group: str | None = None) -> Table:
    """The table of :func:`allocate` as a :class:`~bayes_scaling.tables.Table` (what the CLI prints)."""
    arrays = fit_arrays(fit)
    level = check_level(level)
    c = as_budgets(budgets)
    warn_budget_range(c, arrays.constant_data["flops"])
    law = arrays.card.law
    theta = arrays.draws(law.parameters, group=group)
    slope, region = arrays.discrepancy()
    # Budgets in blocks of at most _BLOCK_VALUES draws x budgets: in a new process (the CLI),
    # first touching 32 MB arrays (4,000 draws x 1,000 budgets) cost more than the arithmetic.
    step = max(1, _BLOCK_VALUES // len(theta[law.parameters[0]]))
    table = Table.concat([allocation_table(c[i : i + step], allocation_draws(
        law, theta, c[i : i + step], slope=slope, region=region), level)
        for i in range(0, c.size, step)], {"level": level})
    bad = ~np.all([np.isfinite(v) for v in table.columns.values()], axis=0)
    if bad.any():  # draws outside the law's domain (e.g. an altered fit): no number rather than nan
        raise InputError(f"the fit's draws give no finite allocation at budget {c[bad][0]:.3g} FLOPs (the law's "
                         f"parameters {', '.join(law.parameters)} are outside their domain in some draws); "
                         "check the fit with `bayes-scaling summary`")
    return table


def allocate(fit: HasArrays | FitArrays, budgets: Sequence[float | str] | np.ndarray | float | str, *,
             level: float = 0.9, group: str | None = None) -> pd.DataFrame:
    """Posterior of the compute-optimal allocation for each budget.

    Parameters
    ----------
    fit : Fit
        (or the arrays of a saved fit, :func:`bayes_scaling.fitfile.read_fit`).
    budgets : float, str or sequence
        Compute budgets C in FLOPs (``5.76e23``).
    level : float, default 0.9
        Credible level of the equal-tailed intervals.
    group : str, optional
        For a pooled (hierarchical) fit: whose per-group parameters to use.

    Returns
    -------
    DataFrame
        One row per budget: ``compute`` (FLOPs) and, for each of ``params_opt``
        (parameters), ``tokens_opt`` (tokens), ``tokens_per_param`` and ``loss_opt``
        (nats/token), the posterior median and ``<name>_lo``/``<name>_hi`` bounds.
        ``attrs["level"]`` holds the level. The loss at the optimum is a prediction like
        any other: beyond the fitted region it carries the fit's model discrepancy, if any.

    Examples
    --------
    >>> fit.allocate([1e21, 5.76e23])  # doctest: +SKIP
    """
    return allocation(fit, budgets, level=level, group=group).to_frame()


def allocation_table(budgets: np.ndarray, draws: Mapping[str, np.ndarray], level: float) -> Table:
    """The table of :func:`allocate` from :func:`allocation_draws` output."""
    # For one budget, tokens and tokens per parameter decrease with the parameters: one
    # ranking of the parameters gives the intervals of all three (the same numbers as np.quantile).
    n_opt = draws["params_opt"]
    ranked = ranked_interval_columns(n_opt, {"params_opt": (n_opt, True), "tokens_opt": (draws["tokens_opt"], False),
                                             "tokens_per_param": (draws["tokens_per_param"], False)}, level)
    columns = {"compute": budgets, **ranked, **interval_columns("loss_opt", draws["loss_opt"], level)}
    return Table({k: columns[k] for k in ["compute", *(f"{q}{e}" for q in QUANTITIES for e in ("", "_lo", "_hi"))]},
                 {"level": level})


#: Covariate values: one number (or quantity string) or several, by run-table column name.
Covariates = Mapping[str, Sequence[float | str] | np.ndarray | float | str]


def prediction(fit: HasArrays | FitArrays, params: Sequence[float | str] | float | str,
               tokens: Sequence[float | str] | float | str, *, level: float = 0.9, seed: int = 0,
               group: str | None = None, covariates: Covariates | None = None) -> Table:
    """The table of :func:`predict_loss` as a :class:`~bayes_scaling.tables.Table` (what the CLI prints)."""
    level = check_level(level)
    seed = check_seed(seed)
    n, d = plan_arrays(params, tokens)
    arrays = fit_arrays(fit)
    extra = covariate_arrays(arrays.card.law, covariates, n.shape)
    n, d, *columns = np.broadcast_arrays(n, d, *extra.values())
    extra = dict(zip(extra, columns, strict=True))
    log_l, pred = loss_draws(arrays, n, d, group=group, seed=seed, covariates=extra)
    return loss_table(n, d, log_l, pred, level, extra)


def covariate_arrays(law: Law, covariates: Covariates | None, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """A prediction's covariates beyond N and D (e.g. ``experts``), checked against the law, broadcast to ``shape``.

    Parameters
    ----------
    law : Law
    covariates : mapping of str to number(s), optional
        Values by run-table column name, each one value or as many as the plans.
    shape : tuple of int
        Shape of the plans' N and D.

    Returns
    -------
    dict of str to array
        Each covariate's values, broadcast to ``shape``; empty when none are given.

    Raises
    ------
    InputError
        For a covariate the law does not take, a value that is not positive (or below
        the column's minimum, e.g. one expert), or too few or too many values.
    """
    takes = [c for c in law.covariates if c not in ("params", "tokens")]
    out: dict[str, np.ndarray] = {}
    for name, values in (covariates or {}).items():
        if name not in takes:
            raise InputError(f"law {law.name!r} takes no covariate {name!r}; it takes "
                             f"{', '.join(takes) if takes else 'only params and tokens'}")
        array = as_budgets(values, what=name)
        low = COLUMN_MINIMUM.get(name)
        if low is not None and (array < low).any():
            raise InputError(f"{name} must be at least {low:g} but got {array[array < low][0]:g}")
        try:
            out[name] = np.broadcast_to(array, np.broadcast_shapes(shape, array.shape))
        except ValueError:
            raise InputError(f"give as many {name} values as plans (or one); got {array.size} for "
                             f"{int(np.prod(shape))} plans") from None
    return out


def predict_loss(fit: HasArrays | FitArrays, params: Sequence[float | str] | float | str,
                 tokens: Sequence[float | str] | float | str, *, level: float = 0.9, seed: int = 0,
                 group: str | None = None, covariates: Covariates | None = None) -> pd.DataFrame:
    """Predicted loss at given model sizes and token counts.

    Two intervals, on purpose distinct: ``loss`` is the credible interval of the law
    L(N, D) itself (parameter uncertainty, plus the model discrepancy beyond the fitted
    region when the fit has one, see :mod:`bayes_scaling.discrepancy`);
    ``loss_predictive`` adds the observation noise of a single run (what one training
    run would actually show).

    Parameters
    ----------
    fit : Fit
        (or the arrays of a saved fit, :func:`bayes_scaling.fitfile.read_fit`).
    params, tokens : float, str or sequence
        Model size N (parameters) and training tokens D, broadcast together.
    level : float, default 0.9
    seed : int, default 0
        Seed of the simulated observation noise.
    group : str, optional
        For a pooled (hierarchical) fit: whose per-group parameters to use.
    covariates : mapping of str to number(s), optional
        The law's inputs beyond N and D by run-table column, broadcast with them: the
        routed-model law needs ``{"experts": E}``; the data-constrained law takes
        ``unique_tokens`` (without it, unlimited unique data).

    Returns
    -------
    DataFrame
        Columns ``params``, ``tokens``, any covariates, ``flops`` (6 N D), ``loss``,
        ``loss_lo``, ``loss_hi``, ``loss_predictive``, ``loss_predictive_lo``,
        ``loss_predictive_hi``.

    Examples
    --------
    >>> predict_loss(moe_fit, "1.3B", "130B", covariates={"experts": [1, 64]})  # doctest: +SKIP
    """
    return prediction(fit, params, tokens, level=level, seed=seed, group=group, covariates=covariates).to_frame()


def plan_arrays(params: Sequence[float | str] | float | str,
                tokens: Sequence[float | str] | float | str) -> tuple[np.ndarray, np.ndarray]:
    """Parameters and tokens as broadcast float arrays (suffixes like ``70B`` parsed)."""
    n = as_budgets(params, what="params")
    d = as_budgets(tokens, what="tokens")
    try:
        n, d = np.broadcast_arrays(n, d)
    except ValueError:
        raise InputError(f"give as many params as tokens (or one of either); got {n.size} and {d.size}") from None
    return n, d


def loss_draws(fit: PosteriorSource | Posterior, n: np.ndarray, d: np.ndarray, *, group: str | None = None,
               seed: int = 0, covariates: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draws of ln L at (N, D): the law's (with any discrepancy) and one run's (with noise).

    The noise is independent per draw and point, drawn by :func:`bayes_scaling.noise.observation_noise`.
    ``covariates`` (by column name, shaped like ``n``) are the law's other inputs, e.g. ``experts``.

    Returns
    -------
    (array, array) of shape (S, R)
        Expected log loss and observed log loss of a single run, per draw and point.
    """
    post = as_posterior(fit, group=group)
    if not isinstance(post, Posterior):
        raise InputError("loss draws need the posterior of one fit, not of a model average")
    log_l = post.log_loss(np.log(n), np.log(d), {f"log_{k}": np.log(v) for k, v in (covariates or {}).items()})
    nu = post.nu[:, None] if isinstance(post.nu, np.ndarray) else post.nu
    noise = observation_noise(post.card, post.sigma[:, None], nu, log_l.shape, seed)
    return log_l, log_l + noise


def loss_table(n: np.ndarray, d: np.ndarray, log_l: np.ndarray, pred: np.ndarray, level: float,
               covariates: Mapping[str, np.ndarray] | None = None) -> Table:
    """The table of :func:`predict_loss` from draws of expected and single-run log loss (covariates after D)."""
    columns = {"params": n, "tokens": d, **(covariates or {}), "flops": 6 * n * d,
               **interval_columns("loss", np.exp(log_l), level),
               **interval_columns("loss_predictive", np.exp(pred), level)}
    return Table(columns, {"level": level})


def _fit_allocate(self: Fit, budgets: Sequence[float | str] | np.ndarray | float | str, level: float = 0.9,
                  group: str | None = None) -> pd.DataFrame:
    """Compute-optimal allocation for budgets in FLOPs; see :func:`bayes_scaling.allocate`."""
    return allocate(self, budgets, level=level, group=group)


def _fit_predict(self: Fit, params: Sequence[float | str] | float | str, tokens: Sequence[float | str] | float | str,
                 level: float = 0.9, seed: int = 0, group: str | None = None,
                 covariates: Covariates | None = None) -> pd.DataFrame:
    """Predicted loss at (N, D); see :func:`bayes_scaling.predict_loss`."""
    return predict_loss(self, params, tokens, level=level, seed=seed, group=group, covariates=covariates)


# Fit's answers are attached from this layer (as ArviZ attaches accessors), so that the
# module of Fit never imports the layers above it.
Fit.allocate = _fit_allocate
Fit.predict = _fit_predict
