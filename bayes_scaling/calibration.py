"""Calibration across tables: choose the model discrepancy's hyperparameters from many backtests.

A discrepancy (:mod:`bayes_scaling.discrepancy`) has hyperparameters: the prior scale of
tau, the misfit ratio that ties tau to the law's misfit inside the data, whether its
internal leave-future-out splits inform tau, and the directions (compute, parameters,
tokens) in which a prediction counts as beyond the data. Chosen on one table they are
tuned to it. Here they are chosen on backtests of many tables, and judged on tables
they were not chosen on (:func:`leave_one_table_out`).

The plain law's posterior is the same whatever these hyperparameters are (the
discrepancy is zero inside the data). So each backtest split is fitted once
(:func:`bayes_scaling.calibration_evidence.split_evidence`), and any setting is then
scored on that evidence in milliseconds (:func:`score_setting`): the posterior of tau it
implies, the predictive distribution of every held-out run, coverage, log predictive density.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln, logsumexp

from .backtesting import Split, score_runs, summarise
from .calibration_evidence import ETA_GRID, SplitEvidence, split_evidence
from .cards import Discrepancy, ModelCard, Prior, load_card
from .data import MIN_RUNS
from .discrepancy import DIRECTIONS
from .discrepancy_scale import INNER_SCHEDULE
from .errors import InputError
from .nuts import Schedule
from .simulate import EXAMPLE_TRUTH, chinchilla_loss

#: Even grid of tau (log loss per √e-fold) on which every setting's posterior is computed.
TAU_GRID = np.linspace(0.0, 0.2, 801)


@dataclass(frozen=True)
class Setting:
    """Hyperparameters of a model discrepancy.

    Attributes
    ----------
    scale : float
        Scale of tau's HalfNormal prior (log loss per √e-fold).
    misfit_ratio : float or None
        tau = ratio · eta, eta the law's misfit amplitude inside the data; ``None``: misfit unused.
    splits : bool
        Whether internal leave-future-out splits inform tau.
    directions : tuple of str
        Directions counted by the extrapolation distance (:data:`bayes_scaling.discrepancy.DIRECTIONS`).
    misfit_window : float or None
        Only the runs within this many e-folds of compute below the largest inform the
        misfit (the law's frontier); ``None``: all runs.
    offsets : tuple of float
        The internal leave-future-out splits used when ``splits`` (e-folds of compute below
        the largest training run); evidence of other offsets is ignored.
    correlation : float
        How the splits' held-out residuals are read (card key ``split_correlation``): 1 one
        shared slope per split, 0 independent per run
        (:func:`bayes_scaling.discrepancy_evidence.moments_log_likelihood`).
    """

    scale: float
    misfit_ratio: float | None = None
    splits: bool = True
    directions: tuple[str, ...] = DIRECTIONS
    misfit_window: float | None = None
    offsets: tuple[float, ...] = (1.0, 2.0)
    correlation: float = 1.0

    def discrepancy(self) -> Discrepancy:
        """The card's ``[discrepancy]`` table of this setting."""
        return Discrepancy(Prior("HalfNormal", {"scale": float(self.scale)}),
                           tuple(self.offsets) if self.splits else (), self.misfit_ratio, self.directions,
                           self.misfit_window, self.correlation if self.splits else 1.0)

    def describe(self) -> str:
        """One line for people: the prior, the evidence and the directions.

        Examples
        --------
        >>> Setting(0.005, 2.0, True, ("compute",), None, (1.0, 2.0), 0.5).describe()
        'tau ~ HalfNormal(0.005); leave-future-out splits at 1, 2 e-folds read with correlation 0.5; misfit ratio 2 over every run; distance in compute'
        """
        parts = [f"tau ~ HalfNormal({self.scale:g})"]
        if self.splits:
            offsets = ", ".join(f"{o:g}" for o in self.offsets)
            parts.append(f"leave-future-out splits at {offsets} e-folds read with correlation {self.correlation:g}")
        if self.misfit_ratio is not None:
            over = "every run" if self.misfit_window is None else f"the runs within {self.misfit_window:g} e-folds"
            parts.append(f"misfit ratio {self.misfit_ratio:g} over {over}")
        parts.append(f"distance in {', '.join(self.directions)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tau_log_likelihood(evidence: SplitEvidence, setting: Setting, grid: np.ndarray = TAU_GRID) -> np.ndarray:
    """log p(evidence | tau) on ``grid`` under a setting: its splits' and its misfit's likelihoods."""
    ll = np.zeros_like(grid)
    if setting.splits:
        for offset, inner in zip(evidence.inner_offsets, evidence.inner, strict=True):
            if offset not in setting.offsets:
                continue
            ll = ll + inner.tau_log_likelihood(grid, setting.directions, setting.correlation)
    if setting.misfit_ratio is not None:
        ll = ll + np.interp(grid / setting.misfit_ratio, ETA_GRID, evidence.misfit(setting.misfit_window))
    return ll


def tau_posterior(evidence: SplitEvidence, setting: Setting, grid: np.ndarray = TAU_GRID) -> np.ndarray:
    """Posterior weights of tau on ``grid`` (sum 1): HalfNormal(setting.scale) prior times the evidence."""
    log_post = stats.halfnorm.logpdf(grid, scale=setting.scale) + tau_log_likelihood(evidence, setting, grid)
    weights = np.exp(log_post - log_post.max())
    return weights / weights.sum()


def score_setting(evidence: SplitEvidence, setting: Setting, *, seed: int = 0) -> pd.DataFrame:
    """Score a setting's predictive distribution at one split's held-out runs.

    The draws of the law (``evidence.heldout``) get a tau from the setting's posterior, a
    slope s = tau·z and observation noise; the density of each observed log loss is
    that of the noise at the shifted location.

    Returns
    -------
    DataFrame
        One row per held-out run, as :func:`bayes_scaling.backtesting.score_runs`.
    """
    pred = evidence.heldout
    rng = np.random.default_rng(seed)
    loc, density = _shifted(evidence, setting, rng)
    sigma = pred.sigma[:, None]
    if pred.nu is None:
        noise = rng.standard_normal(loc.shape)
    else:
        noise = rng.standard_t(np.broadcast_to(pred.nu[:, None], loc.shape))
    return score_runs(np.exp(pred.observed), loc + sigma * noise, density)


def mean_log_predictive_density(evidence: SplitEvidence, setting: Setting, *, seed: int = 0) -> float:
    """The mean over held-out runs of :func:`score_setting`'s log predictive density, without the other scores."""
    _, density = _shifted(evidence, setting, np.random.default_rng(seed))
    return float(np.mean(logsumexp(density, axis=0) - np.log(density.shape[0])))


def _shifted(evidence: SplitEvidence, setting: Setting, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per draw and held-out run: the law's location shifted by a discrepancy drawn under ``setting``,
    and the log density of the observed log loss there."""
    pred = evidence.heldout
    weights = tau_posterior(evidence, setting)
    n = len(pred.sigma)
    cell = rng.choice(len(TAU_GRID), size=n, p=weights)
    lo = TAU_GRID[np.maximum(cell - 1, 0)]
    tau = lo + (TAU_GRID[cell] - lo) * rng.uniform(size=n)
    loc = pred.loc + (tau * rng.standard_normal(n))[:, None] * pred.growth(setting.directions)[None, :]
    z = (pred.observed[None, :] - loc) / pred.sigma[:, None]
    log_sigma = np.log(pred.sigma)[:, None]
    if pred.nu is None:
        return loc, -0.5 * z * z - 0.5 * np.log(2 * np.pi) - log_sigma
    nu = pred.nu[:, None]
    const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
    return loc, const - log_sigma - (nu + 1) / 2 * np.log1p(z * z / nu)


#: Prior scales of tau searched by :func:`hierarchical_scale` (log loss per √e-fold).
HIERARCHICAL_SCALES = np.geomspace(0.001, 0.1, 81)


def hierarchical_scale(evidence: Sequence[SplitEvidence], setting: Setting,
                       scales: np.ndarray = HIERARCHICAL_SCALES) -> tuple[float, np.ndarray]:
    """The prior scale of tau learnt across tables: each table its own tau, all from one HalfNormal(scale).

    The scale of largest marginal likelihood (type-II maximum likelihood, a hierarchical
    prior with its top level fitted): a table's evidence about its tau is the mean over its
    splits of their log likelihood of tau under ``setting`` (:func:`tau_log_likelihood`:
    splits overlap, so they count as one), integrated against HalfNormal(scale); the
    tables' marginals multiply.

    Parameters
    ----------
    evidence : sequence of SplitEvidence
        Backtest splits of one or more tables.
    setting : Setting
        Everything but the scale (its ``scale`` is ignored).
    scales : array, default :data:`HIERARCHICAL_SCALES`

    Returns
    -------
    (float, array)
        The scale, and the log marginal likelihood of every candidate scale.
    """
    if not evidence:
        raise InputError("no backtest splits to learn the scale of tau from")
    step = float(TAU_GRID[1] - TAU_GRID[0])
    total = np.zeros(len(scales))
    for table in sorted({ev.table for ev in evidence}):
        ll = np.mean([tau_log_likelihood(ev, setting) for ev in evidence if ev.table == table], axis=0)
        total += np.array([logsumexp(ll + stats.halfnorm.logpdf(TAU_GRID, scale=sc)) for sc in scales]) + np.log(step)
    return float(scales[int(np.argmax(total))]), total


def coverage_under_model(evidence: Sequence[SplitEvidence], setting: Setting, *, simulations: int = 400,
                         seed: int = 0) -> pd.DataFrame:
    """The pooled coverage a setting's own predictive distribution would show if it were right.

    The held-out runs of one split err together (one draw of the law and of the
    discrepancy's slope per split), so coverage pooled over a few splits scatters far more
    than over as many independent runs: 17 splits of 500 runs are closer to 17 than to 500
    observations. Here each split's truth is one draw of the setting's predictive
    distribution (its law, slope and noise: the noise independent per run), scored with
    the same intervals as the observed runs, ``simulations`` times.

    Parameters
    ----------
    evidence : sequence of SplitEvidence
    setting : Setting
    simulations : int, default 400
    seed : int, default 0

    Returns
    -------
    DataFrame
        One row per interval level (0.5, 0.9): ``level``, ``observed`` (pooled coverage of
        the held-out runs), ``expected_lo``, ``expected_median``, ``expected_hi`` (the 5%,
        50% and 95% quantiles of the simulated pooled coverage) and ``p_below`` (share of
        simulations at or below the observed: small when the intervals are too narrow).
    """
    rng = np.random.default_rng(seed)
    levels = (0.5, 0.9)
    draws, bounds = [], []
    for ev in evidence:
        loc, _ = _shifted(ev, setting, np.random.default_rng(seed))
        pred = ev.heldout
        noise = (rng.standard_normal(loc.shape) if pred.nu is None
                 else rng.standard_t(np.broadcast_to(pred.nu[:, None], loc.shape)))
        y = loc + pred.sigma[:, None] * noise
        draws.append(y)
        bounds.append([np.quantile(y, [(1 - q) / 2, (1 + q) / 2], axis=0) for q in levels])
    n = sum(len(ev.heldout.observed) for ev in evidence)
    observed = [sum(int(np.sum((ev.heldout.observed >= b[k][0]) & (ev.heldout.observed <= b[k][1])))
                    for ev, b in zip(evidence, bounds, strict=True)) / n for k in range(len(levels))]
    simulated = np.zeros((simulations, len(levels)))
    for r in range(simulations):
        for y, b in zip(draws, bounds, strict=True):
            truth = y[rng.integers(len(y))]
            for k in range(len(levels)):
                simulated[r, k] += np.sum((truth >= b[k][0]) & (truth <= b[k][1]))
    simulated /= n
    return pd.DataFrame([{"level": q, "observed": observed[k],
                          **dict(zip(("expected_lo", "expected_median", "expected_hi"),
                                     np.quantile(simulated[:, k], [0.05, 0.5, 0.95]).tolist(), strict=True)),
                          "p_below": float(np.mean(simulated[:, k] <= observed[k] + 1e-12))}
                         for k, q in enumerate(levels)])


#: Candidate values searched by :func:`candidate_settings`.
SCALES = (0.005, 0.01, 0.02)
MISFIT_RATIOS = (None, 1.0, 1.3, 2.0)
MISFIT_WINDOWS = (None, 2.0)
CORRELATIONS = (0.0, 0.5, 0.75, 0.9, 1.0)


def candidate_settings(scales: Sequence[float] = SCALES, ratios: Sequence[float | None] = MISFIT_RATIOS,
                       windows: Sequence[float | None] = MISFIT_WINDOWS,
                       directions: Sequence[tuple[str, ...]] = (("compute",), DIRECTIONS),
                       correlations: Sequence[float] = CORRELATIONS) -> list[Setting]:
    """Every combination of the candidate hyperparameters (a window only with a misfit ratio, a
    correlation only with splits)."""
    out = []
    for scale, ratio, splits, dirs in itertools.product(scales, ratios, (True, False), directions):
        for window in (windows if ratio is not None else (None,)):
            for corr in (correlations if splits else (1.0,)):
                out.append(Setting(float(scale), ratio, splits, tuple(dirs), window, correlation=float(corr)))
    return out


def split_scores(evidence: Sequence[SplitEvidence], setting: Setting, *, seed: int = 0) -> pd.DataFrame:
    """One row per split: ``table``, ``split``, ``n_test``, the scores of
    :func:`bayes_scaling.backtesting.summarise` and ``tau_mean`` (posterior mean of tau under the setting)."""
    rows = []
    for ev in evidence:
        summary = summarise(score_setting(ev, setting, seed=seed))
        rows.append({"table": ev.table, "split": ev.split.label, **summary,
                     "tau_mean": float(tau_posterior(ev, setting) @ TAU_GRID)})
    return pd.DataFrame(rows)


def table_densities(evidence: Sequence[SplitEvidence], setting: Setting, *, seed: int = 0) -> pd.Series:
    """Per table: the mean over its splits of their mean log predictive density under a setting (fast)."""
    table = pd.DataFrame({"table": [ev.table for ev in evidence],
                          "mean_log_pred_density": [mean_log_predictive_density(ev, setting, seed=seed)
                                                    for ev in evidence]})
    return table.groupby("table")["mean_log_pred_density"].mean()


def objective_of(evidence: Sequence[SplitEvidence], setting: Setting, *, seed: int = 0) -> float:
    """:func:`objective` of a setting on ``evidence``, from the log predictive densities alone (fast)."""
    return float(table_densities(evidence, setting, seed=seed).mean())


def objective(scores: pd.DataFrame) -> float:
    """The mean over tables of their splits' mean log predictive density (each table counts once).

    A large table cannot outweigh a small one. The log predictive density is a proper score:
    it rewards intervals of the right width, neither wider nor narrower. (Settings are chosen
    by their regret on each table, :func:`regret`, which this mean summarises.)
    """
    return float(scores.groupby("table")["mean_log_pred_density"].mean().mean())


def regret(densities: pd.DataFrame) -> pd.Series:
    """Root mean square over tables of each setting's regret: how far its log predictive density on a
    table falls below the best any setting reaches there.

    Parameters
    ----------
    densities : DataFrame
        One row per setting, one column per table (:func:`table_densities`).

    Returns
    -------
    Series
        One value per setting (log predictive density per run; 0 for a setting best on every table).

    Notes
    -----
    A setting chosen by the mean density can buy a small gain on most tables with a large
    loss on one: chosen on four tables, it then fails the fifth, unseen, the same way. The
    squared regret charges that loss quadratically, so the chosen setting is one that no
    table of the evidence rejects (it gave leave-one-table-out 90% coverage 0.84 against
    0.71 for the mean on the five published tables, docs/calibration.md).
    """
    shortfall = densities.max(axis=0) - densities
    return np.sqrt((shortfall**2).mean(axis=1))


def widening(evidence: SplitEvidence, setting: Setting, *, far: bool = False) -> float:
    """Median over held-out runs of the predictive sd with the setting's discrepancy over the sd without it.

    The sd without is the law's spread over draws plus the noise; the discrepancy adds
    E[tau²]·g² (g: √distance). On data where the law is exactly right this is what the
    discrepancy costs in interval width. ``far=True``: at the evidence's far point instead
    (100× the largest training compute, where plans are made), which must exist.
    """
    pred = evidence.heldout
    if far:
        if evidence.far is None:
            raise InputError(f"{evidence.table}: the evidence of split {evidence.split.label} has no far point")
        pred = evidence.far
    base = pred.loc.var(axis=0) + pred.noise_variance()
    tau2 = float(tau_posterior(evidence, setting) @ TAU_GRID**2)
    return float(np.median(np.sqrt((base + tau2 * pred.growth(setting.directions) ** 2) / base)))


#: Most widening (:func:`widening`, median over splits) a setting may cost on exact-law tables.
MAX_WIDENING = 1.25
#: Settings whose regret is within this of the least are ties, broken by the least widening on
#: exact-law tables (log predictive density per run: differences below it are noise of the search).
OBJECTIVE_TIE = 0.005


def choose_setting(evidence: Sequence[SplitEvidence], candidates: Sequence[Setting] | None = None, *,
                   exact: Sequence[SplitEvidence] = (), max_widening: float = MAX_WIDENING,
                   tie: float = OBJECTIVE_TIE, seed: int = 0) -> tuple[Setting, pd.DataFrame]:
    """The candidate setting of least :func:`regret` across the tables of ``evidence``, and every candidate's scores.

    Parameters
    ----------
    evidence : sequence of SplitEvidence
        Backtest splits of real tables.
    candidates : sequence of Setting, optional
        Default :func:`candidate_settings`.
    exact : sequence of SplitEvidence, default ()
        Backtest splits of tables where the law is exactly right (generated; each with its
        far point, :func:`split_evidence` makes it): a setting
        whose :func:`widening` there exceeds ``max_widening`` is not eligible: the median over
        the twins at their held-out runs, or on any twin at its far point (100× the largest
        compute, where plans are made).
    max_widening : float, default :data:`MAX_WIDENING`
    tie : float, default :data:`OBJECTIVE_TIE`
        Eligible settings within ``tie`` of the least regret are ties; the one of least
        widening on ``exact`` wins (the least regret without ``exact``).
    seed : int, default 0

    Returns
    -------
    (Setting, DataFrame)
        The chosen setting (when no candidate is eligible, the one of least far widening),
        and one row per candidate: its fields, ``objective`` (minus its :func:`regret`),
        ``mean_log_pred_density`` (:func:`objective`), ``widening_exact`` (median over
        twins), ``widening_far`` (largest over twins; both NaN
        without ``exact``) and ``eligible``, best first.
    """
    candidates = list(candidates or candidate_settings())
    if not evidence:
        raise InputError("no backtest splits to choose a discrepancy setting on")
    densities = pd.DataFrame([table_densities(evidence, c, seed=seed) for c in candidates]).reset_index(drop=True)
    score = -regret(densities)
    rows = []
    for k, c in enumerate(candidates):
        widen = float(np.median([widening(ev, c) for ev in exact])) if exact else float("nan")
        widen_far = float(max(widening(ev, c, far=True) for ev in exact)) if exact else float("nan")
        rows.append({**c.to_dict(), "objective": float(score[k]),
                     "mean_log_pred_density": float(densities.iloc[k].mean()), "widening_exact": widen,
                     "widening_far": widen_far, "eligible": not max(widen, widen_far) > max_widening})
    eligible = [k for k, r in enumerate(rows) if r["eligible"]]
    if eligible:
        top = max(rows[k]["objective"] for k in eligible)
        ties = [k for k in eligible if rows[k]["objective"] >= top - tie]
    else:  # no candidate keeps the guarantee: the one that widens least (the table's eligible column says so)
        least = min(r["widening_far"] for r in rows)
        ties = [k for k, r in enumerate(rows) if r["widening_far"] <= least * (1 + 1e-9)]
    best = min(ties, key=lambda k: (rows[k]["widening_far"] if exact else 0.0, -rows[k]["objective"]))
    table = pd.DataFrame(rows).sort_values(["eligible", "objective"], ascending=False, kind="stable")
    return candidates[best], table.reset_index(drop=True)


def leave_one_table_out(evidence: Sequence[SplitEvidence], candidates: Sequence[Setting] | None = None, *,
                        exact: Sequence[SplitEvidence] = (), seed: int = 0) -> pd.DataFrame:
    """Choose the setting on all tables but one and score it on the one left out, for every table.

    Returns
    -------
    DataFrame
        One row per split of each left-out table: ``table``, ``split``, the scores of the
        setting chosen without that table, ``chosen`` (the setting, as a dict) and
        ``chosen_on`` (the tables it was chosen on).
    """
    tables = sorted({ev.table for ev in evidence})
    if len(tables) < 2:
        raise InputError(f"leave-one-table-out needs at least two tables; got {tables}")
    out = []
    for left_out in tables:
        rest = [ev for ev in evidence if ev.table != left_out]
        setting, _ = choose_setting(rest, candidates, exact=exact, seed=seed)
        held = [ev for ev in evidence if ev.table == left_out]
        scores = split_scores(held, setting, seed=seed)
        out.append(scores.assign(chosen=[setting.to_dict()] * len(scores),
                                 chosen_on=[sorted({ev.table for ev in rest})] * len(scores)))
    return pd.concat(out, ignore_index=True)


#: Share of a table's runs each default split holds out: compute cutoffs at these upper quantiles of
#: compute, and a size split holding out at least the first share of runs among the largest models.
HELD_OUT_SHARES = (0.15, 0.3)
#: Noise (sd of log loss) of the exact-law twin of each table (:func:`exact_twin`).
TWIN_NOISE = 0.005


def default_splits(runs: pd.DataFrame) -> list[Split]:
    """Backtest splits of a table: two compute cutoffs (about 15% and 30% of runs held out) and a size split.

    A split is kept only when it leaves at least :data:`bayes_scaling.data.MIN_RUNS` runs to
    fit and 3 to predict; the size split holds out the largest model sizes that make up at
    least 15% of the runs (none when the table has a single size).
    """
    flops, params = runs["flops"].to_numpy(float), runs["params"].to_numpy(float)
    out = []
    for share in HELD_OUT_SHARES:
        limit = float(np.quantile(flops, 1 - share))
        out.append(Split("compute", float(f"{limit:.3g}")))
    sizes = np.unique(params)[::-1]
    for k in range(1, len(sizes)):
        if (params >= sizes[k - 1]).mean() >= HELD_OUT_SHARES[0]:
            out.append(Split("params", float(np.sqrt(sizes[k] * sizes[k - 1]))))  # between two sizes
            break
    kept = []
    for split in out:
        train, test = split.divide(runs)
        if len(train) >= MIN_RUNS and len(test) >= 3 and split not in kept:
            kept.append(split)
    return kept


def exact_twin(runs: pd.DataFrame, seed: int = 0, noise: float = TWIN_NOISE) -> pd.DataFrame:
    """The table's design (N, D) with losses from an exactly right law (Besiroglu et al.'s fit) and noise.

    On it a discrepancy can only cost width (:func:`widening`): the guarantee the chosen
    setting must keep.
    """
    rng = np.random.default_rng(seed)
    law = chinchilla_loss(runs["params"].to_numpy(float), runs["tokens"].to_numpy(float), EXAMPLE_TRUTH)
    twin = runs[[c for c in runs.columns if c not in ("loss",)]].assign(
        loss=law * np.exp(noise * rng.standard_normal(len(runs))))
    twin.attrs = dict(runs.attrs)
    return twin


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` learnt.

    Attributes
    ----------
    card : ModelCard
        The input card with the chosen ``[discrepancy]`` and a ``[calibration]`` record.
    setting : Setting
        The chosen hyperparameters.
    candidates : DataFrame
        Every candidate's objective and widening (:func:`choose_setting`).
    before, after : DataFrame
        Scores per table and split (:func:`split_scores`) of the input card's discrepancy and of the chosen one.
    """

    card: ModelCard
    setting: Setting
    candidates: pd.DataFrame
    before: pd.DataFrame
    after: pd.DataFrame


def setting_of(card: ModelCard) -> Setting:
    """The :class:`Setting` of a card's discrepancy (a HalfNormal prior of tau); plain when it has none."""
    d = card.discrepancy
    if d is None:
        return Setting(1e-9, None, False, ("compute",))
    if d.prior.dist != "HalfNormal":
        raise InputError(f"card {card.name!r}: calibrate compares HalfNormal priors of tau; its [discrepancy] has "
                         f"{d.prior.dist}")
    return Setting(float(d.prior.kwargs["scale"]), d.misfit_ratio, bool(d.calibrate), d.directions, d.misfit_window,
                   tuple(float(o) for o in d.calibrate) or (1.0, 2.0), float(d.split_correlation))


def calibrate(tables: Mapping[str, pd.DataFrame], card: str | ModelCard = "chinchilla", *,
              splits: Mapping[str, Sequence[Split]] | None = None, candidates: Sequence[Setting] | None = None,
              exact: bool = True, seed: int = 0, schedule: Schedule = INNER_SCHEDULE) -> Calibration:
    """Learn a card's model discrepancy from a team's own tables of runs.

    Each table is backtested at its splits (the plain law fitted once per split,
    :func:`split_evidence`), every candidate setting is scored on all of them, and the one
    of least :func:`regret` across the tables whose widening on exact-law twins of the tables stays within
    :data:`MAX_WIDENING` is written into the card.

    Parameters
    ----------
    tables : mapping of str to DataFrame
        Validated run tables by name (at least one; two or more to learn what transfers).
    card : str or ModelCard, default "chinchilla"
        The law and priors; its current discrepancy is scored as "before".
    splits : mapping of str to sequence of Split, optional
        Backtest splits per table; default :func:`default_splits`.
    candidates : sequence of Setting, optional
        Default :func:`candidate_settings`.
    exact : bool, default True
        Fit the exact-law twin of each table (:func:`exact_twin`, first split) to keep the
        widening guarantee; ``False`` skips it (faster, no guarantee). The twins follow the
        Chinchilla law, so cards of other laws skip them (recorded in ``[calibration]``).
    seed : int, default 0
    schedule : Schedule
        Of every fit.

    Returns
    -------
    Calibration
    """
    base = load_card(card) if isinstance(card, str) else card
    if not tables:
        raise InputError("calibrate needs at least one run table")
    unchecked = "not checked" if not exact else "not checked (the twins follow the Chinchilla law)"
    exact = exact and base.law.name == "chinchilla"
    chosen = {name: list(splits[name]) if splits and name in splits else default_splits(runs)
              for name, runs in tables.items()}
    for name, these in chosen.items():  # every table checked before any fit starts
        if not these:
            raise InputError(f"{name}: no backtest split leaves {MIN_RUNS} runs to fit and 3 to predict; "
                             "it needs more runs or more than one compute budget")
    evidence, twins = [], []
    for k, (name, runs) in enumerate(tables.items()):
        evidence += [split_evidence(runs, base, s, table=name, seed=seed, schedule=schedule) for s in chosen[name]]
        if exact:
            twins.append(split_evidence(exact_twin(runs, seed + k), base, chosen[name][0], table=f"exact-{name}",
                                        seed=seed, schedule=schedule))
    setting, table = choose_setting(evidence, candidates, exact=twins, seed=seed)
    before = split_scores(evidence, setting_of(base), seed=seed)
    after = split_scores(evidence, setting, seed=seed)
    record = {
        "tables": list(tables),
        "splits": [f"{ev.table}: {ev.split.label}" for ev in evidence],
        "n_test": [int(n) for n in after["n_test"]],
        "coverage_90_before": [round(float(v), 4) for v in before["coverage_90"]],
        "coverage_90_after": [round(float(v), 4) for v in after["coverage_90"]],
        "coverage_50_before": [round(float(v), 4) for v in before["coverage_50"]],
        "coverage_50_after": [round(float(v), 4) for v in after["coverage_50"]],
        "log_pred_density_before": [round(float(v), 4) for v in before["mean_log_pred_density"]],
        "log_pred_density_after": [round(float(v), 4) for v in after["mean_log_pred_density"]],
        "objective_before": round(objective(before), 4), "objective_after": round(objective(after), 4),
        "candidates": len(table),
        "widening_exact": round(float(np.median([widening(ev, setting) for ev in twins])), 4) if exact
        else unchecked,
        "widening_far": round(float(max(widening(ev, setting, far=True) for ev in twins)), 4) if exact
        else unchecked,
    }
    discrepancy = dataclasses.replace(setting.discrepancy(), prior=Prior(
        "HalfNormal", {"scale": setting.scale},
        f"Learnt by `bayes-scaling calibrate` from {len(evidence)} backtest splits of {', '.join(tables)}: the "
        "setting of best mean log predictive density (see [calibration])."))
    learnt = dataclasses.replace(base, discrepancy=discrepancy, calibration=record)
    learnt = dataclasses.replace(learnt, text=learnt.to_toml())
    return Calibration(learnt, setting, table, before, after)


__all__ = ["Calibration", "Setting", "calibrate", "candidate_settings", "choose_setting", "coverage_under_model",
           "default_splits", "exact_twin", "hierarchical_scale", "leave_one_table_out", "mean_log_predictive_density",
           "objective", "objective_of", "regret", "score_setting", "setting_of", "split_scores", "table_densities", "tau_log_likelihood", "tau_posterior",
           "widening"]
