"""Decisions on a task fit's accuracy, where higher is better.

Every question of :mod:`.plans` (best plan, chance of reaching a target, cheapest compute,
plan comparison) is asked of the error rate 1 − accuracy, which is lower-is-better like a
loss, through :class:`ErrorRatePosterior`; the answers are then turned back into accuracy:
P(accuracy >= target) = P(error <= 1 − target), and a risk criterion of the error (e.g.
``quantile:0.9``, its pessimistic tail) is 1 minus the matching criterion of accuracy (its
10% quantile). So ``--risk`` stays "guard against the bad tail" for either metric.

One run's accuracy (``noise=True``) is the sigmoid of one run's intermediate (law ×
its noise) plus the accuracy's own noise, both drawn once per posterior draw and shared by
all plans, as a loss decision draws one run's noise (:mod:`bayes_scaling.task_prediction`
draws them the same way). Numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..fitfile import FitArrays, HasArrays, fit_arrays
from ..laws.sigmoid import LINK_PARAMETERS, accuracy
from ..posterior import Posterior
from ..risk import Criterion
from ..tables import Table
from ..task_prediction import link_draws
from .constraints import Constraints
from .plans import (
    Plan,
    TargetWording,
    best_plan_table,
    cheapest_compute_table,
    compare_plans_table,
    target_probability_table,
)

#: Smallest error rate kept (a run's accuracy plus its noise can exceed 1): the log stays finite.
ERROR_FLOOR = 1e-12


@dataclass(frozen=True)
class ErrorRatePosterior(Posterior):
    """A task fit's draws seen as a loss: ``log_loss`` is ln(1 − accuracy) at (N, D), per draw.

    Attributes
    ----------
    link : dict of str to array of shape (S,)
        Draws of floor, ceiling, slope and midpoint.
    inter_noise, metric_noise : array of shape (S,)
        One run's noise on ln intermediate and on accuracy (zeros: the law's accuracy).
    """

    link: dict[str, np.ndarray] = field(default_factory=dict)
    inter_noise: np.ndarray = field(default_factory=lambda: np.zeros(0))
    metric_noise: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def log_loss(self, log_params: np.ndarray, log_tokens: np.ndarray,
                 covariates: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """ln(1 − accuracy) per draw, shape (S, *input shape); accuracy of one run or of the law."""
        log_inter = super().log_loss(log_params, log_tokens, covariates)
        extra = (1,) * (log_inter.ndim - 1)
        link = {k: v.reshape(v.shape + extra) for k, v in self.link.items()}
        acc = accuracy(link, np.exp(log_inter + self.inter_noise.reshape(-1, *extra)))
        acc = acc + self.metric_noise.reshape(-1, *extra)
        return np.log(np.maximum(1.0 - acc, ERROR_FLOOR))

    def log_noise(self, seed: int | None) -> np.ndarray:
        """No noise on top: one run's noise is already inside :meth:`log_loss`."""
        return np.zeros(self.size)

    def median(self) -> Posterior:
        """The intermediate's plug-in posterior: accuracy falls with the intermediate, so its plug-in
        optimum is the accuracy's."""
        return Posterior(self.theta, self.sigma, self.nu, self.card, self.slope, self.region).median()


def error_rate_posterior(source: HasArrays | FitArrays, *, noise: bool = True, seed: int = 0) -> ErrorRatePosterior:
    """The :class:`ErrorRatePosterior` of a task fit.

    Raises
    ------
    InputError
        If the fit is not a task fit.
    """
    arrays = fit_arrays(source)
    link = link_draws(arrays)
    post = arrays.posterior_draws()
    inter = post.log_noise(seed if noise else None)
    metric = (np.random.default_rng(seed + 3).standard_normal(post.size) * link["sigma_metric"] if noise
              else np.zeros(post.size))
    return ErrorRatePosterior(post.theta, post.sigma, post.nu, post.card, post.slope, post.region,
                              link={k: link[k] for k in LINK_PARAMETERS}, inter_noise=inter, metric_noise=metric)


def check_target_metric(target_metric: float) -> float:
    """An accuracy target strictly between 0 and 1, echoed back."""
    if not (isinstance(target_metric, (int, float)) and 0 < target_metric < 1):
        raise InputError(f"--target-metric: the target accuracy must be in the interval (0, 1) but got "
                         f"{target_metric!r}")
    return float(target_metric)


