"""What a plan may be and what it costs: limits on N and D, lifetime FLOPs, and the 1-D optimiser over ln N."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..allocation import MIN_COUNT
from ..errors import InputError
from ..units import LOG_6, format_quantity, parse_quantity


@dataclass(frozen=True, init=False)
class Constraints:
    """Limits on a plan, and what it costs over its lifetime.

    A plan (N parameters, D training tokens) costs 6 N D training FLOPs plus 2 N I
    inference FLOPs, I being the tokens it will generate in service (Sardana et al. 2024,
    "Beyond Chinchilla-optimal"). With I = 0 its cost is the usual C = 6 N D.

    Attributes
    ----------
    max_params : float, default inf
        Most parameters allowed (e.g. serving memory); ``"70B"`` is read too.
    max_tokens : float, default inf
        Most training tokens available; ``"2T"`` is read too.
    inference_tokens : float, default 0
        Tokens generated over the model's life.
    """

    # Stored as floats; the constructor also reads quantities such as "70B" (parse_quantity).
    max_params: float = math.inf
    max_tokens: float = math.inf
    inference_tokens: float = 0.0

    def __init__(self, max_params: float | str = math.inf, max_tokens: float | str = math.inf,
                 inference_tokens: float | str = 0.0) -> None:
        given = {"max_params": max_params, "max_tokens": max_tokens, "inference_tokens": inference_tokens}
        for name, positive in (("max_params", True), ("max_tokens", True), ("inference_tokens", False)):
            value = parse_quantity(given[name], what=name)
            if math.isnan(value) or value < 0 or (positive and value == 0):
                raise InputError(f"{name} must be {'positive' if positive else 'non-negative'} but got {value:g}")
            object.__setattr__(self, name, value)

    def cost(self, params: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        """Lifetime FLOPs of plans: 6 N D + 2 N I."""
        return 6.0 * np.asarray(params) * np.asarray(tokens) + 2.0 * np.asarray(params) * self.inference_tokens

    def log_tokens(self, compute: float, log_params: np.ndarray) -> np.ndarray:
        """ln D of the plans with ln N = ``log_params`` that cost ``compute`` FLOPs in all."""
        share = 2.0 * np.exp(log_params) * self.inference_tokens / compute
        return math.log(compute) + np.log1p(-share) - LOG_6 - log_params

    def cost_range(self) -> tuple[float, float]:
        """Least and most a plan within the limits can cost (FLOPs); the most is inf unless both limits are set."""
        return (MIN_COUNT * (6.0 * MIN_COUNT + 2.0 * self.inference_tokens),
                self.max_params * (6.0 * self.max_tokens + 2.0 * self.inference_tokens))

    def bounds(self, compute: float) -> tuple[float, float]:
        """Range of ln N of the plans costing ``compute`` FLOPs within the limits.

        Raises
        ------
        InputError
            If no plan within the limits costs that much.
        """
        lo = max(MIN_COUNT, compute / (6.0 * self.max_tokens + 2.0 * self.inference_tokens))
        hi = min(self.max_params, compute / (6.0 * MIN_COUNT + 2.0 * self.inference_tokens))
        if not lo < hi:
            raise InputError(f"no plan costs {compute:.3g} FLOPs within the limits ({self.describe()}); "
                             "within them a plan costs from {:.3g} to {:.3g} FLOPs".format(*self.cost_range()))
        return math.log(lo), math.log(hi)

    def describe(self) -> str:
        """The limits in words, e.g. ``"N <= 70B, D <= 2T, I = 1e+13 inference tokens"``."""
        parts = [f"N <= {format_quantity(self.max_params)}" if math.isfinite(self.max_params) else "",
                 f"D <= {format_quantity(self.max_tokens)}" if math.isfinite(self.max_tokens) else "",
                 f"I = {self.inference_tokens:.3g} inference tokens" if self.inference_tokens else ""]
        return ", ".join(p for p in parts if p) or "none"

    def cost_model(self) -> str:
        """The cost formula used, for the assumptions of an answer."""
        if self.inference_tokens:
            return (f"C = 6 N D + 2 N I lifetime FLOPs (training + inference, I = {self.inference_tokens:.3g} "
                    "tokens; Sardana et al. 2024)")
        return "C = 6 N D training FLOPs"


def minimise(objective: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, *,
             extra: Sequence[float] | np.ndarray = (), points: int = 129, zooms: int = 5,
             zoom_points: int = 17) -> tuple[float, float]:
    """Minimise a vectorised objective of ln N over [lo, hi]: a grid, then zooms around its best point.

    Each zoom re-grids the two cells around the best point so far, shrinking the
    spacing 8-fold (the default gives ~1e-5 in ln N over a range of 40). Points in
    ``extra`` (e.g. other plans' ln N) compete too, so the result is never worse than
    any of them under the same objective.

    Returns
    -------
    (float, float)
        The best ln N and the objective there.
    """
    def evaluate(x: np.ndarray) -> np.ndarray:
        values = np.asarray(objective(x), dtype=float)
        return np.where(np.isnan(values), np.inf, values)

    best_x, best_v = math.nan, math.inf
    if len(extra):
        candidates = np.asarray(extra, dtype=float)
        values = evaluate(candidates)
        best_x, best_v = float(candidates[np.argmin(values)]), float(values.min())
    grid = np.linspace(lo, hi, points)
    for _ in range(zooms + 1):
        values = evaluate(grid)
        i = int(np.argmin(values))
        if values[i] < best_v:
            best_x, best_v = float(grid[i]), float(values[i])
        grid = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], zoom_points)
    return best_x, best_v
