"""Model discrepancy that grows beyond the fitted region: honest extrapolation.

A fitted law is uncertain in two ways: its parameters (the posterior) and its form
(the law itself may bend away from the truth beyond the largest run). The second is
invisible inside the data and is exactly what matters where the money is spent. This
module adds, at prediction time, a discrepancy on the log loss

    delta(x) = s · d(x),      s ~ Normal(0, tau),   tau ~ card prior,

where d(x) = max(0, ln C(x) − ln C_max) is the distance (in e-folds of compute,
C = 6 N D FLOPs) beyond the largest-compute run the fit saw. Inside the data d = 0, so
the discrepancy is exactly zero there and never changes the likelihood or the fit; it
widens predictions in proportion to how far they extrapolate. One slope s per
posterior draw is shared by every prediction of that draw, so predictions at two large
budgets err together, as a misspecified law does.

The prior of ``tau`` (log-loss error per e-fold of extrapolation) is set in the model
card's ``[discrepancy]`` table and is calibrated by backtests (``bayes-scaling backtest``);
the data below the cutoff cannot inform it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .cards import Prior

if TYPE_CHECKING:
    from .fit import Fit

LOG_6 = float(np.log(6.0))


def extrapolation_distance(max_log_compute: float, log_params: np.ndarray, log_tokens: np.ndarray) -> np.ndarray:
    """Distance beyond the fitted region: e-folds of compute past the largest fitted run.

    Parameters
    ----------
    max_log_compute : float
        ln C of the largest-compute run in the fit (C in FLOPs).
    log_params, log_tokens : array
        ln N (parameters) and ln D (tokens) of the predictions.

    Returns
    -------
    array
        max(0, ln(6 N D) − ln C_max), 0 inside the data.
    """
    return np.maximum(0.0, LOG_6 + np.asarray(log_params) + np.asarray(log_tokens) - max_log_compute)


def discrepancy_draws(scale: Prior, distance: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """Draws of the discrepancy delta on log loss, shape ``(n_draws, *distance.shape)``.

    Parameters
    ----------
    scale : Prior
        Prior of tau, the standard deviation of the slope s (log loss per e-fold of compute).
    distance : array
        :func:`extrapolation_distance` of each prediction.
    n_draws : int
        Posterior draws to pair with (one slope per draw).
    seed : int
        Seed of tau and s.
    """
    import jax

    key_tau, key_s = jax.random.split(jax.random.PRNGKey(seed + 7919))
    tau = np.asarray(scale.to_numpyro().sample(key_tau, (n_draws,)))
    slope = tau * np.asarray(jax.random.normal(key_s, (n_draws,)))
    distance = np.asarray(distance, dtype=float)
    return slope.reshape((n_draws,) + (1,) * distance.ndim) * distance[None, ...]


def fitted_max_log_compute(constant_data: Mapping[str, np.ndarray]) -> float:
    """ln C of the largest-compute run of a fit's run table (``flops`` column, FLOPs)."""
    return float(np.log(np.max(np.asarray(constant_data["flops"], dtype=float))))


def log_loss_draws(fit: Fit, log_params: np.ndarray, log_tokens: np.ndarray, *, group: str | None = None,
                   seed: int = 0) -> np.ndarray:
    """Draws of the expected log loss at (N, D): the law, plus the card's discrepancy if any.

    Parameters
    ----------
    fit : Fit
    log_params, log_tokens : array of shape (R,)
        ln N (parameters) and ln D (tokens).
    group : str, optional
        For a pooled fit, the group whose parameters to use.
    seed : int, default 0
        Seed of the discrepancy draws.

    Returns
    -------
    array of shape (S, R)
        ln L per posterior draw and point, nats per token.
    """
    import jax.numpy as jnp

    law = fit.card.law
    draws = fit.draws(list(law.parameters), group=group)
    theta = {k: jnp.asarray(v)[:, None] for k, v in draws.items()}
    log_params, log_tokens = np.broadcast_arrays(np.asarray(log_params, float), np.asarray(log_tokens, float))
    log_l = np.asarray(law.log_loss(theta, {"log_params": jnp.asarray(log_params)[None, :],
                                            "log_tokens": jnp.asarray(log_tokens)[None, :]}))
    if fit.card.discrepancy is None:
        return log_l
    const = fit.tree["constant_data"].to_dataset()
    distance = extrapolation_distance(fitted_max_log_compute({"flops": const["flops"].to_numpy()}),
                                      log_params, log_tokens)
    return log_l + discrepancy_draws(fit.card.discrepancy, distance, log_l.shape[0], seed)
