"""Plans for a training run, chosen and judged over posterior draws.

Questions answered: the best plan for a budget under a risk criterion (next to the
risk-neutral and the naive plug-in plans), the chance a plan reaches a target loss,
the cheapest compute that reaches a target with a given probability, and how explicit
plans compare. A plan is (N parameters, D training tokens); the loss is one run's
loss in nats per token (law x observation noise, see :mod:`.posterior`), or the law's
alone with ``noise=False``.

Each answer is computed as a :class:`~bayes_scaling.tables.Table` (``best_plan_table``,
...), which the CLI prints; the public functions (``best_plan``, ...) return it as a
DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..allocation import as_budgets, optimal_log_params
from ..errors import InputError
from ..posterior import MixturePosterior, Posterior, PosteriorInput, as_posterior
from ..risk import Criterion, expected, parse_risk, quantile
from ..tables import Table, check_level, credible_interval, frame_returning
from ..units import format_quantity, parse_quantity
from .constraints import Constraints, minimise

#: Names of the three plans compared for a budget.
PLANS = ("risk-neutral", "chosen", "plug-in")
#: Bracket of the search for the cheapest compute (FLOPs).
COMPUTE_RANGE = (1e12, 1e32)
#: Budgets scanned (evenly in ln C over COMPUTE_RANGE) for the first that reaches a target.
_SCAN_POINTS = 41

Plan = tuple[float | str, float | str] | str
#: The draws a decision integrates over: one fit's, or a model average's (both give loss and noise draws).
Draws = Posterior | MixturePosterior


def parse_plans(plans: Sequence[Plan]) -> tuple[np.ndarray, np.ndarray]:
    """Plans as arrays of parameters and tokens, from ``"70B:1.4T"`` strings or (N, D) pairs.

    Raises
    ------
    InputError
        If a plan is not ``PARAMS:TOKENS`` or a pair of positive numbers.
    """
    n, d = [], []
    for plan in plans:
        parts = plan.split(":") if isinstance(plan, str) else list(plan)
        if len(parts) != 2:
            raise InputError(f"a plan is PARAMS:TOKENS (e.g. 70B:1.4T) but got {plan!r}")
        n.append(parse_quantity(parts[0], what="plan parameters"))
        d.append(parse_quantity(parts[1], what="plan tokens"))
    n_arr, d_arr = np.array(n, dtype=float), np.array(d, dtype=float)
    if n_arr.size == 0:
        raise InputError("give at least one plan (PARAMS:TOKENS, e.g. 70B:1.4T)")
    if not (np.isfinite(n_arr) & np.isfinite(d_arr) & (n_arr > 0) & (d_arr > 0)).all():
        raise InputError("plans need a positive number of parameters and of tokens")
    return n_arr, d_arr


def plan_label(params: float, tokens: float) -> str:
    """E.g. ``"70B:1.4T"``."""
    return f"{format_quantity(params)}:{format_quantity(tokens)}"


def assumptions(post: Draws, constraints: Constraints, *, noise: bool, seed: int, **more: Any) -> dict[str, Any]:
    """What an answer assumed, for the table's ``attrs`` and for printing."""
    loss = (f"one run's loss: law x exp(noise), {post.card.likelihood} noise on log loss drawn once per "
            f"posterior draw (seed {seed}) and shared by all plans" if noise else "the law's loss L(N, D), no noise")
    return {"compute": constraints.cost_model(), "card": post.label, "law": post.formula,
            "draws": post.size, "loss": loss, "limits": constraints.describe(), **more}


def _noise(post: Draws, noise: bool, seed: int) -> np.ndarray:
    return post.log_noise(seed if noise else None)


def _check_target(target_loss: float) -> float:
    if not (isinstance(target_loss, (int, float)) and target_loss > 0):
        raise InputError(f"target loss must be a positive number of nats per token but got {target_loss!r}")
    return float(target_loss)


def _losses(post: Draws, log_noise: np.ndarray, log_params: np.ndarray, log_tokens: np.ndarray) -> np.ndarray:
    """Loss draws (nats per token), shape (S, plans)."""
    return np.exp(post.log_loss(log_params, log_tokens) + log_noise[:, None])


