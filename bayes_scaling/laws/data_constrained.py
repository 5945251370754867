"""Data-constrained law (Muennighoff et al. 2023): Chinchilla's law on effective data and size.

Repeated tokens are worth less than fresh ones, and parameters beyond what the unique
data can use are worth less than useful ones:

    L(N, D) = E + A / N'^alpha + B / D'^beta
    D' = U_D + U_D R*_D (1 − exp(−R_D / R*_D)),   U_D = min(D, unique tokens),  R_D = D / U_D − 1
    N' = U_N + U_N R*_N (1 − exp(−R_N / R*_N)),   U_N = min(N, N_opt(U_D)),    R_N = N / U_N − 1

N_opt(U_D) is the Chinchilla-optimal model size for U_D tokens under the same E, A, B,
alpha, beta: ln N_opt = (ln(alpha A) − ln(beta B) + beta ln U_D) / alpha (as in the paper,
which derives U_N from the single-epoch law). R*_D and R*_N are the "half-lives" of
repetition: repeating data R*_D times (or making the model R*_N times larger than
useful) loses 1 − 1/e of the value of fresh data (or useful parameters).

Everything is in log space (``expm1``/``log1p`` keep the few-epoch regime exact), with
numpy or JAX, whichever the inputs are.

Assumption for allocation: without ``log_unique_tokens`` in ``x`` the unique data are
unlimited (U_D = D, so D' = D). Then every IsoFLOP optimum sits at N = N_opt(D), where
N' = N, and the compute-optimal allocation is exactly Chinchilla's, in closed form.
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import LOG_PARAMS_REF, LOG_TOKENS_REF, Array, Law, array_namespace, register
from .chinchilla import compute_optimal as chinchilla_optimal
from .chinchilla import log_loss as chinchilla_log_loss


def _log_effective(log_unique: Array, log_total: Array, r_star: Array) -> Array:
    """ln(U + U R* (1 − exp(−R/R*))) with R = total/U − 1 ≥ 0, from logs of U and total."""
    xp = array_namespace(log_unique, log_total, r_star)
    repetitions = xp.expm1(log_total - log_unique)
    return log_unique + xp.log1p(-r_star * xp.expm1(-repetitions / r_star))


def effective_log_counts(theta: Mapping[str, Array], x: Mapping[str, Array]) -> tuple[Array, Array]:
    """ln N' (effective parameters) and ln D' (effective tokens) of each run.

    Parameters
    ----------
    theta : mapping
        ``E``, ``A``, ``B``, ``alpha``, ``beta``, ``R_star_N``, ``R_star_D``.
    x : mapping
        ``log_params``, ``log_tokens`` and, optionally, ``log_unique_tokens`` (ln of the
        unique tokens in the training set); absent means unlimited unique data.

    Returns
    -------
    (Array, Array)
        ln N' in parameters and ln D' in tokens.
    """
    xp = array_namespace(theta, x)
    log_d = x["log_tokens"]
    log_ud = xp.minimum(log_d, x["log_unique_tokens"]) if "log_unique_tokens" in x else log_d
    log_d_eff = _log_effective(log_ud, log_d, theta["R_star_D"])
    alpha, beta = theta["alpha"], theta["beta"]
    log_n_useful = (xp.log(alpha * theta["A"]) - xp.log(beta * theta["B"]) + beta * log_ud) / alpha
    log_un = xp.minimum(x["log_params"], log_n_useful)
    log_n_eff = _log_effective(log_un, x["log_params"], theta["R_star_N"])
    return log_n_eff, log_d_eff


def log_loss(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """Natural log of the data-constrained loss (nats per token); see the module docstring."""
    log_n_eff, log_d_eff = effective_log_counts(theta, x)
    return chinchilla_log_loss(theta, {"log_params": log_n_eff, "log_tokens": log_d_eff})


def compute_optimal(theta: Mapping[str, Array], log_compute: Array) -> tuple[Array, Array]:
    """Compute-optimal ln N_opt and ln D_opt for C = 6 N D, assuming unlimited unique tokens.

    With unlimited unique data the optimum is Chinchilla's closed form (module docstring).
    """
    return chinchilla_optimal(theta, log_compute)


DATA_CONSTRAINED = register(
    Law(
        name="data-constrained",
        parameters=("E", "A", "B", "alpha", "beta", "R_star_N", "R_star_D"),
        log_loss=log_loss,
        covariates=("params", "tokens", "unique_tokens"),
        compute_optimal=compute_optimal,
        formula="L(N, D) = E + A / N'^alpha + B / D'^beta, N' and D' discounting excess parameters and repeated tokens",
        ridges=(("A", "alpha", LOG_PARAMS_REF), ("B", "beta", LOG_TOKENS_REF)),
    )
)
