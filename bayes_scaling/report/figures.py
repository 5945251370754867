"""Report figures: Matplotlib (Agg canvas, no pyplot state) rendered to inline PNG.

One colour per kind of thing, in every figure: data are black dots, the posterior is
blue (bands 50% darker, 90% lighter), literature is warm (red/orange/brown), runs
that fail a check are ringed in red. Axes carry units; quantities that span decades
use log axes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from scipy import stats

from ..units import format_quantity
from .content import ReportContext

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.typing import RcKeyType

DATA = "#1a1a1a"
POSTERIOR = "#2166ac"
#: Literature: the model card's point fits (same colour in every figure), then the power-law rules.
LITERATURE = ("#d6604d", "#c51b7d", "#8c510a", "#e08214")
RULES = (("Kaplan et al. 2020: N ∝ C^0.73, D ∝ C^0.27", "#7f3b08", "--"),
         ("Chinchilla rule: N, D ∝ C^0.5", "#f1a340", ":"))
#: Chinchilla's approaches 1-3 fitted to the same runs (point estimates): grey, one dash each.
CLASSIC = "#636363"
CLASSIC_STYLES = ((0, (1, 1)), (0, (5, 2)), (0, (3, 1, 1, 1)))
FLAG = "#d7301f"
OBSERVED_SPAN = "#e8e8e8"
STYLE: dict[RcKeyType, Any] = {
    "font.size": 9.5, "axes.titlesize": 10, "axes.labelsize": 9.5, "legend.fontsize": 8.5,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25,
    "legend.frameon": False, "font.family": "DejaVu Sans",
}
DPI = 130


def to_data_uri(fig: Figure) -> str:
    """Render a figure with the Agg canvas to a ``data:image/png;base64,...`` URI."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with rc_context(STYLE):
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tick_text(value: float, kind: str) -> str:
    if value <= 0:
        return ""
    if kind == "flops":
        return f"{value:.2g}".replace("e+", "e")
    if kind == "count":
        return format_quantity(value, 3)
    return f"{value:g}"


def _log_axis(ax: Axes, which: str, kind: str) -> None:
    """Log scale with plain-text ticks in human units (``1B``, ``1e21``).

    Plain text, not Matplotlib's mathtext ``10^{21}``: that is harder to read in a
    report and its parser costs seconds on first use. Under 1.5 decades, 2× and 5×
    ticks are labelled too so that every axis has numbers.
    """
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    narrow = hi / lo < 30

    def minor(value: float, _pos: object) -> str:
        mantissa = value / 10 ** np.floor(np.log10(value))
        return _tick_text(value, kind) if narrow and np.isclose(mantissa, [2, 5]).any() else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: _tick_text(value, kind)))
    axis.set_minor_formatter(FuncFormatter(minor))


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1) -> tuple[Figure, np.ndarray]:
    with rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    return fig, axes


def _bands(ax: Axes, x: np.ndarray, q: np.ndarray, label: str | None = "law, 50% / 90%", zorder: float = 2) -> None:
    ax.fill_between(x, q[0], q[4], color=POSTERIOR, alpha=0.15, lw=0, zorder=zorder)
    ax.fill_between(x, q[1], q[3], color=POSTERIOR, alpha=0.3, lw=0, zorder=zorder)
    ax.plot(x, q[2], color=POSTERIOR, lw=1.4, label=label, zorder=zorder)


def _legend_handles(*kinds: str) -> list:
    handles = {
        "data": Line2D([], [], ls="", marker="o", ms=5, color=DATA, label="observed run"),
        "flag": Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec=FLAG, mew=1.5,
                       label="outside its predictive interval"),
        "pred": Line2D([], [], color=POSTERIOR, lw=4, alpha=0.45, label="posterior predictive interval"),
        "band": Patch(color=POSTERIOR, alpha=0.35, label="law: median, 50% and 90% bands"),
        "min": Line2D([], [], color=POSTERIOR, marker="D", ms=6, mec="white", lw=1.5,
                      label="fitted minimum (median, 90% interval of N_opt)"),
    }
    return [handles[k] for k in kinds]