def _on_line(post: Draws, log_noise: np.ndarray, constraints: Constraints, compute: float,
             criterion: Criterion, extra: Sequence[float] | np.ndarray = ()) -> tuple[float, float]:
    """(ln N, criterion) of the best plan costing ``compute`` FLOPs within the limits."""
    lo, hi = constraints.bounds(compute)

    def objective(log_n: np.ndarray) -> np.ndarray:
        return criterion(_losses(post, log_noise, log_n, constraints.log_tokens(compute, log_n)))

    return minimise(objective, lo, hi, extra=extra)


def _plug_in(post: Draws, constraints: Constraints, compute: float) -> float:
    """ln N of the optimum of the law at the posterior-median parameters (closed form where it exists).

    The law's loss along a cost line is unimodal, so clipping the unconstrained optimum
    to the limits gives the constrained one.
    """
    median = post.median()
    lo, hi = constraints.bounds(compute)
    if constraints.inference_tokens == 0:
        log_n = optimal_log_params(post.card.law, median.theta, np.array(math.log(compute)))
        return float(np.clip(np.asarray(log_n).reshape(-1)[0], lo, hi))
    return _on_line(median, np.zeros(1), constraints, compute, expected())[0]


def _budget_plans(post: Draws, log_noise: np.ndarray, constraints: Constraints, compute: float,
                  criterion: Criterion) -> np.ndarray:
    """ln N of the risk-neutral, chosen and plug-in plans for a budget (see :data:`PLANS`)."""
    plug = _plug_in(post, constraints, compute)
    neutral = _on_line(post, log_noise, constraints, compute, expected(), extra=[plug])[0]
    chosen = _on_line(post, log_noise, constraints, compute, criterion, extra=[plug, neutral])[0]
    return np.array([neutral, chosen, plug])


def _plan_columns(constraints: Constraints, log_n: np.ndarray, log_d: np.ndarray,
                  losses: np.ndarray, level: float) -> dict[str, np.ndarray]:
    n, d = np.exp(log_n), np.exp(log_d)
    lo, med, hi = credible_interval(losses, level)
    return {"params": n, "tokens": d, "tokens_per_param": d / n, "training_flops": 6 * n * d,
            "inference_flops": 2 * n * constraints.inference_tokens, "expected_loss": losses.mean(axis=0),
            "loss": med, "loss_lo": lo, "loss_hi": hi}


def best_plan_table(source: PosteriorInput, budgets: Sequence[float | str] | float | str, *,
                    risk: str | Criterion = "mean",
                    constraints: Constraints | None = None, level: float = 0.9, noise: bool = True, seed: int = 0,
                    card: Any = None) -> Table:
    """The plan minimising a risk criterion of the loss for each budget, beside two others.

    For budget C, N is chosen on the line of plans costing C (D = C / (6 N) without
    inference cost) by a grid-and-zoom search over ln N, vectorised over draws.

    Parameters
    ----------
    source : Fit, FitArrays or mapping of draws
        The posterior (a mapping needs ``card``).
    budgets : float, str or sequence
        Compute budgets in FLOPs: training FLOPs, or lifetime FLOPs when
        ``constraints.inference_tokens`` > 0.
    risk : str or Criterion, default "mean"
        ``"mean"``, ``"quantile:0.9"``, ``"cvar:0.9"`` or a criterion from :mod:`bayes_scaling.risk`.
    constraints : Constraints, optional
        Limits on N and D, and inference tokens.
    level : float, default 0.9
        Level of the loss intervals.
    noise : bool, default True
        Judge one run's loss (law x observation noise) rather than the law's.
    seed : int, default 0
        Seed of the observation noise.
    card : ModelCard or str, optional
        Card of a mapping of draws.

    Returns
    -------
    Table (DataFrame from :func:`best_plan`)
        Three rows per budget, ``plan`` in ``risk-neutral`` (minimises the expected
        loss), ``chosen`` (minimises ``risk``) and ``plug-in`` (the law's optimum at
        the posterior-median parameters), with ``compute``, ``params``, ``tokens``,
        ``tokens_per_param``, ``training_flops``, ``inference_flops``,
        ``expected_loss``, ``loss`` (median), ``loss_lo``, ``loss_hi``, ``criterion``
        (the risk criterion), ``delta_criterion`` (vs the chosen plan, >= 0),
        ``delta_expected`` (vs the risk-neutral plan, >= 0) and ``params_ratio``
        (N / N of the chosen plan). ``attrs`` holds the assumptions.

    Examples
    --------
    >>> best_plan(fit, 1e24, risk="cvar:0.9")  # doctest: +SKIP
    """
    post, crit, level = as_posterior(source, card), parse_risk(risk), check_level(level)
    cons = constraints or Constraints()
    log_noise = _noise(post, noise, seed)
    tables = []
    for compute in as_budgets(budgets):
        log_n = _budget_plans(post, log_noise, cons, compute, crit)
        log_d = cons.log_tokens(compute, log_n)
        losses = _losses(post, log_noise, log_n, log_d)
        values, mean = crit(losses), losses.mean(axis=0)
        tables.append(Table({"compute": np.full(len(PLANS), compute), "plan": np.array(PLANS),
                             **_plan_columns(cons, log_n, log_d, losses, level),
                             "criterion": values, "delta_criterion": values - values[1],
                             "delta_expected": mean - mean[0], "params_ratio": np.exp(log_n - log_n[1])}))
    return Table.concat(tables, assumptions(post, cons, noise=noise, seed=seed, criterion=crit.label, level=level))


