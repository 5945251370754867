"""Risk criteria: how bad a plan's uncertain loss is, as one number to minimise.

A criterion is made by a small factory that checks its argument once, and is then a
plain function of loss draws (axis 0 = draws, nats per token) returning one value per
remaining position, e.g. per candidate plan. Lower is better for every criterion.

>>> crit = cvar(0.9)
>>> crit(np.array([[1.0], [2.0], [3.0], [10.0]]))  # mean of the worst 10% (at least one draw)
array([10.])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .tables import check_level


@dataclass(frozen=True)
class Criterion:
    """A named risk criterion.

    Attributes
    ----------
    label : str
        How it is written on the command line and in outputs (``"cvar:0.9"``).
    function : callable
        ``function(losses) -> values``: reduces axis 0 (posterior draws) of an array of
        losses (nats per token); lower is better.
    """

    label: str
    function: Callable[[np.ndarray], np.ndarray]

    def __call__(self, losses: np.ndarray) -> np.ndarray:
        return self.function(np.asarray(losses, dtype=float))


def _check_level(q: float, name: str) -> float:
    return check_level(q, f"the level of {name}()")


def expected() -> Criterion:
    """Risk-neutral: the expected (posterior mean) loss."""
    return Criterion("mean", lambda losses: losses.mean(axis=0))


def quantile(q: float) -> Criterion:
    """The ``q`` quantile of the loss ("how bad could it be", value at risk).

    Parameters
    ----------
    q : float
        In (0, 1), e.g. 0.9 for the 90th percentile.
    """
    q = _check_level(q, "quantile")
    return Criterion(f"quantile:{q:g}", lambda losses: np.quantile(losses, q, axis=0))


def cvar(q: float) -> Criterion:
    """Conditional value at risk: the mean loss over the worst ``1 - q`` of the draws.

    Parameters
    ----------
    q : float
        In (0, 1); ``cvar(0.9)`` averages the worst 10% of draws (at least one draw).
    """
    q = _check_level(q, "cvar")

    def tail_mean(losses: np.ndarray) -> np.ndarray:
        worst = max(1, math.ceil((1 - q) * losses.shape[0] - 1e-9))
        return np.sort(losses, axis=0)[-worst:].mean(axis=0)

    return Criterion(f"cvar:{q:g}", tail_mean)


def parse_risk(risk: str | Criterion) -> Criterion:
    """A criterion from its text: ``mean``, ``quantile:0.9`` or ``cvar:0.9``; criteria pass through.

    Raises
    ------
    InputError
        If the text names no criterion or its level is not a number in (0, 1).
    """
    if isinstance(risk, Criterion):
        return risk
    name, _, arg = str(risk).strip().lower().partition(":")
    if name in ("mean", "expected") and not arg:
        return expected()
    factories = {"quantile": quantile, "cvar": cvar}
    if name not in factories or not arg:
        raise InputError(f"risk criterion {risk!r} is unknown; write mean, quantile:0.9 or cvar:0.9")
    try:
        level = float(arg)
    except ValueError:
        raise InputError(f"risk criterion {risk!r}: {arg!r} is not a number; write e.g. {name}:0.9") from None
    return factories[name](level)
