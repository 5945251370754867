"""Routed-model law (Clark et al. 2022, "Unified Scaling Laws for Routed Language Models").

The loss of a mixture-of-experts model with E experts whose dense (per-token, active)
model has N parameters:

    ln L = a n + b ln Ê + c n ln Ê + d,   n = ln (N / N_ref),  N_ref = 1e9 parameters
    1 / Ê = 1 / (E − 1 + (1 / E_start − 1 / E_max)^(-1)) + 1 / E_max

Ê is the paper's saturating transform of the expert count: Ê(1) = E_start, Ê grows like E
in between and tends to E_max as E → ∞ (the gains of more experts run out). It needs
E_max > E_start (else the law is not defined: nan); a dense model is E = 1.

Differences from the paper's form, both linear reparameterisations of the same law:

- natural logs (the run table's loss in nats). In any other base a and b are the same,
  while c is divided and d multiplied by ln of that base relative to e (base 10: c_10 =
  c · ln 10, d_10 = d / ln 10, with L in the same unit);
- N is centred at N_ref = 1e9 parameters (a constant, not a parameter): d is ln L of a
  1e9-parameter model at Ê = 1 and b the effect of experts at that size, instead of
  extrapolations to N = 1 parameter. Uncentred, a and d (and b and c) are almost
  collinear (ln N ≈ 15–25) and NUTS needs far more steps; the uncentred coefficients are
  b_raw = b − c ln N_ref and d_raw = d − a ln N_ref (a and c unchanged).

The law has no term in training tokens D (Clark et al. trained every model on the same
tokens): at a fixed number of experts the loss falls with N at any budget, so there is no
compute-optimal split of C = 6 N D and allocation and decisions refuse the law.
Predictions need the number of experts of each model (``x["log_experts"]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import InputError
from .base import Array, Law, array_namespace, register

#: Model size (parameters) at which N is centred: n = ln (N / N_REF).
N_REF = 1e9
LOG_N_REF = math.log(N_REF)


def log_effective_experts(theta: Mapping[str, Array], log_experts: Array) -> Array:
    """ln Ê, the saturating transform of the number of experts E (module docstring), from ln E."""
    xp = array_namespace(theta, log_experts)
    e_start, e_max = theta["E_start"], theta["E_max"]
    offset = e_start * e_max / (e_max - e_start)  # (1 / E_start − 1 / E_max)^(-1), > 0 when E_max > E_start
    log_shifted = xp.log(xp.expm1(log_experts) + offset)  # ln (E − 1 + offset); E − 1 exact for E near 1
    return -xp.logaddexp(-log_shifted, -xp.log(e_max))


def log_loss(theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
    """Natural log of the routed-model loss.

    Parameters
    ----------
    theta : mapping
        ``a`` (exponent of N), ``b`` (of Ê at N = 1e9), ``c`` (interaction), ``d`` (ln L
        at N = 1e9, Ê = 1), ``E_start``, ``E_max`` (Ê at one and at infinitely many
        experts). Arrays broadcast against ``x``.
    x : mapping
        ``log_params`` (ln N, N the dense model's parameters) and ``log_experts`` (ln E,
        E the number of experts; 1 for a dense model). ``log_tokens`` is not used.

    Returns
    -------
    Array
        ln L(N, E), L in nats per token.

    Raises
    ------
    InputError
        If ``x`` has no ``log_experts``.
    """
    if "log_experts" not in x:
        raise InputError("law 'moe' needs the number of experts of each model: give the run table an `experts` "
                         "column, or predict with covariates={'experts': E} (CLI: --covariate experts=E)")
    n = x["log_params"] - LOG_N_REF
    log_e = log_effective_experts(theta, x["log_experts"])
    return theta["a"] * n + theta["b"] * log_e + theta["c"] * n * log_e + theta["d"]


MOE = register(
    Law(
        name="moe",
        parameters=("a", "b", "c", "d", "E_start", "E_max"),
        log_loss=log_loss,
        covariates=("params", "tokens", "experts"),
        formula="ln L = a n + b ln Ê + c n ln Ê + d, n = ln(N / 1e9), "
                "1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)^-1) + 1/E_max",
        no_optimum="it has no term in training tokens D, so at any budget the loss falls with N and no "
                   "compute-optimal split of C = 6 N D exists; predict the loss of given models (N, experts) instead",
    )
)
