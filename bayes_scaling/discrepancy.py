"""The model discrepancy: how far a prediction extrapolates beyond the fitted region, and what it adds there.

A fitted law is uncertain in two ways: its parameters (the posterior) and its form
(the law itself may bend away from the truth beyond the largest run). The second is
invisible inside the data and is exactly what matters where the money is spent.

The distance is counted in e-folds of compute (C = 6 N D FLOPs) past the largest-compute
run the fit saw: d = max(0, ln(6 N D) − ln C_max), 0 inside the data. A fit whose
posterior holds ``discrepancy_slope`` (one slope s per draw, dims chain × draw; its scale tau is
learnt by :mod:`bayes_scaling.discrepancy_scale`) predicts the expected log loss at (N, D) as

    ln L(N, D) + s · √d,

so the law's form may bend away beyond the data, the more the further a prediction
reaches, and never inside it. With s ~ Normal(0, tau²) the discrepancy's variance is
tau² · d, growing linearly with the distance as a random walk in ln C does (but one s per
draw: a draw's predictions at two budgets err together). Without that variable there is
no discrepancy.

Pure array functions: numpy or JAX, whichever the inputs are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .laws import array_namespace
from .units import LOG_6

#: Name of the posterior variable holding the discrepancy slope s (log loss per √e-fold of compute).
DISCREPANCY_SLOPE = "discrepancy_slope"
#: Name of the posterior variable holding the discrepancy scale tau (s ~ Normal(0, tau²)).
DISCREPANCY_TAU = "discrepancy_tau"


def extrapolation_distance(max_log_compute: float, log_params: Any, log_tokens: Any) -> Any:
    """Distance beyond the fitted region: e-folds of compute past the largest fitted run.

    Parameters
    ----------
    max_log_compute : float
        ln C of the largest-compute run in the fit (C in FLOPs).
    log_params, log_tokens : array
        ln N (parameters) and ln D (tokens) of the predictions; they broadcast.

    Returns
    -------
    array
        max(0, ln(6 N D) − ln C_max), 0 inside the data.

    Examples
    --------
    >>> float(extrapolation_distance(np.log(6e20), np.log(1e10), np.log(1e12)))  # 100x the largest run
    4.605170185988094
    """
    xp = array_namespace(log_params, log_tokens)
    return xp.maximum(0.0, LOG_6 + log_params + log_tokens - max_log_compute)


def discrepancy_growth(distance: Any) -> Any:
    """How the discrepancy grows with the extrapolation distance d (e-folds): √d.

    Its variance, tau² · d, is linear in d, as for a random walk in ln C. Measured on the
    Chinchilla reconstruction (``benchmarks/bench_calibration.py``), √d kept the 90%
    intervals within 85-95% at cutoffs whose held-out runs reach 2 and 5 e-folds alike,
    where a linear d over-covered the far ones or under-covered the near ones.
    """
    xp = array_namespace(distance)
    return xp.sqrt(xp.maximum(distance, 0.0))


def fitted_max_log_compute(constant_data: Mapping[str, Any]) -> float:
    """ln C of the largest-compute run of a fit's run table (its ``flops`` column, FLOPs)."""
    return float(np.log(np.max(np.asarray(constant_data["flops"], dtype=float))))


def with_discrepancy(log_loss: Any, slope: Any | None, max_log_compute: float, log_params: Any,
                     log_tokens: Any) -> Any:
    """The expected log loss: the law's ``log_loss`` plus ``slope`` times √(extrapolation distance).

    Parameters
    ----------
    log_loss : array
        ln L of the law at (N, D), per draw and point.
    slope : array or None
        Discrepancy slope per draw, shaped to broadcast against ``log_loss`` (e.g. (S, 1));
        ``None`` (a fit without discrepancy) returns ``log_loss`` unchanged.
    max_log_compute : float
        See :func:`extrapolation_distance`.
    log_params, log_tokens : array
        ln N and ln D of the points.
    """
    if slope is None:
        return log_loss
    return log_loss + slope * discrepancy_growth(extrapolation_distance(max_log_compute, log_params, log_tokens))
