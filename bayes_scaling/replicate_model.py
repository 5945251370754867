"""The NumPyro model of repeated runs: run-to-run noise and the law's misfit, one row per cell.

A *cell* is the runs of one (N, D) that differ only in their seed; the model, with the cell
effect integrated out, is derived in :mod:`bayes_scaling.replicates` (which fits it and
checks it). It lives here, below the sampler, so that NUTS runs it as one block of
:mod:`bayes_scaling.nuts` (``block="replicate"``): cells padded to a size bucket and the
padding masked out, one compiled program per card, bucket and schedule, the diagnostics
gate and its extensions, like every other fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array
from numpyro import handlers

from .cards import ModelCard
from .model import law_sites

#: The two noise scales of the replicate model (standard deviations on log loss).
NOISE_SITES = ("sigma_run", "sigma_misfit")


def build_replicate_model(card: ModelCard) -> Callable[..., None]:
    """NumPyro model ``model(x, mean_log_loss=None, mask=None)`` over cells (see the module docstring).

    ``x``: per cell, ``log_params`` and ``log_tokens`` (natural logs of parameters and
    tokens), ``n`` (runs) and ``ss`` (within-cell sum of squares of log loss);
    ``mean_log_loss``: each cell's mean log loss; ``mask`` leaves cells out (padding rows).
    Sites: the law's parameters (in the sampler's ridge coordinates, as every fit), the
    card's prior of ``sigma`` for both :data:`NOISE_SITES`, the observed ``mean_log_loss``
    and the factor ``within_cells`` in plate ``cell``.
    """

    def model(x: Mapping[str, Array], mean_log_loss: Array | None = None, mask: Array | None = None) -> None:
        theta = law_sites(card, x)
        loc = card.law.log_loss(theta, x)
        sigma_run = numpyro.sample("sigma_run", card.sigma.to_numpyro())
        sigma_misfit = numpyro.sample("sigma_misfit", card.sigma.to_numpyro())
        n, ss = x["n"], x["ss"]
        within = -(n - 1) * (jnp.log(sigma_run) + 0.5 * jnp.log(2 * jnp.pi)) - ss / (2 * sigma_run**2)
        with numpyro.plate("cell", jnp.shape(n)[-1]), handlers.mask(mask=True if mask is None else mask):
            numpyro.sample("mean_log_loss", dist.Normal(loc, jnp.sqrt(sigma_misfit**2 + sigma_run**2 / n)),
                           obs=mean_log_loss)
            numpyro.factor("within_cells", within)

    return model


__all__ = ["NOISE_SITES", "build_replicate_model"]
