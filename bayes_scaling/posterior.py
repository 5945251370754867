"""The draws every answer from a fit integrates over: the law's parameters, one run's noise, the discrepancy.

A :class:`Posterior` is the numpy view of a fit's draws that allocation, predictions and
decisions compute with; a :class:`MixturePosterior` is that of a model average (each
card's share of draws, its own law). Anything that can give one satisfies
:class:`PosteriorSource` (a :class:`~bayes_scaling.fitted.Fit`, the arrays of a saved fit,
a :class:`~bayes_scaling.averaging.ModelAverage`): functions above take that protocol,
never a concrete class, and never test attributes to guess what they were given.

A single run's realised loss is the law's loss times exp(noise), the card's observation
model on log loss; the noise is drawn from a seed with numpy (:mod:`bayes_scaling.noise`).
The law's loss carries the fit's model discrepancy beyond the fitted region, if it has
one (:mod:`bayes_scaling.discrepancy`).

Everything here is numpy, so answers from a saved fit need no JAX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .cards import ModelCard, Prior, load_card
from .discrepancy import UNBOUNDED, FittedRegion, with_discrepancy
from .errors import InputError
from .noise import observation_noise


@runtime_checkable
class PosteriorSource(Protocol):
    """Anything that gives the draws an answer integrates over (a fit, a saved fit's arrays, a model average)."""

    def posterior_draws(self, group: str | None = None) -> Posterior | MixturePosterior:
        """The draws, for a pooled fit those of ``group``."""
        ...


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
        fitted region, see :func:`bayes_scaling.discrepancy.with_discrepancy`); ``None``: no discrepancy.
    region : FittedRegion, default unbounded
        Where the fitted runs end (:class:`bayes_scaling.discrepancy.FittedRegion`): the
        discrepancy starts beyond it.
    """

    theta: dict[str, np.ndarray]
    sigma: np.ndarray
    nu: np.ndarray | float | None
    card: ModelCard
    slope: np.ndarray | None = None
    region: FittedRegion = FittedRegion()

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

    def log_loss(self, log_params: np.ndarray, log_tokens: np.ndarray,
                 covariates: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Expected ln L(N, D) for every draw (the law, plus any discrepancy): shape (S, *input shape).

        ``covariates`` are the law's other inputs as logs (``{"log_experts": ...}``), broadcast with N and D.
        """
        log_params, log_tokens = np.asarray(log_params, dtype=float), np.asarray(log_tokens, dtype=float)
        extra = {k: np.asarray(v, dtype=float) for k, v in (covariates or {}).items()}
        ndim = len(np.broadcast_shapes(log_params.shape, log_tokens.shape, *(v.shape for v in extra.values())))
        theta = {k: v.reshape(v.shape + (1,) * ndim) for k, v in self.theta.items()}
        log_l = self.card.law.log_loss(theta, {"log_params": log_params, "log_tokens": log_tokens, **extra})
        slope = None if self.slope is None else self.slope.reshape(self.slope.shape + (1,) * ndim)
        return with_discrepancy(log_l, slope, self.region, log_params, log_tokens)

    def observation(self, loc: np.ndarray) -> Any:
        """The card's NumPyro distribution of observed log loss around ``loc`` (draws on axis -1)."""
        import jax.numpy as jnp

        from .model import observation

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
                         slope, self.region)

    def median(self) -> Posterior:
        """A one-draw posterior at the marginal medians (the naive plug-in estimate)."""
        def med(v: Any) -> Any:
            return np.median(v, keepdims=True) if isinstance(v, np.ndarray) else v

        return Posterior({k: med(v) for k, v in self.theta.items()}, med(self.sigma), med(self.nu), self.card,
                         med(self.slope), self.region)


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

    def log_loss(self, log_params: np.ndarray, log_tokens: np.ndarray,
                 covariates: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Expected ln L(N, D) per draw, each card's draws by its own law: shape (S, *input shape)."""
        return np.concatenate([c.log_loss(log_params, log_tokens, covariates) for c in self.components])

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


#: What a function that answers from draws accepts: a :class:`PosteriorSource` (a fit, a
#: saved fit's arrays, a model average), draws already read, or a mapping of draws with a card.
PosteriorInput = PosteriorSource | Mapping[str, Any] | Posterior | MixturePosterior


def as_posterior(source: PosteriorInput,
                 card: ModelCard | str | Path | None = None, group: str | None = None
                 ) -> Posterior | MixturePosterior:
    """The draws a decision integrates over, from a fit or from a mapping of draws.

    Parameters
    ----------
    source : PosteriorSource, mapping, Posterior or MixturePosterior
        A fit (or the arrays of a saved fit, :func:`bayes_scaling.fitfile.read_fit`), a
        model average (:func:`bayes_scaling.average`: a :class:`MixturePosterior`), or
        draws ``{name: array}`` of every law parameter and ``sigma`` (and ``nu`` when the
        card gives it a prior); arrays are flattened. A fit's discrepancy comes along.
    card : ModelCard, str or Path, optional
        The card of a mapping of draws (a bundled name or a path); ignored otherwise.
    group : str, optional
        For a pooled fit, the group whose parameters to use.

    Raises
    ------
    InputError
        If draws are missing, of unequal lengths, empty or not finite, or no card is given.
    """
    if isinstance(source, (Posterior, MixturePosterior)):
        return source
    if isinstance(source, Mapping):
        if card is None:
            raise InputError("posterior draws need their model card: pass card='chinchilla' (or a ModelCard)")
        return posterior_from_draws(source, card if isinstance(card, ModelCard) else load_card(card))
    if isinstance(source, PosteriorSource):
        return source.posterior_draws(group)
    raise InputError(f"cannot read posterior draws from a {type(source).__name__}: give a fit, a saved fit's "
                     "arrays, a model average or a mapping of draws with its card")


def noise_variables(card: ModelCard) -> list[str]:
    """The noise parameters of the card's loss: ``sigma`` (and ``nu``); none for a direct task card,
    which observes no loss nor intermediate (its one-run noise is the accuracy's ``sigma_metric``)."""
    if card.task is not None and card.task.kind == "direct":
        return []
    return ["sigma", *(["nu"] if isinstance(card.nu, Prior) else [])]


def posterior_from_draws(draws: Mapping[str, Any], card: ModelCard, slope: np.ndarray | None = None,
                         region: FittedRegion = UNBOUNDED) -> Posterior:
    """A :class:`Posterior` from draws ``{name: array}`` of the card's law parameters, ``sigma`` (and ``nu``).

    Raises
    ------
    InputError
        If draws are missing, of unequal lengths, empty or not finite.
    """
    names = [*card.law.parameters, *noise_variables(card)]
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
    nu = arrays.pop("nu") if isinstance(card.nu, Prior) else card.nu  # "nu" is in arrays exactly then
    # A direct task card's latent law has no noise of its own: one run's value is the law's.
    sigma = arrays.pop("sigma") if "sigma" in names else np.zeros(len(next(iter(arrays.values()))))
    return Posterior(arrays, sigma, nu, card, slope, region)


def mixture_posterior(components: Mapping[str, Posterior], shares: Mapping[str, np.ndarray],
                      weights: Mapping[str, float]) -> MixturePosterior:
    """The draws of a model average: each card's posterior restricted to its share of draws."""
    return MixturePosterior([components[name].take(index) for name, index in shares.items() if len(index)],
                            dict(weights))


__all__ = ["MixturePosterior", "Posterior", "PosteriorInput", "PosteriorSource", "as_posterior", "mixture_posterior",
           "noise_variables", "posterior_from_draws"]