def metric_tables(source: HasArrays | FitArrays, *, budgets: Sequence[float | str] | float | str | None = None,
                  risk: str | Criterion = "mean", target_metric: float | None = None, prob: float = 0.9,
                  plans: Sequence[Plan] = (), constraints: Constraints | None = None, level: float = 0.9,
                  noise: bool = True, seed: int = 0) -> dict[str, Table]:
    """The answers of :func:`bayes_scaling.decisions.decide_tables` on a task fit's accuracy.

    Keys and rows as there, with the loss columns in accuracy: ``expected_metric``,
    ``metric`` (median), ``metric_lo``, ``metric_hi``, ``target_metric``; ``prob`` is
    P(accuracy >= target). ``best_plan``'s ``criterion`` is the accuracy's (the chosen
    plan maximises it), ``delta_criterion`` and ``delta_expected`` are <= 0 (accuracy
    given up against the chosen / risk-neutral plan). ``compare_plans``' ``diff`` is
    accuracy minus the first plan's, ``prob_best`` the share of draws where a plan's
    accuracy is highest, ``regret`` the expected accuracy given up against the best plan
    of the same cost (>= 0).
    """
    post = error_rate_posterior(source, noise=noise, seed=seed)
    target = None if target_metric is None else 1.0 - check_target_metric(target_metric)
    task = post.card.task
    assert task is not None  # error_rate_posterior refuses other fits
    inter = f"one run's {task.via}" if task.via else "the latent law"
    what = (f"one run's accuracy ({task.metric}): the sigmoid of {inter} plus the accuracy's own noise, drawn "
            f"once per posterior draw (seed {seed}) and shared by all plans" if noise
            else f"the law's accuracy ({task.metric}), no noise")
    note = {"loss": what, "direction": "accuracy, higher is better (computed on the error rate 1 - accuracy)"}
    answers: dict[str, Table] = {}
    kwargs: dict[str, Any] = {"constraints": constraints, "noise": noise, "seed": seed}
    if budgets is not None:
        answers["best_plan"] = best_plan_table(post, budgets, risk=risk, level=level, **kwargs)
    if target is not None:
        assert target_metric is not None  # target is 1 - target_metric
        answers["cheapest_compute"] = cheapest_compute_table(post, target, prob,
                                                             wording=_accuracy_wording(target_metric), **kwargs)
        if budgets is not None or len(plans):
            answers["target_probability"] = target_probability_table(post, target, plans=plans, budgets=budgets,
                                                                     risk=risk, **kwargs)
    if len(plans):
        answers["compare_plans"] = compare_plans_table(post, plans, level=level, **kwargs)
    return {name: _in_accuracy(table, note) for name, table in answers.items()}


def _accuracy_wording(target_metric: float) -> TargetWording:
    """How the cheapest compute refuses a target accuracy (asked of the error rate 1 − accuracy)."""
    return TargetWording(
        already=f"target accuracy {target_metric} is reached with probability {{prob}} already at the smallest "
                "budget; choose a higher target",
        out_of_reach=f"target accuracy {target_metric} is out of reach with probability {{prob}} at any budget up to "
                     "1e32 FLOPs (or the limits' costliest plan); the fitted ceiling caps the accuracy: choose a "
                     "lower target or a lower --prob")


def _in_accuracy(table: Table, note: Mapping[str, str]) -> Table:
    """A table of error rates with its columns turned into accuracy (see :func:`metric_tables`)."""
    c = dict(table.columns)
    out: dict[str, np.ndarray] = {}
    for name, values in c.items():
        if name in ("expected_loss", "loss", "target_loss", "criterion"):
            out[name.replace("loss", "metric")] = 1.0 - values
        elif name == "loss_lo":
            out["metric_lo"] = 1.0 - c["loss_hi"]
        elif name == "loss_hi":
            out["metric_hi"] = 1.0 - c["loss_lo"]
        elif name in ("delta_criterion", "delta_expected", "diff"):
            out[name] = 0.0 - values  # not -values: no -0.0 in the output
        elif name == "diff_lo":
            out[name] = 0.0 - c["diff_hi"]
        elif name == "diff_hi":
            out[name] = 0.0 - c["diff_lo"]
        else:
            out[name] = values
    attrs = {**table.attrs, **note}
    if "criterion" in attrs:
        attrs["criterion"] = f"{attrs['criterion']} of the error rate 1 - accuracy"
    return Table(out, attrs, index=table.index)


__all__ = ["ErrorRatePosterior", "check_target_metric", "error_rate_posterior", "metric_tables"]
