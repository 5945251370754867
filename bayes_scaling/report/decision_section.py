"""The report's "Decision" section: risk-aware plans for the report's budgets and targets.

The section is added when decision questions are asked
(``write_report(fit, out, budgets, decision=DecisionRequest(...))``; CLI: ``report``
with ``--budget``, ``--risk``, ``--target-loss``, ``--plan`` or a limit). Its numbers
are those of :func:`bayes_scaling.decisions.decide` for the report's budgets, level and
group, so ``report.json`` and ``bayes-scaling decide --format json`` agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..decisions import Constraints, as_posterior, decide, parse_plans, target_probability
from ..decisions.plans import Plan
from ..errors import InputError
from ..risk import Criterion, parse_risk
from ..units import format_quantity
from .content import ReportContext
from .figures import DATA, LITERATURE, POSTERIOR, _figure, _log_axis
from .html import Section, escape, figure, table
from .sections import flops, interval

#: Points of the P(loss <= target) curve, and its span around the cheapest compute (× and ÷).
CURVE_POINTS = 25
CURVE_SPAN = 10.0


@dataclass(frozen=True)
class DecisionRequest:
    """Decision questions for the report; budgets are the report's own (FLOPs).

    Attributes
    ----------
    risk : str or Criterion, default "mean"
        Criterion of the chosen plan: ``"mean"``, ``"quantile:0.9"``, ``"cvar:0.9"``.
    target_loss : float, optional
        Target loss (nats per token): asks for the cheapest compute reaching it with
        probability ``prob`` and for each plan's chance of reaching it.
    prob : float, default 0.9
        Probability of reaching ``target_loss``, in (0, 1).
    plans : sequence of plans, default ()
        ``"70B:1.4T"`` strings or (parameters, tokens) pairs to compare.
    constraints : Constraints, default Constraints()
        Limits on parameters and tokens; inference tokens (budgets then count
        lifetime FLOPs).
    noise : bool, default True
        Judge one run's loss (law x observation noise) rather than the law's.
    seed : int, default 0
        Seed of the observation noise.

    Raises
    ------
    InputError
        For an unknown criterion, a probability outside (0, 1), a non-positive target
        or an unreadable plan (checked at once, before anything is rendered).

    Examples
    --------
    >>> DecisionRequest(risk="cvar:0.9", target_loss=2.0, plans=("70B:1.4T", "175B:300B"))  # doctest: +SKIP
    """

    risk: str | Criterion = "mean"
    target_loss: float | None = None
    prob: float = 0.9
    plans: Sequence[Plan] = ()
    constraints: Constraints = field(default_factory=Constraints)
    noise: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        parse_risk(self.risk)
        if not (isinstance(self.prob, (int, float)) and 0 < self.prob < 1):
            raise InputError(f"the probability of reaching the target must be in the interval (0, 1) "
                             f"but got {self.prob!r}")
        if self.target_loss is not None and not (isinstance(self.target_loss, (int, float)) and self.target_loss > 0):
            raise InputError(f"target loss must be a positive number of nats per token but got {self.target_loss!r}")
        object.__setattr__(self, "plans", tuple(self.plans))
        if self.plans:
            parse_plans(self.plans)

    def answers(self, ctx: ReportContext) -> dict[str, pd.DataFrame]:
        """:func:`~bayes_scaling.decisions.decide` for the report's budgets, level and group."""
        return decide(ctx.source, budgets=ctx.budgets, risk=self.risk, target_loss=self.target_loss, prob=self.prob,
                      plans=self.plans, constraints=self.constraints, level=ctx.level, noise=self.noise,
                      seed=self.seed, group=ctx.group)


def _prob(p: float, se: float) -> str:
    return f"{p:.1%} ± {se:.1%}"


def _loss(value: float) -> str:
    return f"{value:.4f}"


def _best_plan(t: pd.DataFrame, level: float) -> tuple[list[str], list[list[str]]]:
    label = t.attrs["criterion"]
    headers = ["compute C (FLOPs)", "plan", "parameters N", "tokens D", "tokens / parameter",
               f"loss, median [{level:.0%}]", "expected loss", label, f"{label} − chosen", "expected − risk-neutral"]
    rows = [[flops(r["compute"]), r["plan"], format_quantity(r["params"]), format_quantity(r["tokens"]),
             f"{r['tokens_per_param']:.1f}", interval(r["loss"], r["loss_lo"], r["loss_hi"], "loss"),
             _loss(r["expected_loss"]), _loss(r["criterion"]), f"{r['delta_criterion']:.2g}",
             f"{r['delta_expected']:.2g}"] for _, r in t.iterrows()]
    return headers, rows


def _cheapest(t: pd.DataFrame, level: float) -> tuple[list[str], list[list[str]]]:
    headers = ["target loss", "probability wanted", "compute C (FLOPs)", "parameters N", "tokens D",
               "tokens / parameter", "probability reached"]
    rows = [[_loss(r["target_loss"]), f"{r['prob']:.0%}", flops(r["compute"]), format_quantity(r["params"]),
             format_quantity(r["tokens"]), f"{r['tokens_per_param']:.1f}", _prob(r["prob_achieved"], r["prob_se"])]
            for _, r in t.iterrows()]
    return headers, rows


