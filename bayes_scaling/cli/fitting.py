"""CLI verbs that make and inspect fits: simulate, fit, summary, cards, replicates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._shared import (
    ChainsOpt,
    ColumnOpt,
    DrawsOpt,
    FormatOpt,
    LevelOpt,
    ParamCountOpt,
    RunsArg,
    TargetAcceptOpt,
    WarmupOpt,
    _check_format,
    _columns,
    _json,
    _print_table,
    _report_diagnostics,
    app,
    err,
    say,
    warn,
)
from .checks import check_covariates, check_fit_output, check_positive, check_sampler, check_seed, check_task


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Where to write the run table (.csv, .tsv or .parquet).")],
    seed: Annotated[int, typer.Option(help="Seed of the noise on log loss.")] = 0,
    noise: Annotated[float, typer.Option(help="Standard deviation of the noise on log loss (0.01 = 1%).")] = 0.01,
) -> None:
    """Write example runs: an IsoFLOP grid (6e18 to 3e21 FLOPs) from a known Chinchilla law."""
    from ..simulate import EXAMPLE_TRUTH, check_runs_output, simulate_runs, write_runs

    check_seed(seed)
    check_positive(noise, "--noise", allow_zero=True)
    check_runs_output(out)
    runs = simulate_runs(seed, noise=noise)
    write_runs(runs, out)
    truth = ", ".join(f"{k}={v:g}" for k, v in EXAMPLE_TRUTH.items())
    say(f"wrote {len(runs)} runs to {out} (truth: {truth}; noise {noise:g} on log loss)")


@app.command("fit")
def fit_cmd(
    runs: RunsArg,
    out: Annotated[Path, typer.Option(help="Where to save the fit (NetCDF, e.g. fit.nc); an existing file is "
                                           "replaced only if it is a bayes-scaling fit.")],
    card: Annotated[str, typer.Option(help="Model card: a bundled name (chinchilla) or a .toml path.")] = "chinchilla",
    method: Annotated[str, typer.Option(help="nuts (Bayesian posterior) or huber (approach 3 + bootstrap).")] = "nuts",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical draws.")] = 0,
    chains: ChainsOpt = 4,
    warmup: WarmupOpt = 1000,
    draws: DrawsOpt = 1000,
    target_accept: TargetAcceptOpt = 0.9,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for --method huber.")] = 1000,
    param_count: ParamCountOpt = "total",
    column: ColumnOpt = None,
    metric: Annotated[str | None, typer.Option(
        help="Task cards: the accuracy column to predict (e.g. hellaswag_acc).")] = None,
    via: Annotated[str | None, typer.Option(
        help="Task cards: the intermediate metric column (e.g. hellaswag_bpb); task-chain-c4 uses c4_loss.")] = None,
    chance: Annotated[float | None, typer.Option(
        help="Task cards: chance accuracy (1 / choices), centre of the floor; known benchmarks have one.")] = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar while sampling (default: when stderr is a terminal).")] = None,
    strict: Annotated[
        bool, typer.Option(help="Exit with status 1 when diagnostics fail (R-hat, ESS, divergences).")
    ] = False,
) -> None:
    """Fit a law to a run table and save the posterior (NetCDF)."""
    from ..cards import load_card
    from ..data import load_runs

    # Everything that can be wrong is checked before sampling: options, output, table, card.
    check_sampler(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept, seed=seed, method=method,
                  bootstrap=bootstrap, param_count=param_count)
    columns = _columns(column)
    check_fit_output(out, [runs, Path(card)])
    task = metric is not None or via is not None or chance is not None
    table = load_runs(runs, columns, require_loss=not task)
    model = load_card(card)
    check_covariates(table, [model], param_count)
    check_task(table, model, metric=metric, via=via, chance=chance)
    from ..inference import fit

    show = sys.stderr.isatty() if progress is None else progress
    say(f"fitting {len(table)} runs from {runs} with card {card!r}, method {method}"
        + (f", accuracy {metric} via {via or 'the card'}" if task else ""))
    result = fit(table, model, method=method, chains=chains, warmup=warmup, draws=draws, seed=seed,
                 target_accept=target_accept, bootstrap=bootstrap, progress=show, param_count=param_count,
                 metric=metric, via=via, chance=chance)
    result.save(out)
    say(f"saved {result!r} to {out} ({result.elapsed_s:.1f} s)")
    _report_diagnostics(result.diagnostics(), strict)


@app.command()
def summary(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    level: LevelOpt = 0.9,
    fmt: FormatOpt = "table",
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when diagnostics fail.")] = False,
) -> None:
    """Posterior of each parameter (median and interval) and the diagnostics, judged by the fit's method.

    NUTS fits by R-hat, bulk ESS, divergences and tree depth; bootstrap (huber) fits by the
    share of their refits that converged (R-hat and ESS do not apply to bootstrap draws).
    """
    from ..diagnostics import judge, summary_table
    from ..fitfile import read_fit
    from ..tables import check_level

    _check_format(fmt)
    check_level(level)
    result = read_fit(fit_file)
    # ESS and R-hat were stored when the fit was saved; a fit saved before they were needs ArviZ.
    stats = result.convergence
    if stats is None:
        from ..fitted import Fit

        stats = Fit.load(fit_file).convergence()
    table = summary_table(result, stats, level)
    diag = judge(result, stats)
    if fmt == "json":
        _json({"parameters": {r["parameter"]: {k: r[k] for k in ("median", "lo", "hi", "r_hat", "ess_bulk", "ess_tail")}
                              for r in table.rows()},
               "divergences": diag.divergences, "max_rhat": diag.max_rhat, "min_ess_bulk": diag.min_ess_bulk,
               "ok": not diag.has_errors, "messages": diag.messages, "level": level,
               "card": result.card.name, "method": result.method, "criteria": diag.criteria,
               **({"converged_share": diag.converged_share} if result.method == "huber" else {})})
    elif fmt == "csv":
        sys.stdout.write(table.to_csv())
    else:
        pct = f"{level:.0%}"
        rows = [[r["parameter"], f"{r['median']:.4g}", f"[{r['lo']:.4g}, {r['hi']:.4g}]", _stat(r["r_hat"], ".3f"),
                 _stat(r["ess_bulk"], ".0f")] for r in table.rows()]
        _print_table(f"{result.card.name} ({result.method}): {result.card.law.formula}",
                     ["parameter", "median", f"{pct} interval", "R-hat", "ESS bulk"], rows)
        status = "[green]ok[/green]" if not diag.has_errors else "[red]FAILED[/red]"
        if result.method == "huber":
            share = "not recorded" if diag.converged_share != diag.converged_share else f"{diag.converged_share:.0%}"
            facts = f"{share} of {next(iter(result.posterior.values())).size} bootstrap refits converged"
        else:
            facts = (f"max R-hat {diag.max_rhat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
                     f"{diag.divergences} divergences")
        err.print(f"diagnostics {status}: {escape(facts)} ({escape(diag.criteria)})", highlight=False,
                  soft_wrap=True)
    _report_diagnostics(diag, strict)


@app.command("import-logs")
def import_logs(
    folder: Annotated[Path, typer.Argument(help="Folder of per-run evaluation logs, one CSV per run.")],
    sizes: Annotated[Path, typer.Option(
        help="Model sizes: TOML (NAME = PARAMS; a name may be a prefix of runs up to - or _) or CSV (name, params).")],
    out: Annotated[Path, typer.Option(help="Where to write the run table (.csv or .parquet); an existing file is "
                                           "replaced only if import-logs wrote it.")],
    every: Annotated[bool, typer.Option(
        "--every/--final", help="Every evaluation (learning curves) or each run's final one.")] = False,
    batch_size: Annotated[float | None, typer.Option(
        help="Tokens per step, for logs with neither a tokens nor a batch-size column.")] = None,
    loss: Annotated[str | None, typer.Option(
        help="Metric column (clean name, e.g. c4_loss) to copy into loss, the column loss laws fit.")] = None,
) -> None:
    """Build a run table from training logs: params from --sizes, tokens, and every metric column kept."""
    from ..training_logs import check_table_output, read_logs, write_table

    check_table_output(out, [folder, sizes])
    table = read_logs(folder, sizes, every=every, batch_size=batch_size, loss=loss)
    write_table(table, out)
    metrics = [c for c in table.columns if c not in ("name", "params", "tokens", "loss", "step")]
    say(f"wrote {len(table)} rows of {table['name'].nunique()} runs to {out} with {len(metrics)} metric "
        f"columns ({', '.join(metrics[:6])}{', ...' if len(metrics) > 6 else ''})")


def _stat(value: float, spec: str) -> str:
    """R-hat or ESS for the table; a dash where it does not apply (bootstrap or constant draws, one chain)."""
    return f"{value:{spec}}" if value == value else "—"


@app.command()
def cards(fmt: FormatOpt = "table") -> None:
    """List the bundled model cards and the laws they use."""
    from ..cards import available_cards, load_card

    _check_format(fmt)
    rows = []
    for name in available_cards():
        card = load_card(name)
        rows.append({"card": name, "law": card.law.name, "formula": card.law.formula,
                     "description": card.description})
    if fmt == "json":
        _json(rows)
    elif fmt == "csv":
        import numpy as np

        from ..tables import Table

        sys.stdout.write(Table({k: np.array([r[k] for r in rows], dtype=object)
                                for k in ("card", "law", "formula")}).to_csv())
    else:
        _print_table("Bundled model cards", ["card", "law", "formula"],
                     [[r["card"], r["law"], r["formula"]] for r in rows])


@app.command()
def replicates(
    runs: RunsArg,
    card: Annotated[str, typer.Option(help="Unpooled card of a law in params and tokens: its priors.")] = "chinchilla",
    seed: Annotated[int, typer.Option(help="Random seed of the sampler.")] = 0,
    chains: ChainsOpt = 2,
    warmup: WarmupOpt = 1000,
    draws: DrawsOpt = 1000,
    target_accept: TargetAcceptOpt = 0.9,
    level: LevelOpt = 0.9,
    column: ColumnOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Tell run-to-run (seed) noise from the law's misfit, using repeated runs of the same (N, D)."""
    from ..cards import load_card
    from ..data import load_runs
    from ..replicates import fit_replicates
    from .checks import check_open_interval

    _check_format(fmt)
    check_sampler(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept, seed=seed)
    check_open_interval(level, "--level")
    table = load_runs(runs, _columns(column))
    chosen = load_card(card)
    say(f"fitting the replicate model to {len(table)} runs from {runs} with card {card}")
    result = fit_replicates(table, chosen, chains=chains, warmup=warmup, draws=draws, seed=seed,
                            target_accept=target_accept)
    if result.divergences:
        warn(f"{result.divergences} divergent transition(s); raise --target-accept")
    summary = result.summary(level)
    check = result.rerun_check(level, seed=seed)
    if fmt == "json":
        _json({"level": level, "cells": len(result.cells), "replicated_cells": len(check),
               "summary": summary.reset_index().to_dict(orient="records"),
               "reruns": check.to_dict(orient="records")})
    elif fmt == "csv":
        sys.stdout.write(summary.to_csv())
    else:
        pct = f"{level:.0%}"
        _print_table(f"Noise on log loss: run-to-run (seeds) vs the law's misfit ({len(check)} of "
                     f"{len(result.cells)} (N, D) cells replicated; {pct} intervals)",
                     ["parameter", "median", "interval", "R-hat"],
                     [[name, f"{r['median']:.4g}", f"[{r['lo']:.4g}, {r['hi']:.4g}]", f"{r['r_hat']:.3f}"]
                      for name, r in summary.iterrows()])
        _print_table(f"Replicated cells: observed spread of log loss vs the model's {pct} interval",
                     ["params", "tokens", "runs", "spread", "predicted", "inside"],
                     [[f"{r['params']:.3g}", f"{r['tokens']:.3g}", str(r["n"]), f"{r['spread']:.4f}",
                       f"[{r['spread_pred_lo']:.4f}, {r['spread_pred_hi']:.4f}]", "yes" if r["covered"] else "NO"]
                      for r in check.to_dict(orient="records")])

