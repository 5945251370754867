"""What every decision is computed from: posterior draws, the noise of one run, and a plan's cost.

A single run's realised loss is the law's loss times exp(noise), the card's observation
model on log loss. The noise is drawn once per posterior draw (from a seed, with numpy:
:mod:`bayes_scaling.noise`) and shared by every plan in a question (common random
numbers): it widens loss intervals and moves probabilities of reaching a target, but
never decides which of two plans wins a draw. The law's loss carries the fit's model
discrepancy beyond the fitted region, if it has one (:mod:`bayes_scaling.extrapolation`).

Everything here is numpy, so ``bayes-scaling decide`` answers from a saved fit without
importing JAX.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cards import ModelCard, Prior, load_card
from ..errors import InputError
from ..extrapolation import with_discrepancy
from ..fitfile import FitArrays, fit_arrays
from ..noise import observation_noise
from ..units import format_quantity, parse_quantity

if TYPE_CHECKING:
    from ..fit import Fit

#: Smallest model (parameters) and dataset (tokens) a plan may have.
MIN_COUNT = 1e3
LOG_6 = math.log(6.0)


@dataclass(frozen=True)
class Posterior:
    """Posterior draws of a law's parameters and of the observation noise, with the card.

    Attributes
    ----------
    theta : dict of str to array of shape (S,)
        Draws of the law's parameters.
    sigma : array of shape (S,)
        Draws of the noise scale on log loss.
    nu : array of shape (S,), float or None
        Student-t degrees of freedom (draws or the card's fixed value).
    card : ModelCard
    slope : array of shape (S,) or None, default None
        Draws of the model-discrepancy slope (log loss per √e-fold of compute beyond the
        fitted region, see :func:`bayes_scaling.extrapolation.with_discrepancy`); ``None``: no discrepancy.
    max_log_compute : float, default inf
        ln C of the largest run the fit saw (FLOPs), where the discrepancy starts.
    """

    theta: dict[str, np.ndarray]
    sigma: np.ndarray
    nu: np.ndarray | float | None
    card: ModelCard
    slope: np.ndarray | None = None
    max_log_compute: float = math.inf

    @property
    def size(self) -> int:
        """Number of draws S."""
        return int(self.sigma.shape[0])

    @property
    def label(self) -> str:
        """What the draws come from, for an answer's assumptions: the card's name."""
        return self.card.name

    @property
    def formula(self) -> str:
        """The law, for an answer's assumptions."""
        return self.card.law.formula

    def log_loss(self, log_params: np.ndarray, log_tokens: np.ndarray) -> np.ndarray:
        """Expected ln L(N, D) for every draw (the law, plus any discrepancy): shape (S, *input shape)."""
        log_params, log_tokens = np.asarray(log_params, dtype=float), np.asarray(log_tokens, dtype=float)
        ndim = len(np.broadcast_shapes(log_params.shape, log_tokens.shape))
        theta = {k: v.reshape(v.shape + (1,) * ndim) for k, v in self.theta.items()}
        log_l = self.card.law.log_loss(theta, {"log_params": log_params, "log_tokens": log_tokens})
        slope = None if self.slope is None else self.slope.reshape(self.slope.shape + (1,) * ndim)
        return with_discrepancy(log_l, slope, self.max_log_compute, log_params, log_tokens)

    def observation(self, loc: np.ndarray) -> Any:
        """The card's NumPyro distribution of observed log loss around ``loc`` (draws on axis -1)."""
        import jax.numpy as jnp

        from ..model import observation

        nu = jnp.asarray(self.nu) if isinstance(self.nu, np.ndarray) else self.nu
        return observation(self.card, jnp.asarray(loc), jnp.asarray(self.sigma), nu)

    def log_noise(self, seed: int | None) -> np.ndarray:
        """One draw of a run's noise on ln L per posterior draw, shape (S,); zeros when ``seed`` is None."""
        if seed is None:
            return np.zeros(self.size)
        return observation_noise(self.card, self.sigma, self.nu, (self.size,), seed)

    def take(self, indices: np.ndarray) -> Posterior:
        """The posterior restricted to the draws at ``indices`` (repeats allowed)."""
        nu = self.nu[indices] if isinstance(self.nu, np.ndarray) else self.nu
        slope = None if self.slope is None else self.slope[indices]
        return Posterior({k: v[indices] for k, v in self.theta.items()}, self.sigma[indices], nu, self.card,
                         slope, self.max_log_compute)

    def median(self) -> Posterior:
        """A one-draw posterior at the marginal medians (the naive plug-in estimate)."""
        def med(v: Any) -> Any:
            return np.median(v, keepdims=True) if isinstance(v, np.ndarray) else v

        return Posterior({k: med(v) for k, v in self.theta.items()}, med(self.sigma), med(self.nu), self.card,
                         med(self.slope), self.max_log_compute)


@dataclass(frozen=True)
class MixturePosterior:
    """Draws of a model average: each card's share of draws, its own law, noise and discrepancy.

    Decisions integrate over it as over one posterior (the draws are concatenated), so
    they integrate over which law is right too. The naive plug-in plan is that of the
    highest-weight card's posterior medians.

    Attributes
    ----------
    components : list of Posterior
        One per card with a positive weight, holding that card's share of draws.
    weights : dict of str to float
        Stacking weights by card name.
    """

    components: list[Posterior]
    weights: dict[str, float]

    @property
    def size(self) -> int:
        """Number of draws S (all cards)."""
        return sum(c.size for c in self.components)

    @property
    def top(self) -> Posterior:
        """The component of the highest-weight card."""
        return max(self.components, key=lambda c: self.weights[c.card.name])

    @property
    def card(self) -> ModelCard:
        """The highest-weight card (its law gives the plug-in plan)."""
        return self.top.card

    @property
    def label(self) -> str:
        """E.g. ``"stacking of chinchilla (0.8), kaplan (0.2)"``."""
        return "stacking of " + ", ".join(f"{c.card.name} ({self.weights[c.card.name]:.2f})" for c in self.components)

    @property
    def formula(self) -> str:
        """The laws of the mixture, ``; ``-separated."""
        return "; ".join(dict.fromkeys(c.card.law.formula for c in self.components))

    def log_loss(self, log_params: np.ndarray, log_tokens: np.ndarray) -> np.ndarray:
        """Expected ln L(N, D) per draw, each card's draws by its own law: shape (S, *input shape)."""
        return np.concatenate([c.log_loss(log_params, log_tokens) for c in self.components])

    def log_noise(self, seed: int | None) -> np.ndarray:
        """One run's noise on ln L per draw, each card's by its own observation model (seeds seed, seed+1, ...)."""
        return np.concatenate([c.log_noise(None if seed is None else seed + i) for i, c in enumerate(self.components)])

    def median(self) -> Posterior:
        """The plug-in estimate: the highest-weight card's posterior medians."""
        return self.top.median()

    def take(self, indices: np.ndarray) -> Posterior:
        """Not defined across laws; raises :class:`InputError`."""
        raise InputError("this question needs the draws of one card (a single law): ask it of one of the "
                         f"averaged fits ({', '.join(self.weights)}), not of their average")

    def observation(self, loc: np.ndarray) -> Any:
        """Not defined across laws; raises :class:`InputError`."""
        return self.take(np.arange(0))

    @property
    def theta(self) -> dict[str, np.ndarray]:
        """Not defined across laws (their parameters differ); raises :class:`InputError`."""
        self.take(np.arange(0))
        return {}


def mixture_posterior(average: Any, group: str | None = None) -> MixturePosterior:
    """The draws of a :class:`bayes_scaling.ModelAverage`: each fit's share, by its stacking weight."""
    if group is not None:
        raise InputError("group= is for a pooled fit, not for a model average")
    components = [as_posterior(average.fits[name]).take(index) for name, index in average.shares().items()
                  if len(index)]
    return MixturePosterior(components, dict(average.weights))


def as_posterior(source: Fit | FitArrays | Mapping[str, Any] | Posterior,
                 card: ModelCard | str | Path | None = None, group: str | None = None) -> Posterior:
    """The draws a decision integrates over, from a fit or from a mapping of draws.

    Parameters
    ----------
    source : Fit, FitArrays, ModelAverage, mapping or Posterior
        A fit (or the arrays of a saved fit, :func:`bayes_scaling.fitfile.read_fit`), a
        model average (:func:`bayes_scaling.average`: a :class:`MixturePosterior`), or
        draws ``{name: array}`` of every law parameter and ``sigma`` (and ``nu`` when the
        card gives it a prior); arrays are flattened. A fit's discrepancy comes along.
    card : ModelCard, str or Path, optional
        The card of a mapping of draws (a bundled name or a path); ignored for a fit.
    group : str, optional
        For a pooled fit, the group whose parameters to use.

    Raises
    ------
    InputError
        If draws are missing, of unequal lengths, empty or not finite, or no card is given.
    """
    if isinstance(source, (Posterior, MixturePosterior)):
        return source
    if hasattr(source, "fits") and hasattr(source, "weights"):  # a ModelAverage
        return mixture_posterior(source, group)
    slope, max_log_compute = None, math.inf
    if not isinstance(source, Mapping):  # a Fit or the arrays of a saved fit
        saved = fit_arrays(source)
        card = saved.card
        wanted = (*card.law.parameters, "sigma", "nu")
        draws: Mapping[str, Any] = saved.draws([p for p in saved.parameters if p in wanted], group=group)
        slope, max_log_compute = saved.discrepancy()
    elif card is None:
        raise InputError("posterior draws need their model card: pass card='chinchilla' (or a ModelCard)")
    else:
        card = card if isinstance(card, ModelCard) else load_card(card)
        draws = source
    names = [*card.law.parameters, "sigma", *(["nu"] if isinstance(card.nu, Prior) else [])]
    missing = [n for n in names if n not in draws]
    if missing:
        raise InputError(f"posterior draws lack {', '.join(missing)} (card {card.name!r} needs {', '.join(names)})")
    arrays = {n: np.asarray(draws[n], dtype=float).reshape(-1) for n in names}
    sizes = {a.size for a in arrays.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise InputError(f"posterior draws must be non-empty and of one length; got lengths "
                         f"{ {n: a.size for n, a in arrays.items()} }")
    bad = [n for n, a in arrays.items() if not np.isfinite(a).all()]
    if bad:
        raise InputError(f"posterior draws of {', '.join(bad)} hold non-finite values")
    nu = arrays.pop("nu") if "nu" in arrays else card.nu
    sigma = arrays.pop("sigma")
    return Posterior(arrays, sigma, nu, card, slope, max_log_compute)


@dataclass(frozen=True)
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

    max_params: float | str = math.inf
    max_tokens: float | str = math.inf
    inference_tokens: float | str = 0.0

    def __post_init__(self) -> None:
        for name, positive in (("max_params", True), ("max_tokens", True), ("inference_tokens", False)):
            value = parse_quantity(getattr(self, name), what=name)
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
             extra: Sequence[float] = (), points: int = 129, zooms: int = 5,
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