def target_probability_table(source: PosteriorInput, target_loss: float, *, plans: Sequence[Plan] = (),
                             budgets: Sequence[float | str] | float | str | None = None,
                             risk: str | Criterion = "mean", constraints: Constraints | None = None,
                             noise: bool = True, seed: int = 0, card: Any = None) -> Table:
    """P(loss <= target) for explicit plans and for the chosen plan of each budget.

    Parameters
    ----------
    source : Fit, FitArrays or mapping of draws
    target_loss : float
        Target loss in nats per token.
    plans : sequence of plans
        ``"70B:1.4T"`` strings or (parameters, tokens) pairs.
    budgets : float, str or sequence, optional
        Budgets in FLOPs whose plan chosen under ``risk`` (see :func:`best_plan`) is judged.
    risk, constraints, noise, seed, card
        As in :func:`best_plan`.

    Returns
    -------
    Table (a DataFrame from :func:`target_probability`)
        One row per plan: ``plan``, ``params``, ``tokens``, ``training_flops``,
        ``inference_flops``, ``target_loss``, ``prob`` and ``prob_se`` (its Monte-Carlo
        standard error, treating draws as independent).
    """
    post, crit, cons = as_posterior(source, card), parse_risk(risk), constraints or Constraints()
    target_loss = _check_target(target_loss)
    log_noise = _noise(post, noise, seed)
    labels, log_n, log_d = [], [], []
    if len(plans):
        n, d = parse_plans(plans)
        labels += [plan_label(a, b) for a, b in zip(n, d, strict=True)]
        log_n += list(np.log(n))
        log_d += list(np.log(d))
    for compute in [] if budgets is None else as_budgets(budgets):
        chosen = _budget_plans(post, log_noise, cons, compute, crit)[1]
        labels.append(f"best for {compute:.3g} FLOPs ({crit.label})")
        log_n.append(chosen)
        log_d.append(float(cons.log_tokens(compute, np.array(chosen))))
    if not labels:
        raise InputError("give plans or budgets whose chance of reaching the target to compute")
    losses = _losses(post, log_noise, np.array(log_n), np.array(log_d))
    prob = (losses <= target_loss).mean(axis=0)
    n, d = np.exp(log_n), np.exp(log_d)
    return Table({"plan": np.array(labels), "params": n, "tokens": d, "training_flops": 6 * n * d,
                  "inference_flops": 2 * n * cons.inference_tokens, "target_loss": np.full(n.size, target_loss),
                  "prob": prob, "prob_se": np.sqrt(prob * (1 - prob) / post.size)},
                 assumptions(post, cons, noise=noise, seed=seed, criterion=crit.label))


