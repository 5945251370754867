"""Risk-aware decisions from a posterior: plans a team can defend before a large run.

Every answer integrates over posterior draws (and, for a single run's realised loss,
the card's observation noise), never over a point estimate. Each function takes a
:class:`~bayes_scaling.Fit` or a mapping of draws plus a card, and returns a tidy
DataFrame whose ``attrs`` state the assumptions (cost model, card, level, criterion).

- :func:`best_plan`: the plan for a budget under a risk criterion, beside the
  risk-neutral and plug-in plans;
- :func:`target_probability`: P(loss <= target) for plans or budgets;
- :func:`cheapest_compute`: the least compute reaching a target with probability p;
- :func:`compare_plans`: chance each plan is best, loss differences, regret;
- :class:`Constraints`: limits on N and D and the inference cost of a plan's lifetime;
- :func:`next_run_value`: which small run best pins down N_opt, per FLOP;
- :mod:`.design`: a whole study planned (:func:`~.design.plan_study`) or scored
  (:func:`~.design.score_design`) before any run, by a Laplace pre-posterior;
- :func:`decide`: all questions its arguments ask, as the CLI and the report use them;
  on a task fit, about accuracy (:mod:`.accuracy`: higher is better, ``target_metric``).

All but the next-run value are numpy only: ``bayes-scaling decide`` answers from a saved
fit without importing JAX or pandas, unless it is asked for a next run
(:mod:`.next_run` simulates outcomes with NumPyro's distributions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..allocation import as_budgets, check_allocatable, warn_budget_range
from ..errors import InputError
from ..fitfile import FitArrays, HasArrays, fit_arrays
from ..posterior import MixturePosterior, Posterior, PosteriorInput, as_posterior
from ..risk import Criterion
from ..tables import Table, check_seed
from .constraints import Constraints
from .plans import (
    Plan,
    best_plan,
    best_plan_table,
    cheapest_compute,
    cheapest_compute_table,
    compare_plans,
    compare_plans_table,
    parse_plans,
    target_probability,
    target_probability_table,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Constraints", "Posterior", "as_posterior", "best_plan", "cheapest_compute", "compare_plans", "decide",
           "decide_tables", "next_batch_value", "next_run_value", "parse_plans", "target_probability"]


def __getattr__(name: str) -> Any:  # PEP 562: the next-run value (JAX, NumPyro) loads on first use
    if name in ("next_run_value", "next_run_table", "next_batch_value", "next_batch_table"):
        from . import next_run

        return getattr(next_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def decide(source: PosteriorInput, **questions: Any) -> dict[str, pd.DataFrame]:
    """Answer every question the arguments ask; see :func:`decide_tables` (same arguments), as DataFrames."""
    return {name: table.to_frame() for name, table in decide_tables(source, **questions).items()}


def decide_tables(source: PosteriorInput, *, budgets: Sequence[float | str] | float | str | None = None,
                  risk: str | Criterion = "mean", target_loss: float | None = None, prob: float = 0.9,
                  plans: Sequence[Plan] = (), constraints: Constraints | None = None,
                  next_run_budget: float | str | None = None, next_batch: int = 1,
                  batch_budget: float | str | None = None, level: float = 0.9, noise: bool = True, seed: int = 0,
                  card: Any = None, group: str | None = None, target_metric: float | None = None) -> dict[str, Table]:
    """Answer every question the arguments ask.

    Parameters
    ----------
    source : Fit, FitArrays or mapping of draws
        The posterior (a mapping needs ``card``).
    budgets : float, str or sequence, optional
        Compute budgets in FLOPs (lifetime FLOPs with inference tokens): asks for the best plan.
    risk : str or Criterion, default "mean"
        Criterion of the chosen plan: ``mean``, ``quantile:0.9``, ``cvar:0.9``.
    target_loss : float, optional
        Target loss (nats per token): asks for the cheapest compute reaching it with
        probability ``prob``, and for the chance the plans and budgets' plans reach it.
    prob : float, default 0.9
    plans : sequence of plans
        ``"70B:1.4T"`` strings or (N, D) pairs: asks to compare them.
    constraints : Constraints, optional
        Limits on N and D; inference tokens.
    next_run_budget : float or str, optional
        FLOPs of a candidate small run: asks which one best pins down N_opt at the
        first budget (needs ``budgets``).
    next_batch : int, default 1
        With ``next_run_budget``: more than 1 also asks for a batch of that many runs chosen
        jointly (``next_batch``, see :func:`bayes_scaling.decisions.next_run.next_batch_table`).
    batch_budget : float or str, optional
        Most FLOPs the batch may spend in all.
    level, noise, seed, card
        As in :func:`best_plan`.
    group : str, optional
        For a pooled fit, the group whose parameters to use.
    target_metric : float, optional
        A task fit only: target accuracy in (0, 1), higher is better: asks for the cheapest
        compute reaching it with probability ``prob``, and for the chance the plans and
        budgets' plans reach it. On a task fit every answer is about accuracy
        (:func:`bayes_scaling.decisions.accuracy.metric_tables`); ``target_loss`` is refused.

    Returns
    -------
    dict of str to Table (to DataFrame from :func:`decide`)
        Keys, in this order, among ``best_plan``, ``cheapest_compute``,
        ``target_probability``, ``compare_plans``, ``next_run``, ``next_batch``; each table's
        ``attrs`` holds its assumptions.

    Raises
    ------
    InputError
        If no question is asked, a next run is asked for without a budget, or the law has
        no compute-optimal allocation (:attr:`bayes_scaling.laws.Law.no_optimum`).
    """
    task_arrays = fit_arrays(source) if isinstance(source, (FitArrays, HasArrays)) else None
    task_fit = task_arrays is not None and task_arrays.card.task is not None
    if target_metric is not None and not task_fit:
        raise InputError("--target-metric: a target accuracy needs a task fit (fit --card task-chain --metric ...); "
                         "this fit models a loss: use --target-loss")
    if task_arrays is not None and task_fit:
        if target_loss is not None:
            raise InputError("--target-loss: this is a task fit, whose decisions are about accuracy: give "
                             "--target-metric (e.g. 0.8) instead")
        if next_run_budget is not None or next_batch != 1 or batch_budget is not None:
            raise InputError("--next-run-budget: the next-run value is about a loss fit's N_opt, not yet a task "
                             "fit's accuracy")
        if budgets is None and target_metric is None and not len(plans):
            raise InputError("ask a question: give a budget (--budget), a target accuracy (--target-metric) or "
                             "plans (--plan)")
        from .accuracy import metric_tables

        check_allocatable(task_arrays.card.law)
        return metric_tables(task_arrays, budgets=budgets, risk=risk, target_metric=target_metric, prob=prob,
                             plans=plans, constraints=constraints, level=level, noise=noise, seed=seed)
    if budgets is None and target_loss is None and not len(plans):
        raise InputError("ask a question: give a budget (--budget), a target loss (--target-loss) or plans (--plan)")
    if next_run_budget is not None and budgets is None:
        raise InputError("a next-run budget needs a target budget (--budget) whose N_opt the run should pin down")
    seed = check_seed(seed)
    post = as_posterior(source, card, group=group)
    for part in post.components if isinstance(post, MixturePosterior) else [post]:
        check_allocatable(part.card.law)  # every question here is about plans (N, D) and their optimum
    if budgets is not None and isinstance(source, (FitArrays, HasArrays)):
        warn_budget_range(as_budgets(budgets), fit_arrays(source).constant_data["flops"])
    answers: dict[str, Table] = {}
    if budgets is not None:
        answers["best_plan"] = best_plan_table(post, budgets, risk=risk, level=level, constraints=constraints,
                                               noise=noise, seed=seed)
    if target_loss is not None:
        answers["cheapest_compute"] = cheapest_compute_table(post, target_loss, prob, constraints=constraints,
                                                             noise=noise, seed=seed)
        if budgets is not None or len(plans):
            answers["target_probability"] = target_probability_table(post, target_loss, plans=plans,
                                                                     budgets=budgets, risk=risk,
                                                                     constraints=constraints, noise=noise, seed=seed)
    if len(plans):
        answers["compare_plans"] = compare_plans_table(post, plans, level=level, constraints=constraints,
                                                       noise=noise, seed=seed)
    if next_run_budget is not None and budgets is not None:  # a next run without budgets was refused above
        from .next_run import next_run_table

        answers["next_run"] = next_run_table(post, as_budgets(budgets)[0], run_budget=next_run_budget, level=level,
                                             seed=seed)
        if next_batch != 1 or batch_budget is not None:
            from .next_run import next_batch_table

            answers["next_batch"] = next_batch_table(post, as_budgets(budgets)[0], next_batch,
                                                     run_budget=next_run_budget, batch_budget=batch_budget,
                                                     level=level, seed=seed)
    elif next_batch != 1 or batch_budget is not None:
        raise InputError("a batch of next runs needs a candidate run budget (--next-run-budget) and a target "
                         "budget (--budget)")
    return answers