def _target(t: pd.DataFrame, level: float) -> tuple[list[str], list[list[str]]]:
    headers = ["plan", "parameters N", "tokens D", "training FLOPs", "P(loss ≤ target)"]
    rows = [[r["plan"], format_quantity(r["params"]), format_quantity(r["tokens"]), flops(r["training_flops"]),
             _prob(r["prob"], r["prob_se"])] for _, r in t.iterrows()]
    return headers, rows


def _compare(t: pd.DataFrame, level: float) -> tuple[list[str], list[list[str]]]:
    headers = ["plan", "cost (FLOPs)", "expected loss", "P(best)", f"loss − {t.attrs['reference']} [{level:.0%}]",
               "regret", "best plan of equal cost"]
    rows = [[r["plan"], flops(r["compute"]), _loss(r["expected_loss"]), f"{r['prob_best']:.0%}",
             interval(r["diff"], r["diff_lo"], r["diff_hi"], "loss"), f"{r['regret']:.4f}",
             f"{format_quantity(r['best_params'])}:{format_quantity(r['best_tokens'])}"] for _, r in t.iterrows()]
    return headers, rows


#: Per answer of ``decide``: heading, caption and table builder.
ANSWERS = {
    "best_plan": ("Best plan per budget",
                  "risk-neutral minimises the expected loss, chosen the risk criterion, plug-in is the law's optimum "
                  "at the posterior-median parameters; differences are in nats/token (≥ 0).", _best_plan),
    "cheapest_compute": ("Cheapest compute reaching the target", "The least compute whose best plan reaches the "
                         "target loss with the wanted probability.", _cheapest),
    "target_probability": ("Chance of reaching the target", "Explicit plans, and the chosen plan of each budget.",
                           _target),
    "compare_plans": ("Plans compared", "P(best): share of draws in which the plan has the lowest loss; regret: "
                      "expected loss above the risk-neutral best plan of the same cost.", _compare),
}


def _with_inference(t: pd.DataFrame, headers: list[str], rows: list[list[str]]) -> None:
    if "inference_flops" in t and t["inference_flops"].any():
        headers.append("inference FLOPs")
        for row, value in zip(rows, t["inference_flops"], strict=True):
            row.append(flops(value))


def probability_curve(ctx: ReportContext, request: DecisionRequest, cheapest: float,
                      marks: Sequence[float] = ()) -> dict[str, list[float]]:
    """P(loss <= target) of the chosen plan over a compute grid around the cheapest compute.

    Parameters
    ----------
    ctx : ReportContext
    request : DecisionRequest
        With a ``target_loss``.
    cheapest : float
        The cheapest compute reaching the target (FLOPs); the grid spans it ÷ and ×
        :data:`CURVE_SPAN`, widened to include ``marks``, within the limits' cost range.
    marks : sequence of float
        Costs (FLOPs) the grid must cover, e.g. those of explicit plans.

    Returns
    -------
    dict
        ``compute`` (FLOPs), ``prob`` and ``prob_se`` lists of equal length.
    """
    least, most = request.constraints.cost_range()
    lo = max(min([cheapest / CURVE_SPAN, *[m / 1.5 for m in marks]]), least * (1 + 1e-6))
    hi = min(max([cheapest * CURVE_SPAN, *[m * 1.5 for m in marks]]), most * (1 - 1e-9))
    grid = np.geomspace(lo, hi, CURVE_POINTS)
    t = target_probability(as_posterior(ctx.source, group=ctx.group), request.target_loss, budgets=grid,
                           risk=request.risk, constraints=request.constraints, noise=request.noise, seed=request.seed)
    return {"compute": grid.tolist(), "prob": t["prob"].tolist(), "prob_se": t["prob_se"].tolist()}