@dataclass(frozen=True)
class TargetWording:
    """How :func:`cheapest_compute_table` words a target it refuses, as ``str.format`` templates.

    Both templates get ``target`` (the target loss) and ``prob``; ``already`` also
    ``compute``, the cheapest budget scanned (FLOPs); ``out_of_reach`` the lowest
    ``quantile`` of the loss found (nats per token), the compute ``at`` which it was found,
    and the scanned range ``lo`` and ``hi`` (FLOPs). A template may leave any of them out
    (a target in another metric states its own value).

    Attributes
    ----------
    already : str
        The target is reached with probability ``prob`` already at the cheapest budget.
    out_of_reach : str
        It is reached at no budget of the scanned range.
    """

    already: str = ("target loss {target} is reached with probability {prob} already at {compute:.3g} FLOPs; "
                    "choose a lower target")
    out_of_reach: str = ("target loss {target} is out of reach with probability {prob}: the best plan's {prob:g} "
                         "quantile of the loss is at least {quantile:.4f} nats/token (at {at:.3g} FLOPs, between "
                         "{lo:.3g} and {hi:.3g})")


#: The wording of a target loss (the default of :func:`cheapest_compute_table`).
LOSS_WORDING = TargetWording()


def cheapest_compute_table(source: PosteriorInput, target_loss: float, prob: float = 0.9, *,
                           constraints: Constraints | None = None, noise: bool = True, seed: int = 0,
                           card: Any = None, rtol: float = 1e-3, wording: TargetWording = LOSS_WORDING) -> Table:
    """The least compute, and its plan, that reaches a target loss with probability >= ``prob``.

    P(loss <= target) >= p exactly when the p quantile of the loss is <= target, so this
    finds the smallest C whose best plan under :func:`quantile` ``(prob)`` has that
    quantile at the target: a scan of ln C for the first budget below it (the quantile
    may rise again far beyond the data, where a model discrepancy widens the loss), then
    bisection. With inference tokens in ``constraints``
    C is the lifetime cost, so this minimises training plus inference cost for the
    target (Sardana et al. 2024).

    Parameters
    ----------
    source : Fit, FitArrays or mapping of draws
    target_loss : float
        Target loss in nats per token.
    prob : float, default 0.9
        Probability of reaching it, in (0, 1).
    constraints, noise, seed, card
        As in :func:`best_plan`.
    rtol : float, default 1e-3
        Relative precision of the compute.
    wording : TargetWording, default LOSS_WORDING
        How the errors below name the target (a target accuracy, asked of the error rate,
        words them in accuracy).

    Returns
    -------
    Table (a DataFrame from :func:`cheapest_compute`)
        One row: ``target_loss``, ``prob``, ``compute`` (FLOPs), ``params``,
        ``tokens``, ``tokens_per_param``, ``training_flops``, ``inference_flops`` and
        ``prob_achieved`` (P(loss <= target) of that plan, same draws), ``prob_se``.

    Raises
    ------
    InputError
        If the target is out of reach (at every budget up to 1e32 FLOPs or the limits'
        costliest plan) or already reached at 1e12 FLOPs (or the cheapest plan the limits allow).
    """
    post, cons, target_loss = as_posterior(source, card), constraints or Constraints(), _check_target(target_loss)
    if not (isinstance(prob, (int, float)) and 0 < prob < 1):
        raise InputError(f"the probability of reaching the target must be in the interval (0, 1) but got {prob!r}")
    crit = quantile(prob)
    log_noise = _noise(post, noise, seed)

    def best(log_c: float) -> tuple[float, float]:
        return _on_line(post, log_noise, cons, math.exp(log_c), crit)

    least, most = cons.cost_range()
    lo, hi = math.log(max(COMPUTE_RANGE[0], least * (1 + 1e-6))), math.log(min(COMPUTE_RANGE[1], most * (1 - 1e-9)))
    scanned = [best(lo)[1]]  # the p quantile at each scanned budget
    if scanned[0] <= target_loss:
        raise InputError(wording.already.format(target=target_loss, prob=prob, compute=math.exp(lo)))
    # The quantile need not fall forever with compute: a model discrepancy widens the loss
    # beyond the data faster than the law lowers it. So scan ln C on a grid for the first
    # budget that reaches the target, then bisect between it and the grid point before.
    grid = np.linspace(lo, hi, _SCAN_POINTS)
    top, below = None, lo
    for log_c in grid[1:]:
        found = best(float(log_c))
        if found[1] <= target_loss:
            top, hi = found, float(log_c)
            break
        scanned.append(found[1])
        below = float(log_c)
    if top is None:
        i = int(np.argmin(scanned))
        raise InputError(wording.out_of_reach.format(target=target_loss, prob=prob, quantile=scanned[i],
                                                     at=math.exp(grid[i]), lo=math.exp(lo), hi=math.exp(hi)))
    lo = below
    while hi - lo > math.log1p(rtol):
        mid = (lo + hi) / 2
        found = best(mid)
        if found[1] <= target_loss:
            hi, top = mid, found
        else:
            lo = mid
    compute = math.exp(hi)
    log_n = np.array([top[0]])
    log_d = cons.log_tokens(compute, log_n)
    losses = _losses(post, log_noise, log_n, log_d)
    achieved = float((losses <= target_loss).mean())
    n, d = float(np.exp(log_n[0])), float(np.exp(log_d[0]))
    row = {"target_loss": target_loss, "prob": prob, "compute": compute, "params": n, "tokens": d,
           "tokens_per_param": d / n, "training_flops": 6 * n * d, "inference_flops": 2 * n * cons.inference_tokens,
           "prob_achieved": achieved, "prob_se": math.sqrt(achieved * (1 - achieved) / post.size)}
    return Table({k: np.array([v]) for k, v in row.items()},
                 assumptions(post, cons, noise=noise, seed=seed, criterion=crit.label))


