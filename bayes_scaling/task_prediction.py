"""Accuracy from a task fit: at given (N, D), and at each budget's compute-optimal plan.

The intermediate metric is predicted as any loss (:func:`bayes_scaling.allocation.loss_draws`:
the law's draws, and one run's with its noise); each draw then goes through that draw's
sigmoid (:mod:`bayes_scaling.laws.sigmoid`). Two intervals, as for the loss:

- ``metric``: the sigmoid of the law's intermediate: the credible interval of the law's
  accuracy (parameter uncertainty of both steps);
- ``metric_predictive``: one run's accuracy: the sigmoid of one run's intermediate (law ×
  its noise) plus the accuracy's own run-to-run noise, Normal(0, sigma_metric).

Numpy only, from a ``Fit`` or a saved fit's arrays (:func:`bayes_scaling.fitfile.read_fit`),
so ``bayes-scaling predict`` answers without JAX.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .allocation import allocation_draws, allocation_table, as_budgets, loss_draws, loss_table, plan_arrays
from .errors import InputError
from .fitfile import FitArrays, HasArrays, fit_arrays
from .laws.sigmoid import LINK_PARAMETERS, TASK_VARIABLES, accuracy
from .tables import Table, check_level, interval_columns


def link_draws(arrays: FitArrays) -> dict[str, np.ndarray]:
    """Draws of floor, ceiling, slope, midpoint and sigma_metric, each of shape (S,).

    Raises
    ------
    InputError
        If the fit is not a task fit.
    """
    if arrays.card.task is None or any(v not in arrays.posterior for v in TASK_VARIABLES):
        raise InputError(f"card {arrays.card.name!r} is not a task card: this fit predicts a loss, not an accuracy")
    return arrays.draws(list(TASK_VARIABLES))


def metric_draws(arrays: FitArrays, log_inter: np.ndarray, log_inter_run: np.ndarray | None = None, *,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The law's accuracy and one run's accuracy per draw and point, each of shape (S, R).

    Parameters
    ----------
    arrays : FitArrays
        A task fit.
    log_inter : array of shape (S, R)
        Draws of the law's ln intermediate metric at R points.
    log_inter_run : array of shape (S, R), optional
        Draws of one run's ln intermediate (with its noise); default ``log_inter``.
    seed : int, default 0
        Seed of the accuracy noise (``numpy.random.default_rng(seed + 3)``).
    """
    link = link_draws(arrays)
    theta = {k: link[k][:, None] for k in LINK_PARAMETERS}
    law = accuracy(theta, np.exp(log_inter))
    run = accuracy(theta, np.exp(log_inter if log_inter_run is None else log_inter_run))
    noise = np.random.default_rng(seed + 3).standard_normal(run.shape) * link["sigma_metric"][:, None]
    return law, run + noise


def task_prediction(fit: HasArrays | FitArrays, params: Sequence[float | str] | float | str,
                    tokens: Sequence[float | str] | float | str, *, level: float = 0.9, seed: int = 0) -> Table:
    """Predicted intermediate metric and accuracy at (N, D), as a :class:`~bayes_scaling.tables.Table`.

    Returns
    -------
    Table
        The columns of :func:`bayes_scaling.predict_loss` (``loss``: the intermediate
        metric) plus ``metric``, ``metric_lo``, ``metric_hi`` (the law's accuracy) and
        ``metric_predictive``, ``metric_predictive_lo``, ``metric_predictive_hi`` (one run's).
        ``attrs``: ``level``, ``metric`` and ``via`` (the columns modelled).
    """
    arrays = fit_arrays(fit)
    level = check_level(level)
    n, d = plan_arrays(params, tokens)
    log_l, pred = loss_draws(arrays, n, d, seed=seed)
    law, run = metric_draws(arrays, log_l, pred, seed=seed)
    table = loss_table(n, d, log_l, pred, level)
    columns = {**table.columns, **interval_columns("metric", law, level),
               **interval_columns("metric_predictive", run, level)}
    return Table(columns, _attrs(arrays, level))


def task_allocation(fit: HasArrays | FitArrays, budgets: Sequence[float | str] | np.ndarray | float | str, *,
                    level: float = 0.9, seed: int = 0) -> Table:
    """Each budget's compute-optimal plan (optimal for the intermediate metric) and the accuracy there.

    Returns
    -------
    Table
        The columns of :func:`bayes_scaling.allocate` (``loss_opt``: the intermediate at the
        optimum) plus ``metric_opt`` (the law's accuracy at the optimum, per draw's own
        optimum) and ``metric_opt_predictive`` (one run's), each with ``_lo``/``_hi``.
    """
    arrays = fit_arrays(fit)
    level = check_level(level)
    c = as_budgets(budgets)
    theta = arrays.draws(arrays.card.law.parameters)
    slope, region = arrays.discrepancy()
    draws = allocation_draws(arrays.card.law, theta, c, slope=slope, region=region)
    table = allocation_table(c, draws, level)
    post = arrays.posterior_draws()
    log_inter = np.log(draws["loss_opt"])
    law, run = metric_draws(arrays, log_inter, log_inter + post.log_noise(seed)[:, None], seed=seed)
    columns = {**table.columns, **interval_columns("metric_opt", law, level),
               **interval_columns("metric_opt_predictive", run, level)}
    return Table(columns, _attrs(arrays, level))


def _attrs(arrays: FitArrays, level: float) -> dict[str, object]:
    task = arrays.card.task
    assert task is not None
    return {"level": level, "metric": str(task.metric), "via": str(task.via or "latent law")}


__all__ = ["link_draws", "metric_draws", "task_allocation", "task_prediction"]
