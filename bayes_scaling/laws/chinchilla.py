"""Chinchilla law (Hoffmann et al. 2022): L(N, D) = E + A / N^alpha + B / D^beta.

Also registers ``chinchilla-tied``, the equal-scaling special case beta = alpha (four
parameters E, A, B, alpha), so that LOO can weigh it against the free law.

Computed in log space, log L = logsumexp(log E, log A - alpha log N, log B - beta log D),
because the three terms differ by orders of magnitude and float32 (or a naive sum of
powers of 1e10-scale numbers) loses the small power-law terms. Every function computes
with numpy or JAX, whichever its inputs are (:func:`~bayes_scaling.laws.array_namespace`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..units import LOG_6
from .base import LOG_PARAMS_REF, LOG_TOKENS_REF, Array, Law, array_namespace, logsumexp, register


def log_loss(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """Natural log of the Chinchilla loss.

    Parameters
    ----------
    theta : mapping
        ``E`` (irreducible loss, nats), ``A``, ``B`` (scales), ``alpha``, ``beta``
        (exponents of parameters and tokens). Arrays broadcast against ``x``.
    x : mapping
        ``log_params`` (ln N, N in parameters) and ``log_tokens`` (ln D, D in tokens).

    Returns
    -------
    Array
        ln L(N, D), L in nats per token.
    """
    xp = array_namespace(theta, x)
    model_term = xp.log(theta["A"]) - theta["alpha"] * x["log_params"]
    data_term = xp.log(theta["B"]) - theta["beta"] * x["log_tokens"]
    return logsumexp(xp.log(theta["E"]), model_term, data_term)


def compute_optimal(theta: Mapping[str, Array], log_compute: Array) -> tuple[Array, Array]:
    """Closed-form compute-optimal allocation for C = 6 N D.

    G = (alpha A / (beta B))^(1/(alpha+beta)), N_opt = G (C/6)^(beta/(alpha+beta)),
    D_opt = (C/6) / N_opt.

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
    alpha, beta = theta["alpha"], theta["beta"]
    total = alpha + beta
    log_g = (xp.log(alpha) + xp.log(theta["A"]) - xp.log(beta) - xp.log(theta["B"])) / total
    log_c6 = log_compute - LOG_6
    log_n = log_g + beta / total * log_c6
    return log_n, log_c6 - log_n


CHINCHILLA = register(
    Law(
        name="chinchilla",
        parameters=("E", "A", "B", "alpha", "beta"),
        log_loss=log_loss,
        compute_optimal=compute_optimal,
        formula="L(N, D) = E + A / N^alpha + B / D^beta",
        ridges=(("A", "alpha", LOG_PARAMS_REF), ("B", "beta", LOG_TOKENS_REF)),
    )
)


def _tie(theta: Mapping[str, Array]) -> dict[str, Array]:
    return {**theta, "beta": theta["alpha"]}


def log_loss_tied(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """Natural log of the equal-scaling Chinchilla loss E + A/N^alpha + B/D^alpha (beta = alpha)."""
    return log_loss(_tie(theta), x)


def compute_optimal_tied(theta: Mapping[str, Array], log_compute: Array) -> tuple[Array, Array]:
    """Closed-form optimum with beta = alpha: N_opt ∝ C^(1/2) (see :func:`compute_optimal`)."""
    return compute_optimal(_tie(theta), log_compute)


CHINCHILLA_TIED = register(
    Law(
        name="chinchilla-tied",
        parameters=("E", "A", "B", "alpha"),
        log_loss=log_loss_tied,
        compute_optimal=compute_optimal_tied,
        formula="L(N, D) = E + A / N^alpha + B / D^alpha",
        ridges=(("A", "alpha", LOG_PARAMS_REF), ("B", "alpha", LOG_TOKENS_REF)),
    )
)
