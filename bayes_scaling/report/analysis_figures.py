"""Figures of the analyses (backtests, card comparison, fit-region sensitivity, arms).

For the report, the CLI and notebooks.

The analyses (:mod:`bayes_scaling.backtesting`, :mod:`bayes_scaling.comparison`,
:mod:`bayes_scaling.sensitivity_analysis`) compute tables; drawing them is this layer's job.
Each function returns a :class:`matplotlib.figure.Figure` without touching pyplot state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..arms import ArmsComparison
from ..backtesting import BacktestResult, split_label
from ..errors import InputError


def plot_calibration(result: BacktestResult | Sequence[Mapping[str, Any]]) -> Figure:
    """Calibration curves (nominal vs empirical coverage), one panel per cutoff.

    Points below the diagonal are intervals that held out runs escape more often than
    their level promises; the grey box marks 85-95% coverage of the 90% interval.

    Parameters
    ----------
    result : BacktestResult or list of dict
        A backtest, or its :meth:`BacktestResult.records` (e.g. read back from
        ``bayes-scaling backtest --format json``).
    """
    records = result.records() if isinstance(result, BacktestResult) else list(result)
    splits = sorted({(str(r.get("split", "compute")), float(r["cutoff"])) for r in records})
    fig = Figure(figsize=(3.6 * len(splits), 3.6), layout="constrained")
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, (kind, cutoff) in zip(axes, splits, strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        ax.axhspan(0.85, 0.95, xmin=0.85, xmax=0.95, color="0.9", zorder=0)
        at = [r for r in records if str(r.get("split", "compute")) == kind and float(r["cutoff"]) == cutoff]
        for r in at:
            curve = r["calibration"]
            ax.plot([c["level"] for c in curve], [c["coverage"] for c in curve], marker="o", ms=3,
                    label=f"{r['card']} ({r['method']})")
        ax.set(title=f"fit on {split_label(at[0])} ({at[0]['n_test']} held out)", xlabel="nominal level",
               xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    axes[0].set_ylabel("held-out runs covered")
    axes[0].legend(fontsize="small", loc="upper left")
    return fig


def plot_predictions(result: BacktestResult, cutoff: float | None = None) -> Figure:
    """Held-out runs against their 90% predictive intervals, as a ratio to the observed loss.

    Parameters
    ----------
    result : BacktestResult
    cutoff : float, optional
        Which cutoff to show; default the smallest.
    """
    cutoff = float(result.runs["cutoff"].min() if cutoff is None else cutoff)
    part = result.runs[np.isclose(result.runs["cutoff"], cutoff)]
    if part.empty:
        raise InputError(f"no backtest at cutoff {cutoff:.3g}; cutoffs: {sorted(result.runs['cutoff'].unique())}")
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.axhline(1.0, color="0.3", lw=1)
    groups = list(part.groupby(["card", "method"], sort=False))
    for k, ((card, method), runs) in enumerate(groups):
        shift = 1 + 0.04 * (k - (len(groups) - 1) / 2)  # side by side in log compute
        ratio = runs[["median", "lo_90", "hi_90"]].div(runs["loss"], axis=0)
        ax.errorbar(runs["flops"] * shift, ratio["median"],
                    yerr=[ratio["median"] - ratio["lo_90"], ratio["hi_90"] - ratio["median"]],
                    fmt="o", ms=3, capsize=2, label=f"{card} ({method})")
    ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="predicted / observed loss",
           title=f"Held-out runs above {cutoff:.3g} FLOPs: median and 90% interval")
    ax.legend(fontsize="small")
    return fig


def plot_comparison(table: pd.DataFrame) -> Figure:
    """Figure of a :func:`compare` table: ELPD-LOO ± SE per card, and the difference to the best ± its SE.

    A Matplotlib figure (no pyplot state); render it with ``fig.savefig`` or the report.
    """
    fig = Figure(figsize=(6.5, 0.5 + 0.45 * len(table)))
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(table))[::-1]
    left.errorbar(table["elpd_loo"], y, xerr=table["se"], fmt="o", color="#2166ac", capsize=3)
    left.set(yticks=y, yticklabels=list(table.index), xlabel="ELPD-LOO (nats, log loss)")
    right.errorbar(table["elpd_diff"], y, xerr=table["se_diff"], fmt="o", color="#2166ac", capsize=3)
    right.axvline(0.0, color="#888888", lw=0.8)
    right.set(xlabel="difference to the best (nats)")
    for ax in (left, right):
        ax.margins(y=0.5 / max(len(table), 1))
    fig.tight_layout()
    return fig


def plot_sensitivity(table: pd.DataFrame) -> Figure:
    """N_opt at the target budget for each variant: median and interval, on a log axis.

    The band is the all-runs interval; variants outside it are where the fit region
    decides the answer.
    """
    fig = Figure(figsize=(6.4, 0.9 + 0.32 * len(table)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(table))[::-1]
    base = table.iloc[0]
    ax.axvspan(base["params_opt_lo"], base["params_opt_hi"], color="C0", alpha=0.12, lw=0)
    ax.axvline(base["params_opt"], color="C0", lw=1)
    colours = {"all": "C0", "drop_smallest": "C1", "drop_largest": "C3", "drop_budget": "C2"}
    for kind, rows in table.groupby("kind", sort=False):
        at = y[table.index.get_indexer(rows.index)]
        ax.errorbar(rows["params_opt"], at, fmt="o", ms=4, capsize=2, color=colours.get(str(kind), "C7"),
                    xerr=[rows["params_opt"] - rows["params_opt_lo"], rows["params_opt_hi"] - rows["params_opt"]])
    ax.set_yticks(y, [f"{v} ({n})" for v, n in zip(table["variant"], table["n_runs"], strict=True)])
    level = table.attrs.get("level", 0.9)
    budget = table.attrs.get("budget", float(base["compute"]))
    ax.set(xscale="log", xlabel=f"compute-optimal parameters N_opt at C = {budget:.3g} FLOPs",
           title=f"Fit-region sensitivity: median, {level:.0%} interval")
    return fig




def plot_arm_frontiers(result: ArmsComparison) -> Figure:
    """Each arm's compute-optimal loss against compute, with its credible band.

    Dotted vertical lines: the budgets compared; grey spans: the crossovers' intervals.

    Parameters
    ----------
    result : ArmsComparison
        From :func:`bayes_scaling.arms.compare_arms`.
    """
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    front = result.frontiers
    for arm in result.arms:
        at = front["arm"] == arm
        c = front["compute"][at]
        line = ax.plot(c, front["loss_opt"][at], label=arm)[0]
        ax.fill_between(c, front["loss_opt_lo"][at], front["loss_opt_hi"][at], color=line.get_color(), alpha=0.2)
    for budget in np.unique(result.wins["compute"]):
        ax.axvline(budget, color="0.5", lw=0.8, ls=":")
    cross = result.crossovers
    for lo, hi in zip(cross["crossover_lo"], cross["crossover_hi"], strict=True):
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="0.85", zorder=0)
    ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="loss at the compute-optimal plan (nats/token)",
           title=f"Arms' frontiers, {result.level:.0%} bands")
    ax.legend(fontsize="small")
    return fig


__all__ = ["plot_arm_frontiers", "plot_calibration", "plot_comparison", "plot_predictions", "plot_sensitivity"]
