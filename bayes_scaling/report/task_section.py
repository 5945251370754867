"""The report's "Task" section: a task fit's two steps, and the accuracy at each budget.

Added to the report of a task fit (a card with a ``[task]`` table, see
:mod:`bayes_scaling.task_model`). It shows

- step 1: the intermediate metric (the task's bits per byte, or C4 loss) of each run against
  compute, with the law's posterior band for each model size;
- step 2: accuracy against the intermediate metric, with the sigmoid's posterior band, its
  floor and ceiling, and chance;
- held-out runs, when given (``write_report(..., held_out=runs)``; CLI ``report --held-out``),
  drawn hollow and scored: the share inside one run's predictive interval;
- the accuracy at the compute-optimal plan of each report budget
  (:func:`bayes_scaling.task_prediction.task_allocation`);
- whether the runs identify the sigmoid's floor and ceiling: a bound is *unidentified*
  when the runs never come near it (the posterior median of the sigmoid's share at the
  best run stays below :data:`REACHED`, or at the worst run above 1 − ``REACHED``) or the
  posterior is barely narrower than the prior (sd ratio above :data:`PRIOR_SD_RATIO`);
  then that bound is the prior's, and predictions that approach it inherit the prior.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from .. import metrics
from ..cards import Task
from ..laws.sigmoid import LINK_PARAMETERS, accuracy
from ..task_backtest import predictive_accuracy, score_accuracy
from ..task_model import task_columns, task_of
from ..task_prediction import link_draws, task_allocation
from ..units import format_quantity
from .content import ReportContext
from .figures import DATA, POSTERIOR, STYLE
from .html import Section, escape, figure, markdown_table, table
from .sections import interval

#: A bound counts as reached when the runs get this far from the other one, in the sigmoid's share.
REACHED = 0.8
#: A bound whose posterior sd is above this share of its prior sd is set by the prior.
PRIOR_SD_RATIO = 0.7
#: Prior draws used to measure a bound's prior spread.
PRIOR_DRAWS = 4000
HELD_OUT = "#b2182b"


def task_section(ctx: ReportContext, *, held_out: pd.DataFrame | None = None) -> Section:
    """The "Task" section of a task fit's report (see the module docstring)."""
    fit = ctx.fit
    task = task_of(fit.card)
    runs = ctx.runs
    metric, inter = task_columns(runs, task)
    if inter is None:  # a direct card: the intermediate is the law's value, latent: its posterior median
        inter = ctx.law_bands(runs["params"].to_numpy(float), runs["tokens"].to_numpy(float))[2]
    link = link_draws(fit.arrays)
    bounds = identification(task, link, inter)
    held = _held_out_scores(ctx, held_out) if held_out is not None else None
    alloc = task_allocation(fit, ctx.budgets, level=ctx.level)
    pct = f"{ctx.level:.0%}"
    via = task.via or "the law's value (latent)"
    headers = ["compute C (FLOPs)", "parameters N", "tokens D", f"{via} (law)", f"{task.metric} (law)",
               f"{task.metric} (one run)"]
    rows = [[f"{r['compute']:.3g}", *(interval(r[q], r[f"{q}_lo"], r[f"{q}_hi"]) for q in ("params_opt", "tokens_opt")),
             _num(r, "loss_opt", ".3f"),
             _num(r, "metric_opt", ".1%"), _num(r, "metric_opt_predictive", ".1%")] for r in alloc.rows()]
    body = figure(plot_task(ctx, task, metric, inter, link, held_out),
                  f"Step 1: {via} against compute; step 2: {task.metric} against {via}",
                  f"Left, step 1: each run's {escape(via)} (dots, shade by model size) and the law's median and "
                  f"{pct} band along each model size's tokens. Right, step 2: accuracy against {escape(via)}; the "
                  f"sigmoid's median and {pct} band, its floor and ceiling (dashed), chance (dotted)"
                  + ("; held-out runs hollow, red." if held_out is not None else "."))
    body += table(headers, rows)
    body += (f'<p class="note">Accuracy at each budget\'s compute-optimal plan (optimal for {escape(via)}), median '
             f"[{pct} interval]: the law's (parameter uncertainty of both steps) and one run's (plus run-to-run "
             f"noise of both steps). In the other sections, \"loss\" is {escape(via)}.</p>")
    notes = [b["note"] for b in bounds.values() if not b["identified"]]
    body += "".join(f'<p class="warn">{escape(n)}</p>' for n in notes)
    if held is not None:
        body += (f"<p>Held-out runs: {held['covered']}/{held['n']} inside one run's {pct} predictive interval of "
                 f"{escape(task.metric)}; median absolute error {held['median_abs_error']:.2f} accuracy points.</p>")
    data: dict[str, Any] = {
        "metric": task.metric, "via": task.via, "chance": task.chance, "bounds": bounds,
        "allocation": [{"compute": float(r["compute"]),
                        **{q: {"median": float(r[q]), "lo": float(r[f"{q}_lo"]), "hi": float(r[f"{q}_hi"])}
                           for q in ("params_opt", "tokens_opt", "loss_opt", "metric_opt", "metric_opt_predictive")}}
                       for r in alloc.rows()],
        **({"held_out": held} if held is not None else {}),
    }
    summary = markdown_table(headers, rows) + "".join(f"\n\n> {n}" for n in notes)
    return Section("task", f"Task: {task.metric} from {via}", body, data, summary)


