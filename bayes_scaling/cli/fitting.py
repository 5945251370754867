"""CLI verbs that make and inspect fits: simulate, fit, summary, cards."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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
    _write_table,
    app,
    err,
)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Where to write the run table (.csv or .parquet).")],
    seed: Annotated[int, typer.Option(help="Seed of the noise on log loss.")] = 0,
    noise: Annotated[float, typer.Option(help="Standard deviation of the noise on log loss (0.01 = 1%).")] = 0.01,
) -> None:
    """Write example runs: an IsoFLOP grid (6e18 to 3e21 FLOPs) from a known Chinchilla law."""
    from ..simulate import EXAMPLE_TRUTH, simulate_runs

    runs = simulate_runs(seed, noise=noise)
    _write_table(runs, out)
    truth = ", ".join(f"{k}={v:g}" for k, v in EXAMPLE_TRUTH.items())
    err.print(f"wrote {len(runs)} runs to {out} (truth: {truth}; noise {noise:g} on log loss)")


@app.command("fit")
def fit_cmd(
    runs: RunsArg,
    out: Annotated[Path, typer.Option(help="Where to save the fit (NetCDF, e.g. fit.nc).")],
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
    from ..data import load_runs
    from ..inference import fit

    task = metric is not None or via is not None or chance is not None
    table = load_runs(runs, _columns(column), require_loss=not task)
    show = sys.stderr.isatty() if progress is None else progress
    err.print(f"fitting {len(table)} runs from {runs} with card {card!r}, method {method}"
              + (f", accuracy {metric} via {via or 'the card'}" if task else ""))
    result = fit(table, card, method=method, chains=chains, warmup=warmup, draws=draws, seed=seed,
                 target_accept=target_accept, bootstrap=bootstrap, progress=show, param_count=param_count,
                 **({"metric": metric, "via": via, "chance": chance} if task else {}))
    result.save(out)
    err.print(f"saved {result!r} to {out} ({result.elapsed_s:.1f} s)")
    _report_diagnostics(result.diagnostics(), strict)


@app.command()
def summary(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    level: LevelOpt = 0.9,
    fmt: FormatOpt = "table",
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when diagnostics fail.")] = False,
) -> None:
    """Posterior of each parameter (median and interval) and the diagnostics."""
    from ..diagnostics import gate, gated_parameters, summary_table
    from ..fitfile import read_fit

    _check_format(fmt)
    result = read_fit(fit_file)
    # ESS and R-hat were stored when the fit was saved; a fit saved before they were needs ArviZ.
    stats = result.convergence
    if stats is None:
        from ..fitted import Fit

        stats = Fit.load(fit_file).convergence()
    table = summary_table(result, stats, level)
    diag = gate(stats, gated_parameters(result))
    if fmt == "json":
        _json({"parameters": {r["parameter"]: {k: r[k] for k in ("median", "lo", "hi", "r_hat", "ess_bulk", "ess_tail")}
                              for r in table.rows()},
               "divergences": diag.divergences, "max_rhat": diag.max_rhat, "min_ess_bulk": diag.min_ess_bulk,
               "ok": not diag.has_errors, "messages": diag.messages, "level": level,
               "card": result.card.name, "method": result.method})
    elif fmt == "csv":
        sys.stdout.write(table.to_csv())
    else:
        pct = f"{level:.0%}"
        rows = [[r["parameter"], f"{r['median']:.4g}", f"[{r['lo']:.4g}, {r['hi']:.4g}]", f"{r['r_hat']:.3f}",
                 f"{r['ess_bulk']:.0f}"] for r in table.rows()]
        _print_table(f"{result.card.name} ({result.method}): {result.card.law.formula}",
                     ["parameter", "median", f"{pct} interval", "R-hat", "ESS bulk"], rows)
        status = "[green]ok[/green]" if not diag.has_errors else "[red]FAILED[/red]"
        err.print(f"diagnostics {status}: max R-hat {diag.max_rhat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
                  f"{diag.divergences} divergences")
    _report_diagnostics(diag, strict)


@app.command("import-logs")
def import_logs(
    folder: Annotated[Path, typer.Argument(help="Folder of per-run evaluation logs, one CSV per run.")],
    sizes: Annotated[Path, typer.Option(
        help="Model sizes: TOML (NAME = PARAMS; a name may be a prefix of runs up to - or _) or CSV (name, params).")],
    out: Annotated[Path, typer.Option(help="Where to write the run table (.csv or .parquet).")],
    every: Annotated[bool, typer.Option(
        "--every/--final", help="Every evaluation (learning curves) or each run's final one.")] = False,
    batch_size: Annotated[float | None, typer.Option(
        help="Tokens per step, for logs with neither a tokens nor a batch-size column.")] = None,
    loss: Annotated[str | None, typer.Option(
        help="Metric column (clean name, e.g. c4_loss) to copy into loss, the column loss laws fit.")] = None,
) -> None:
    """Build a run table from training logs: params from --sizes, tokens, and every metric column kept."""
    from ..training_logs import read_logs

    table = read_logs(folder, sizes, every=every, batch_size=batch_size, loss=loss)
    _write_table(table, out)
    metrics = [c for c in table.columns if c not in ("name", "params", "tokens", "loss", "step")]
    err.print(f"wrote {len(table)} rows of {table['name'].nunique()} runs to {out} with {len(metrics)} metric "
              f"columns ({', '.join(metrics[:6])}{', ...' if len(metrics) > 6 else ''})")


@app.command()
def cards() -> None:
    """List the bundled model cards and the laws they use."""
    from ..cards import available_cards, load_card

    rows = []
    for name in available_cards():
        card = load_card(name)
        rows.append([name, card.law.name, card.law.formula])
    _print_table("Bundled model cards", ["card", "law", "formula"], rows)