def _curve_figure(curve: dict[str, list[float]], request: DecisionRequest, cheapest: float,
                  plans: pd.DataFrame | None) -> Figure:
    fig, (ax,) = _figure(6.4, 3.4)
    c, p, se = (np.asarray(curve[k]) for k in ("compute", "prob", "prob_se"))
    ax.fill_between(c, np.clip(p - 2 * se, 0, 1), np.clip(p + 2 * se, 0, 1), color=POSTERIOR, alpha=0.2, lw=0)
    ax.plot(c, p, color=POSTERIOR, lw=1.6, label=f"best plan for the budget ({parse_risk(request.risk).label})")
    ax.axhline(request.prob, color=DATA, lw=0.8, ls="--", label=f"wanted probability {request.prob:g}")
    ax.axvline(cheapest, color=DATA, lw=0.8, ls=":", label=f"cheapest compute {flops(cheapest)} FLOPs")
    if plans is not None:
        for k, (_, r) in enumerate(plans.iterrows()):
            ax.plot(r["training_flops"] + r["inference_flops"], r["prob"], ls="", marker="o", ms=6,
                    color=LITERATURE[k % len(LITERATURE)], label=f"plan {r['plan']}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(c.min(), c.max())
    _log_axis(ax, "x", "flops")
    ax.set_xlabel("compute C (FLOPs)" + (", lifetime" if request.constraints.inference_tokens else ""))
    ax.set_ylabel(f"P(loss ≤ {request.target_loss:g} nats/token)")
    fig.legend(loc="outside lower center", ncols=3)
    return fig


def _curve_section(ctx: ReportContext, request: DecisionRequest, answers: dict[str, pd.DataFrame],
                   data: dict[str, Any]) -> str:
    """The figure of P(loss <= target) against compute; its numbers go into ``data``."""
    cheapest = float(answers["cheapest_compute"]["compute"].iloc[0])
    plans = answers.get("target_probability")
    plans = plans.iloc[: len(request.plans)] if plans is not None and request.plans else None
    marks = [] if plans is None else list(plans["training_flops"] + plans["inference_flops"])
    data["probability_curve"] = curve = probability_curve(ctx, request, cheapest, marks)
    return figure(_curve_figure(curve, request, cheapest, plans), "Chance of reaching the target loss against compute",
                  f"Chance that one run reaches loss ≤ {request.target_loss:g} nats/token when trained with the best "
                  "plan for each budget; band: ± 2 Monte-Carlo standard errors. Dots: the explicit plans at their "
                  "cost.")


def _markdown(answers: dict[str, pd.DataFrame]) -> str:
    lines = []
    if "best_plan" in answers:
        t = answers["best_plan"]
        for _, r in t[t["plan"] == "chosen"].iterrows():
            lines.append(f"- Best plan at {flops(r['compute'])} FLOPs ({t.attrs['criterion']}): "
                         f"N = {format_quantity(r['params'])}, D = {format_quantity(r['tokens'])}, loss "
                         f"{interval(r['loss'], r['loss_lo'], r['loss_hi'], 'loss')}.")
    if "cheapest_compute" in answers:
        r = answers["cheapest_compute"].iloc[0]
        lines.append(f"- Cheapest compute reaching loss ≤ {r['target_loss']:g} with probability {r['prob']:g}: "
                     f"{flops(r['compute'])} FLOPs (N = {format_quantity(r['params'])}, "
                     f"D = {format_quantity(r['tokens'])}).")
    if "compare_plans" in answers:
        t = answers["compare_plans"]
        lines.append("- Plans: " + "; ".join(f"{r['plan']} best in {r['prob_best']:.0%} of draws, regret "
                                             f"{r['regret']:.4f}" for _, r in t.iterrows()) + ".")
    return "\n".join(lines)


def _shared_assumptions(answers: dict[str, pd.DataFrame]) -> dict[str, Any]:
    attrs = [dict(t.attrs) for t in answers.values()]
    return {k: v for k, v in attrs[0].items() if all(a.get(k) == v for a in attrs)}


def decision_section(ctx: ReportContext, request: DecisionRequest) -> Section:
    """The "Decision" section: :func:`~bayes_scaling.decisions.decide`'s tables in human units.

    Shows the best plan for each of the report's budgets (risk-neutral, chosen and
    plug-in), and, as asked, the cheapest compute reaching a target, each plan's
    chance of reaching it (with a figure of that chance against compute) and a
    comparison of explicit plans. The assumptions shared by all answers are listed
    once, the rest under each table. ``data`` holds ``decide``'s rows unchanged.
    """
    answers = request.answers(ctx)
    shared = _shared_assumptions(answers)
    body = table(["assumption", ""], [[k, str(v)] for k, v in shared.items()], cls="kv")
    data: dict[str, Any] = {"budgets": ctx.budgets, "level": ctx.level, "request": {
        "risk": parse_risk(request.risk).label, "target_loss": request.target_loss, "prob": request.prob,
        "plans": [str(p) if isinstance(p, str) else list(p) for p in request.plans],
        "limits": request.constraints.describe(), "inference_tokens": request.constraints.inference_tokens,
        "noise": request.noise, "seed": request.seed}, "assumptions": shared, "answers": {}}
    for name, t in answers.items():
        heading, caption, build = ANSWERS[name]
        headers, rows = build(t, ctx.level)
        _with_inference(t, headers, rows)
        own = "; ".join(f"{k}: {v}" for k, v in t.attrs.items() if k not in shared)
        body += (f"<h3>{escape(heading)}</h3>" + table(headers, rows)
                 + f'<p class="note">{escape(caption)}{" Assumptions: " + escape(own) + "." if own else ""}</p>')
        data["answers"][name] = {"assumptions": dict(t.attrs), "rows": t.to_dict(orient="records")}
        if name == "cheapest_compute":
            body += _curve_section(ctx, request, answers, data)
    md = _markdown(answers)
    return Section("decision", "Decision", body, data, md)


__all__ = ["DecisionRequest", "decision_section", "probability_curve"]
