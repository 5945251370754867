"""The NumPyro model built from a model card: priors -> law -> likelihood on log loss.

A card with a ``[pooling]`` table gives its pooled parameters one value per group (dim
``group``, levels sorted); each run uses its group's values through the one-hot matrix
``x["group_onehot"]`` (run × group), so the same code serves NUTS (shape (G,)) and
posterior summaries (shape (chain, draw, G)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import Array
from jax.typing import ArrayLike
from scipy import stats

from .cards import GROUP_COLUMN, ModelCard, Prior
from .data import row_name
from .errors import InputError, RunTableError
from .laws.base import array_namespace
from .noise import observation_noise

#: How model size N is counted: all parameters, or all but the embedding parameters.
PARAM_COUNTS = ("total", "non_embedding")


def covariates(runs: pd.DataFrame, card: ModelCard, param_count: str = "total") -> dict[str, np.ndarray]:
    """The law's inputs from a run table: ``log_<column>`` (natural log) for each covariate.

    Parameters
    ----------
    runs : DataFrame
        Validated run table.
    card : ModelCard
    param_count : {"total", "non_embedding"}, default "total"
        Count N as the ``params`` column, or as ``params - embedding_params`` (the
        counting of Kaplan et al.; needs the ``embedding_params`` column).

    Returns
    -------
    dict of str to array
        ``log_params``, ``log_tokens``, ... per run; ``unique_tokens`` is derived as
        ``tokens / epochs`` when only ``epochs`` is given. Pooled cards add
        ``group_onehot`` (run × group, levels as in :func:`group_levels`).

    Raises
    ------
    RunTableError
        If the table lacks a column the card or the counting needs, naming both.
    """
    label = runs.attrs.get("source", "<runs>")
    if param_count not in PARAM_COUNTS:
        raise InputError(f"param_count must be one of {', '.join(PARAM_COUNTS)} but got {param_count!r}")
    columns = {c: runs[c].to_numpy(dtype="float64") for c in runs.columns if c in card.law.covariates}
    if "unique_tokens" in card.law.covariates and "unique_tokens" not in columns and "epochs" in runs:
        columns["unique_tokens"] = runs["tokens"].to_numpy(dtype="float64") / runs["epochs"].to_numpy(dtype="float64")
    needed = list(card.law.covariates) + ([GROUP_COLUMN] if card.pooling else [])
    missing = [c for c in needed if c not in columns and c not in runs]
    if missing:
        hint = " (or epochs, from which unique_tokens = tokens / epochs)" if "unique_tokens" in missing else ""
        raise RunTableError(
            f"{label}: card {card.name!r} (law {card.law.name!r}) needs column(s) {', '.join(missing)}{hint}, "
            "which the run table lacks"
        )
    if param_count == "non_embedding":
        if "embedding_params" not in runs:
            raise RunTableError(f"{label}: param_count='non_embedding' needs column embedding_params, "
                                "which the run table lacks")
        columns["params"] = columns["params"] - runs["embedding_params"].to_numpy(dtype="float64")
        if not (columns["params"] > 0).all():
            row = int(np.flatnonzero(columns["params"] <= 0)[0])
            raise RunTableError(f"{label}: {row_name(runs, row)}: embedding_params is not smaller than params, so the "
                                "non-embedding parameter count is not positive")
    x = {f"log_{c}": np.log(columns[c]) for c in card.law.covariates}
    if card.pooling:
        levels = group_levels(runs, card)
        codes = pd.Categorical(runs[GROUP_COLUMN].astype(str), categories=levels).codes
        x["group_onehot"] = np.eye(len(levels))[codes]
    return x


def group_levels(runs: pd.DataFrame, card: ModelCard) -> list[str]:
    """Sorted group labels of a pooled card's run table (empty for an unpooled card)."""
    if not card.pooling:
        return []
    if GROUP_COLUMN not in runs:
        raise RunTableError(f"{runs.attrs.get('source', '<runs>')}: card {card.name!r} pools parameters over "
                            f"groups and needs column {GROUP_COLUMN}, which the run table lacks")
    return sorted(runs[GROUP_COLUMN].astype(str).unique())


def posterior_dims(card: ModelCard) -> dict[str, list[str]]:
    """Extra dims of posterior variables: ``group`` for pooled parameters and their latent sites."""
    if not card.pooling:
        return {}
    return {name: ["group"] for p in card.pooling.parameters for name in (p, card.pooling.latent(p))}


