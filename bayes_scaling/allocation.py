"""Compute-optimal allocation and predicted loss, integrated over posterior draws.

Everything here is vectorised over draws × budgets. For C = 6 N D, a law with a closed
form (Chinchilla) uses it; any other law is minimised along the IsoFLOP line by a
vectorised golden-section search in log N (the loss along an IsoFLOP line is unimodal
for every law shipped: a monotone function of a sum of exponentials in log N).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .errors import InputError
from .laws import Law
from .units import parse_quantity

if TYPE_CHECKING:
    from .fit import Fit

LOG_6 = float(np.log(6.0))
QUANTITIES = ("params_opt", "tokens_opt", "tokens_per_param", "loss_opt")
#: Search range of golden-section: at least this many parameters and tokens.
_MIN_COUNT = 1e3
_GOLDEN_ITERATIONS = 90


def as_budgets(budgets: Sequence[float | str] | np.ndarray | float | str, what: str = "budget") -> np.ndarray:
    """Budgets (FLOPs) as a 1-d float array; strings like ``"5.76e23"`` are parsed."""
    items = [budgets] if np.isscalar(budgets) else list(np.asarray(budgets, dtype=object).ravel())
    values = np.array([parse_quantity(b, what=what) for b in items], dtype=float)
    if values.size == 0:
        raise InputError(f"give at least one {what}")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise InputError(f"{what} must be a positive number of FLOPs but got {values[bad][0]:g}")
    return values


def optimal_log_params(law: Law, theta: Mapping[str, np.ndarray], log_compute: np.ndarray) -> np.ndarray:
    """ln N_opt for C = 6 N D; closed form when the law has one, else golden section.

    Parameters
    ----------
    law : Law
    theta : mapping of str to array
        Parameter draws, broadcastable against ``log_compute``.
    log_compute : array
        ln C, C in FLOPs.
    """
    if law.compute_optimal is not None:
        return np.asarray(law.compute_optimal(theta, log_compute)[0])
    return numeric_optimal_log_params(law, theta, log_compute)


def numeric_optimal_log_params(law: Law, theta: Mapping[str, np.ndarray], log_compute: np.ndarray) -> np.ndarray:
    """ln N_opt by golden-section search of ln L(N, C/(6N)) over ln N (any law)."""
    log_c6 = jnp.asarray(log_compute) - LOG_6
    shape = jnp.broadcast_shapes(log_c6.shape, *(jnp.shape(v) for v in theta.values()))
    lo = jnp.broadcast_to(jnp.log(_MIN_COUNT), shape)
    hi = jnp.broadcast_to(log_c6 - jnp.log(_MIN_COUNT), shape)
    ratio = (np.sqrt(5.0) - 1) / 2

    def f(u):
        return law.log_loss(theta, {"log_params": u, "log_tokens": log_c6 - u})

    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(_GOLDEN_ITERATIONS):
        left = fc < fd
        hi = jnp.where(left, d, hi)
        lo = jnp.where(left, lo, c)
        c_new, d_new = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        c, d = c_new, d_new
        fc, fd = f(c), f(d)
    return np.asarray((lo + hi) / 2)


def allocation_draws(law: Law, theta: Mapping[str, np.ndarray], budgets: np.ndarray) -> dict[str, np.ndarray]:
    """Draws of the optimum for each budget.

    Parameters
    ----------
    law : Law
    theta : mapping of str to array of shape (S,)
        Posterior draws of the law's parameters.
    budgets : array of shape (K,)
        Compute budgets in FLOPs.

    Returns
    -------
    dict of str to array of shape (S, K)
        ``params_opt`` (parameters), ``tokens_opt`` (tokens), ``tokens_per_param``
        and ``loss_opt`` (nats per token).
    """
    th = {k: jnp.asarray(np.asarray(theta[k], dtype=float))[:, None] for k in law.parameters}
    log_c = jnp.log(jnp.asarray(budgets, dtype=float))[None, :]
    log_n = jnp.asarray(optimal_log_params(law, th, log_c))
    log_d = log_c - LOG_6 - log_n
    log_l = law.log_loss(th, {"log_params": log_n, "log_tokens": log_d})
    return {
        "params_opt": np.exp(np.asarray(log_n)),
        "tokens_opt": np.exp(np.asarray(log_d)),
        "tokens_per_param": np.exp(np.asarray(log_d - log_n)),
        "loss_opt": np.exp(np.asarray(log_l)),
    }


def _interval_columns(name: str, draws: np.ndarray, level: float) -> dict[str, np.ndarray]:
    lo, med, hi = np.quantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=0)
    return {name: med, f"{name}_lo": lo, f"{name}_hi": hi}


def allocate(fit: Fit, budgets: Sequence[float | str] | np.ndarray | float | str, *, level: float = 0.9,
             group: str | None = None) -> pd.DataFrame:
    """Posterior of the compute-optimal allocation for each budget.

    Parameters
    ----------
    fit : Fit
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
        ``attrs["level"]`` holds the level.

    Examples
    --------
    >>> fit.allocate([1e21, 5.76e23])  # doctest: +SKIP
    """
    from .fit import check_level

    level = check_level(level)
    c = as_budgets(budgets)
    draws = allocation_draws(fit.card.law, fit.draws(list(fit.card.law.parameters), group=group), c)
    if fit.card.discrepancy is not None:
        # The loss at the optimum is a prediction like any other: beyond the fitted region it
        # carries the card's model discrepancy (its compute is exactly C, so the distance is ln C - ln C_max).
        from .discrepancy import discrepancy_draws, fitted_max_log_compute

        distance = np.maximum(0.0, np.log(c) - fitted_max_log_compute({"flops": fit.runs["flops"].to_numpy()}))
        draws["loss_opt"] = draws["loss_opt"] * np.exp(
            discrepancy_draws(fit.card.discrepancy, distance, draws["loss_opt"].shape[0], seed=0))
    return allocation_table(c, draws, level)


def allocation_table(budgets: np.ndarray, draws: Mapping[str, np.ndarray], level: float) -> pd.DataFrame:
    """The table of :func:`allocate` from :func:`allocation_draws` output."""
    columns: dict[str, np.ndarray] = {"compute": budgets}
    for q in QUANTITIES:
        columns.update(_interval_columns(q, draws[q], level))
    table = pd.DataFrame(columns)
    table.attrs["level"] = level
    return table


def predict_loss(fit: Fit, params: Sequence[float | str] | float | str, tokens: Sequence[float | str] | float | str,
                 *, level: float = 0.9, seed: int = 0, group: str | None = None) -> pd.DataFrame:
    """Predicted loss at given model sizes and token counts.

    Two intervals, on purpose distinct: ``loss`` is the credible interval of the law
    L(N, D) itself (parameter uncertainty, plus the card's model discrepancy beyond the
    fitted region when it has one, see :mod:`bayes_scaling.discrepancy`);
    ``loss_predictive`` adds the observation noise of a single run (what one training
    run would actually show).

    Parameters
    ----------
    fit : Fit
    params, tokens : float, str or sequence
        Model size N (parameters) and training tokens D, broadcast together.
    level : float, default 0.9
    seed : int, default 0
        Seed of the simulated observation noise.
    group : str, optional
        For a pooled (hierarchical) fit: whose per-group parameters to use.

    Returns
    -------
    DataFrame
        Columns ``params``, ``tokens``, ``flops`` (6 N D), ``loss``, ``loss_lo``,
        ``loss_hi``, ``loss_predictive``, ``loss_predictive_lo``, ``loss_predictive_hi``.
    """
    from .fit import check_level

    level = check_level(level)
    n, d = plan_arrays(params, tokens)
    log_l, pred = loss_draws(fit, n, d, group=group, seed=seed)
    return loss_table(n, d, log_l, pred, level)


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


def loss_draws(fit: Fit, n: np.ndarray, d: np.ndarray, *, group: str | None = None,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draws of ln L at (N, D): the law's (with any discrepancy) and one run's (with noise).

    Returns
    -------
    (array, array) of shape (S, R)
        Expected log loss and observed log loss of a single run, per draw and point.
    """
    import jax

    from .discrepancy import log_loss_draws
    from .model import observation

    draws = fit.draws(group=group)
    log_l = log_loss_draws(fit, np.log(n), np.log(d), group=group, seed=seed)
    nu = jnp.asarray(draws["nu"])[:, None] if "nu" in draws else fit.card.nu
    noise = observation(fit.card, jnp.zeros_like(log_l), jnp.asarray(draws["sigma"])[:, None], nu)
    return log_l, log_l + np.asarray(noise.sample(jax.random.PRNGKey(seed)))


def loss_table(n: np.ndarray, d: np.ndarray, log_l: np.ndarray, pred: np.ndarray, level: float) -> pd.DataFrame:
    """The table of :func:`predict_loss` from draws of expected and single-run log loss."""
    table = pd.DataFrame({"params": n, "tokens": d, "flops": 6 * n * d})
    for name, values in (("loss", np.exp(log_l)), ("loss_predictive", np.exp(pred))):
        for key, col in _interval_columns(name, values, level).items():
            table[key] = col
    table.attrs["level"] = level
    return table
