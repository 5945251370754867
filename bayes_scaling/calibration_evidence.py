"""Evidence of a backtest split for calibration: the plain law fitted once, what any discrepancy setting is scored on.

The plain law's posterior is the same whatever the discrepancy's hyperparameters are (the
discrepancy is zero inside the data). So each backtest split is fitted once
(:func:`split_evidence`): the law below the split and its predictions of the runs above
(:class:`Predictions`), the inner leave-future-out fits, the training residuals (the law's
misfit, :func:`misfit_evidence`) and a far point where plans are made. Scoring settings on
this evidence is :mod:`bayes_scaling.calibration`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .backtesting import Split
from .cards import ModelCard, load_card
from .data import MIN_RUNS
from .discrepancy import FittedRegion, discrepancy_growth
from .discrepancy_evidence import (
    MIN_MISFIT_ROWS,
    draw_index,
    frontier_rows,
    law_log_loss_draws,
    law_residuals,
    misfit_log_likelihood,
    moments_log_likelihood,
)
from .discrepancy_scale import INNER_SCHEDULE, MIN_SPLIT_TEST, MIN_SPLIT_TRAIN
from .errors import InputError
from .fitted import Fit
from .model import covariates
from .nuts import Schedule
from .prediction import heldout_covariates
from .sampling import fit_law, fit_law_subsets

#: Grid of the misfit amplitude eta (log loss) on which the misfit likelihood is stored.
ETA_GRID = np.linspace(0.0, 0.4, 1601)
#: The far point of a split's evidence: the largest-compute training run with this many times its
#: parameters and tokens (so FAR_FACTOR² times its compute).
FAR_FACTOR = 10.0
#: Most posterior draws kept per fit for scoring.
MAX_DRAWS = 1000


@dataclass(frozen=True)
class Predictions:
    """A plain fit's law at runs it did not see: what any discrepancy setting is scored on.

    Attributes
    ----------
    loc : array (S, T)
        The law's log loss per posterior draw and run.
    sigma : array (S,)
        Noise scale on log loss per draw.
    nu : array (S,) or None
        Student-t degrees of freedom per draw (``None``: normal noise).
    observed : array (T,)
        Observed log loss of the runs.
    log_params, log_tokens : array (T,)
        ln N (as the fit counts parameters) and ln D of the runs.
    fitted : array (R, 2)
        ln N and ln D of the runs the fit saw (its region in every direction).
    fitted_log_flops : array (R,)
        ln C of the runs the fit saw (their ``flops`` column, FLOPs), as a fit's region counts compute.
    """

    loc: np.ndarray
    sigma: np.ndarray
    nu: np.ndarray | None
    observed: np.ndarray
    log_params: np.ndarray
    log_tokens: np.ndarray
    fitted: np.ndarray
    fitted_log_flops: np.ndarray

    def growth(self, directions: Sequence[str]) -> np.ndarray:
        """√(e-folds beyond the fitted region) of each run, counting ``directions``."""
        region = FittedRegion.of_runs(self.fitted[:, 0], self.fitted[:, 1], directions, self.fitted_log_flops)
        return np.asarray(discrepancy_growth(region.distance(self.log_params, self.log_tokens)))

    @cached_property
    def residual_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (T,) and covariance (T, T) over draws of observed minus law log loss."""
        resid = self.observed[None, :] - self.loc
        cov = np.atleast_2d(np.cov(resid, rowvar=False)) if len(resid) > 1 else np.zeros((resid.shape[1],) * 2)
        return resid.mean(axis=0), cov

    def tau_log_likelihood(self, grid: np.ndarray, directions: Sequence[str], correlation: float = 1.0
                           ) -> np.ndarray:
        """log p(these runs | tau) on ``grid`` (:func:`bayes_scaling.discrepancy_evidence.moments_log_likelihood`),
        the runs' distance counted in ``directions``; cached per (grid, directions, correlation)."""
        key = (len(grid), float(grid[-1]), tuple(directions), float(correlation))
        cache = self.__dict__.setdefault("_tau_cache", {})
        if key not in cache:
            cache[key] = moments_log_likelihood(*self.residual_moments, self.noise_variance(),
                                                self.growth(directions), grid, correlation)
        return cache[key]

    def noise_variance(self) -> float:
        """Mean variance of one run's noise on log loss (Student-t: sigma² nu / (nu − 2), capped at 3 sigma²)."""
        var = self.sigma**2
        if self.nu is not None:
            var = var * np.where(self.nu > 2, self.nu / np.maximum(self.nu - 2, 1e-9), 3.0)
        return float(np.mean(var))


