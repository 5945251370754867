"""Run tables generated from any registered law with a known truth (helpers for the law tests)."""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd

import bayes_scaling as bs

#: Kaplan et al. (2020) eq. 1.5 values.
KAPLAN_TRUTH = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
#: Muennighoff et al. (2023)-like values; R* made small enough to be visible in a small grid.
DATA_CONSTRAINED_TRUTH = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353,
                          "R_star_N": 5.3, "R_star_D": 15.4}


#: One smooth break in the data exponent (0.15 -> 0.55) at 1e10 tokens, about an e-fold wide: at 1e12
#: tokens the data term is 0.04 nats instead of the unbroken 0.25.
BROKEN_TRUTH = {"E": 1.8, "A": 400.0, "B": 16.0, "alpha": 0.34, "beta": 0.15, "c": 0.4,
                "log_D_b": float(np.log(1e10)), "f": 0.5}
#: Chinchilla-like terms with a plateau 5 nats above E, reached by the smallest models of BOUNDED_GRID.
BOUNDED_TRUTH = {"E": 1.8, "G": 5.0, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.3}
#: Routed models: experts help (b < 0), less for larger dense models (c > 0), saturating at 300 experts.
MOE_TRUTH = {"a": -0.08, "b": -0.05, "c": 0.004, "d": 0.8, "E_start": 1.8, "E_max": 300.0}


def factorial_grid(params: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (N, D) pair of the two axes, as two flat arrays."""
    n, d = np.meshgrid(params, tokens, indexing="ij")
    return n.ravel(), d.ravel()


def moe_runs(seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
    """Six dense sizes (1e7 to 3e9) × 1 to 512 experts, every model on 130B tokens (as Clark et al.)."""
    n, experts = factorial_grid(np.logspace(7, 9.5, 6), 2.0 ** np.arange(10))
    return law_runs("moe", MOE_TRUTH, n, np.full(n.size, 1.3e11), seed=seed, noise=noise, experts=experts)


def law_runs(law: str, truth: Mapping[str, float], params: np.ndarray, tokens: np.ndarray, *, seed: int,
             noise: float = 0.01, **columns: np.ndarray) -> pd.DataFrame:
    """Runs at (params, tokens) with loss from ``law`` at ``truth`` times log-normal noise.

    Extra ``columns`` (e.g. ``unique_tokens``) go into the table and, as ``log_<name>``, into the law.
    """
    x = {"log_params": jnp.log(params), "log_tokens": jnp.log(tokens),
         **{f"log_{k}": jnp.log(v) for k, v in columns.items()}}
    clean = np.exp(np.asarray(bs.get_law(law).log_loss({k: jnp.asarray(v) for k, v in truth.items()}, x)))
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"params": params, "tokens": tokens, **columns})
    table["loss"] = clean * np.exp(noise * rng.standard_normal(len(table)))
    table.attrs["source"] = f"{law} law (seed {seed})"
    return table


def isoflop_grid(budgets: tuple[float, ...] = (1e18, 1e19, 1e20, 1e21),
                 sizes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(params, tokens) on IsoFLOP lines, C = 6 N D, N spread over 1.5 decades around 0.06 C^0.5."""
    params, tokens = [], []
    for c in budgets:
        for n in 0.06 * np.sqrt(c) * np.logspace(-0.75, 0.75, sizes):
            params.append(n)
            tokens.append(c / (6 * n))
    return np.array(params), np.array(tokens)


#: Two groups sharing alpha and beta; group "b" differs in E, A and B.
GROUP_TRUTH = {"a": {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37},
               "b": {"E": 2.1, "A": 650.0, "B": 1500.0, "alpha": 0.35, "beta": 0.37}}


def two_group_runs(seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
    """Group "a": 4 IsoFLOP budgets × 8 sizes; group "b": 2 budgets × 5 sizes (few runs)."""
    tables = []
    for group, budgets, sizes in (("a", (1e18, 1e19, 1e20, 1e21), 8), ("b", (3e18, 3e19), 5)):
        n, d = isoflop_grid(budgets, sizes)
        table = law_runs("chinchilla", GROUP_TRUTH[group], n, d, seed=seed + len(tables), noise=noise)
        tables.append(table.assign(group=group))
    runs = pd.concat(tables, ignore_index=True)
    runs.attrs["source"] = f"two groups (seed {seed})"
    return runs


def embedding_runs(seed: int = 0, noise: float = 0.005) -> pd.DataFrame:
    """Chinchilla law in non-embedding parameters; ``params`` is the total (with embeddings).

    Embeddings are 5e7 · (N_ne / 1e8)^0.5 parameters: more than the rest of the model below
    ~2.5e7 non-embedding parameters, a few percent at 1e10 (as for a ~50k vocabulary).
    """
    n_ne, d = isoflop_grid()
    runs = law_runs("chinchilla", bs.EXAMPLE_TRUTH, n_ne, d, seed=seed, noise=noise)
    runs["embedding_params"] = 5e7 * (n_ne / 1e8) ** 0.5
    runs["params"] = n_ne + runs["embedding_params"]
    return runs
