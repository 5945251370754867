"""The law type, its registry and the array helpers every law computes with (numpy or JAX)."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import CardError

#: A numpy array, a JAX array (or tracer), or a Python number.
Array = Any
LogLossFn = Callable[[Mapping[str, Array], Mapping[str, Array]], Array]
OptimumFn = Callable[[Mapping[str, Array], Array], tuple[Array, Array]]


def array_namespace(*values: Any) -> ModuleType:
    """``jax.numpy`` if any of ``values`` (or of the values of a mapping among them) is a JAX array, else numpy.

    JAX tracers count as JAX arrays, so a law traced by NUTS computes with JAX; numpy
    draws of a saved fit compute with numpy, and JAX is never imported for them.
    """
    jax = sys.modules.get("jax")
    if jax is None:  # nothing can be a JAX array before JAX is imported
        return np
    for value in values:
        items = value.values() if isinstance(value, Mapping) else (value,)
        if any(isinstance(v, jax.Array) for v in items):
            import jax.numpy as jnp

            return jnp
    return np


def logsumexp(*terms: Array) -> Array:
    """ln(exp(t_1) + exp(t_2) + ...) of broadcasting arrays, accurate for terms orders of magnitude apart.

    JAX computes nested ``logaddexp`` (as NUTS always has, so sampled chains do not
    change); numpy the max-shift form, about 3x faster than numpy's ``logaddexp`` (whose
    loop is not vectorised) on 4,000 draws × 1,000 budgets. Both agree to ~1e-15.
    """
    xp = array_namespace(*terms)
    if xp is not np:
        return functools.reduce(xp.logaddexp, terms)
    top = functools.reduce(np.maximum, terms)
    return top + np.log(sum(np.exp(t - top) for t in terms))


@dataclass(frozen=True)
class Law:
    """A named scaling law.

    Attributes
    ----------
    name : str
        Registry key used by model cards (``law = "chinchilla"``).
    parameters : tuple of str
        Names of the law's parameters, each of which needs a prior in a card.
    log_loss : callable
        ``log_loss(theta, x) -> log L`` in nats, broadcasting over all inputs.
    covariates : tuple of str
        Run-table columns the law needs (as ``log_<column>`` in ``x``).
    compute_optimal : callable or None
        ``compute_optimal(theta, log_C) -> (log N_opt, log D_opt)`` for C = 6 N D in
        closed form; ``None`` means allocation minimises numerically.
    formula : str
        The law in plain text, for reports and ``--help``.
    no_optimum : str
        Why the law has no compute-optimal allocation (e.g. it has no term in tokens D),
        for the message with which allocation and decisions refuse it; empty (the
        default) when it has one, in closed form or numerically.
    unimodal : bool, default True
        Whether the loss along an IsoFLOP line has a single minimum in ln N (a monotone
        function of a sum of exponentials does). Numerical allocation searches a law that
        is not (a sharply broken power law) on a grid before golden section; a unimodal one
        goes straight to golden section.
    ridges : tuple of (str, str, float)
        ``(scale, exponent, log_reference)`` of each term ``scale / X^exponent`` whose
        scale and exponent the runs pin down only together: a narrow ridge
        ``ln scale ≈ c + exponent · ln X`` (X ~ e^20). The sampler then draws the term's
        value at ``X = exp(log_reference)``, ``ln scale − exponent · log_reference``
        (:func:`bayes_scaling.model.build_model`): the same posterior, in coordinates
        where the ridge is no longer curved by the exponent's bounded transform.
    """

    name: str
    parameters: tuple[str, ...]
    log_loss: LogLossFn
    covariates: tuple[str, ...] = ("params", "tokens")
    compute_optimal: OptimumFn | None = None
    formula: str = ""
    no_optimum: str = ""
    unimodal: bool = True
    ridges: tuple[tuple[str, str, float], ...] = ()


#: Reference model size and token count of the ridge coordinates (:attr:`Law.ridges`): the middle of
#: the ranges small-run tables span (1e7-1e11 parameters, 1e8-1e12 tokens), not a fitted value.
LOG_PARAMS_REF = math.log(1e9)
LOG_TOKENS_REF = math.log(1e10)


_REGISTRY: dict[str, Law] = {}


def register(law: Law) -> Law:
    """Add ``law`` to the registry (its name must be new) and return it."""
    if law.name in _REGISTRY:
        raise ValueError(f"a law named {law.name!r} is already registered")
    _REGISTRY[law.name] = law
    return law


def get_law(name: str) -> Law:
    """Return the registered law called ``name``.

    Raises
    ------
    CardError
        If no law has that name; the message lists the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise CardError(f"unknown law {name!r}; known laws: {', '.join(sorted(_REGISTRY))}") from None


def available_laws() -> list[str]:
    """Names of all registered laws, sorted."""
    return sorted(_REGISTRY)
