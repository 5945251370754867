"""Compare arms: data mixes, tokenisers or architectures, each a group of runs on one held-out set.

Each arm is a group of runs (a column of the run table, e.g. ``mix``). The arms are
fitted, and at every budget each arm is run at *its own* compute-optimal plan; the
answer is, per budget, the probability that each arm gives the lowest loss, the loss
difference to the best other arm, and, per pair of arms, the compute where their ranking
flips (the crossover), all integrated over the posterior.

How the arms are fitted follows the card:

* a pooled card (default ``arms``: the hierarchical card, non-centred; shared alpha and
  beta, per-arm E, A, B partially pooled) fits all arms **jointly** on the ``group`` column; the draws of the
  arms come from one posterior, so their differences carry the correlation the shared
  exponents create. This is the default because an arm of 8-20 runs cannot pin down its
  own exponents, and arms trained the same way rarely differ in them.
* an unpooled card (``chinchilla``, ...) fits each arm **separately** (every parameter
  its own); the arms' draws are independent, paired by index.

Losses must be comparable: the same held-out set, in the same unit. Two rules warn when
they may not be (:func:`comparability_warnings`): an ``eval_set`` column whose values
differ between arms (or within one), and arms whose irreducible losses E (posterior
medians) differ by more than a factor :data:`LOSS_LEVEL_RATIO`, as different tokenisers'
nats per token or different evaluation sets do; data mixes on one held-out set differ by
a few percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from .allocation import allocation_draws, as_budgets
from .cards import GROUP_COLUMN, ModelCard, load_card
from .data import MIN_RUNS
from .errors import InputError, RunTableError
from .fitted import Fit
from .inference import fit as fit_runs
from .posterior import Posterior
from .tables import Table, check_level, credible_interval

#: The card arms are fitted with unless another is given: shared exponents, pooled E, A, B.
ARMS_CARD = "arms"
#: Fewest runs an arm may have (as a single fit: five law parameters plus noise).
MIN_ARM_RUNS = MIN_RUNS
#: Arms whose irreducible losses E differ by more than this factor are warned about.
LOSS_LEVEL_RATIO = 1.3
#: Compute range (FLOPs) searched for crossovers, and points of its grid (log-spaced).
CROSSOVER_RANGE = (1e15, 1e30)
_CROSSOVER_POINTS = 601
#: Column that names a run's evaluation set, if the table has one.
EVAL_SET_COLUMN = "eval_set"


@dataclass(frozen=True)
class ArmsComparison:
    """The comparison of arms, as tables.

    Attributes
    ----------
    arms : list of str
        Arm labels, sorted.
    wins : Table
        One row per (budget, arm): ``compute`` (FLOPs), ``arm``, ``p_lowest`` (probability
        that the arm's compute-optimal loss is the lowest; sums to 1 over arms at a budget),
        ``loss_opt`` and ``diff`` (the arm's loss minus the lowest of the other arms', nats
        per token; negative: it wins), each with ``_lo``/``_hi`` bounds.
    crossovers : Table
        One row per pair of arms: ``arm_a``, ``arm_b``, ``p_crossover`` (share of draws whose
        ranking of the two flips inside :data:`CROSSOVER_RANGE`), ``crossover`` with
        ``_lo``/``_hi`` (FLOPs, over those draws; NaN when none flips), ``below`` and
        ``above`` (the arm that wins below and above it in most of them).
    frontiers : Table
        Compute-optimal loss of each arm on a grid of budgets: ``compute``, ``arm``,
        ``loss_opt`` with ``_lo``/``_hi`` (for the report's figure).
    fits : dict of str to Fit
        The joint fit (key ``""``) or one fit per arm.
    warnings : list of str
        Why the arms' losses may not be comparable, and unconverged fits.
    """

    arms: list[str]
    wins: Table
    crossovers: Table
    frontiers: Table
    fits: dict[str, Fit]
    warnings: list[str] = field(default_factory=list)
    level: float = 0.9

    @property
    def joint(self) -> bool:
        """Whether the arms were fitted jointly (a pooled card)."""
        return "" in self.fits


def arm_labels(runs: pd.DataFrame, by: str = GROUP_COLUMN, *, min_runs: int = MIN_ARM_RUNS) -> list[str]:
    """The arms of a run table (sorted labels of column ``by``), checked.

    Raises
    ------
    RunTableError
        If the table lacks column ``by``, has fewer than two arms, or an arm has fewer
        than ``min_runs`` runs; the message names the column and the arm.
    """
    label = runs.attrs.get("source", "<runs>")
    if by not in runs:
        raise RunTableError(f"{label}: no column {by!r} to split the runs into arms; its columns are "
                            f"{list(map(str, runs.columns))}")
    counts = runs[by].astype(str).value_counts()
    if len(counts) < 2:
        raise RunTableError(f"{label}: column {by!r} has {len(counts)} arm(s); comparing arms needs at least two")
    small = counts[counts < min_runs].sort_index()
    if len(small):
        listed = ", ".join(f"{a!r} has {n}" for a, n in small.items())
        raise RunTableError(f"{label}: arms of column {by!r} with too few runs ({listed}); each arm needs at least "
                            f"{min_runs} runs over several model sizes and token counts")
    return sorted(counts.index)


def eval_set_warning(runs: pd.DataFrame, by: str = GROUP_COLUMN) -> str | None:
    """A warning when the ``eval_set`` column shows the arms were not scored on one set; else None."""
    if EVAL_SET_COLUMN not in runs:
        return None
    sets = runs.groupby(runs[by].astype(str))[EVAL_SET_COLUMN].agg(lambda s: sorted(set(map(str, s))))
    if len({v for values in sets for v in values}) <= 1:
        return None
    listed = "; ".join(f"{arm}: {', '.join(values)}" for arm, values in sets.items())
    return (f"the arms were evaluated on different sets (column {EVAL_SET_COLUMN!r}: {listed}); their losses are "
            "not comparable, and neither are the probabilities below")


def comparability_warnings(runs: pd.DataFrame, posteriors: dict[str, Posterior], by: str = GROUP_COLUMN) -> list[str]:
    """Why the arms' losses may not be comparable: differing ``eval_set``, or loss levels apart.

    The loss-level rule: the posterior medians of the arms' irreducible loss E differ by more
    than a factor :data:`LOSS_LEVEL_RATIO` (nats per token of different tokenisers, or of
    different held-out sets, differ by that much; data mixes on one set by a few percent).
    """
    out = [w for w in [eval_set_warning(runs, by)] if w]
    if all("E" in p.theta for p in posteriors.values()):
        e = {arm: float(np.median(p.theta["E"])) for arm, p in posteriors.items()}
        low, high = min(e, key=e.__getitem__), max(e, key=e.__getitem__)
        if e[high] > LOSS_LEVEL_RATIO * e[low]:
            out.append(f"the arms' irreducible losses differ by a factor {e[high] / e[low]:.2f} (E: {high} "
                       f"{e[high]:.3f}, {low} {e[low]:.3f} nats/token, more than {LOSS_LEVEL_RATIO}); are they "
                       "evaluated on the same held-out set, in the same unit (tokenisers differ in nats per token)?")
    return out


def optimal_loss_draws(posteriors: dict[str, Posterior], budgets: np.ndarray) -> np.ndarray:
    """Compute-optimal loss of every arm, shape (arm, draw, budget), nats per token (arms in dict order)."""
    sizes = {p.size for p in posteriors.values()}
    if len(sizes) != 1:
        raise InputError(f"the arms' posteriors have different numbers of draws ({sorted(sizes)}); fit them alike")
    return np.stack([allocation_draws(p.card.law, p.theta, budgets, slope=p.slope, region=p.region)["loss_opt"]
                     for p in posteriors.values()])


def win_table(arms: Sequence[str], budgets: np.ndarray, loss: np.ndarray, level: float) -> Table:
    """Rows (budget, arm) of :attr:`ArmsComparison.wins` from draws of loss, shape (arm, draw, budget)."""
    winner = np.argmin(loss, axis=0)  # (draw, budget)
    columns: dict[str, list[float | str]] = {k: [] for k in (
        "compute", "arm", "p_lowest", "loss_opt", "loss_opt_lo", "loss_opt_hi", "diff", "diff_lo", "diff_hi")}
    for k, c in enumerate(budgets):
        for a, arm in enumerate(arms):
            others = np.min(np.delete(loss[:, :, k], a, axis=0), axis=0)
            lo, med, hi = credible_interval(loss[a, :, k], level)
            dlo, dmed, dhi = credible_interval(loss[a, :, k] - others, level)
            for key, value in zip(columns, (c, arm, float(np.mean(winner[:, k] == a)), med, lo, hi, dmed, dlo, dhi),
                                  strict=True):
                columns[key].append(value)
    return Table({k: np.asarray(v) for k, v in columns.items()}, {"level": level})


def crossover_draws(diff: np.ndarray, log_compute: np.ndarray) -> np.ndarray:
    """First compute (FLOPs) where ``diff`` (draw, grid) changes sign, per draw; NaN where it never does.

    Linear interpolation of ``diff`` in log compute between the two grid points around the flip.
    """
    sign = diff > 0
    flips = sign[:, 1:] != sign[:, :-1]
    has = flips.any(axis=1)
    i = np.argmax(flips, axis=1)
    rows = np.arange(diff.shape[0])
    d0, d1 = diff[rows, i], diff[rows, i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d0 != d1, d0 / (d0 - d1), 0.5)
    log_c = log_compute[i] + t * (log_compute[i + 1] - log_compute[i])
    return np.where(has, np.exp(log_c), np.nan)


def crossover_table(arms: Sequence[str], posteriors: dict[str, Posterior], level: float,
                    compute_range: tuple[float, float] = CROSSOVER_RANGE) -> Table:
    """Rows (pair of arms) of :attr:`ArmsComparison.crossovers`."""
    log_grid = np.linspace(np.log(compute_range[0]), np.log(compute_range[1]), _CROSSOVER_POINTS)
    loss = optimal_loss_draws(posteriors, np.exp(log_grid))
    columns: dict[str, list[float | str]] = {k: [] for k in (
        "arm_a", "arm_b", "p_crossover", "crossover", "crossover_lo", "crossover_hi", "below", "above")}
    for a, b in combinations(range(len(arms)), 2):
        diff = loss[a] - loss[b]
        cross = crossover_draws(diff, log_grid)
        has = np.isfinite(cross)
        if has.any():
            lo, med, hi = np.exp(credible_interval(np.log(cross[has]), level))
            a_wins_low = float(np.mean(diff[has, 0] < 0)) >= 0.5
            below, above = (arms[a], arms[b]) if a_wins_low else (arms[b], arms[a])
        else:
            lo = med = hi = float("nan")
            below = above = ""
        for key, value in zip(columns, (arms[a], arms[b], float(np.mean(has)), med, lo, hi, below, above),
                              strict=True):
            columns[key].append(value)
    return Table({k: np.asarray(v) for k, v in columns.items()},
                 {"level": level, "compute_range": list(compute_range)})


def frontier_table(arms: Sequence[str], loss_grid: np.ndarray, budgets: np.ndarray, level: float) -> Table:
    """Rows (budget, arm) of compute-optimal loss with its interval, from draws (arm, draw, budget)."""
    lo, med, hi = credible_interval(loss_grid, level, axis=1)  # each (arm, budget)
    return Table({"compute": np.tile(budgets, len(arms)), "arm": np.repeat(np.asarray(arms), len(budgets)),
                  "loss_opt": med.ravel(), "loss_opt_lo": lo.ravel(), "loss_opt_hi": hi.ravel()}, {"level": level})


def arm_posteriors(runs: pd.DataFrame, arms: Sequence[str], card: ModelCard, *, by: str = GROUP_COLUMN,
                   chains: int = 4, warmup: int = 1000, draws: int = 1000, seed: int = 0,
                   target_accept: float = 0.9) -> tuple[dict[str, Fit], dict[str, Posterior]]:
    """Fit the arms (jointly with a pooled card, else one by one, seeds ``seed + i``) and return the fits
    (key ``""`` for the joint one) and each arm's draws."""
    labels = runs[by].astype(str)

    def one(table: pd.DataFrame, offset: int) -> Fit:
        return fit_runs(table, card, chains=chains, warmup=warmup, draws=draws, seed=seed + offset,
                        target_accept=target_accept)

    if card.pooling:
        joint = one(runs.assign(**{GROUP_COLUMN: labels}), 0)
        return {"": joint}, {arm: joint.posterior_draws(arm) for arm in arms}
    fits = {arm: one(runs[labels == arm].assign(**{GROUP_COLUMN: arm}), i) for i, arm in enumerate(arms)}
    return fits, {arm: f.posterior_draws() for arm, f in fits.items()}


def compare_arms(
    runs: pd.DataFrame,
    budgets: Sequence[float | str] | np.ndarray | float | str,
    *,
    by: str = GROUP_COLUMN,
    card: str | ModelCard = ARMS_CARD,
    level: float = 0.9,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    target_accept: float = 0.9,
    compute_range: tuple[float, float] = CROSSOVER_RANGE,
) -> ArmsComparison:
    """Compare arms (data mixes, tokenisers, architectures) at their own compute-optimal plans.

    Parameters
    ----------
    runs : DataFrame
        Validated run table with a column ``by`` naming each run's arm; every arm
        evaluated on the same held-out set.
    budgets : float, str or sequence
        Compute budgets (FLOPs) at which to rank the arms.
    by : str, default "group"
        Column of arm labels.
    card : str or ModelCard, default "arms"
        A pooled card fits the arms jointly (shared exponents); any other card fits
        each arm on its own.
    level : float, default 0.9
        Credible level of the intervals.
    chains, warmup, draws, seed, target_accept
        NUTS settings of every fit (see :func:`bayes_scaling.fit`).
    compute_range : (float, float), default (1e15, 1e30)
        FLOPs searched for crossovers.

    Returns
    -------
    ArmsComparison

    Raises
    ------
    RunTableError
        If column ``by`` is missing, or there are fewer than two arms, or an arm has fewer
        than :data:`MIN_ARM_RUNS` runs (checked before any fit).

    Examples
    --------
    >>> result = compare_arms(runs, [1e22, 1e24], by="group")  # doctest: +SKIP
    >>> result.wins.to_frame()  # doctest: +SKIP
    """
    level = check_level(level)
    c = as_budgets(budgets)
    lo_c, hi_c = (float(v) for v in compute_range)
    if not 0 < lo_c < hi_c:
        raise InputError(f"compute_range must be two increasing positive FLOPs but got {compute_range}")
    arms = arm_labels(runs, by)
    card = card if isinstance(card, ModelCard) else load_card(card)
    fits, posteriors = arm_posteriors(runs, arms, card, by=by, chains=chains, warmup=warmup, draws=draws, seed=seed,
                                      target_accept=target_accept)
    warnings = comparability_warnings(runs, posteriors, by)
    for name, f in fits.items():
        diag = f.diagnostics()
        if diag.has_errors:
            warnings.append(f"{'the joint fit' if not name else f'the fit of arm {name!r}'} failed its diagnostics "
                            f"gate ({diag.messages[0]}{'; ...' if len(diag.messages) > 1 else ''}): do not trust "
                            "the probabilities and intervals; draw more (--draws) or check the runs")
    flops = runs["flops"].to_numpy(dtype=float)
    grid = np.logspace(np.log10(flops.min()), np.log10(max(flops.max(), c.max()) * 10), 60)
    return ArmsComparison(
        arms=list(arms),
        wins=win_table(arms, c, optimal_loss_draws(posteriors, c), level),
        crossovers=crossover_table(arms, posteriors, level, (lo_c, hi_c)),
        frontiers=frontier_table(arms, optimal_loss_draws(posteriors, grid), grid, level),
        fits=fits,
        warnings=warnings,
        level=level,
    )


__all__ = ["ARMS_CARD", "CROSSOVER_RANGE", "EVAL_SET_COLUMN", "LOSS_LEVEL_RATIO", "MIN_ARM_RUNS", "ArmsComparison",
           "arm_labels", "arm_posteriors", "comparability_warnings", "compare_arms", "crossover_draws",
           "crossover_table", "eval_set_warning", "frontier_table", "optimal_loss_draws", "win_table"]