@dataclass(frozen=True)
class SplitEvidence:
    """Everything a discrepancy setting needs to be scored on one backtest split.

    Attributes
    ----------
    table : str
        Name of the run table.
    split : Split
    n_train : int
    heldout : Predictions
        The plain fit below the split, at the runs above it.
    inner : list of Predictions
        The plain law fitted below each internal leave-future-out split of the training
        runs (1 and 2 e-folds of compute below their largest run), at the training runs above.
    residuals : array (R,)
        Observed minus posterior-mean law log loss of the training runs.
    fitted : array (R, 2)
        ln N and ln D of the training runs.
    log_flops : array (R,)
        ln C of the training runs (their ``flops`` column, FLOPs): where the misfit window is counted.
    diagnostics_ok : bool
        Whether the plain fit passed its diagnostics gate.
    far : Predictions or None
        The plain fit's law at a far point: the largest-compute training run with 10× the
        parameters and 10× the tokens (100× the compute), where a plan is typically made;
        its ``observed`` is NaN. Used by :func:`widening` (``far=True``).
    inner_offsets : tuple of float
        The offset (e-folds of compute below the largest training run) of each of ``inner``.
    """

    table: str
    split: Split
    n_train: int
    heldout: Predictions
    inner: list[Predictions]
    residuals: np.ndarray
    fitted: np.ndarray
    log_flops: np.ndarray
    diagnostics_ok: bool = True
    far: Predictions | None = None
    inner_offsets: tuple[float, ...] = (1.0, 2.0)
    _misfit: dict[float | None, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def misfit(self, window: float | None = None) -> np.ndarray:
        """log p(residuals | eta) on :data:`ETA_GRID` of the training runs within ``window`` e-folds of
        compute below the largest (all runs: ``None``), cached."""
        if window not in self._misfit:
            self._misfit[window] = misfit_evidence(self.residuals, self.fitted, self.log_flops, window)
        return self._misfit[window]


def predictions(fit: Fit, runs: pd.DataFrame, *, max_draws: int = MAX_DRAWS) -> Predictions:
    """A plain fit's law at ``runs`` (not fitted), with the fitted runs' region.

    Parameters
    ----------
    fit : Fit
        A fit without discrepancy (or whose discrepancy is ignored).
    runs : DataFrame
        Validated runs with ``loss``, counted as the fit counts parameters.
    max_draws : int, default :data:`MAX_DRAWS`
        Posterior draws kept (evenly spaced).
    """
    card, post = fit.card, fit.posterior
    x = heldout_covariates(fit, runs)
    loc = np.asarray(law_log_loss_draws(card, post, x, max_draws), float)
    sigma = np.asarray(post["sigma"]).reshape(-1)
    keep = draw_index(len(sigma), max_draws)                                    # the draws of ``loc``
    nu = None
    if card.likelihood == "student_t":
        nu = (np.asarray(post["nu"]).reshape(-1)[keep] if "nu" in post
              else np.full(len(keep), float(card.nu)))  # type: ignore[arg-type]
    fx = covariates(fit.runs, card, str(fit.attrs.get("param_count", "total")))
    return Predictions(loc, sigma[keep], nu, np.log(runs["loss"].to_numpy(float)), x["log_params"],
                       x["log_tokens"], np.column_stack([fx["log_params"], fx["log_tokens"]]),
                       np.log(fit.runs["flops"].to_numpy(float)))


def split_evidence(runs: pd.DataFrame, card: str | ModelCard, split: Split, *, table: str = "", seed: int = 0,
                   schedule: Schedule = INNER_SCHEDULE, offsets: Sequence[float] = (1.0, 2.0),
                   param_count: str = "total") -> SplitEvidence:
    """Fit the plain law below ``split`` once and keep what every discrepancy setting is scored on.

    Parameters
    ----------
    runs : DataFrame
        Validated run table.
    card : str or ModelCard
        The law and priors (its discrepancy, if any, is ignored).
    split : Split
    table : str, default ""
        Name of the table, for the records.
    seed : int, default 0
    schedule : Schedule, default :data:`bayes_scaling.discrepancy_scale.INNER_SCHEDULE`
        Of the plain fit and of the inner fits (the default fit's).
    offsets : sequence of float, default (1.0, 2.0)
        Internal leave-future-out splits, e-folds of compute below the training runs' largest
        (each fitted by at least two chains).
    param_count : {"total", "non_embedding"}

    Raises
    ------
    InputError
        If the split leaves too few runs to fit or none to predict.
    """
    base = load_card(card) if isinstance(card, str) else card
    plain = base.with_discrepancy(None)
    train, test = split.divide(runs)
    if len(train) < MIN_RUNS or len(test) == 0:
        raise InputError(f"{table or 'runs'}: split {split.label} leaves {len(train)} runs to fit and {len(test)} to "
                         f"predict; it needs at least {MIN_RUNS} and 1")
    fit = fit_law(train, plain, seed=seed, param_count=param_count, chains=schedule.chains, warmup=schedule.warmup,
                  draws=schedule.draws, target_accept=schedule.target_accept)
    heldout = predictions(fit, test)
    log_flops = np.log(train["flops"].to_numpy(float))
    top = train.iloc[[int(np.argmax(log_flops))]].reset_index(drop=True)
    far = predictions(fit, top.assign(params=top["params"] * FAR_FACTOR, tokens=top["tokens"] * FAR_FACTOR,
                                      flops=top["flops"] * FAR_FACTOR**2, loss=np.nan))
    subsets, tests, kept = [], [], []
    for offset in offsets:
        below = log_flops <= log_flops.max() - offset
        if below.sum() >= MIN_SPLIT_TRAIN and (~below).sum() >= MIN_SPLIT_TEST:
            subsets.append(np.flatnonzero(below))
            tests.append(train[~below].reset_index(drop=True))
            kept.append(float(offset))
    inner = []
    if subsets:
        fits = fit_law_subsets(train, plain, subsets, seed=seed + 101, param_count=param_count,
                               chains=max(schedule.chains, 2 * len(subsets)), warmup=schedule.warmup, draws=schedule.draws,
                               target_accept=schedule.target_accept)
        inner = [predictions(f, t) for f, t in zip(fits, tests, strict=True)]
    x = covariates(train, plain, param_count)
    resid = law_residuals(plain, fit.posterior, x, np.log(train["loss"].to_numpy(float)))
    return SplitEvidence(table, split, len(train), heldout, inner, resid,
                         np.column_stack([x["log_params"], x["log_tokens"]]), log_flops,
                         not fit.diagnostics().has_errors, far, tuple(kept))


def misfit_evidence(residuals: np.ndarray, fitted: np.ndarray, log_flops: np.ndarray, window: float | None = None,
                    amplitudes: np.ndarray = ETA_GRID) -> np.ndarray:
    """log p(residuals | eta) of the runs within ``window`` e-folds of compute below the largest run.

    The runs are chosen as a fit's are (:func:`bayes_scaling.discrepancy_evidence.frontier_rows`
    on ``log_flops``, ln C in FLOPs); ``None`` uses every run. Fewer than
    :data:`bayes_scaling.discrepancy_evidence.MIN_MISFIT_ROWS` runs in the window carry no
    evidence (zeros).
    """
    keep = frontier_rows(log_flops, window)
    if len(keep) < MIN_MISFIT_ROWS:
        return np.zeros_like(amplitudes)
    return misfit_log_likelihood(residuals[keep], fitted[keep], amplitudes)[0]


__all__ = ["ETA_GRID", "FAR_FACTOR", "MAX_DRAWS", "Predictions", "SplitEvidence", "misfit_evidence", "predictions",
           "split_evidence"]