def compare_plans_table(source: PosteriorInput, plans: Sequence[Plan], *, constraints: Constraints | None = None,
                        level: float = 0.9, noise: bool = True, seed: int = 0, card: Any = None) -> Table:
    """Compare explicit plans: chance each is best, loss differences, regret.

    Parameters
    ----------
    source : Fit, FitArrays or mapping of draws
    plans : sequence of plans
        ``"70B:1.4T"`` strings or (parameters, tokens) pairs; the first is the reference.
    constraints, level, noise, seed, card
        As in :func:`best_plan`; the limits bound the best plan a plan's regret is measured against.

    Returns
    -------
    Table (a DataFrame from :func:`compare_plans`)
        One row per plan: ``plan``, ``params``, ``tokens``, ``compute`` (its cost in
        FLOPs), ``expected_loss``, ``prob_best`` (share of draws in which it has the
        lowest loss; ties go to the earlier plan), ``diff``, ``diff_lo``, ``diff_hi``
        (loss minus the first plan's: mean and interval), ``regret`` (expected loss
        minus that of the risk-neutral best plan of the same cost, >= 0),
        ``best_params`` and ``best_tokens`` (that best plan).
    """
    post, cons, level = as_posterior(source, card), constraints or Constraints(), check_level(level)
    n, d = parse_plans(plans)
    log_noise = _noise(post, noise, seed)
    losses = _losses(post, log_noise, np.log(n), np.log(d))
    diff = losses - losses[:, :1]
    lo, hi = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2], axis=0)
    costs = cons.cost(n, d)
    regret, best_n = np.empty(n.size), np.empty(n.size)
    for k, compute in enumerate(costs):
        # The plan itself competes, so its regret is >= 0 whatever the search finds.
        own = np.log(n[k : k + 1])
        value = expected()(_losses(post, log_noise, own, cons.log_tokens(compute, own)))[0]
        best_n[k], best_value = _on_line(post, log_noise, cons, compute, expected(), extra=own)
        regret[k] = value - best_value
    best_n = np.exp(best_n)
    best_d = [float(np.exp(cons.log_tokens(c, np.log(b)))) for c, b in zip(costs, best_n, strict=True)]
    labels = [plan_label(a, b) for a, b in zip(n, d, strict=True)]
    return Table({"plan": np.array(labels), "params": n, "tokens": d, "compute": costs,
                  "expected_loss": losses.mean(axis=0),
                  "prob_best": np.bincount(losses.argmin(axis=1), minlength=n.size) / post.size,
                  "diff": diff.mean(axis=0), "diff_lo": lo, "diff_hi": hi, "regret": regret,
                  "best_params": best_n, "best_tokens": np.array(best_d)},
                 assumptions(post, cons, noise=noise, seed=seed, level=level, reference=labels[0]))


best_plan = frame_returning(best_plan_table)
target_probability = frame_returning(target_probability_table)
cheapest_compute = frame_returning(cheapest_compute_table)
compare_plans = frame_returning(compare_plans_table)
