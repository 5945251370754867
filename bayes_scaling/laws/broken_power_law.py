"""Broken power law in the data term (Caballero et al. 2022, "Broken Neural Scaling Laws"), one break.

    L(N, D) = E + A / N^alpha + B / D^beta · (1 + (D / D_b)^(1/f))^(-c f)

Well below the break D_b the data term is Chinchilla's B / D^beta; well above it the
exponent is beta + c (c ≥ 0 steepens it, as Caballero et al.'s c_1 > 0). The smoothness
f > 0 is the width of the transition in e-folds of D: f → 0 is a sharp corner at D_b.

Parameterisation (what NUTS samples): E, A, B, alpha, beta as in Chinchilla; ``log_D_b``
= ln D_b (tokens) on the real line, so that the break moves linearly in log space and a
Normal prior spans decades; ``c`` ≥ 0 and ``f`` > 0 (positive priors, sampled on the log
scale by NumPyro). In log space the factor is a softplus,

    ln data term = ln B − beta ln D − c f · softplus((ln D − log_D_b) / f),

computed with ``logaddexp(0, ·)``, so that neither (D / D_b)^(1/f) nor its power
overflows for sharp breaks far from the data. With c = 0 the law is Chinchilla's and
the break and smoothness are left to their priors.

Allocation has no closed form: it minimises along the IsoFLOP line numerically. A sharp
break (small f) can give the IsoFLOP curve two local minima, so the search starts from a
grid (:func:`bayes_scaling.allocation.numeric_optimal_log_params`).
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import LOG_PARAMS_REF, LOG_TOKENS_REF, Array, Law, array_namespace, logsumexp, register


def log_data_term(theta: Mapping[str, Array], log_tokens: Array) -> Array:
    """ln of B / D^beta · (1 + (D / D_b)^(1/f))^(-c f), D in tokens (see the module docstring)."""
    xp = array_namespace(theta, log_tokens)
    f = theta["f"]
    softplus = xp.logaddexp(0.0, (log_tokens - theta["log_D_b"]) / f)
    return xp.log(theta["B"]) - theta["beta"] * log_tokens - theta["c"] * f * softplus


def log_loss(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """Natural log of the broken-power-law loss.

    Parameters
    ----------
    theta : mapping
        ``E`` (irreducible loss, nats), ``A``, ``B`` (scales), ``alpha``, ``beta``
        (exponents of parameters and, below the break, tokens), ``c`` (change of the
        token exponent past the break), ``log_D_b`` (ln of the break, D in tokens) and
        ``f`` (smoothness, e-folds of D). Arrays broadcast against ``x``.
    x : mapping
        ``log_params`` (ln N, N in parameters) and ``log_tokens`` (ln D, D in tokens).

    Returns
    -------
    Array
        ln L(N, D), L in nats per token.
    """
    xp = array_namespace(theta, x)
    model_term = xp.log(theta["A"]) - theta["alpha"] * x["log_params"]
    return logsumexp(xp.log(theta["E"]), model_term, log_data_term(theta, x["log_tokens"]))


BROKEN_POWER_LAW = register(
    Law(
        name="broken-power-law",
        parameters=("E", "A", "B", "alpha", "beta", "c", "log_D_b", "f"),
        log_loss=log_loss,
        formula="L(N, D) = E + A / N^alpha + B / D^beta · (1 + (D / D_b)^(1/f))^(-c·f), D_b = exp(log_D_b)",
        unimodal=False,  # a sharp break can give an IsoFLOP line two valleys
        ridges=(("A", "alpha", LOG_PARAMS_REF), ("B", "beta", LOG_TOKENS_REF)),
    )
)