def identification(task: Task, link: dict[str, np.ndarray], inter: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """Whether the runs identify the sigmoid's floor and ceiling (see the module docstring).

    Returns
    -------
    dict
        ``{"floor": {...}, "ceiling": {...}}``, each with ``identified`` (bool), ``reached``
        (posterior median of how far the runs get towards that bound, as the sigmoid's share:
        1 at the bound, 0 at the other), ``sd_ratio`` (posterior sd / prior sd) and ``note``.
    """
    prior = _prior_bounds(task)
    out: dict[str, dict[str, Any]] = {}
    for bound, sign in (("ceiling", 1.0), ("floor", -1.0)):
        if inter is None or not len(inter):
            reached = float("nan")
        else:
            x = np.min(inter) if sign > 0 else np.max(inter)
            share = accuracy({"floor": 0.0, "ceiling": 1.0, "slope": link["slope"], "midpoint": link["midpoint"]}, x)
            reached = float(np.median(share if sign > 0 else 1.0 - share))
        ratio = float(np.std(link[bound]) / np.std(prior[bound]))
        identified = bool(reached >= REACHED and ratio <= PRIOR_SD_RATIO)
        why = []
        if not reached >= REACHED:
            best = "best" if sign > 0 else "worst"
            why.append(f"the {best} run gets only {reached:.0%} of the way to it")
        if ratio > PRIOR_SD_RATIO:
            why.append(f"its posterior sd is {ratio:.0%} of the prior's")
        note = (f"The sigmoid's {bound} is not identified by the runs ({'; '.join(why)}): it is set by the card's "
                f"prior, and predictions of {task.metric} near it inherit that prior.") if not identified else ""
        out[bound] = {"identified": identified, "reached": reached, "sd_ratio": ratio,
                      "median": float(np.median(link[bound])), "note": note}
    return out


def _prior_bounds(task: Task) -> dict[str, np.ndarray]:
    """Prior draws of floor and ceiling (the card's priors of floor_offset and headroom)."""
    key_offset, key_headroom = jax.random.split(jax.random.PRNGKey(0))
    offset = np.asarray(task.priors["floor_offset"].to_numpyro().sample(key_offset, (PRIOR_DRAWS,)))
    headroom = np.asarray(task.priors["headroom"].to_numpyro().sample(key_headroom, (PRIOR_DRAWS,)))
    floor = float(task.chance or 0.0) + offset
    return {"floor": floor, "ceiling": floor + (1.0 - floor) * headroom}


def _held_out_scores(ctx: ReportContext, held_out: pd.DataFrame) -> dict[str, Any]:
    task = task_of(ctx.fit.card)
    observed, _ = task_columns(held_out, task)
    draws, _ = predictive_accuracy(ctx.fit, held_out)
    scores = score_accuracy(observed, draws, None)
    lo, hi = metrics.interval(draws, ctx.level)
    covered = int(np.sum((observed >= lo) & (observed <= hi)))
    return {"n": len(held_out), "covered": covered, "median_abs_error": float(scores["abs_error"].median()),
            "runs": [{"name": str(n), "observed": float(o), "median": float(m), "lo": float(a), "hi": float(b)}
                     for n, o, m, a, b in zip(held_out.get("name", pd.Series(range(len(held_out)))).astype(str),
                                              observed, scores["median"], lo, hi, strict=True)]}


def plot_task(ctx: ReportContext, task: Task, metric: np.ndarray, inter: np.ndarray,
              link: dict[str, np.ndarray], held_out: pd.DataFrame | None) -> Figure:
    """Step 1 (intermediate against compute, per model size) and step 2 (accuracy against the intermediate)."""
    runs = ctx.runs
    with rc_context(STYLE):
        fig = Figure(figsize=(10, 4))
        ax1, ax2 = fig.subplots(1, 2)
        sizes = np.unique(runs["params"].to_numpy(float))
        shades = np.linspace(0.35, 1.0, len(sizes))
        lo_q, hi_q = ctx.tail
        for n, shade in zip(sizes, shades, strict=True):
            mine = runs["params"].to_numpy(float) == n
            d = runs.loc[mine, "tokens"].to_numpy(float)
            grid = np.geomspace(d.min() / 1.5, d.max() * 1.5, 30)
            bands = ctx.law_bands(np.full_like(grid, n), grid)
            colour = (0.13 * shade, 0.4 * shade, 0.67 * shade)
            ax1.fill_between(6 * n * grid, bands[0], bands[-1], color=POSTERIOR, alpha=0.12, lw=0)
            ax1.plot(6 * n * grid, bands[2], color=colour, lw=1)
            if task.via is not None:  # observed; a direct card's law value is not data
                ax1.scatter(runs.loc[mine, "flops"], inter[mine], s=14, color=colour, zorder=3)
            ax1.annotate(format_quantity(n), (6 * n * grid[-1], bands[2][-1]), fontsize=7, color=colour,
                         xytext=(2, 0), textcoords="offset points", va="center")
        if held_out is not None:  # the law's prediction along each held-out size, and the runs
            for n in np.unique(held_out["params"].to_numpy(float)):
                d = held_out.loc[held_out["params"].to_numpy(float) == n, "tokens"].to_numpy(float)
                grid = np.geomspace(d.min() / 1.5, d.max() * 1.5, 30)
                bands = ctx.law_bands(np.full_like(grid, n), grid)
                ax1.fill_between(6 * n * grid, bands[0], bands[-1], color=HELD_OUT, alpha=0.1, lw=0)
                ax1.plot(6 * n * grid, bands[2], color=HELD_OUT, lw=1, ls="--")
                ax1.annotate(format_quantity(n), (6 * n * grid[-1], bands[2][-1]), fontsize=7, color=HELD_OUT,
                             xytext=(2, 0), textcoords="offset points", va="center")
            if task.via is not None and task.via in held_out:
                ax1.scatter(6 * held_out["params"] * held_out["tokens"], held_out[task.via], s=22,
                            facecolors="none", edgecolors=HELD_OUT, zorder=4, label="held out (law: dashed)")
                ax1.legend()
        ax1.set_xscale("log")
        ax1.set_xlabel("compute C = 6ND (FLOPs)")
        ax1.set_ylabel(task.via or "law value")
        ax1.set_title(f"Step 1: {task.via or 'law'} (law, {ctx.level:.0%} band)")
        xs = inter
        span = float(np.ptp(xs)) or 0.5
        grid = np.linspace(xs.min() - 0.6 * span, xs.max() + 0.3 * span, 80)
        theta = {k: link[k][:, None] for k in LINK_PARAMETERS}
        curves = accuracy(theta, grid[None, :])
        lo, med, hi = np.quantile(curves, [lo_q, 0.5, hi_q], axis=0)
        ax2.fill_between(grid, lo, hi, color=POSTERIOR, alpha=0.2, lw=0, label=f"sigmoid, {ctx.level:.0%} band")
        ax2.plot(grid, med, color=POSTERIOR, lw=1.2)
        for bound in ("floor", "ceiling"):
            ax2.axhline(float(np.median(link[bound])), color=POSTERIOR, ls="--", lw=0.8)
        ax2.axhline(float(task.chance or 0.0), color="grey", ls=":", lw=0.8, label="chance")
        ax2.scatter(inter, metric, s=14, color=DATA, zorder=3, label="runs")
        if held_out is not None and task.via is not None and task.via in held_out:
            ax2.scatter(held_out[task.via], held_out[task.metric], s=22, facecolors="none", edgecolors=HELD_OUT,
                        zorder=4, label="held out")
        ax2.set_xlabel(task.via or "law value")
        ax2.set_ylabel(f"{task.metric} (accuracy)")
        ax2.set_title(f"Step 2: {task.metric}")
        ax2.legend(loc="best")
        fig.tight_layout()
    return fig


def _num(row: dict[str, Any], name: str, spec: str) -> str:
    return f"{row[name]:{spec}} [{row[name + '_lo']:{spec}}, {row[name + '_hi']:{spec}}]"


__all__ = ["PRIOR_SD_RATIO", "REACHED", "identification", "plot_task", "task_section"]
