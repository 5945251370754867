"""What to run next: the expected value of a small run for pinning down N_opt at a target budget.

Pre-posterior analysis by importance reweighting, an approximation stated here and
tested against a conjugate Gaussian case in ``tests/test_decisions.py``:

1. take ``scenarios`` posterior draws, each in turn, as the truth;
2. simulate the candidate run's log loss under it (law + the card's observation noise);
3. reweight *all* current draws by the likelihood of that simulated outcome, which
   approximates the posterior after the run (exact as the number of draws grows);
4. measure the width of the ``level`` interval of ln N_opt at the target budget under
   the weights, as 2 z times the weighted standard deviation (see
   :func:`weighted_interval_width`);
5. average the widths over scenarios: the expected width after the run.

The value of a run is the expected shrinkage of that width (in nats of ln N_opt, i.e.
ln(hi / lo)) per FLOP the run costs. Reweighting degrades when one run would be much
more informative than the current posterior: ``ess``, the mean effective sample size
of the weights, says how many draws carry the estimate (below ~50 it is coarse).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtri

from .. import _jax  # noqa: F401  (float64 before the first JAX computation)
from ..allocation import optimal_log_params
from ..errors import InputError
from ..posterior import MixturePosterior, Posterior, PosteriorInput, as_posterior
from ..tables import Table, check_level, frame_returning
from ..units import parse_quantity
from .constraints import Constraints
from .plans import Plan, assumptions, parse_plans, plan_label

#: Default candidates: fractions of the run budget, and model sizes around each budget's median N_opt.
BUDGET_FRACTIONS = (1.0, 10**-0.5, 0.1)
SIZE_FACTORS = tuple(float(f) for f in np.logspace(-1, 1, 7))


def weighted_interval_width(values: np.ndarray, weights: np.ndarray, level: float) -> np.ndarray:
    """Normal-approximation width of the ``level`` interval of ``values`` under each row of ``weights``.

    The width is 2 z sd, z the standard normal ``(1 + level) / 2`` quantile and sd the
    weighted standard deviation with the reliability-weights correction 1 / (1 - sum w^2)
    (unbiased for equal weights, and much less noisy than weighted quantiles when the
    weights are concentrated). Exact for a normal posterior; averaged over outcomes it
    never grows under exact Bayesian updating (total variance and Jensen's inequality).

    Parameters
    ----------
    values : array of shape (S,)
    weights : array of shape (..., S)
        Non-negative weights, normalised here.
    level : float

    Returns
    -------
    array of shape (...)
    """
    w = weights / weights.sum(axis=-1, keepdims=True)
    mean = (w * values).sum(axis=-1, keepdims=True)
    # One draw carrying all the weight leaves no spread to measure: width 0 (ess says so).
    spread = np.maximum(1 - (w**2).sum(axis=-1), 1e-12)
    var = (w * (values - mean) ** 2).sum(axis=-1) / spread
    return 2 * float(ndtri((1 + level) / 2)) * np.sqrt(var)


def candidate_runs(post: Posterior | MixturePosterior, run_budget: float) -> tuple[np.ndarray, np.ndarray]:
    """Default candidates: at each of :data:`BUDGET_FRACTIONS` of the budget, model sizes
    :data:`SIZE_FACTORS` times the posterior-median N_opt there; D = C / (6 N)."""
    compute = run_budget * np.array(BUDGET_FRACTIONS)
    log_opt = optimal_log_params(post.card.law, {k: v[:, None] for k, v in post.theta.items()},
                                 np.log(compute)[None, :])
    n = np.exp(np.median(log_opt, axis=0))[:, None] * np.array(SIZE_FACTORS)[None, :]
    d = compute[:, None] / (6 * n)
    return n.ravel(), d.ravel()


def next_run_table(source: PosteriorInput, target_budget: float | str, *, run_budget: float | str | None = None,
                   candidates: Sequence[Plan] = (), level: float = 0.9, scenarios: int = 128, seed: int = 0,
                   card: Any = None) -> Table:
    """Rank candidate runs by expected shrinkage of the N_opt interval at a target budget, per FLOP.

    Parameters
    ----------
    source : Fit, FitArrays or mapping of draws
        The current posterior (a mapping needs ``card``).
    target_budget : float or str
        Training compute (FLOPs) of the planned large run, whose N_opt should be pinned down.
    run_budget : float or str, optional
        Budget (FLOPs) of one candidate run: the default candidates spend 1, 1/sqrt(10)
        and 1/10 of it on 7 model sizes from 1/10 to 10 times the median N_opt there.
    candidates : sequence of plans, optional
        Explicit candidates (``"400M:8B"`` or (N, D)), instead of the default grid.
    level : float, default 0.9
        Level of the N_opt interval.
    scenarios : int, default 128
        Simulated outcomes per candidate.
    seed : int, default 0
        Seed of the scenarios and their noise.
    card : ModelCard or str, optional
        Card of a mapping of draws.

    Returns
    -------
    Table (a DataFrame from :func:`next_run_value`)
        One row per candidate, best first: ``rank``, ``plan``, ``params``, ``tokens``,
        ``flops`` (6 N D), ``width_now`` and ``width_after`` (ln(hi/lo) of the N_opt
        interval, now and expected after the run), ``shrinkage`` (their difference),
        ``shrinkage_per_flop`` (the ranking key) and ``ess``. See the module
        docstring for the approximation.
    """
    post, level = as_posterior(source, card), check_level(level)
    target = parse_quantity(target_budget, what="target budget")
    n, d = _candidates(post, candidates, run_budget, scenarios)
    log_opt = np.asarray(optimal_log_params(post.card.law, post.theta, np.array(math.log(target))))
    width_now = float(weighted_interval_width(log_opt, np.ones(post.size), level))
    width_after, ess = np.empty(n.size), np.empty(n.size)
    for k, log_w in enumerate(_outcome_log_weights(post, n, d, scenarios, seed)):
        weights = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
        width_after[k] = weighted_interval_width(log_opt, weights, level).mean()
        ess[k] = ((weights.sum(-1) ** 2) / (weights**2).sum(-1)).mean()
    flops = 6 * n * d
    per_flop = (width_now - width_after) / flops
    order = np.argsort(-per_flop, kind="stable")  # best first; ties keep the candidates' order
    columns = {"plan": np.array([plan_label(a, b) for a, b in zip(n, d, strict=True)]), "params": n, "tokens": d,
               "flops": flops, "width_now": np.full(n.size, width_now), "width_after": width_after,
               "shrinkage": width_now - width_after, "shrinkage_per_flop": per_flop, "ess": ess}
    return Table({"rank": np.arange(1, n.size + 1), **{k: v[order] for k, v in columns.items()}},
                 assumptions(post, Constraints(), noise=True, seed=seed, level=level, target_budget=target,
                             method=f"pre-posterior importance reweighting, {scenarios} scenarios per candidate"))


def _candidates(post: Posterior | MixturePosterior, candidates: Sequence[Plan], run_budget: float | str | None,
                scenarios: int) -> tuple[np.ndarray, np.ndarray]:
    """N and D of the candidate runs (explicit, or the default grid at ``run_budget``), the inputs checked."""
    if post.size < 2:
        raise InputError("the value of a next run needs at least 2 posterior draws")
    if not (isinstance(scenarios, int) and not isinstance(scenarios, bool) and 1 <= scenarios):
        raise InputError(f"scenarios must be a positive integer but got {scenarios!r}")
    if len(candidates):
        return parse_plans(candidates)
    if run_budget is None:
        raise InputError("give a run budget (FLOPs) for the candidate grid, or explicit candidates")
    return candidate_runs(post, parse_quantity(run_budget, what="run budget"))


def _outcome_log_weights(post: Posterior | MixturePosterior, n: np.ndarray, d: np.ndarray, scenarios: int,
                         seed: int) -> Iterator[np.ndarray]:
    """Per candidate run: log p(simulated outcome | draw), shape (scenarios, draws).

    The same ``scenarios`` posterior draws are the truth for every candidate (so that
    candidates, and runs of one batch, are judged on the same worlds); each candidate's
    outcome is simulated under them with its own noise.
    """
    loc = post.log_loss(np.log(n), np.log(d))  # (S, K)
    rng = np.random.default_rng(seed)
    picked = rng.choice(post.size, size=scenarios, replace=scenarios > post.size)
    truth = post.take(picked)
    for k in range(n.size):  # one candidate at a time keeps memory at scenarios x draws
        outcome = np.asarray(truth.observation(loc[picked, k]).sample(jax.random.PRNGKey(seed + k)))  # (R,)
        yield np.asarray(post.observation(loc[:, k]).log_prob(jnp.asarray(outcome)[:, None]))  # (R, S)


def next_batch_table(source: PosteriorInput, target_budget: float | str, size: int, *,
                     run_budget: float | str | None = None, candidates: Sequence[Plan] = (),
                     batch_budget: float | str | None = None, level: float = 0.9, scenarios: int = 128,
                     seed: int = 0, card: Any = None) -> Table:
    """A batch of up to ``size`` runs chosen jointly (greedily) to pin down N_opt at a target budget.

    Each step adds the candidate of largest expected shrinkage of the N_opt interval per
    FLOP *given the runs already in the batch*: the outcomes of all the batch's runs are
    simulated in the same scenarios (posterior draws taken as the truth) and the draws are
    reweighted by their joint likelihood, so two runs that teach the same thing are not
    both chosen for it. Each candidate is used at most once (its simulated outcome is one
    run's). See the module docstring for the approximation.

    Parameters
    ----------
    source, target_budget, run_budget, candidates, level, scenarios, seed, card
        As in :func:`next_run_table`.
    size : int
        Most runs in the batch.
    batch_budget : float or str, optional
        Most FLOPs the batch may spend in all (6 N D summed); runs that would exceed it are
        skipped, and the batch stops when none fits.

    Returns
    -------
    Table (a DataFrame from :func:`next_batch_value`)
        One row per chosen run, in the order chosen: ``step``, ``plan``, ``params``,
        ``tokens``, ``flops``, ``total_flops`` (the batch so far), ``width_now``,
        ``width_after`` (expected ln(hi/lo) of the N_opt interval after the batch so far),
        ``shrinkage`` (width_now - width_after), ``gain`` (this run's part of it) and ``ess``.
    """
    post, level = as_posterior(source, card), check_level(level)
    target = parse_quantity(target_budget, what="target budget")
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
        raise InputError(f"the batch size must be a positive integer but got {size!r}")
    n, d = _candidates(post, candidates, run_budget, scenarios)
    limit = math.inf if batch_budget is None else parse_quantity(batch_budget, what="batch budget")
    flops = 6 * n * d
    if flops.min() > limit:
        raise InputError(f"no candidate run fits the batch budget {limit:.3g} FLOPs; the cheapest costs "
                         f"{flops.min():.3g}")
    log_opt = np.asarray(optimal_log_params(post.card.law, post.theta, np.array(math.log(target))))
    log_lik = np.stack(list(_outcome_log_weights(post, n, d, scenarios, seed)))  # (K, R, S)
    width_now = float(weighted_interval_width(log_opt, np.ones(post.size), level))
    chosen: list[int] = []
    rows: dict[str, list[Any]] = {k: [] for k in ("width_after", "gain", "ess", "total_flops")}
    acc, width, spent = np.zeros(log_lik.shape[1:]), width_now, 0.0
    for _ in range(size):
        best, best_key, best_width, best_ess = -1, -math.inf, width, 0.0
        for k in range(n.size):
            if k in chosen or spent + flops[k] > limit:
                continue
            log_w = acc + log_lik[k]
            weights = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
            after = float(weighted_interval_width(log_opt, weights, level).mean())
            key = (width - after) / flops[k]
            if key > best_key:
                best, best_key, best_width = k, key, after
                best_ess = float(((weights.sum(-1) ** 2) / (weights**2).sum(-1)).mean())
        if best < 0:
            break
        chosen.append(best)
        acc = acc + log_lik[best]
        spent += flops[best]
        rows["width_after"].append(best_width)
        rows["gain"].append(width - best_width)
        rows["ess"].append(best_ess)
        rows["total_flops"].append(spent)
        width = best_width
    pick = np.array(chosen)
    widths = np.array(rows["width_after"])
    columns = {"step": np.arange(1, len(pick) + 1),
               "plan": np.array([plan_label(a, b) for a, b in zip(n[pick], d[pick], strict=True)]),
               "params": n[pick], "tokens": d[pick], "flops": flops[pick], "total_flops": np.array(rows["total_flops"]),
               "width_now": np.full(len(pick), width_now), "width_after": widths, "shrinkage": width_now - widths,
               "gain": np.array(rows["gain"]), "ess": np.array(rows["ess"])}
    return Table(columns, assumptions(post, Constraints(), noise=True, seed=seed, level=level, target_budget=target,
                                      method=f"greedy batch by pre-posterior importance reweighting, {scenarios} "
                                             "scenarios shared by the batch's runs"))


next_run_value = frame_returning(next_run_table)
next_batch_value = frame_returning(next_batch_table)
