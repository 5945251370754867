"""Sampling the posterior: NUTS from a robust start, or the classic approach-3 baseline."""

from __future__ import annotations

import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import biject_to
from numpyro.handlers import seed as seed_handler
from numpyro.handlers import trace
from numpyro.infer import MCMC, NUTS, Predictive
from numpyro.infer.util import potential_energy, unconstrain_fn
from scipy.optimize import minimize

from .cards import ModelCard, Prior, load_card
from .classic import fit_huber
from .data import validate_runs
from .errors import InputError
from .fit import Fit, build_datatree
from .model import build_model, covariates
from .tables import check_seed

METHODS = ("nuts", "huber")
#: Tables with more rows (e.g. loss curves: many checkpoints per run) start from a pre-fit
#: on a random subsample of SUBSAMPLE_ROWS rows and warm up for at most LARGE_TABLE_WARMUP
#: iterations on the full table (see :func:`_prefit`).
LARGE_TABLE_ROWS = 2_000
SUBSAMPLE_ROWS = 1_000
LARGE_TABLE_WARMUP = 200
#: Prior draws from which the MAP that starts NUTS is searched (laws without a classic fit).
MAP_STARTS = 8


def fit(
    runs: pd.DataFrame,
    card: str | ModelCard = "chinchilla",
    *,
    method: str = "nuts",
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    target_accept: float = 0.9,
    bootstrap: int = 1000,
    progress: bool = False,
    param_count: str = "total",
) -> Fit:
    """Fit a scaling law to a run table.

    Parameters
    ----------
    runs : DataFrame
        Validated run table (:func:`bayes_scaling.load_runs`).
    card : str or ModelCard, default "chinchilla"
        Bundled card name, card path, or a loaded card.
    method : {"nuts", "huber"}, default "nuts"
        ``"nuts"``: Bayesian posterior by NUTS with a dense mass matrix.
        ``"huber"``: Chinchilla approach 3 with ``bootstrap`` resamples, stored as
        draws so that every downstream function treats both alike.
    chains, warmup, draws : int, default 4, 1000, 1000
        NUTS chains, warm-up iterations and kept draws per chain. Tables of more than
        :data:`LARGE_TABLE_ROWS` rows (loss curves) take their starting points and mass
        matrix from a pre-fit on a subsample and warm up for at most
        :data:`LARGE_TABLE_WARMUP` iterations on the full table.
    seed : int, default 0
        Seed of the sampler (and of the bootstrap); same seed, same draws.
    target_accept : float, default 0.9
        NUTS target acceptance; 0.9 removes the few divergences 0.8 leaves on this ridge.
    bootstrap : int, default 1000
        Resamples for ``method="huber"``.
    progress : bool, default False
        Show a progress bar while sampling.
    param_count : {"total", "non_embedding"}, default "total"
        Fit on the ``params`` column, or on ``params - embedding_params`` (Kaplan's
        counting); allocations and predictions then use the same counting.

    Returns
    -------
    Fit
        With a card that has a ``[discrepancy]`` table, a NUTS fit also stores draws of
        the discrepancy scale tau and slope (:mod:`bayes_scaling.discrepancy`); learning
        tau by leave-future-out adds two small inner fits (2 chains × up to 300 + 300 draws);
        with ``misfit_ratio`` the fit's residuals inform tau too.
    """
    card = card if isinstance(card, ModelCard) else load_card(card)
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)} but got {method!r}")
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if int(value) < 1:
            raise InputError(f"{name} must be a positive integer but got {value}")
    if not 0 < target_accept < 1:
        raise InputError(f"target_accept must be in the interval (0, 1) but got {target_accept}")
    check_seed(seed)
    if method == "huber" and not int(bootstrap) >= 2:
        raise InputError(f"bootstrap must be at least 2 resamples for method 'huber' (its draws) but got {bootstrap}")
    runs = validate_runs(runs, label=runs.attrs.get("source", "<DataFrame>"))
    x = covariates(runs, card, param_count)
    log_loss = np.log(runs["loss"].to_numpy(float))
    start = time.perf_counter()
    if method == "huber":
        if card.law.name != "chinchilla" or card.pooling:
            raise InputError(f"method 'huber' (approach 3) fits the unpooled chinchilla law only, "
                             f"not card {card.name!r}")
        result = fit_huber(runs.assign(params=np.exp(x["log_params"])), bootstrap=bootstrap, seed=seed)
        posterior = {k: result.bootstrap[k].to_numpy()[None, :] for k in card.law.parameters}
        posterior["sigma"] = np.full_like(posterior["E"], result.sigma)
        if isinstance(card.nu, Prior):
            # A fixed nu stands in for the prior's: the bootstrap does not estimate tails.
            posterior["nu"] = np.full_like(posterior["E"], 5.0)
        sample_stats = None
        extra = {"point_estimate": {k: float(v) for k, v in result.point.items()},
                 "bootstrap_converged": result.converged_fraction}
    else:
        posterior, sample_stats = _sample_nuts(card, x, log_loss, runs, chains=chains, warmup=warmup,
                                               draws=draws, seed=seed, target_accept=target_accept,
                                               progress=progress)
        extra = {}
    if card.discrepancy is not None and method == "nuts":
        # tau from the card's prior, or learnt by internal leave-future-out splits (bayes_scaling.discrepancy);
        # approach 3 stays the classic baseline, without one.
        from .discrepancy import INNER_DRAWS, discrepancy_posterior

        shape = np.shape(posterior["sigma"])[:2]
        more, extra["discrepancy"] = discrepancy_posterior(card, runs, shape, seed=seed, param_count=param_count,
                                                           inner_draws=min(INNER_DRAWS, warmup, draws),
                                                           posterior=posterior)
        posterior.update(more)
    elapsed = time.perf_counter() - start
    tree = build_datatree(card, runs, x, log_loss, posterior, sample_stats, seed=seed)
    result = Fit(tree, card=card, method=method, seed=seed, elapsed_s=elapsed, extra=extra)
    result.attrs["runs_source"] = str(runs.attrs.get("source", ""))
    result.attrs["runs_sha256"] = str(runs.attrs.get("sha256", ""))
    result.attrs["param_count"] = param_count
    return result


