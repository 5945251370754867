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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


#: Directions in which a prediction can leave the fitted region: compute C = 6 N D, parameters N, tokens D.
DIRECTIONS = ("compute", "params", "tokens")


@dataclass(frozen=True)
class FittedRegion:
    """Where the fitted runs end, in each direction the discrepancy counts: ln C, ln N, ln D maxima.

    A direction not counted is ``inf``. The distance of a prediction beyond the region
    is the largest of its e-folds past each maximum (:meth:`distance`): a larger model at
    a compute inside the data extrapolates in N as surely as a larger budget does in C.

    Attributes
    ----------
    log_compute : float
        ln C (FLOPs) of the largest-compute fitted run.
    log_params : float
        ln N of the largest fitted model (as the fit counts parameters); ``inf``: not counted.
    log_tokens : float
        ln D of the longest fitted run (tokens); ``inf``: not counted.
    """

    log_compute: float = math.inf
    log_params: float = math.inf
    log_tokens: float = math.inf

    @classmethod
    def of_runs(cls, log_params: Any, log_tokens: Any, directions: Sequence[str] = DIRECTIONS,
                log_flops: Any | None = None) -> FittedRegion:
        """The region of fitted runs with ln N ``log_params`` and ln D ``log_tokens``, counting ``directions``.

        Compute is the runs' ``log_flops`` (ln C, FLOPs, as their table gives it) or, without
        it, ln 6ND.
        """
        unknown = sorted(set(directions) - set(DIRECTIONS))
        if unknown or not directions:
            raise ValueError(f"directions must be a non-empty selection of {', '.join(DIRECTIONS)}; "
                             f"got {list(directions)}")
        ln_n, ln_d = np.asarray(log_params, float), np.asarray(log_tokens, float)
        ln_c = LOG_6 + ln_n + ln_d if log_flops is None else np.asarray(log_flops, float)
        return cls(float(np.max(ln_c)) if "compute" in directions else math.inf,
                   float(np.max(ln_n)) if "params" in directions else math.inf,
                   float(np.max(ln_d)) if "tokens" in directions else math.inf)

    def distance(self, log_params: Any, log_tokens: Any) -> Any:
        """e-folds beyond the region: max over counted directions of max(0, ln x − ln x_max); 0 inside.

        Examples
        --------
        >>> region = FittedRegion(np.log(6e20), np.log(1e9), np.log(1e11))
        >>> float(region.distance(np.log(1e10), np.log(1e10)))  # 10x the largest model, compute inside
        2.302585092994046
        """
        xp = array_namespace(log_params, log_tokens)
        d = xp.maximum(0.0, LOG_6 + log_params + log_tokens - self.log_compute)
        if math.isfinite(self.log_params):
            d = xp.maximum(d, log_params - self.log_params)
        if math.isfinite(self.log_tokens):
            d = xp.maximum(d, log_tokens - self.log_tokens)
        return d


#: The region of no fit: nothing is beyond it, so no discrepancy anywhere.
UNBOUNDED = FittedRegion()


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


def fitted_region(constant_data: Mapping[str, Any], directions: Sequence[str] = ("compute",),
                  param_count: str = "total") -> FittedRegion:
    """The region of a fit's run table (its ``flops``, ``params``, ``tokens`` columns) in ``directions``.

    Compute is the largest ``flops`` value (FLOPs, as the table gives it); parameters are
    counted as the fit counts them (``param_count="non_embedding"``: ``params −
    embedding_params``).
    """
    params = np.asarray(constant_data["params"], dtype=float)
    if param_count == "non_embedding" and "embedding_params" in constant_data:
        params = params - np.asarray(constant_data["embedding_params"], dtype=float)
    return FittedRegion.of_runs(np.log(params), np.log(np.asarray(constant_data["tokens"], dtype=float)), directions,
                                np.log(np.asarray(constant_data["flops"], dtype=float)))


def with_discrepancy(log_loss: Any, slope: Any | None, region: FittedRegion, log_params: Any,
                     log_tokens: Any) -> Any:
    """The expected log loss: the law's ``log_loss`` plus ``slope`` times √(extrapolation distance).

    Parameters
    ----------
    log_loss : array
        ln L of the law at (N, D), per draw and point.
    slope : array or None
        Discrepancy slope per draw, shaped to broadcast against ``log_loss`` (e.g. (S, 1));
        ``None`` (a fit without discrepancy) returns ``log_loss`` unchanged.
    region : FittedRegion
        Where the fitted runs end (:meth:`FittedRegion.distance`).
    log_params, log_tokens : array
        ln N and ln D of the points.
    """
    if slope is None:
        return log_loss
    return log_loss + slope * discrepancy_growth(region.distance(log_params, log_tokens))
