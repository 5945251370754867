"""Kaplan law (Kaplan et al. 2020, eq. 1.5): L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.

Computed in log space, ln L = alpha_D · logsumexp((alpha_N/alpha_D)(ln N_c − ln N), ln D_c − ln D):
N_c and D_c are ~1e13–1e14, so the ratios span many decades and a sum of powers in
float32 (or even float64 without logs) loses precision. The law has no irreducible
term: L → 0 as N, D → ∞. Computes with numpy or JAX, whichever its inputs are.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..units import LOG_6
from .base import Array, Law, array_namespace, logsumexp, register


def log_loss(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """Natural log of the Kaplan loss.

    Parameters
    ----------
    theta : mapping
        ``N_c`` (parameters), ``D_c`` (tokens), ``alpha_N``, ``alpha_D`` (exponents).
    x : mapping
        ``log_params`` (ln N, N in parameters) and ``log_tokens`` (ln D, D in tokens).

    Returns
    -------
    Array
        ln L(N, D), L in nats per token.
    """
    xp = array_namespace(theta, x)
    ratio = theta["alpha_N"] / theta["alpha_D"]
    model_term = ratio * (xp.log(theta["N_c"]) - x["log_params"])
    data_term = xp.log(theta["D_c"]) - x["log_tokens"]
    return theta["alpha_D"] * logsumexp(model_term, data_term)


def compute_optimal(theta: Mapping[str, Array], log_compute: Array) -> tuple[Array, Array]:
    """Closed-form compute-optimal allocation for C = 6 N D.

    The outer power is monotone, so the optimum minimises (N_c/N)^p + 6 D_c N / C with
    p = alpha_N/alpha_D: N_opt^(p+1) = p N_c^p (C/6) / D_c, i.e. N_opt ∝ C^(1/(p+1)).

    Parameters
    ----------
    theta : mapping
        Law parameters (see :func:`log_loss`).
    log_compute : Array
        ln C, C in FLOPs.

    Returns
    -------
    (Array, Array)
        ln N_opt (parameters) and ln D_opt (tokens).
    """
    xp = array_namespace(theta, log_compute)
    p = theta["alpha_N"] / theta["alpha_D"]
    log_c6 = log_compute - LOG_6
    log_n = (xp.log(p) + p * xp.log(theta["N_c"]) + log_c6 - xp.log(theta["D_c"])) / (p + 1)
    return log_n, log_c6 - log_n


KAPLAN = register(
    Law(
        name="kaplan",
        parameters=("N_c", "D_c", "alpha_N", "alpha_D"),
        log_loss=log_loss,
        compute_optimal=compute_optimal,
        formula="L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
    )
)
