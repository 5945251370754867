"""The card's Chinchilla model in PyMC, sampled by PyMC's default NUTS or by nutpie.

Used by ``bench_fit.py`` and ``bench_sampler.py`` (imported by path, like ``_common``).
PyMC and nutpie are in the ``bench`` extra only: ``pip install -c constraints.txt -e ".[bench]"``.
"""

from __future__ import annotations

import os
import time
from typing import Any


def pymc_model(card, runs):
    """The card's Chinchilla model in PyMC: same priors, law (log space) and likelihood."""
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt

    names = {"loc": "mu", "scale": "sigma", "low": "lower", "high": "upper"}
    classes = {"Normal": pm.Normal, "LogNormal": pm.LogNormal, "HalfNormal": pm.HalfNormal,
               "TruncatedNormal": pm.TruncatedNormal, "Gamma": pm.Gamma, "Exponential": pm.Exponential}

    def prior(name, p):
        kwargs = {names.get(k, k): v for k, v in p.kwargs.items()}
        if p.dist == "Exponential":
            kwargs = {"lam": kwargs["rate"]}
        return classes[p.dist](name, **kwargs)

    log_n = np.log(runs["params"].to_numpy(float))
    log_d = np.log(runs["tokens"].to_numpy(float))
    with pm.Model() as model:
        th = {k: prior(k, p) for k, p in card.priors.items()}
        loc = pt.logaddexp(pt.logaddexp(pt.log(th["E"]), pt.log(th["A"]) - th["alpha"] * log_n),
                           pt.log(th["B"]) - th["beta"] * log_d)
        sigma = prior("sigma", card.sigma)
        obs = np.log(runs["loss"].to_numpy(float))
        if card.likelihood == "normal":
            pm.Normal("log_loss", mu=loc, sigma=sigma, observed=obs)
        else:
            nu = prior("nu", card.nu) if not isinstance(card.nu, float) else card.nu
            pm.StudentT("log_loss", nu=nu, mu=loc, sigma=sigma, observed=obs)
    return model


def sampled_names(card) -> list[str]:
    """The parameters every sampler here draws: the law's, sigma, and nu when the card samples it."""
    return [*card.priors, "sigma", *([] if isinstance(card.nu, float) else ["nu"])]


def chain_figures(tree, names: list[str], wall: float) -> dict[str, Any]:
    """Min bulk ESS over ``names``, ESS/s, divergences and leapfrog steps per draw of an ArviZ result."""
    import arviz as az
    import numpy as np

    post = tree["posterior"].to_dataset() if hasattr(tree, "children") else tree.posterior
    stats = tree["sample_stats"].to_dataset() if hasattr(tree, "children") else tree.sample_stats
    ess = az.ess(post[names], method="bulk")
    min_ess = min(float(ess[n]) for n in names)
    steps = stats["n_steps"] if "n_steps" in stats else stats["tree_size"]
    return {"wall_s": wall, "min_ess_bulk": min_ess, "ess_per_s": min_ess / wall,
            "divergences": int(stats["diverging"].sum()), "steps_per_draw": float(np.mean(steps))}


def pymc_figures(card, runs, draws: int, tune: int, chains: int = 4) -> dict[str, Any]:
    """PyMC's default NUTS (jitter+adapt_diag), one process per core, compile included."""
    import pymc as pm

    start = time.perf_counter()
    with pymc_model(card, runs):
        # PyMC's default assumes half the CPUs are hyper-threads (1 core here): give it all.
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, os.cpu_count() or 1), random_seed=0,
                          progressbar=False, compute_convergence_checks=False, mp_ctx="forkserver")
    return chain_figures(idata, sampled_names(card), time.perf_counter() - start)


def nutpie_figures(card, runs, draws: int, tune: int, chains: int = 4, adaptation: str = "diag") -> dict[str, Any]:
    """nutpie (numba backend) on the PyMC model, chains on all cores; compile and sampling timed apart."""
    import nutpie

    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model(card, runs))
    compiled_at = time.perf_counter()
    tree = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=min(chains, os.cpu_count() or 1),
                         seed=0, progress_bar=False, adaptation=adaptation)
    wall = time.perf_counter() - start
    return {**chain_figures(tree, sampled_names(card), wall), "compile_s": compiled_at - start,
            "sample_s": wall - (compiled_at - start)}