def _chain_method(chains: int) -> str:
    # "parallel" with fewer devices than chains silently runs them one after another.
    return "parallel" if jax.local_device_count() >= chains > 1 else "vectorized"


def _initial_values(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray,
                    runs: pd.DataFrame, chains: int, seed: int) -> dict[str, jnp.ndarray]:
    """Per-chain unconstrained starting points jittered around a robust point estimate.

    The unpooled Chinchilla law starts from approach 3 (Huber); every other card from the
    best of :data:`MAP_STARTS` MAPs (:func:`_map_start`). Starting all chains from one
    point would hide multimodality from R-hat; the jitter (10% on scales, ±0.03 on
    exponents; ±0.1 in unconstrained space after a MAP) keeps them apart but inside the
    main mode.
    """
    rng = np.random.default_rng(seed)
    model = build_model(card)
    if card.law.name != "chinchilla" or card.pooling:
        best, unravel = _map_start(card, x, log_loss, seed)
        starts = [unravel(jnp.asarray(best + rng.uniform(-0.1, 0.1, best.shape))) for _ in range(chains)]
        return {k: jnp.stack([s[k] for s in starts]) for k in starts[0]}
    point = fit_huber(runs.assign(params=np.exp(x["log_params"])), n_best=8).point
    resid = log_loss - np.asarray(card.law.log_loss({k: jnp.asarray(v) for k, v in point.items()}, x))
    point["sigma"] = float(np.clip(np.std(resid), 1e-3, 0.5))
    if isinstance(card.nu, Prior):
        point["nu"] = 5.0
    out: dict[str, list] = {k: [] for k in point}
    for _ in range(chains):
        jittered = {}
        for k, v in point.items():
            if k in ("alpha", "beta"):
                jittered[k] = v + rng.uniform(-0.03, 0.03)
            else:
                jittered[k] = v * float(np.exp(rng.uniform(-0.1, 0.1)))
        support = {k: p.to_numpyro().support for k, p in card.priors.items()}
        for k, s in support.items():
            lo, hi = getattr(s, "lower_bound", -np.inf), getattr(s, "upper_bound", np.inf)
            jittered[k] = float(np.clip(jittered[k], np.asarray(lo) + 1e-6, np.asarray(hi) - 1e-6))
        unc = unconstrain_fn(model, (x,), {"log_loss": log_loss}, jittered)
        for k, v in unc.items():
            out[k].append(v)
    return {k: jnp.stack(v) for k, v in out.items()}


