"""The NumPyro model built from a model card: priors -> law -> likelihood on log loss."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import Array
from numpyro.infer import Predictive

from .cards import ModelCard, Prior
from .errors import RunTableError


def covariates(runs: pd.DataFrame, card: ModelCard) -> dict[str, np.ndarray]:
    """The law's inputs from a run table: ``log_<column>`` (natural log) for each covariate.

    Raises
    ------
    RunTableError
        If the table lacks a column the card's law needs.
    """
    missing = [c for c in card.law.covariates if c not in runs]
    if missing:
        raise RunTableError(
            f"{runs.attrs.get('source', '<runs>')}: card {card.name!r} (law {card.law.name!r}) needs "
            f"column(s) {', '.join(missing)}, which the run table lacks"
        )
    return {f"log_{c}": np.log(runs[c].to_numpy(dtype="float64")) for c in card.law.covariates}


def observation(card: ModelCard, loc: Array, sigma: Array, nu: Array | None) -> dist.Distribution:
    """Distribution of the observed log loss around the law's log loss ``loc``."""
    if card.likelihood == "normal":
        return dist.Normal(loc, sigma)
    return dist.StudentT(nu, loc, sigma)


def build_model(card: ModelCard) -> Callable[..., None]:
    """Return a NumPyro model ``model(x, log_loss=None)`` for the card.

    Sites: one per law parameter (the card's priors), ``sigma`` (noise scale on log
    loss), ``nu`` when the card gives it a prior, and the observed ``log_loss`` in a
    plate ``run``.
    """

    def model(x: Mapping[str, Array], log_loss: Array | None = None) -> None:
        theta = {name: numpyro.sample(name, prior.to_numpyro()) for name, prior in card.priors.items()}
        loc = card.law.log_loss(theta, x)
        sigma = numpyro.sample("sigma", card.sigma.to_numpyro())
        nu = numpyro.sample("nu", card.nu.to_numpyro()) if isinstance(card.nu, Prior) else card.nu
        n_runs = next(iter(x.values())).shape[0]
        with numpyro.plate("run", n_runs):
            numpyro.sample("log_loss", observation(card, loc, sigma, nu), obs=log_loss)

    return model


def posterior_predictive_log_loss(card: ModelCard, posterior: Mapping[str, np.ndarray],
                                  x: Mapping[str, np.ndarray], seed: int) -> np.ndarray:
    """Draws of observed log loss (law + noise) with shape (chain, draw, run)."""
    model = build_model(card)
    chains, draws = np.shape(posterior[card.law.parameters[0]])[:2]
    flat = {k: jnp.asarray(np.reshape(v, (chains * draws,))) for k, v in posterior.items()}
    pred = Predictive(model, posterior_samples=flat, return_sites=["log_loss"])
    out = pred(jax.random.PRNGKey(seed + 1), {k: jnp.asarray(v) for k, v in x.items()})["log_loss"]
    return np.asarray(out).reshape(chains, draws, -1)


def log_likelihood(card: ModelCard, posterior: Mapping[str, np.ndarray],
                   x: Mapping[str, np.ndarray], log_loss: np.ndarray) -> np.ndarray:
    """Pointwise log-likelihood of each run under each draw, shape (chain, draw, run)."""
    theta = {k: jnp.asarray(posterior[k])[..., None] for k in card.law.parameters}
    loc = card.law.log_loss(theta, {k: jnp.asarray(v) for k, v in x.items()})
    sigma = jnp.asarray(posterior["sigma"])[..., None]
    nu = jnp.asarray(posterior["nu"])[..., None] if "nu" in posterior else card.nu
    return np.asarray(observation(card, loc, sigma, nu).log_prob(jnp.asarray(log_loss)))