def law_parameters(card: ModelCard, theta: Mapping[str, ArrayLike],
                   x: Mapping[str, ArrayLike]) -> dict[str, ArrayLike]:
    """Law parameters per run: pooled ones (last axis = group) mapped to each run's group (numpy or JAX in)."""
    pooled = card.pooling.parameters if card.pooling else ()
    xp = array_namespace(theta, x)
    return {k: xp.einsum("...g,rg->...r", theta[k], x["group_onehot"]) if k in pooled else theta[k]
            for k in card.law.parameters}


def observation(card: ModelCard, loc: Array, sigma: Array, nu: Array | float | None) -> dist.Distribution:
    """Distribution of the observed log loss around the law's log loss ``loc``."""
    if card.likelihood == "normal":
        return dist.Normal(loc, sigma)
    return dist.StudentT(nu, loc, sigma)


def build_model(card: ModelCard) -> Callable[..., None]:
    """Return a NumPyro model ``model(x, log_loss=None, mask=None)`` for the card.

    Sites: one per law parameter (the card's priors), ``sigma`` (noise scale on log
    loss), ``nu`` when the card gives it a prior, and the observed ``log_loss`` in a
    plate ``run``. A pooled parameter p is instead ``mu_log_p``, ``tau_log_p``, a latent
    ``log_p`` or ``z_p`` per group, and a deterministic p per group. ``mask`` (bool per
    run) leaves runs out of the likelihood: the padding rows of a compiled sampler
    (:mod:`bayes_scaling.nuts`), or the runs above a leave-future-out split.
    """

    def model(x: Mapping[str, Array], log_loss: Array | None = None, mask: Array | None = None) -> None:
        theta = law_sites(card, x)
        loc = card.law.log_loss(law_parameters(card, theta, x), x)
        sigma = numpyro.sample("sigma", card.sigma.to_numpyro())
        nu = numpyro.sample("nu", card.nu.to_numpyro()) if isinstance(card.nu, Prior) else card.nu
        n_runs = next(iter(x.values())).shape[0]
        with numpyro.plate("run", n_runs), numpyro.handlers.mask(mask=True if mask is None else mask):
            numpyro.sample("log_loss", observation(card, loc, sigma, nu), obs=log_loss)

    return model


def ridge_sites(card: ModelCard) -> dict[str, tuple[str, float]]:
    """The card's law scales sampled in ridge coordinates: scale -> (exponent, log reference).

    Those of :attr:`bayes_scaling.laws.Law.ridges` whose scale has a prior on positive
    values and neither scale nor exponent is pooled.
    """
    pooled = card.pooling.parameters if card.pooling else ()
    out = {}
    for scale, exponent, ref in card.law.ridges:
        support = card.priors[scale].to_numpyro().support
        if scale in pooled or exponent in pooled or getattr(support, "lower_bound", None) != 0:
            continue
        out[scale] = (exponent, ref)
    return out


def ridge_site_name(scale: str) -> str:
    """The sample site of a scale in ridge coordinates: ``log_A_ref`` = ln A − alpha · ln N_ref."""
    return f"log_{scale}_ref"


def sampler_values(card: ModelCard, values: Mapping[str, float]) -> dict[str, float]:
    """Values of the card's parameters as its model samples them: each scale on a ridge
    (:func:`ridge_sites`) replaced by ``log_<scale>_ref`` (see :func:`law_sites`); for a start.
    A scale given without its exponent (or not given) is left as it is."""
    out = dict(values)
    for scale, (exponent, ref) in ridge_sites(card).items():
        if scale not in out or exponent not in out:
            continue
        out[ridge_site_name(scale)] = float(np.log(out.pop(scale)) - out[exponent] * ref)
    return out