def _map_start(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray, seed: int,
               starts: int = MAP_STARTS):
    """Best unconstrained MAP (flat vector and its unravel function) over prior-draw starts.

    The posterior is multimodal (a single MAP from the prior median can land at
    alpha ≈ 0.9), so L-BFGS runs from ``starts`` prior draws and the lowest potential wins.
    """
    model = build_model(card)
    args, kwargs = ({k: jnp.asarray(v) for k, v in x.items()},), {"log_loss": jnp.asarray(log_loss)}
    sites = trace(seed_handler(model, seed)).get_trace(*args, **kwargs)
    latent = [n for n, site in sites.items() if site["type"] == "sample" and not site["is_observed"]]
    prior = Predictive(model, num_samples=starts, return_sites=latent)(jax.random.PRNGKey(seed), *args)
    unconstrained = {n: biject_to(sites[n]["fn"].support).inv(prior[n]) for n in latent}
    unravel = ravel_pytree({n: v[0] for n, v in unconstrained.items()})[1]
    u0 = np.asarray(jax.vmap(lambda u: ravel_pytree(u)[0])(unconstrained), dtype=float)
    value_and_grad = jax.jit(jax.value_and_grad(lambda u: potential_energy(model, args, kwargs, unravel(u))))

    def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(jnp.asarray(u))
        return float(value), np.asarray(grad, dtype=float)

    best = None
    for u in u0:
        if not np.isfinite(objective(u)[0]):
            continue
        res = minimize(objective, u, jac=True, method="L-BFGS-B", options={"maxiter": 1000})
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise InputError(f"card {card.name!r}: the log density is not finite at any of {starts} prior draws; "
                         "check the priors against the run table's scale")
    return best.x, unravel


def _sample_nuts(card: ModelCard, x, log_loss, runs, *, chains, warmup, draws, seed, target_accept,
                 progress):
    model = build_model(card)
    if len(log_loss) > LARGE_TABLE_ROWS:
        init, inverse_mass = _prefit(card, x, log_loss, runs, chains=chains, seed=seed, target_accept=target_accept)
        kernel = NUTS(model, dense_mass=True, target_accept_prob=target_accept, inverse_mass_matrix=inverse_mass,
                      adapt_mass_matrix=False)
        warmup = min(warmup, LARGE_TABLE_WARMUP)
    else:
        kernel = NUTS(model, dense_mass=True, target_accept_prob=target_accept)
        init = _initial_values(card, x, log_loss, runs, chains, seed)
        if chains == 1:
            init = {k: v[0] for k, v in init.items()}
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method=_chain_method(chains), progress_bar=progress)
    xj = {k: jnp.asarray(v) for k, v in x.items()}
    mcmc.run(jax.random.PRNGKey(seed), xj, log_loss=jnp.asarray(log_loss), init_params=init,
             extra_fields=("diverging", "num_steps", "energy", "accept_prob", "adapt_state.step_size"))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    num_steps = np.asarray(extra["num_steps"])
    stats = {
        "diverging": np.asarray(extra["diverging"]),
        "n_steps": num_steps,
        "tree_depth": np.floor(np.log2(np.maximum(num_steps, 1))).astype(int) + 1,
        "energy": np.asarray(extra["energy"]),
        "acceptance_rate": np.asarray(extra["accept_prob"]),
        "step_size": np.asarray(extra["adapt_state.step_size"]),
    }
    return samples, stats


def _prefit(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray, runs: pd.DataFrame, *,
            chains: int, seed: int, target_accept: float):
    """Starting points and a dense inverse mass matrix for a large table, from a subsample.

    A full warm-up costs ~2,000 gradients per chain, each over every row (~10 ms at
    250,000 rows). NUTS on a random subsample of :data:`SUBSAMPLE_ROWS` rows is cheap and
    lands in the same mode; as the posterior covariance shrinks like 1/rows, the
    covariance of its unconstrained draws times ``m / n`` is a good inverse mass matrix
    for the full table, which then only adapts its step size. (The sampler's own adapted
    matrix will not do: its shrinkage towards 1e-3·I swamps the tiny variances along the
    A–alpha and B–beta ridges once scaled down.) Each full-table chain starts where one
    subsample chain ended.
    """
    n, m = len(log_loss), SUBSAMPLE_ROWS
    idx = np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
    sub_x = {k: np.asarray(v)[idx] for k, v in x.items()}
    init = _initial_values(card, sub_x, log_loss[idx], runs.iloc[idx], chains, seed)
    if chains == 1:
        init = {k: v[0] for k, v in init.items()}
    mcmc = MCMC(NUTS(build_model(card), dense_mass=True, target_accept_prob=target_accept), num_warmup=400,
                num_samples=max(1000 // chains, 50), num_chains=chains, chain_method=_chain_method(chains),
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), {k: jnp.asarray(v) for k, v in sub_x.items()},
             log_loss=jnp.asarray(log_loss[idx]), init_params=init, extra_fields=tuple(f"z.{k}" for k in init))
    fields = mcmc.get_extra_fields()
    flat = np.asarray(jax.vmap(lambda u: ravel_pytree(u)[0])({k: fields[f"z.{k}"] for k in init}))
    return mcmc.last_state.z, jnp.asarray(np.atleast_2d(np.cov(flat, rowvar=False)) * (m / n))


__all__ = ["METHODS", "fit"]
