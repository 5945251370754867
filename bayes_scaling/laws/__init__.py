"""Scaling laws as pure array functions, registered by name.

A law maps parameters ``theta`` (a mapping of name -> array) and covariates ``x``
(a mapping with at least ``log_params`` and ``log_tokens``, natural logs of N and D)
to the natural log of the loss. Every function broadcasts, so the same code serves
the NumPyro model (scalar parameters, one value per run) and posterior summaries
(one value per draw × budget). Model cards refer to laws by :attr:`Law.name`.

The same function computes with JAX or with numpy (:func:`array_namespace`): NUTS
traces it with JAX arrays, while answers from a saved fit (``bayes-scaling allocate``,
``predict``, ``decide``) evaluate it on numpy draws without importing JAX at all.

To add a law: write a module here with ``log_loss`` (and ``compute_optimal`` where a
closed form exists), register a :class:`Law` in it, import it below, and add a card.
"""

from __future__ import annotations

from . import bounded, broken_power_law, chinchilla, data_constrained, kaplan, moe, sigmoid  # noqa: F401  (each registers itself; sigmoid: task link)
from .base import Array, Law, LogLossFn, OptimumFn, array_namespace, available_laws, get_law, logsumexp, register

__all__ = ["Array", "Law", "LogLossFn", "OptimumFn", "array_namespace", "available_laws", "get_law", "logsumexp",
           "register"]
