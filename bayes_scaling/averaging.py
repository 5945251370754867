"""Bayesian model averaging across model cards by stacking: integrate over which law is right.

Stacking (Yao et al. 2018) chooses weights on the cards that maximise the leave-one-out
log predictive density of the mixture (computed by PSIS-LOO through arviz). Predictions
and allocations of the average are mixtures: each card contributes a share of draws
proportional to its weight, so intervals cover the spread between laws as well as
within each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .allocation import allocation_draws, allocation_table, as_budgets, loss_draws, loss_table, plan_arrays
from .comparison import compare
from .decisions import decide
from .errors import InputError
from .fitfile import fit_arrays
from .fitted import Fit
from .posterior import MixturePosterior, mixture_posterior
from .tables import check_level


@dataclass(frozen=True)
class ModelAverage:
    """A stacking-weighted mixture of fits of one run table.

    Attributes
    ----------
    fits : dict of str to Fit
        Card name -> NUTS fit.
    weights : dict of str to float
        Stacking weights, summing to 1.
    comparison : DataFrame
        The LOO comparison the weights came from (:func:`bayes_scaling.comparison.compare`).
    seed : int
        Seed of the choice of each card's share of draws.
    """

    fits: dict[str, Fit]
    weights: dict[str, float]
    comparison: pd.DataFrame = field(repr=False)
    seed: int = 0

    def shares(self) -> dict[str, np.ndarray]:
        """Indices of the draws each fit contributes: round(weight × S) of its S draws."""
        sizes = {name: f.posterior.sizes["chain"] * f.posterior.sizes["draw"] for name, f in self.fits.items()}
        total = min(sizes.values())
        rng = np.random.default_rng(self.seed)
        counts = {name: int(round(w * total)) for name, w in self.weights.items()}
        out = {}
        for name, count in counts.items():
            out[name] = np.sort(rng.choice(sizes[name], size=count, replace=False)) if count else np.array([], int)
        return out

    def allocate(self, budgets: Sequence[float | str] | np.ndarray | float | str, level: float = 0.9) -> pd.DataFrame:
        """Compute-optimal allocation of the mixture; columns as :func:`bayes_scaling.allocate`."""
        level = check_level(level)
        c = as_budgets(budgets)
        parts: dict[str, list[np.ndarray]] = {}
        for name, index in self.shares().items():
            fit = self.fits[name]
            theta = {k: v[index] for k, v in fit.draws(list(fit.card.law.parameters)).items()}
            # each card's loss at the optimum carries its own discrepancy beyond its own data
            slope, region = fit_arrays(fit).discrepancy()
            draws = allocation_draws(fit.card.law, theta, c, slope=None if slope is None else slope[index],
                                     region=region)
            for q, values in draws.items():
                parts.setdefault(q, []).append(values)
        table = allocation_table(c, {q: np.concatenate(v) for q, v in parts.items()}, level).to_frame()
        table.attrs["weights"] = dict(self.weights)
        return table

    def predict(self, params: Sequence[float | str] | float | str, tokens: Sequence[float | str] | float | str,
                level: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """Predicted loss of the mixture; columns as :func:`bayes_scaling.predict_loss`."""
        level = check_level(level)
        n, d = plan_arrays(params, tokens)
        expected, single = [], []
        for name, index in self.shares().items():
            log_l, pred = loss_draws(self.fits[name], n, d, seed=seed)
            expected.append(log_l[index])
            single.append(pred[index])
        table = loss_table(n, d, np.concatenate(expected), np.concatenate(single), level).to_frame()
        table.attrs["weights"] = dict(self.weights)
        return table

    def posterior_draws(self, group: str | None = None) -> MixturePosterior:
        """The mixture's draws (:class:`bayes_scaling.posterior.MixturePosterior`): each fit's share, by its weight."""
        if group is not None:
            raise InputError("group= is for a pooled fit, not for a model average")
        return mixture_posterior({name: fit.posterior_draws() for name, fit in self.fits.items()}, self.shares(),
                                 self.weights)

    def decide(self, **questions: Any) -> dict[str, pd.DataFrame]:
        """Risk-aware decisions integrated over the cards too; see :func:`bayes_scaling.decide`."""
        return decide(self, **questions)


def average(fits: Mapping[str, Fit] | Sequence[Fit], *, seed: int = 0) -> ModelAverage:
    """Stack fits of the same run table by PSIS-LOO.

    Parameters
    ----------
    fits : mapping of str to Fit, or sequence of Fit
        NUTS fits of one run table (names default to the card names).
    seed : int, default 0
        Seed of the mixture's draw selection.

    Returns
    -------
    ModelAverage

    Raises
    ------
    InputError
        Fewer than two fits, a bootstrap fit, or fits of different runs.
    """
    named = dict(fits) if isinstance(fits, Mapping) else {f.card.name: f for f in fits}
    if len(named) < 2:
        raise InputError(f"averaging needs at least two fits but got {len(named)}")
    table = compare(named)
    weights = {name: float(max(table.loc[name, "weight"], 0.0)) for name in named}
    total = sum(weights.values())
    weights = {k: v / total for k, v in weights.items()}
    return ModelAverage(fits=named, weights=weights, comparison=table, seed=seed)