def size_bins(runs: pd.DataFrame, most: int = 6) -> list[pd.DataFrame]:
    """Runs grouped by model size: one group per size, or ``most`` log-spaced quantile bins."""
    sizes = np.sort(runs["params"].unique())
    if sizes.size <= most:
        return [runs[runs["params"] == s] for s in sizes]
    edges = np.quantile(np.log(runs["params"]), np.linspace(0, 1, most + 1))
    index = np.clip(np.searchsorted(edges, np.log(runs["params"]), side="right") - 1, 0, most - 1)
    return [runs[index == i] for i in range(most) if (index == i).any()]


def ppc_by_size(ctx: ReportContext, level_label: str) -> Figure:
    """Loss against tokens, one panel per model-size bin: observed runs and predictive intervals."""
    bins = size_bins(ctx.predictive[ctx.in_group])
    ncols = min(3, len(bins))
    nrows = -(-len(bins) // ncols)
    fig, axes = _figure(3.4 * ncols, 2.5 * nrows + 0.5, ncols, nrows)
    for ax, runs in zip(axes, bins, strict=False):
        d = runs["tokens"].to_numpy()
        ax.vlines(d, runs["pred_lo"], runs["pred_hi"], color=POSTERIOR, lw=4, alpha=0.45)
        if ctx.curves_available:
            grid = np.geomspace(d.min() / 1.5, d.max() * 1.5, 80)
            n_mid = float(np.exp(np.log(runs["params"]).mean()))
            q = ctx.law_bands(np.full_like(grid, n_mid), grid)
            _bands(ax, grid, q)
        ax.plot(d, runs["loss"], "o", ms=4, color=DATA)
        out = runs[runs["outside"]]
        ax.plot(out["tokens"], out["loss"], "o", ms=9, mfc="none", mec=FLAG, mew=1.5)
        _log_axis(ax, "x", "count")
        lo, hi = runs["params"].min(), runs["params"].max()
        span = _count(lo) if lo == hi else f"{_count(lo)}–{_count(hi)}"
        ax.set_title(f"N {span} ({len(runs)} run{'s' if len(runs) != 1 else ''})")
        ax.set_xlabel("training tokens D")
        ax.set_ylabel("loss (nats/token)")
    for ax in axes[len(bins):]:
        ax.set_visible(False)
    fig.legend(handles=_legend_handles("data", "pred", "band", "flag"), loc="outside lower center", ncols=4)
    fig.suptitle(f"Observed loss vs {level_label} posterior-predictive interval, by model size (law drawn at the "
                 "bin's geometric-mean N)", fontsize=10)
    return fig


def isoflop_valleys(ctx: ReportContext, groups: Sequence[tuple[float, pd.DataFrame]]) -> Figure:
    """Loss against N along each IsoFLOP budget, with the law's band and the fitted minimum."""
    fig, (ax,) = _figure(8.6, 5.2)
    budgets = np.array([c for c, _ in groups])
    optimum = ctx.frontier(budgets) if ctx.curves_available else None
    pred = ctx.predictive.set_index("name")
    for k, (c, runs) in enumerate(groups):
        n = runs["params"].to_numpy()
        if ctx.curves_available:
            grid = np.geomspace(n.min() / 1.6, n.max() * 1.6, 80)
            q = ctx.law_bands(grid, c / (6 * grid))
            _bands(ax, grid, q, label=None)
            ax.annotate(f"{c:.1e}", (grid[-1], q[2][-1]), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=8, color=POSTERIOR)
        ax.plot(n, runs["loss"], "o", ms=4, color=DATA)
        flagged = pred.loc[runs["name"], "outside"].to_numpy()
        ax.plot(n[flagged], runs["loss"].to_numpy()[flagged], "o", ms=9, mfc="none", mec=FLAG, mew=1.5)
        if optimum is not None:
            qn, ql = optimum["params_opt"][:, k], optimum["loss_opt"][:, k]
            ax.errorbar(qn[2], ql[2], xerr=[[qn[2] - qn[0]], [qn[4] - qn[2]]], color=POSTERIOR, marker="D",
                        ms=6, mec="white", capsize=3, lw=1.5, zorder=5)
    _log_axis(ax, "x", "count")
    ax.set_xlabel("model size N (parameters)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("IsoFLOP valleys: loss along each compute budget (labels: budget in FLOPs)")
    ax.legend(handles=_legend_handles("data", "band", "min", "flag"), loc="upper left", bbox_to_anchor=(1.08, 1))
    return fig


def frontier(ctx: ReportContext, observed: pd.DataFrame) -> tuple[Figure, dict[str, list[float]]]:
    """N_opt(C) and D_opt(C) with 50/90% bands beyond the data, and literature lines.

    Returns the figure and the plotted grid (compute and the five quantiles of each) for the JSON.
    """
    c_obs = ctx.runs.loc[ctx.in_group, "flops"].to_numpy(float)
    grid = ctx.compute_grid
    q = ctx.frontier(grid)
    anchor = float(c_obs.max())
    at_anchor = ctx.frontier(np.array([anchor]))
    refs = ctx.reference_optimum()
    classic = ctx.classic_frontiers
    fig, axes = _figure(10.0, 4.2, ncols=2)
    slopes = {"params_opt": (0.73, 0.5), "tokens_opt": (0.27, 0.5)}
    for ax, name, ylabel, column in ((axes[0], "params_opt", "N_opt (parameters)", "params"),
                                     (axes[1], "tokens_opt", "D_opt (tokens)", "tokens")):
        ax.axvspan(c_obs.min(), c_obs.max(), color=OBSERVED_SPAN, lw=0, label="observed compute range")
        _bands(ax, grid, q[name], label="posterior: median, 50% / 90%", zorder=3)
        y0 = float(at_anchor[name][2, 0])
        for (label, colour, ls), slope in zip(RULES, slopes[name], strict=True):
            ax.plot(grid, y0 * (grid / anchor) ** slope, color=colour, ls=ls, lw=1.6, label=label)
        for (label, optimum), colour in zip(refs.items(), LITERATURE, strict=False):
            ax.plot(grid, optimum[name], color=colour, ls="-.", lw=1.2, label=f"{label} (point fit)")
        for (label, line), dash in zip(classic.items(), CLASSIC_STYLES, strict=False):
            ax.plot(line["compute"], line[name], color=CLASSIC, ls=dash, lw=1.1, label=f"{label} on these runs")
        ax.plot(observed["flops"], observed[column], "o", color=DATA, ms=5, label="best run of each IsoFLOP budget")
        _log_axis(ax, "x", "flops")
        _log_axis(ax, "y", "count")
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel(ylabel)
    axes[0].set_title("Compute-optimal model size")
    axes[1].set_title("Compute-optimal training tokens")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    data = {"compute": grid.tolist(),
            **{f"{label} {name}": line[name].tolist() for label, line in classic.items()
               for name in ("params_opt", "tokens_opt")},
            **{f"{name}_q{int(p * 100):02d}": q[name][i].tolist()
               for name in ("params_opt", "tokens_opt") for i, p in enumerate((0.05, 0.25, 0.5, 0.75, 0.95))}}
    return fig, data


def _is_log(values: np.ndarray) -> bool:
    return bool(np.all(values > 0) and values.max() / values.min() > 10)


def marginals(ctx: ReportContext, names: Sequence[str]) -> Figure:
    """Histogram of each parameter's posterior, literature values as vertical lines."""
    draws = ctx.draws(names)
    refs = ctx.reference_thetas()
    fig, axes = _figure(2.3 * len(names), 2.6, ncols=len(names))
    for ax, name in zip(axes, names, strict=True):
        d = draws[name]
        log = _is_log(d)
        bins = np.geomspace(d.min(), d.max(), 40) if log else 40
        ax.hist(d, bins=bins, color=POSTERIOR, alpha=0.6, density=True)
        for (label, theta), colour in zip(refs.items(), LITERATURE, strict=False):
            if name in theta:
                ax.axvline(theta[name], color=colour, ls="--", lw=1.4, label=label)
        if log:
            _log_axis(ax, "x", "plain")
        ax.set_xlabel(name)
        ax.set_yticks([])
        ax.grid(False)
    axes[0].set_ylabel("posterior density")
    handles: list[Artist] = [Patch(color=POSTERIOR, alpha=0.6, label="posterior draws")]
    handles += [Line2D([], [], color=c, ls="--", label=lab) for lab, c in zip(refs, LITERATURE, strict=False)]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return fig


def pairs(ctx: ReportContext, pairs_: Sequence[tuple[str, str]]) -> tuple[Figure, dict[str, float]]:
    """Scatter of correlated pairs (e.g. A–alpha, B–beta); returns correlations of (log x, y)."""
    draws = ctx.draws(sorted({n for p in pairs_ for n in p}))
    refs = ctx.reference_thetas()
    fig, axes = _figure(4.6 * len(pairs_), 3.6, ncols=len(pairs_))
    corr = {}
    for ax, (x, y) in zip(axes, pairs_, strict=True):
        log = _is_log(draws[x])
        xs = np.log(draws[x]) if log else draws[x]
        corr[f"{x}-{y}"] = float(np.corrcoef(xs, draws[y])[0, 1])
        ax.plot(draws[x], draws[y], ".", ms=2, color=POSTERIOR, alpha=0.3, label="posterior draws")
        for (label, theta), colour in zip(refs.items(), LITERATURE, strict=False):
            ax.plot(theta[x], theta[y], "*", ms=13, color=colour, mec="white", label=label)
        if log:
            _log_axis(ax, "x", "plain")
        ax.set_xlabel(x + (" (log axis)" if log else ""))
        ax.set_ylabel(y)
        ax.set_title(f"{x} vs {y}: correlation {corr[f'{x}-{y}']:+.3f}" + (f" (log {x})" if log else ""))
        ax.legend(loc="best")
    return fig, corr


def calibration(ctx: ReportContext) -> Figure:
    """LOO-PIT histogram against uniform (with a 90% band) and PSIS k̂ of every run."""
    loo = ctx.loo
    fig, axes = _figure(10.0, 3.4, ncols=2)
    ax = axes[0]
    n, nbins = loo.pit.size, 10
    lo, hi = stats.binom.ppf([0.05, 0.95], n, 1 / nbins) * nbins / n
    ax.axhspan(lo, hi, color=POSTERIOR, alpha=0.12, lw=0, label="90% range if calibrated")
    ax.hist(loo.pit, bins=np.linspace(0, 1, nbins + 1), density=True, color=DATA, alpha=0.75, label="LOO-PIT of runs")
    ax.axhline(1.0, color=POSTERIOR, lw=1.2, label="uniform")
    ax.set_xlabel("LOO-PIT (probability of a loss ≤ the observed one)")
    ax.set_ylabel("density")
    ax.set_title("LOO-PIT: flat means calibrated; U-shape: intervals too narrow")
    counts = np.histogram(loo.pit, bins=nbins, range=(0, 1))[0] * nbins / n
    ax.set_ylim(0, max(counts.max(), hi) * 1.1)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3)
    ax = axes[1]
    params = ctx.runs["params"].to_numpy()
    bad = loo.pareto_k > loo.good_k
    ax.plot(params[~bad], loo.pareto_k[~bad], "o", ms=4, color=DATA, label="run")
    ax.plot(params[bad], loo.pareto_k[bad], "o", ms=6, color=FLAG, label="influential run")
    ax.axhline(loo.good_k, color=FLAG, ls="--", lw=1.2, label=f"k̂ = {loo.good_k:.2f}")
    _log_axis(ax, "x", "count")
    ax.set_xlabel("model size N (parameters)")
    ax.set_ylabel("PSIS k̂")
    ax.set_title("Influence of each run (PSIS-LOO k̂)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3)
    return fig


def traces(ctx: ReportContext, names: Sequence[str]) -> Figure:
    """Trace of each parameter, one line per chain (well mixed chains overlap)."""
    post = ctx.fit.posterior
    fig, axes = _figure(2.3 * len(names), 2.2, ncols=len(names))
    colours = ("#2166ac", "#67a9cf", "#1b7837", "#7fbf7b", "#762a83", "#c2a5cf")
    for ax, name in zip(axes, names, strict=True):
        variable = post[name].sel(group=ctx.group) if "group" in post[name].dims else post[name]
        values = np.asarray(variable.transpose("chain", "draw"))
        for chain, colour in zip(values, colours * 4, strict=False):
            ax.plot(chain, lw=0.5, color=colour, alpha=0.8)
        if _is_log(values.ravel()):
            _log_axis(ax, "y", "plain")
        ax.set_title(name)
        ax.set_xlabel("draw")
    return fig


def _count(value: float) -> str:
    return format_quantity(float(value), digits=3)
