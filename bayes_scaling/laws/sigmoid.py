"""The link of a task card: accuracy as a sigmoid of an intermediate metric (Bhagia et al. 2024).

accuracy(x) = floor + (ceiling - floor) · σ(slope · (midpoint - x)), decreasing in x (a
task's bits per byte, or a held-out loss): near ``floor`` (chance) for a poor model, near
``ceiling`` (at most 1) for a strong one, and halfway at ``midpoint``. Pure functions of
broadcasting arrays, numpy or JAX alike (:func:`~bayes_scaling.laws.array_namespace`).
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import Array, array_namespace

#: The link's parameters, as :func:`accuracy` reads them.
LINK_PARAMETERS = ("floor", "ceiling", "slope", "midpoint")
#: Posterior variables of a task fit beyond the law's: the link and one run's noise sd on accuracy.
TASK_VARIABLES = (*LINK_PARAMETERS, "sigma_metric")


def bounds(chance: Array, floor_offset: Array, headroom: Array) -> tuple[Array, Array]:
    """Floor and ceiling from a card's parameters: floor = chance + offset, ceiling = floor + (1 - floor) · headroom.

    With headroom in (0, 1), floor < ceiling < 1 holds by construction.
    """
    floor = chance + floor_offset
    return floor, floor + (1.0 - floor) * headroom


def accuracy(theta: Mapping[str, Array], x: Array) -> Array:
    """Accuracy at intermediate metric ``x``.

    Parameters
    ----------
    theta : mapping
        ``floor``, ``ceiling`` (accuracies in [0, 1]), ``slope`` (per unit of x, positive)
        and ``midpoint`` (in units of x), broadcasting against ``x``.
    x : array
        The intermediate metric (bits per byte, nats per token).

    Examples
    --------
    >>> float(accuracy({"floor": 0.25, "ceiling": 0.9, "slope": 6.0, "midpoint": 0.8}, 0.8))
    0.575
    """
    xp = array_namespace(theta, x)
    z = theta["slope"] * (theta["midpoint"] - x)
    return theta["floor"] + (theta["ceiling"] - theta["floor"]) / (1.0 + xp.exp(-z))


__all__ = ["LINK_PARAMETERS", "TASK_VARIABLES", "accuracy", "bounds"]