def law_sites(card: ModelCard, x: Mapping[str, Array]) -> dict[str, Array]:
    """Sample the law's parameters (a NumPyro model fragment); returns them by name.

    A pooled parameter is per group (:func:`_pooled_site`). A scale on a ridge with its
    exponent (:func:`ridge_sites`) is sampled as ``log_A_ref = ln A − alpha · ln N_ref``,
    the term's log value at the reference size, given alpha: its distribution is ln A's
    prior shifted by ``alpha · ln N_ref`` (a shear of unit Jacobian), so the prior of
    (A, alpha) is the card's exactly and A is recorded as a deterministic site. In these
    coordinates the posterior's A–alpha ridge is nearly axis-aligned, where in (ln A,
    alpha) it is a curved ridge of slope ln N ≈ 20 that NUTS crosses in hundreds of
    small steps.
    """
    pooled = card.pooling.parameters if card.pooling else ()
    ridges = ridge_sites(card)
    theta: dict[str, Array] = {}
    for name, prior in card.priors.items():
        if name in pooled:
            theta[name] = _pooled_site(card, name, x["group_onehot"].shape[1])
        elif name not in ridges:
            theta[name] = numpyro.sample(name, prior.to_numpyro())
    for name, (exponent, ref) in ridges.items():
        shift = theta[exponent] * ref
        log_prior = dist.TransformedDistribution(
            card.priors[name].to_numpyro(), [dist.transforms.ExpTransform().inv, dist.transforms.AffineTransform(
                -shift, 1.0)])
        centred = numpyro.sample(ridge_site_name(name), log_prior)
        theta[name] = numpyro.deterministic(name, jnp.exp(centred + shift))
    return {name: theta[name] for name in card.priors}


def _pooled_site(card: ModelCard, name: str, n_groups: int) -> Array:
    # Non-centred (ln p = mu + tau z, z ~ N(0, 1)) avoids the funnel of weakly informed
    # groups; centred avoids the curved (tau, z) ridge of well-informed ones (cards.Pooling).
    pooling = card.pooling
    assert pooling is not None
    prior = card.priors[name].kwargs
    mu = numpyro.sample(f"mu_log_{name}", dist.Normal(prior["loc"], prior["scale"]))
    tau = numpyro.sample(f"tau_log_{name}", pooling.scales[name].to_numpyro())
    with numpyro.plate(f"group_{name}", n_groups):
        if pooling.centred:
            log_p = numpyro.sample(pooling.latent(name), dist.Normal(mu, tau))
        else:
            log_p = mu + tau * numpyro.sample(pooling.latent(name), dist.Normal(0.0, 1.0))
    return numpyro.deterministic(name, jnp.exp(log_p))


def posterior_predictive_log_loss(card: ModelCard, posterior: Mapping[str, np.ndarray],
                                  x: Mapping[str, np.ndarray], seed: int) -> np.ndarray:
    """Draws of observed log loss (law + noise) with shape (chain, draw, run).

    Computed with numpy (:func:`bayes_scaling.noise.observation_noise`), so that no program
    is compiled per table size.
    """
    loc = _law_log_loss(card, posterior, x)
    if "nu" in posterior:
        nu: np.ndarray | float | None = np.asarray(posterior["nu"])[..., None]
    elif isinstance(card.nu, Prior):
        raise InputError(f"posterior draws lack nu (card {card.name!r} gives it a prior)")
    else:
        nu = card.nu
    return loc + observation_noise(card, np.asarray(posterior["sigma"])[..., None], nu, loc.shape, seed + 1)


def log_likelihood(card: ModelCard, posterior: Mapping[str, np.ndarray],
                   x: Mapping[str, np.ndarray], log_loss: np.ndarray) -> np.ndarray:
    """Pointwise log-likelihood of each run under each draw, shape (chain, draw, run) (numpy)."""
    loc = _law_log_loss(card, posterior, x)
    sigma = np.asarray(posterior["sigma"], dtype=float)[..., None]
    if card.likelihood == "normal":
        return stats.norm.logpdf(np.asarray(log_loss, dtype=float), loc, sigma)
    if "nu" in posterior:
        nu: np.ndarray | float | None = np.asarray(posterior["nu"], dtype=float)[..., None]
    elif isinstance(card.nu, Prior):
        raise InputError(f"posterior draws lack nu (card {card.name!r} gives it a prior)")
    else:
        nu = card.nu
    return stats.t.logpdf(np.asarray(log_loss, dtype=float), nu, loc, sigma)


def _law_log_loss(card: ModelCard, posterior: Mapping[str, np.ndarray], x: Mapping[str, np.ndarray]) -> np.ndarray:
    """The law's log loss of each run under each draw, (..., run), with numpy."""
    pooled = card.pooling.parameters if card.pooling else ()
    theta = {k: np.asarray(posterior[k], dtype=float) for k in card.law.parameters}
    theta = {k: v if k in pooled else v[..., None] for k, v in theta.items()}
    xn = {k: np.asarray(v, dtype=float) for k, v in x.items()}
    return np.asarray(card.law.log_loss(law_parameters(card, theta, xn), xn), dtype=float)
