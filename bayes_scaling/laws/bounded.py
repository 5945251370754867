"""Bounded law: Chinchilla's power laws below, a loss plateau E + G above (a saturating excess).

    L(N, D) = E + (1 / R + 1 / G)^(-1),   R = A / N^alpha + B / D^beta

The excess loss over E is the harmonic combination of Chinchilla's excess R and a
ceiling G > 0: for large models R ≪ G and L ≈ E + R (Chinchilla's law, with A, B,
alpha, beta meaning what they mean there); for vanishingly small models or data R → ∞
and L → E + G from below, a plateau instead of a loss growing without bound. So
E < L < E + G everywhere. E + G is the loss of a model that has learnt (almost) nothing:
at most ln V nats for a vocabulary of V tokens (uniform guessing), about the unigram
entropy for one that has learnt only token frequencies.

This is the sigmoid-in-log-scale form of Alabdulmohsin, Neyshabur & Zhai (2022, "Revisiting
Neural Scaling Laws in Language and Vision", estimator M4 with its exponent fixed to 1:
(L − E) / (E + G − L) = R / G), here with Chinchilla's two power laws as R. Small models
sit below the straight power law in a log-log plot; this law bends towards the
plateau there instead of letting them drag the exponents.

In log space: ln L = logaddexp(ln E, ln R − softplus(ln R − ln G)), ln R a logsumexp of
the two terms. Along an IsoFLOP line L increases with R, so the compute-optimal
allocation minimises R: it is Chinchilla's closed form, whatever G.
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import LOG_PARAMS_REF, LOG_TOKENS_REF, Array, Law, array_namespace, logsumexp, register
from .chinchilla import compute_optimal as chinchilla_optimal


def log_excess(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """ln (L − E) = ln (1/R + 1/G)^(-1), R = A / N^alpha + B / D^beta (see the module docstring)."""
    xp = array_namespace(theta, x)
    log_r = logsumexp(xp.log(theta["A"]) - theta["alpha"] * x["log_params"],
                      xp.log(theta["B"]) - theta["beta"] * x["log_tokens"])
    return log_r - xp.logaddexp(0.0, log_r - xp.log(theta["G"]))


def log_loss(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """Natural log of the bounded loss.

    Parameters
    ----------
    theta : mapping
        ``E`` (irreducible loss, nats), ``G`` (height of the plateau above E, nats),
        ``A``, ``B`` (scales), ``alpha``, ``beta`` (exponents). Arrays broadcast against ``x``.
    x : mapping
        ``log_params`` (ln N, N in parameters) and ``log_tokens`` (ln D, D in tokens).

    Returns
    -------
    Array
        ln L(N, D), L in nats per token, between ln E and ln (E + G).
    """
    xp = array_namespace(theta, x)
    return xp.logaddexp(xp.log(theta["E"]), log_excess(theta, x))


def compute_optimal(theta: Mapping[str, Array], log_compute: Array) -> tuple[Array, Array]:
    """Compute-optimal ln N_opt and ln D_opt for C = 6 N D: Chinchilla's closed form (L is increasing in R)."""
    return chinchilla_optimal(theta, log_compute)


BOUNDED = register(
    Law(
        name="bounded",
        parameters=("E", "G", "A", "B", "alpha", "beta"),
        log_loss=log_loss,
        compute_optimal=compute_optimal,
        formula="L(N, D) = E + 1 / (1 / R + 1 / G), R = A / N^alpha + B / D^beta",
        ridges=(("A", "alpha", LOG_PARAMS_REF), ("B", "beta", LOG_TOKENS_REF)),
    )
)
