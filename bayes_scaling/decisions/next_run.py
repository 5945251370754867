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
from collections.abc import Sequence
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
    if len(candidates):
        n, d = parse_plans(candidates)
    elif run_budget is None:
        raise InputError("give a run budget (FLOPs) for the candidate grid, or explicit candidates")
    else:
        n, d = candidate_runs(post, parse_quantity(run_budget, what="run budget"))
    if post.size < 2:
        raise InputError("the value of a next run needs at least 2 posterior draws")
    if not (isinstance(scenarios, int) and 1 <= scenarios):
        raise InputError(f"scenarios must be a positive integer but got {scenarios!r}")
    log_opt = np.asarray(optimal_log_params(post.card.law, post.theta, np.array(math.log(target))))
    loc = post.log_loss(np.log(n), np.log(d))  # (S, K)
    rng = np.random.default_rng(seed)
    picked = rng.choice(post.size, size=scenarios, replace=scenarios > post.size)
    truth = post.take(picked)
    width_now = float(weighted_interval_width(log_opt, np.ones(post.size), level))
    width_after, ess = np.empty(n.size), np.empty(n.size)
    for k in range(n.size):  # one candidate at a time keeps memory at scenarios x draws
        outcome = np.asarray(truth.observation(loc[picked, k]).sample(jax.random.PRNGKey(seed + k)))  # (R,)
        log_w = np.asarray(post.observation(loc[:, k]).log_prob(jnp.asarray(outcome)[:, None]))  # (R, S)
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


next_run_value = frame_returning(next_run_table)
