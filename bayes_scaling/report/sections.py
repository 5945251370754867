"""The report's sections, in order: each a function ``ReportContext -> Section``.

To add a section (e.g. a decision analysis), write one more such function and pass it
to :func:`bayes_scaling.report.write_report` via ``extra_sections`` (or splice it into
:data:`DEFAULT_SECTIONS` and pass ``sections=``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..allocation import QUANTITIES
from ..diagnostics import ESS_MIN, RHAT_MAX
from ..units import format_quantity
from . import figures
from .content import ReportContext, isoflop_groups
from .html import Raw, Section, details, escape, figure, markdown_table, table

if TYPE_CHECKING:
    import pandas as pd

SectionFn = Callable[[ReportContext], Section]
#: Literature exponents of N_opt ∝ C^a and D_opt ∝ C^b: (label, a, b).
LITERATURE_SLOPES = (("Kaplan et al. 2020", 0.73, 0.27), ("Chinchilla rule (Hoffmann et al. 2022)", 0.5, 0.5))


def flops(value: float) -> str:
    """A compute budget as ``5.76e23`` (FLOPs)."""
    return f"{value:.3g}".replace("e+", "e")


def interval(median: float, lo: float, hi: float, kind: str = "count") -> str:
    """``67B [52B, 88B]`` for counts, ``20.1 [15.3, 26.0]`` for ratios, 4 decimals for loss."""
    if kind == "count":
        return f"{format_quantity(median)} [{format_quantity(lo)}, {format_quantity(hi)}]"
    fmt = ".4f" if kind == "loss" else ".3g"
    return f"{median:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _row_interval(row: pd.Series, name: str, kind: str = "count") -> str:
    return interval(row[name], row[f"{name}_lo"], row[f"{name}_hi"], kind)


def _no_optimum(ctx: ReportContext, key: str, title: str) -> Section | None:
    """The section of a law without a compute-optimal allocation: why there is none; ``None`` for other laws."""
    law = ctx.fit.card.law
    if not law.no_optimum:
        return None
    text = f"Law {law.name!r} has no compute-optimal allocation: {law.no_optimum}."
    return Section(key, title, f"<p>{escape(text)}</p>", {"no_optimum": law.no_optimum}, text)


def headline(ctx: ReportContext) -> Section:
    """Recommended N, D, tokens/param and loss at each budget, with credible intervals."""
    if (refused := _no_optimum(ctx, "headline", "Recommended allocation")) is not None:
        return refused
    alloc, c_max = ctx.allocation, float(ctx.runs["flops"].max())
    headers = ["compute C (FLOPs)", "parameters N", "tokens D", "tokens / parameter", "loss (nats/token)",
               "beyond largest run"]
    rows, data = [], []
    for _, r in alloc.iterrows():
        beyond = float(r["compute"]) / c_max
        rows.append([flops(r["compute"]), _row_interval(r, "params_opt"), _row_interval(r, "tokens_opt"),
                     _row_interval(r, "tokens_per_param", "ratio"), _row_interval(r, "loss_opt", "loss"),
                     "within data" if beyond <= 1 else f"×{beyond:.3g}"])
        data.append({"compute": r["compute"], "beyond_largest_run": beyond,
                     **{q: {"median": r[q], "lo": r[f"{q}_lo"], "hi": r[f"{q}_hi"]} for q in QUANTITIES}})
    n_draws = ctx.fit.posterior.sizes["chain"] * ctx.fit.posterior.sizes["draw"]
    note = (f"Median [{ctx.level:.0%} credible interval] over {n_draws:,} posterior draws, for C = 6·N·D. "
            f"Law {escape(ctx.fit.card.law.formula)}; model card <code>{escape(ctx.fit.card.name)}</code>, "
            f"method {escape(ctx.fit.method)}. Loss is the law's expected loss at the optimum.")
    info = ctx.fit.extra.get("discrepancy")
    if info:
        how = {"leave-future-out": "learnt from the runs by leave-future-out splits",
               "misfit": "learnt from the law's misfit to the runs",
               "misfit + leave-future-out": "learnt from the law's misfit to the runs and leave-future-out splits",
               }.get(str(info.get("tau_source")), "from the card's prior")
        directions = ctx.fit.card.discrepancy.directions if ctx.fit.card.discrepancy else ("compute",)
        spoken = {"compute": "compute", "params": "model size", "tokens": "tokens"}
        counted = " or ".join(spoken[d] for d in directions)
        note += (f" Beyond the fitted runs the loss carries the card's model discrepancy: s·√d in log loss, "
                 f"d the e-folds beyond the largest run in {counted} (the furthest), s ~ Normal(0, tau²), tau {how} "
                 f"(posterior mean {info['tau_mean']:.4f}, 90% quantile {info['tau_q90']:.4f}).")
        misfit = info.get("misfit") or {}
        if "amplitude_mle" in misfit:
            within = (f" within {misfit['window']:g} e-folds of compute of the largest" if "window" in misfit
                      else "")
            note += (f" The law's smooth misfit to the {misfit['n_runs']:,} runs{within} has amplitude "
                     f"{misfit['amplitude_mle']:.2%} of the loss (most likely value; 0 when the law fits them to "
                     "noise level).")
    if ctx.average is not None:
        weights = ", ".join(f"<code>{escape(k)}</code> {w:.2f}" for k, w in ctx.average.weights.items())
        note = (f"Median [{ctx.level:.0%} credible interval] of the stacking mixture of cards {weights} "
                "(each card's share of its posterior draws, its own law and discrepancy), for C = 6·N·D. "
                "Loss is the expected loss at the optimum.")
    body = table(headers, rows, cls="headline") + f'<p class="note">{note}</p>'
    md = markdown_table(headers, rows) + f"\n\nMedian [{ctx.level:.0%} credible interval], C = 6·N·D."
    return Section("headline", "Recommended allocation", body,
                   {"level": ctx.level, "budgets": ctx.budgets, "rows": data}, md)


def _range(values: pd.Series) -> str:
    return f"{format_quantity(float(values.min()))} – {format_quantity(float(values.max()))}"


def data(ctx: ReportContext) -> Section:
    """The runs: count and ranges of N, D, C and loss; the run table, collapsed."""
    runs, pred = ctx.runs, ctx.predictive
    groups = isoflop_groups(runs)
    facts = [["runs", f"{len(runs)}"],
             ["model sizes N (parameters)", f"{_range(runs['params'])} ({runs['params'].nunique()} distinct)"],
             ["training tokens D", _range(runs["tokens"])],
             ["compute C (FLOPs)", f"{flops(runs['flops'].min())} – {flops(runs['flops'].max())}"],
             ["loss (nats/token)", f"{runs['loss'].min():.3f} – {runs['loss'].max():.3f}"],
             ["IsoFLOP budgets (≥ 3 runs each)", str(len(groups))],
             ["source", str(ctx.fit.attrs.get("runs_source", "")) or "unknown"]]
    rows = [[r["name"], format_quantity(r["params"], 3), format_quantity(r["tokens"], 3), flops(r["flops"]),
             f"{r['loss']:.4f}", interval(r["pred_median"], r["pred_lo"], r["pred_hi"], "loss")]
            for _, r in pred.iterrows()]
    run_table = table(["run", "N (parameters)", "D (tokens)", "C (FLOPs)", "loss (nats/token)",
                       f"{ctx.level:.0%} predictive interval"], rows,
                      row_classes=["flag" if o else "" for o in pred["outside"]])
    body = table(["", ""], facts, cls="kv") + details(f"All {len(runs)} runs", f'<div class="scroll">{run_table}</div>')
    return Section("data", "Data", body, {
        "runs": len(runs), "isoflop_budgets": [c for c, _ in groups],
        "range": {c: [float(runs[c].min()), float(runs[c].max())] for c in ("params", "tokens", "flops", "loss")}})


def posterior_predictive(ctx: ReportContext) -> Section:
    """Observed loss against predictive intervals, by model size and along IsoFLOP budgets."""
    pred, groups = ctx.predictive, ctx.groups
    pct = f"{ctx.level:.0%}"
    body = figure(figures.ppc_by_size(ctx, pct), "Loss vs tokens by model size with predictive intervals",
                  "Each vertical bar is a run's posterior-predictive interval (law plus run-to-run noise); "
                  "the dot is what the run observed.")
    minima = []
    if groups:
        body += figure(figures.isoflop_valleys(ctx, groups), "IsoFLOP valleys: loss vs model size per budget",
                       "Each valley is one compute budget. Diamonds: the fitted compute-optimal N with its 90% "
                       "credible interval.")
        if ctx.curves_available:
            q = ctx.frontier(np.array([c for c, _ in groups]))["params_opt"]
            minima = [{"compute": c, "params_opt_q05": q[0, k], "params_opt_median": q[2, k],
                       "params_opt_q95": q[4, k]} for k, (c, _) in enumerate(groups)]
    outside = pred[pred["outside"]]
    n, k = len(pred), len(outside)
    summary = (f"{k} of {n} runs ({k / n:.0%}) fall outside their {pct} posterior-predictive interval "
               f"(about {1 - ctx.level:.0%} expected when the model fits).")
    body += f"<p>{escape(summary)}</p>"
    if k:
        body += table(["run", "N (parameters)", "D (tokens)", "observed loss", f"{pct} predictive interval"],
                      [[r["name"], format_quantity(r["params"], 3), format_quantity(r["tokens"], 3),
                        f"{r['loss']:.4f}", interval(r["pred_median"], r["pred_lo"], r["pred_hi"], "loss")]
                       for _, r in outside.iterrows()])
    data_ = {"level": ctx.level, "runs": n, "outside": [
        {"name": r["name"], "params": r["params"], "tokens": r["tokens"], "loss": r["loss"],
         "lo": r["pred_lo"], "hi": r["pred_hi"]} for _, r in outside.iterrows()], "isoflop_minima": minima}
    return Section("posterior-predictive", "Posterior predictive check", body, data_, summary)


def frontier(ctx: ReportContext) -> Section:
    """N_opt(C) and D_opt(C) with bands, beyond the data, against the literature."""
    if (refused := _no_optimum(ctx, "frontier", "Compute-optimal frontier")) is not None:
        return refused
    observed = ctx.runs.loc[[g["loss"].idxmin() for _, g in ctx.groups]]
    fig, grid = figures.frontier(ctx, observed)
    c1 = float(ctx.runs.loc[ctx.in_group, "flops"].max())
    draws = ctx.optimum_draws(np.array([c1, 100 * c1]))
    slopes = {q: np.log(draws[q][:, 1] / draws[q][:, 0]) / np.log(100.0) for q in ("params_opt", "tokens_opt")}
    lo, hi = ctx.tail
    exps: dict[str, tuple[float, float, float]] = {}
    for q, slope in slopes.items():
        median, low, high = np.quantile(slope, [0.5, lo, hi])
        exps[q] = (float(median), float(low), float(high))
    rows = [[label, interval(*exps[q], kind="ratio"), *[f"{s[i]:.2f}" for s in LITERATURE_SLOPES]]
            for label, q, i in (("N_opt ∝ C^a: a", "params_opt", 1), ("D_opt ∝ C^b: b", "tokens_opt", 2))]
    body = figure(fig, "Compute-optimal N and D against compute, with literature lines",
                  "Grey: the compute range of the data; everything right of it is extrapolation. Bands: 50% and "
                  "90% credible intervals of the posterior. The Kaplan and Hoffmann power laws pass through the "
                  "posterior median at the largest run: only their slopes come from the papers. Dash-dot: the "
                  "optimum of the model card's literature point fits. Grey: Chinchilla's approaches 1-3 fitted to "
                  "these runs (point estimates; see bayes_scaling.approaches for their bootstrap intervals).")
    body += table(["exponent (between the largest run and 100× beyond)", f"posterior [{ctx.level:.0%}]",
                   *[s[0] for s in LITERATURE_SLOPES]], rows)
    return Section("frontier", "Compute-optimal frontier", body,
                   {"exponents": {q: dict(zip(("median", "lo", "hi"), v, strict=True)) for q, v in exps.items()},
                    "grid": grid})


def parameters(ctx: ReportContext) -> Section:
    """Marginal posteriors, the correlated pairs, and literature values."""
    summary, names, refs = ctx.fit.summary(ctx.level), list(ctx.fit.card.law.parameters), ctx.reference_thetas()
    rows = [[p, f"{r['median']:.4g}", f"[{r['lo']:.4g}, {r['hi']:.4g}]",
             *[f"{t[p]:.4g}" if p in t else "" for t in refs.values()]] for p, r in summary.iterrows()]
    body = table(["parameter", "median", f"{ctx.level:.0%} interval", *refs], rows)
    body += figure(figures.marginals(ctx, names), "Marginal posterior of each law parameter",
                   "Dashed lines: literature point estimates from the model card.")
    pairs = [(x, y) for x, y in (("A", "alpha"), ("B", "beta")) if x in names and y in names]
    corr: dict[str, float] = {}
    if pairs:
        fig, corr = figures.pairs(ctx, pairs)
        body += figure(fig, "Joint posterior of the scale and exponent of each term",
                       "Scale and exponent trade off along a ridge: each is uncertain alone, their combination "
                       "much less. Stars: literature fits.")
    return Section("parameters", "Parameters", body, {
        "summary": {p: {k: r[k] for k in ("median", "lo", "hi", "mean", "sd")} for p, r in summary.iterrows()},
        "references": refs, "correlations": corr})


def calibration(ctx: ReportContext) -> Section:
    """LOO-PIT and the PSIS k̂ of each run; influential runs flagged."""
    loo, names = ctx.loo, ctx.runs["name"].tolist()
    bad = np.flatnonzero(loo.pareto_k > loo.good_k)
    summary = (f"{len(bad)} influential run(s) (PSIS k̂ > {loo.good_k:.2f}); ELPD-LOO {loo.elpd:.1f} ± {loo.se:.1f} "
               f"(log loss), effective parameters {loo.p_loo:.1f}.")
    body = figure(figures.calibration(ctx), "LOO-PIT histogram and PSIS k-hat per run",
                  "Left: leave-one-out probability integral transform, uniform when calibrated. Right: runs "
                  "with a high k̂ drive the fit; their leave-one-out estimate is unreliable.")
    body += f"<p>{escape(summary)}</p>"
    if len(bad):
        body += table(["influential run", "N (parameters)", "D (tokens)", "k̂"],
                      [[names[i], format_quantity(ctx.runs["params"].iloc[i], 3),
                        format_quantity(ctx.runs["tokens"].iloc[i], 3), f"{loo.pareto_k[i]:.2f}"] for i in bad])
    for w in loo.warnings:
        body += f'<p class="note">ArviZ: {escape(w)}</p>'
    return Section("calibration", "Calibration", body, {
        "good_k": loo.good_k, "elpd_loo": loo.elpd, "se": loo.se, "p_loo": loo.p_loo,
        "influential": [names[i] for i in bad], "pareto_k": dict(zip(names, loo.pareto_k, strict=True)),
        "loo_pit": dict(zip(names, loo.pit, strict=True)), "warnings": loo.warnings}, summary)


def diagnostics(ctx: ReportContext) -> Section:
    """R-hat, ESS, divergences and tree depth: the same gate as ``bayes-scaling summary``."""
    diag, summary = ctx.diagnostics, ctx.fit.summary(ctx.level)

    def mark(ok: bool, text: str) -> Raw:
        return Raw(escape(text) if ok else f'<span class="fail">{escape(text)}</span>')

    def stat(value: float, spec: str) -> str:  # a dash where R-hat/ESS do not apply (bootstrap, constant draws)
        return f"{value:{spec}}" if value == value else "—"

    rows = [[p, mark(not r["r_hat"] >= RHAT_MAX, stat(r["r_hat"], ".3f")),
             mark(not r["ess_bulk"] < ESS_MIN, stat(r["ess_bulk"], ".0f")), stat(r["ess_tail"], ".0f")]
            for p, r in summary.iterrows()]
    post = ctx.fit.posterior
    status = ('<p><span class="ok">all checks passed</span></p>' if not diag.has_errors else
              "<ul>" + "".join(f'<li class="fail">{escape(m)}</li>' for m in diag.messages) + "</ul>")
    facts = [["chains × draws", f"{post.sizes['chain']} × {post.sizes['draw']}"],
             ["divergent transitions", mark(diag.divergences == 0, str(diag.divergences))],
             ["draws at maximum tree depth", mark(diag.max_tree_depth_hits == 0, str(diag.max_tree_depth_hits))]]
    if "sample_stats" not in ctx.fit.tree.children:
        facts.append(["sampler statistics", f"none ({ctx.fit.method}: not a Markov chain)"])
    facts.append(["criteria", diag.criteria])
    if ctx.fit.method == "huber":
        facts.append(["converged bootstrap refits", f"{diag.converged_share:.0%}"])
    body = status + table(["", ""], facts, cls="kv")
    body += table(["parameter", f"R-hat (< {RHAT_MAX})", f"ESS bulk (≥ {ESS_MIN})", "ESS tail"], rows)
    body += figure(figures.traces(ctx, ctx.fit.parameters), "Trace of each parameter by chain",
                   "Chains that overlap like noise have mixed; a chain apart from the others is stuck in another mode.")
    text = ("Diagnostics: all checks passed." if not diag.has_errors
            else "Diagnostics FAILED: " + "; ".join(diag.messages))
    return Section("diagnostics", "Diagnostics", body, {
        "ok": not diag.has_errors, "messages": diag.messages, "max_rhat": diag.max_rhat,
        "min_ess_bulk": diag.min_ess_bulk, "min_ess_tail": diag.min_ess_tail, "divergences": diag.divergences,
        "max_tree_depth_hits": diag.max_tree_depth_hits, "rhat_max": RHAT_MAX, "ess_min": ESS_MIN,
        "criteria": diag.criteria, "converged_share": diag.converged_share}, text)


def provenance(ctx: ReportContext) -> Section:
    """Data hash, model card, seed, package versions and the fit's time."""
    attrs = ctx.fit.attrs
    versions = json.loads(str(attrs.get("versions", "{}")))
    facts = {"data file": str(attrs.get("runs_source", "")), "data SHA-256": str(attrs.get("runs_sha256", "")),
             "model card": f"{ctx.fit.card.name} ({attrs.get('card_source', '')})", "method": ctx.fit.method,
             "seed": str(ctx.fit.seed), "fit time": f"{ctx.fit.elapsed_s:.1f} s",
             "fit created (UTC)": str(attrs.get("created_utc", ""))}
    body = table(["", ""], [[k, v or "unknown"] for k, v in facts.items()], cls="kv")
    body += details("Package versions of the fit", table(["package", "version"], list(versions.items())))
    body += details(f"Model card {ctx.fit.card.name}", f"<pre>{escape(ctx.fit.card.text)}</pre>")
    return Section("provenance", "Provenance", body, {**facts, "versions": versions, "card_text": ctx.fit.card.text})


DEFAULT_SECTIONS: tuple[SectionFn, ...] = (headline, data, posterior_predictive, frontier, parameters, calibration,
                                           diagnostics, provenance)
