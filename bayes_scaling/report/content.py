"""The numbers behind a report, computed once from a saved fit (no re-sampling).

:class:`ReportContext` holds the fit, the budgets and the credible level, and computes
on first use what several sections share: the allocation table, each run's
posterior-predictive interval, PSIS-LOO (k̂ and LOO-PIT) and curves of the law over
posterior draws. Everything here is pure: no files, no figures.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import arviz as az
import jax
import numpy as np
import pandas as pd

from ..allocation import allocation_draws, as_budgets
from ..comparison import KHAT_BAD, loo
from ..diagnostics import Diagnostics
from ..errors import InputError
from ..tables import check_level

if TYPE_CHECKING:
    from ..approaches import ApproachResult
    from ..fitted import Fit

#: Most posterior draws used for drawn curves and bands (the allocation table uses all).
CURVE_DRAWS = 1000
#: PSIS k̂ above which a run is influential (ArviZ lowers it for fewer than ~2,200 draws).
#: Quantiles of the 50% and 90% bands drawn in figures.
BAND_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def default_budgets(runs: pd.DataFrame) -> np.ndarray:
    """A decade grid around the largest observed run: C_max × 10^k, k = -1, 0, 1, 2 (FLOPs).

    Parameters
    ----------
    runs : DataFrame
        Run table with a ``flops`` column (FLOPs).

    Returns
    -------
    array of shape (4,)
        From a tenth of the largest observed compute to 100× beyond it, in FLOPs.
    """
    c_max = float(np.max(runs["flops"].to_numpy(float)))
    return c_max * 10.0 ** np.arange(-1, 3)


@dataclass
class LooResult:
    """PSIS-LOO of a fit, per run.

    Attributes
    ----------
    pareto_k : array of shape (R,)
        PSIS shape k̂ of each run; above ``good_k`` the run is influential.
    pit : array of shape (R,)
        LOO probability integral transform of each observed log loss (uniform when calibrated).
    good_k : float
        Threshold on k̂ (:data:`~bayes_scaling.comparison.KHAT_BAD`, lowered by ArviZ for small draw counts).
    elpd, se, p_loo : float
        Expected log predictive density (nats, on log loss), its standard error, and
        the effective number of parameters.
    warnings : list of str
        Warnings ArviZ raised while computing (shown in the report, not raised).
    """

    pareto_k: np.ndarray
    pit: np.ndarray
    good_k: float
    elpd: float
    se: float
    p_loo: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class ReportContext:
    """A fit plus what every report section needs; derived numbers are computed lazily.

    Parameters
    ----------
    fit : Fit
    budgets : array
        Compute budgets of the headline table (FLOPs).
    level : float
        Credible level of intervals and of the predictive check, in (0, 1).
    group : str or None
        For a pooled fit, the group the law's curves and allocations are for; ``None``
        for an unpooled fit.
    average : ModelAverage, optional
        When the report is of a model average: the headline allocation and the decisions
        are the mixture's; ``fit`` is then its highest-weight card's fit, which the
        other sections describe.
    """

    fit: Fit
    budgets: np.ndarray
    level: float
    group: str | None = None
    average: Any = None

    @classmethod
    def build(cls, fit: Fit, budgets: Sequence[float | str] | float | str | None = None,
              level: float = 0.9, group: str | None = None) -> ReportContext:
        """Validate the inputs; ``budgets=None`` means :func:`default_budgets`.

        Raises
        ------
        InputError
            For a level outside (0, 1), a bad budget, or a pooled fit with several
            groups and no (or an unknown) ``group``.
        """

        level = check_level(level)
        c = default_budgets(fit.runs) if budgets is None else np.sort(as_budgets(budgets))
        levels = fit.groups
        if not levels and group is not None:
            raise InputError(f"group={group!r} given, but this fit does not pool over groups")
        if levels and group is None and len(levels) == 1:
            group = levels[0]
        if levels and group not in levels:
            raise InputError(f"this fit pools over groups {', '.join(levels)}: pass group= (CLI: --group) "
                             f"one of them, not {group!r}")
        return cls(fit=fit, budgets=c, level=level, group=group)

    def draws(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Posterior draws of ``names`` (of :attr:`group` for a pooled fit), shape (chains*draws,)."""
        return self.fit.draws(list(names), group=self.group)

    @cached_property
    def in_group(self) -> np.ndarray:
        """Boolean mask over runs: those of :attr:`group` (all runs for an unpooled fit)."""
        if self.group is None or "group" not in self.runs:
            return np.ones(len(self.runs), dtype=bool)
        return (self.runs["group"].astype(str) == self.group).to_numpy()

    @property
    def tail(self) -> tuple[float, float]:
        """Lower and upper quantiles of the equal-tailed interval at ``level``."""
        return (1 - self.level) / 2, (1 + self.level) / 2

    @cached_property
    def runs(self) -> pd.DataFrame:
        """The run table the fit saw, with ``name`` as a column."""
        return self.fit.runs

    @cached_property
    def groups(self) -> list[tuple[float, pd.DataFrame]]:
        """IsoFLOP budgets of the runs of :attr:`group` (see :func:`isoflop_groups`)."""
        return isoflop_groups(self.runs[self.in_group])

    @cached_property
    def diagnostics(self) -> Diagnostics:
        """The fit's diagnostics gate."""
        return self.fit.diagnostics()

    @property
    def source(self) -> Any:
        """What the answers integrate over: the model average if any, else the fit."""
        return self.fit if self.average is None else self.average

    @cached_property
    def allocation(self) -> pd.DataFrame:
        """``allocate(budgets, level)`` over all draws (of the average's mixture, if any)."""
        if self.average is not None:
            return self.average.allocate(self.budgets, level=self.level)
        return self.fit.allocate(self.budgets, level=self.level, group=self.group)

    @cached_property
    def theta(self) -> dict[str, np.ndarray]:
        """Law-parameter draws thinned to at most :data:`CURVE_DRAWS`, shape (S,)."""
        draws = self.draws(self.fit.card.law.parameters)
        total = next(iter(draws.values())).size
        keep = np.unique(np.linspace(0, total - 1, min(total, CURVE_DRAWS)).astype(int))
        return {k: v[keep] for k, v in draws.items()}

    @property
    def curves_available(self) -> bool:
        """True when the law needs only N and D, so curves over (N, D) can be drawn."""
        return set(self.fit.card.law.covariates) <= {"params", "tokens"}

    @cached_property
    def predictive(self) -> pd.DataFrame:
        """Each run's posterior-predictive interval of its loss (nats/token).

        Columns: ``name``, ``params``, ``tokens``, ``flops``, ``loss`` (observed),
        ``pred_lo``, ``pred_median``, ``pred_hi`` and ``outside`` (observed loss
        outside the interval at ``level``).
        """
        pp = self.fit.tree["posterior_predictive"]["log_loss"]
        values = np.exp(np.asarray(pp.transpose("chain", "draw", "run")).reshape(-1, pp.sizes["run"]))
        lo, med, hi = np.quantile(values, [self.tail[0], 0.5, self.tail[1]], axis=0)
        table = self.runs[["name", "params", "tokens", "flops", "loss"]].copy()
        table["pred_lo"], table["pred_median"], table["pred_hi"] = lo, med, hi
        table["outside"] = (table["loss"] < lo) | (table["loss"] > hi)
        return table

    @cached_property
    def loo(self) -> LooResult:
        """PSIS-LOO per run (ArviZ ``loo`` with ``pointwise=True`` and ``loo_pit``)."""
        caught: list[str] = []
        elpd = loo(self.fit, require_posterior=False, caught=caught)
        with warnings.catch_warnings(record=True) as pit_caught:
            warnings.simplefilter("always")
            pit = az.loo_pit(self.fit.tree)
        return LooResult(
            pareto_k=np.asarray(elpd.pareto_k).reshape(-1),
            pit=np.asarray(pit["log_loss"]).reshape(-1),
            good_k=float(min(getattr(elpd, "good_k", KHAT_BAD), KHAT_BAD)),
            elpd=float(elpd.elpd), se=float(elpd.se), p_loo=float(elpd.p),
            warnings=sorted({*caught, *(str(w.message) for w in pit_caught)}),
        )

    @cached_property
    def _log_loss(self) -> Callable[..., jax.Array]:
        # One compiled function instead of one XLA compile per eager op and shape.
        return jax.jit(self.fit.card.law.log_loss)

    def law_bands(self, params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Quantiles :data:`BAND_QUANTILES` of the law's loss L(N, D) over draws.

        Parameters
        ----------
        params, tokens : array of shape (G,)
            Model sizes N (parameters) and training tokens D.

        Returns
        -------
        array of shape (5, G)
            Loss in nats/token at the 5, 25, 50, 75 and 95% quantiles.
        """
        th = {k: v[:, None] for k, v in self.theta.items()}
        x = {"log_params": np.log(params)[None, :], "log_tokens": np.log(tokens)[None, :]}
        loss = np.exp(np.asarray(self._log_loss(th, x)))
        return np.quantile(loss, BAND_QUANTILES, axis=0)

    @cached_property
    def compute_grid(self) -> np.ndarray:
        """Budgets (FLOPs) of the frontier: a third of the smallest run to 300× the largest, the
        IsoFLOP budgets, and the largest run's compute and 100× it (for the exponents)."""
        c = self.runs.loc[self.in_group, "flops"].to_numpy(float)
        grid = np.geomspace(c.min() / 3, max(self.budgets.max(), 100 * c.max()) * 3, 60)
        extra = [c.max(), 100 * c.max(), *[g for g, _ in self.groups]]
        return np.unique(np.concatenate([grid, extra]))

    @cached_property
    def _optimum(self) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        # One vectorised call for the posterior draws and the literature fits together.
        refs = self.reference_thetas()
        names = self.fit.card.law.parameters
        theta = {k: np.concatenate([self.theta[k], [r[k] for r in refs.values()]]) for k in names}
        draws = allocation_draws(self.fit.card.law, theta, self.compute_grid)
        size = next(iter(self.theta.values())).size
        posterior = {q: v[:size] for q, v in draws.items()}
        literature = {label: {q: v[size + i] for q, v in draws.items()} for i, label in enumerate(refs)}
        return posterior, literature

    def _columns(self, compute: np.ndarray) -> np.ndarray:
        compute = np.atleast_1d(np.asarray(compute, dtype=float))
        index = np.clip(np.searchsorted(self.compute_grid, compute), 0, self.compute_grid.size - 1)
        if not np.allclose(self.compute_grid[index], compute, rtol=1e-9):
            raise InputError(f"compute {compute} is not on the report's grid of budgets")
        return index

    def optimum_draws(self, compute: np.ndarray) -> dict[str, np.ndarray]:
        """Draws (S, K) of ``params_opt``, ``tokens_opt``, ``tokens_per_param``, ``loss_opt``
        at budgets of :attr:`compute_grid` (FLOPs)."""
        index = self._columns(compute)
        return {q: v[:, index] for q, v in self._optimum[0].items()}

    def frontier(self, compute: np.ndarray) -> dict[str, np.ndarray]:
        """Quantiles :data:`BAND_QUANTILES` (5, K) of the optimum at budgets of :attr:`compute_grid`."""
        return {q: np.quantile(v, BAND_QUANTILES, axis=0) for q, v in self.optimum_draws(compute).items()}

    def reference_optimum(self) -> dict[str, dict[str, np.ndarray]]:
        """Optimum of each literature point fit on :attr:`compute_grid`, keyed by label."""
        return self._optimum[1]

    @cached_property
    def classic_frontiers(self) -> dict[str, pd.DataFrame]:
        """Point estimates of Chinchilla's approaches 1-3 on :attr:`compute_grid`, keyed by approach.

        Each is :meth:`bayes_scaling.approaches.ApproachResult.frontier` without bootstrap (the
        report re-samples nothing); an approach the run table cannot support (e.g. no
        IsoFLOP profiles for approach 2, another law for approach 3) is left out.
        """
        from ..approaches import approach1, approach2, approach3

        runs = self.runs
        estimators: list[Callable[..., ApproachResult]] = [approach1, approach2]
        if self.fit.card.law.name == "chinchilla" and not self.fit.card.pooling:
            # 4 L-BFGS starts from the best grid points: a point estimate for a figure, in a quarter of the time
            estimators.append(partial(approach3, n_best=4))
        out: dict[str, pd.DataFrame] = {}
        for estimator in estimators:
            try:
                result = estimator(runs, bootstrap=0)
            except (InputError, ValueError, np.linalg.LinAlgError):
                continue
            out[result.approach] = result.frontier(self.compute_grid)
        return out

    def reference_thetas(self) -> dict[str, dict[str, float]]:
        """Literature point fits of the card that give every law parameter, keyed by label."""
        out: dict[str, dict[str, float]] = {}
        for key, ref in self.fit.card.references.items():
            if all(isinstance(ref.get(p), (int, float)) for p in self.fit.card.law.parameters):
                out[str(ref.get("label", key))] = {p: float(ref[p]) for p in self.fit.card.law.parameters}
        return out


def isoflop_groups(runs: pd.DataFrame, *, min_runs: int = 3, most: int = 8) -> list[tuple[float, pd.DataFrame]]:
    """Runs sharing a compute budget (:func:`bayes_scaling.approaches.budget_groups`), smallest first.

    Parameters
    ----------
    runs : DataFrame
        Run table with ``flops``.
    min_runs : int, default 3
        Budgets with fewer runs are not a valley and are left out.
    most : int, default 8
        At most this many budgets, spread evenly over those available.

    Returns
    -------
    list of (float, DataFrame)
        The budget (FLOPs, median of the group) and its runs sorted by ``params``.
    """
    if min_runs < 1 or most < 1:
        raise InputError(f"min_runs and most must be positive but got {min_runs} and {most}")
    from ..approaches import budget_groups

    key = budget_groups(runs["flops"].to_numpy(float))
    groups = [(float(g["flops"].median()), g.sort_values("params")) for _, g in runs.groupby(key) if len(g) >= min_runs]
    if len(groups) > most:
        groups = [groups[i] for i in np.unique(np.linspace(0, len(groups) - 1, most).round().astype(int))]
    return groups
