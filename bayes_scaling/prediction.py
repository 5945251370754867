"""Predictions of a fit at new runs: their covariates, the discrepancy there, predictive draws and densities.

What a backtest scores and what the discrepancy's leave-future-out splits weigh: for runs
the fit did not see, the posterior predictive draws of their log loss (law + the
discrepancy beyond the fitted region + one run's noise, NumPyro's observation model)
and the density of their observed losses under each draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .discrepancy import with_discrepancy
from .errors import InputError
from .fitfile import fit_arrays
from .fitted import Fit
from .model import covariates, group_levels, log_likelihood, posterior_predictive_log_loss


def heldout_covariates(fit: Fit, runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """The law's inputs for new runs, counted as the fit counted (param count, group levels)."""
    card = fit.card
    if card.pooling and group_levels(runs, card) and not set(group_levels(runs, card)) <= set(fit.groups):
        raise InputError(f"held-out runs belong to groups the fit has not seen; fitted groups: {', '.join(fit.groups)}")
    table = runs
    if card.pooling:
        # One-hot columns must follow the fit's group levels, not the held-out runs' own.
        table = pd.concat([fit.runs.assign(_held=False), runs.assign(_held=True)], ignore_index=True)
    x = covariates(table, card, str(fit.attrs.get("param_count", "total")))
    if card.pooling:
        held = table["_held"].to_numpy(bool)
        x = {k: v[held] for k, v in x.items()}
    return x


def predictive_draws(fit: Fit, runs: pd.DataFrame, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Posterior predictive draws for new runs, and the density of their observed losses.

    Parameters
    ----------
    fit : Fit
    runs : DataFrame
        Runs to predict (validated run table with the law's covariates and ``loss``).
    seed : int, default 0
        Seed of the simulated observation noise.

    Returns
    -------
    (array, array), each of shape (S, T)
        Draws of the log loss of each run (law + observation noise; S = chains × draws),
        and log p(ln loss_t | draw s): the log density of each observed log loss.
    """
    card = fit.card
    x = heldout_covariates(fit, runs)
    posterior = {str(k): np.asarray(v) for k, v in fit.posterior.data_vars.items()}  # NetCDF names are strings
    log_loss = np.log(runs["loss"].to_numpy(float))
    draws = posterior_predictive_log_loss(card, posterior, x, seed)
    # Beyond the fitted region the law itself is uncertain (bayes_scaling.discrepancy): each
    # draw's discrepancy shifts its location, and the density of the observation is that of
    # the location family at the shifted location.
    shift = np.broadcast_to(shift_draws(fit, x["log_params"], x["log_tokens"]), (draws.shape[0] * draws.shape[1],
                                                                                draws.shape[2])).reshape(draws.shape)
    density = log_likelihood(card, posterior, x, log_loss - shift)
    n = draws.shape[0] * draws.shape[1]
    return (draws + shift).reshape(n, -1), density.reshape(n, -1)


def shift_draws(fit: Fit, log_params: np.ndarray, log_tokens: np.ndarray) -> np.ndarray | float:
    """Discrepancy delta = s · d(N, D) per posterior draw and point, shape (S, *points); 0 without one.

    A fit whose card has a discrepancy but whose posterior holds no slope draws (an
    approach-3 fit, the classic baseline) has none.
    """
    slope, region = fit_arrays(fit).discrepancy()
    if slope is None:
        return 0.0
    zero = np.zeros((len(slope),) + np.shape(log_params))
    return with_discrepancy(zero, slope.reshape((-1,) + (1,) * np.ndim(log_params)), region,
                            np.asarray(log_params)[None, ...], np.asarray(log_tokens)[None, ...])


__all__ = ["heldout_covariates", "predictive_draws", "shift_draws"]
