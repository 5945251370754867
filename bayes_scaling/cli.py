"""Command-line interface: thin verbs over the Python API.

Every command prints results on stdout (``--format table|json|csv``) and messages on
stderr. A user error prints one line ``error: ...`` and exits with status 2.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from .errors import BayesScalingError, InputError
from .units import format_quantity

app = typer.Typer(
    name="bayes-scaling",
    help=(
        "Bayesian neural scaling laws. Fit L(N, D) to a table of training runs "
        "(N parameters, D tokens, loss in nats/token), sample its posterior with NUTS, "
        "and get compute-optimal allocations with credible intervals. "
        "Typical use: simulate (or bring a CSV) -> fit -> summary -> allocate / predict."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)
FORMATS = ("table", "json", "csv")

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output: table (for people), json or csv (for machines).")]
LevelOpt = Annotated[float, typer.Option(help="Credible level of the intervals, in (0, 1).")]


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)} but got {fmt!r}")
    return fmt


def _columns(mapping: list[str] | None) -> dict[str, str]:
    out = {}
    for item in mapping or []:
        canon, sep, source = item.partition("=")
        if not sep or not canon.strip() or not source.strip():
            raise InputError(f"--column wants CANONICAL=SOURCE (e.g. params='Model Size') but got {item!r}")
        out[canon.strip()] = source.strip()
    return out


def _interval(row: pd.Series, name: str) -> dict[str, float]:
    return {"median": float(row[name]), "lo": float(row[f"{name}_lo"]), "hi": float(row[f"{name}_hi"])}


def _fmt_interval(row: pd.Series, name: str, kind: str = "count") -> str:
    if kind == "loss":
        return f"{row[name]:.4f} [{row[f'{name}_lo']:.4f}, {row[f'{name}_hi']:.4f}]"
    if kind == "ratio":
        return f"{row[name]:.1f} [{row[f'{name}_lo']:.1f}, {row[f'{name}_hi']:.1f}]"
    return f"{format_quantity(row[name])} [{format_quantity(row[f'{name}_lo'])}, {format_quantity(row[f'{name}_hi'])}]"


def _print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for h in headers:
        table.add_column(h, justify="right" if h not in ("parameter",) else "left")
    for r in rows:
        table.add_row(*r)
    out.print(table)


def _json(obj: Any) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    sys.stdout.write(json.dumps(clean(obj), indent=2) + "\n")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Where to write the run table (.csv or .parquet).")],
    seed: Annotated[int, typer.Option(help="Seed of the noise on log loss.")] = 0,
    noise: Annotated[float, typer.Option(help="Standard deviation of the noise on log loss (0.01 = 1%).")] = 0.01,
) -> None:
    """Write example runs: an IsoFLOP grid (6e18 to 3e21 FLOPs) from a known Chinchilla law."""
    from .simulate import EXAMPLE_TRUTH, simulate_runs

    runs = simulate_runs(seed, noise=noise)
    _write_table(runs, out)
    truth = ", ".join(f"{k}={v:g}" for k, v in EXAMPLE_TRUTH.items())
    err.print(f"wrote {len(runs)} runs to {out} (truth: {truth}; noise {noise:g} on log loss)")


def _write_table(table: pd.DataFrame, out: Path) -> None:
    import os

    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() in (".parquet", ".pq"):
        table.to_parquet(tmp, index=False)
    else:
        table.to_csv(tmp, index=False)
    os.replace(tmp, out)


@app.command("fit")
def fit_cmd(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV or Parquet with params, tokens (or flops), loss.")],
    out: Annotated[Path, typer.Option(help="Where to save the fit (NetCDF, e.g. fit.nc).")],
    card: Annotated[str, typer.Option(help="Model card: a bundled name (chinchilla) or a .toml path.")] = "chinchilla",
    method: Annotated[str, typer.Option(help="nuts (Bayesian posterior) or huber (approach 3 + bootstrap).")] = "nuts",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical draws.")] = 0,
    chains: Annotated[int, typer.Option(help="NUTS chains.")] = 4,
    warmup: Annotated[int, typer.Option(help="NUTS warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(help="NUTS draws kept per chain.")] = 1000,
    target_accept: Annotated[float, typer.Option(help="NUTS target acceptance probability.")] = 0.9,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for --method huber.")] = 1000,
    param_count: Annotated[str, typer.Option(help="Count N as total or non_embedding (params - embedding_params).")] = "total",
    column: Annotated[list[str] | None, typer.Option(help="Column mapping CANONICAL=SOURCE, repeatable, e.g. params='Model Size'.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar while sampling (default: when stderr is a terminal).")] = None,
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when diagnostics fail (R-hat, ESS, divergences).")] = False,
) -> None:
    """Fit a law to a run table and save the posterior (NetCDF)."""
    from .data import load_runs
    from .inference import fit

    table = load_runs(runs, _columns(column))
    show = sys.stderr.isatty() if progress is None else progress
    err.print(f"fitting {len(table)} runs from {runs} with card {card!r}, method {method}")
    result = fit(table, card, method=method, chains=chains, warmup=warmup, draws=draws, seed=seed,
                 target_accept=target_accept, bootstrap=bootstrap, progress=show, param_count=param_count)
    result.save(out)
    err.print(f"saved {result!r} to {out} ({result.elapsed_s:.1f} s)")
    _report_diagnostics(result, strict)


def _report_diagnostics(result: Any, strict: bool) -> None:
    diag = result.diagnostics()
    for msg in diag.messages:
        err.print(f"[yellow]warning:[/yellow] {msg}")
    if diag.has_errors and strict:
        raise typer.Exit(1)


@app.command()
def summary(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    level: LevelOpt = 0.9,
    fmt: FormatOpt = "table",
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when diagnostics fail.")] = False,
) -> None:
    """Posterior of each parameter (median and interval) and the diagnostics."""
    from .fit import Fit

    _check_format(fmt)
    result = Fit.load(fit_file)
    table = result.summary(level)
    diag = result.diagnostics()
    if fmt == "json":
        _json({"parameters": {p: {k: float(row[k]) for k in ("median", "lo", "hi", "r_hat", "ess_bulk", "ess_tail")}
                              for p, row in table.iterrows()},
               "divergences": diag.divergences, "max_rhat": diag.max_rhat, "min_ess_bulk": diag.min_ess_bulk,
               "ok": not diag.has_errors, "messages": diag.messages, "level": level,
               "card": result.card.name, "method": result.method})
    elif fmt == "csv":
        sys.stdout.write(table.to_csv())
    else:
        pct = f"{level:.0%}"
        rows = [[p, f"{r['median']:.4g}", f"[{r['lo']:.4g}, {r['hi']:.4g}]", f"{r['r_hat']:.3f}",
                 f"{r['ess_bulk']:.0f}"] for p, r in table.iterrows()]
        _print_table(f"{result.card.name} ({result.method}): {result.card.law.formula}",
                     ["parameter", "median", f"{pct} interval", "R-hat", "ESS bulk"], rows)
        status = "[green]ok[/green]" if not diag.has_errors else "[red]FAILED[/red]"
        err.print(f"diagnostics {status}: max R-hat {diag.max_rhat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
                  f"{diag.divergences} divergences")
    _report_diagnostics(result, strict)


@app.command()
def allocate(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    budget: Annotated[list[str], typer.Option(help="Compute budget in FLOPs (e.g. 5.76e23), repeatable.")],
    level: LevelOpt = 0.9,
    group: Annotated[str | None, typer.Option(help="For a pooled (hierarchical) fit: the group whose parameters to use.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Compute-optimal parameters, tokens, tokens/param and loss for each budget (C = 6 N D)."""
    from .allocation import QUANTITIES
    from .fit import Fit

    _check_format(fmt)
    table = Fit.load(fit_file).allocate(budget, level=level, group=group)
    if fmt == "json":
        _json([{"compute": float(r["compute"]), **{q: _interval(r, q) for q in QUANTITIES}, "level": level}
               for _, r in table.iterrows()])
    elif fmt == "csv":
        sys.stdout.write(table.to_csv(index=False))
    else:
        rows = [[f"{r['compute']:.3g}", _fmt_interval(r, "params_opt"), _fmt_interval(r, "tokens_opt"),
                 _fmt_interval(r, "tokens_per_param", "ratio"), _fmt_interval(r, "loss_opt", "loss")]
                for _, r in table.iterrows()]
        _print_table(f"Compute-optimal allocation (median [{level:.0%} interval]), C = 6·N·D",
                     ["compute (FLOPs)", "parameters N", "tokens D", "tokens / param", "loss (nats/token)"], rows)


@app.command()
def predict(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    params: Annotated[list[str], typer.Option(help="Model size in parameters (e.g. 70B), repeatable.")],
    tokens: Annotated[list[str], typer.Option(help="Training tokens (e.g. 1.4T), repeatable.")],
    level: LevelOpt = 0.9,
    seed: Annotated[int, typer.Option(help="Seed of the simulated observation noise.")] = 0,
    group: Annotated[str | None, typer.Option(help="For a pooled (hierarchical) fit: the group whose parameters to use.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Predicted loss at (N, D): the law's credible interval and a single run's predictive interval."""
    from .fit import Fit

    _check_format(fmt)
    table = Fit.load(fit_file).predict(params, tokens, level=level, seed=seed, group=group)
    if fmt == "json":
        items = [{"params": float(r["params"]), "tokens": float(r["tokens"]), "loss": _interval(r, "loss"),
                  "loss_predictive": _interval(r, "loss_predictive"), "level": level} for _, r in table.iterrows()]
        _json(items[0] if len(items) == 1 else items)
    elif fmt == "csv":
        sys.stdout.write(table.to_csv(index=False))
    else:
        rows = [[format_quantity(r["params"]), format_quantity(r["tokens"]), f"{r['flops']:.3g}",
                 _fmt_interval(r, "loss", "loss"), _fmt_interval(r, "loss_predictive", "loss")]
                for _, r in table.iterrows()]
        _print_table(f"Predicted loss, nats/token (median [{level:.0%} interval])",
                     ["parameters N", "tokens D", "compute (FLOPs)", "law L(N, D)", "one run (with noise)"], rows)


@app.command()
def cards() -> None:
    """List the bundled model cards and the laws they use."""
    from .cards import available_cards, load_card

    rows = []
    for name in available_cards():
        card = load_card(name)
        rows.append([name, card.law.name, card.law.formula])
    _print_table("Bundled model cards", ["card", "law", "formula"], rows)


@app.command()
def compare(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV or Parquet with params, tokens (or flops), loss.")],
    card: Annotated[list[str], typer.Option(help="Model card to fit and compare (name or .toml path), repeatable; at least two.")],
    seed: Annotated[int, typer.Option(help="Random seed of every fit.")] = 0,
    chains: Annotated[int, typer.Option(help="NUTS chains per fit.")] = 4,
    warmup: Annotated[int, typer.Option(help="NUTS warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(help="NUTS draws kept per chain.")] = 1000,
    target_accept: Annotated[float, typer.Option(help="NUTS target acceptance probability.")] = 0.9,
    param_count: Annotated[str, typer.Option(help="Count N as total or non_embedding (params - embedding_params).")] = "total",
    column: Annotated[list[str] | None, typer.Option(help="Column mapping CANONICAL=SOURCE, repeatable.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Fit each card by NUTS and rank them by PSIS-LOO (ELPD on log loss, with standard errors and k-hat)."""
    from .comparison import compare_cards
    from .data import load_runs

    _check_format(fmt)
    table = load_runs(runs, _columns(column))
    err.print(f"fitting {len(table)} runs from {runs} with cards {', '.join(card)}")
    result = compare_cards(table, card, chains=chains, warmup=warmup, draws=draws, seed=seed,
                           target_accept=target_accept, param_count=param_count)
    for name, row in result.iterrows():
        if row["warning"]:
            err.print(f"[yellow]warning:[/yellow] {name}: {row['warning']}", highlight=False)
    if fmt == "json":
        _json(result.reset_index().to_dict(orient="records"))
    elif fmt == "csv":
        sys.stdout.write(result.to_csv())
    else:
        rows = [[str(name), f"{r['elpd_loo']:.1f} ± {r['se']:.1f}", f"{r['elpd_diff']:.1f} ± {r['se_diff']:.1f}",
                 f"{r['p_loo']:.1f}", f"{r['weight']:.2f}", f"{r['khat_bad_share']:.0%}",
                 "yes" if r["converged"] else "NO"] for name, r in result.iterrows()]
        _print_table("PSIS-LOO comparison (ELPD of log loss, nats; best first)",
                     ["card", "ELPD-LOO ± SE", "difference ± SE", "p_loo", "weight", "k̂ > 0.7", "converged"], rows)


SchedulerOpt = Annotated[str | None, typer.Option(
    help="Dask scheduler address (tcp://HOST:PORT) to run the fits on; default local processes.")]
WorkersOpt = Annotated[int | None, typer.Option(
    help="Local worker processes (default one per fit, at most one per CPU; 1 = in this process).")]


@app.command()
def backtest(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV or Parquet with params, tokens (or flops), loss.")],
    cutoff: Annotated[list[str], typer.Option(
        help="Compute cutoff in FLOPs: fit runs with flops <= cutoff, predict the rest; repeatable.")],
    card: Annotated[list[str] | None, typer.Option(help="Model card (name or .toml path), repeatable.")] = None,
    method: Annotated[list[str] | None, typer.Option(
        help="nuts and/or huber (approach 3 + bootstrap), repeatable; default both.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of every fit and of the predictive noise.")] = 0,
    chains: Annotated[int, typer.Option(help="NUTS chains per fit.")] = 4,
    warmup: Annotated[int, typer.Option(help="NUTS warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(help="NUTS draws kept per chain.")] = 1000,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per huber fit.")] = 200,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    plot: Annotated[Path | None, typer.Option(
        help="Also save the calibration curves (nominal vs empirical coverage) to this image.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Column mapping CANONICAL=SOURCE, repeatable.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Fit on the runs below each compute cutoff and score the predictions of the runs above it."""
    from .allocation import as_budgets
    from .backtesting import backtest as run_backtest
    from .backtesting import plot_calibration
    from .data import load_runs

    _check_format(fmt)
    table = load_runs(runs, _columns(column))
    cutoffs = as_budgets(cutoff, what="cutoff")
    methods = method or ["nuts", "huber"]
    err.print(f"backtesting {len(table)} runs from {runs}: cards {', '.join(card or ['chinchilla'])}, "
              f"methods {', '.join(methods)}, cutoffs {', '.join(f'{c:.3g}' for c in cutoffs)}")
    result = run_backtest(table, card or ["chinchilla"], cutoffs, methods=methods, seed=seed,
                          executor=scheduler, workers=workers,
                          fit_kwargs={"chains": chains, "warmup": warmup, "draws": draws, "bootstrap": bootstrap})
    for r in result.records():
        if not r["diagnostics_ok"]:
            err.print(f"[yellow]warning:[/yellow] {r['card']} ({r['method']}) at cutoff {r['cutoff']:.3g}: "
                      "the fit failed its checks (ESS, R-hat, divergences, or unconverged bootstrap refits); "
                      "raise --draws/--warmup or inspect it with `bayes-scaling fit`", highlight=False)
    if plot is not None:
        plot_calibration(result).savefig(plot, dpi=150)
        err.print(f"saved calibration curves to {plot}")
    if fmt == "json":
        _json(result.records())
    elif fmt == "csv":
        sys.stdout.write(result.table.to_csv(index=False))
    else:
        rows = [[r["card"], r["method"], f"{r['cutoff']:.3g}", str(r["n_train"]), str(r["n_test"]),
                 f"{r['coverage_50']:.0%}", f"{r['coverage_90']:.0%}", f"{r['median_width_90']:.2%}",
                 f"{r['mean_log_pred_density']:.2f}", f"{r['crps']:.4f}", f"{r['median_abs_error']:.4f}"]
                for r in result.records()]
        _print_table("Backtest: fit on C <= cutoff, predict the larger runs (loss in nats/token)",
                     ["card", "method", "cutoff (FLOPs)", "fitted", "held out", "50% covered", "90% covered",
                      "90% width / loss", "mean log density", "CRPS", "median |error|"], rows)


@app.command()
def sensitivity(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV or Parquet with params, tokens (or flops), loss.")],
    card: Annotated[str, typer.Option(help="Model card: a bundled name or a .toml path.")] = "chinchilla",
    method: Annotated[str, typer.Option(help="nuts (Bayesian posterior) or huber (approach 3 + bootstrap).")] = "nuts",
    budget: Annotated[str, typer.Option(help="Target compute budget in FLOPs at which N_opt is compared.")] = "5.76e23",
    drop_fraction: Annotated[list[float] | None, typer.Option(
        help="Drop this share of the smallest (and, separately, largest) runs by compute; repeatable; "
             "default 0.2.")] = None,
    resolution: Annotated[float, typer.Option(
        help="IsoFLOP budget grouping: width of a budget in decades of compute.")] = 0.25,
    level: LevelOpt = 0.9,
    seed: Annotated[int, typer.Option(help="Random seed of every fit.")] = 0,
    chains: Annotated[int, typer.Option(help="NUTS chains per fit.")] = 4,
    warmup: Annotated[int, typer.Option(help="NUTS warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(help="NUTS draws kept per chain.")] = 1000,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per huber fit.")] = 200,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    plot: Annotated[Path | None, typer.Option(help="Also save the N_opt-per-variant figure to this image.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Column mapping CANONICAL=SOURCE, repeatable.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Refit without the smallest runs, the largest runs, or one IsoFLOP budget at a time; compare N_opt."""
    from .data import load_runs
    from .fit_region import plot_sensitivity
    from .fit_region import sensitivity as run_sensitivity

    _check_format(fmt)
    table = load_runs(runs, _columns(column))
    err.print(f"refitting subsets of {len(table)} runs from {runs} with card {card!r}, method {method}")
    result = run_sensitivity(table, card, budget=budget, method=method, fractions=drop_fraction or [0.2],
                             resolution=resolution, level=level, seed=seed, executor=scheduler, workers=workers,
                             fit_kwargs={"chains": chains, "warmup": warmup, "draws": draws, "bootstrap": bootstrap})
    if plot is not None:
        plot_sensitivity(result).savefig(plot, dpi=150)
        err.print(f"saved the sensitivity figure to {plot}")
    if fmt == "json":
        _json([{**r, "level": level} for r in result.to_dict(orient="records")])
    elif fmt == "csv":
        sys.stdout.write(result.to_csv(index=False))
    else:
        rows = [[r["variant"], str(r["n_runs"]), f"{r['min_flops']:.2g}–{r['max_flops']:.2g}",
                 _fmt_interval(r, "params_opt"), _fmt_interval(r, "tokens_per_param", "ratio"),
                 f"{r['params_ratio']:.2f}", "yes" if r["diagnostics_ok"] else "NO"] for _, r in result.iterrows()]
        _print_table(f"N_opt at C = {result.attrs['budget']:.3g} FLOPs by fit region (median [{level:.0%} interval])",
                     ["variant", "runs", "compute range", "parameters N_opt", "tokens / param", "vs all runs",
                      "converged"], rows)



#: Columns ``decide`` shows per answer; a column with ``_lo``/``_hi`` siblings shows its interval.
_DECISION_COLUMNS = {
    "best_plan": ("compute", "plan", "params", "tokens", "tokens_per_param", "inference_flops", "expected_loss",
                  "loss", "criterion", "delta_criterion", "delta_expected"),
    "cheapest_compute": ("target_loss", "prob", "compute", "params", "tokens", "tokens_per_param",
                         "inference_flops", "prob_achieved"),
    "target_probability": ("plan", "params", "tokens", "training_flops", "inference_flops", "target_loss", "prob",
                           "prob_se"),
    "compare_plans": ("plan", "compute", "expected_loss", "prob_best", "diff", "regret", "best_params", "best_tokens"),
    "next_run": ("rank", "plan", "flops", "width_now", "width_after", "shrinkage", "shrinkage_per_flop", "ess"),
}
_DECISION_TITLES = {
    "best_plan": "Best plan per budget (loss in nats/token; deltas vs the chosen / risk-neutral plan)",
    "cheapest_compute": "Cheapest compute reaching the target loss with the given probability",
    "target_probability": "Chance of reaching the target loss",
    "compare_plans": "Plans compared (diff: loss minus the first plan's; regret: vs the best plan of equal cost)",
    "next_run": "Next run: expected shrinkage of the N_opt interval (ln hi/lo) at the target budget",
}


def _decision_cell(table: pd.DataFrame, row: pd.Series, col: str) -> str:
    value = row[col]
    if isinstance(value, str):
        return value
    if col in ("params", "tokens", "best_params", "best_tokens"):
        return format_quantity(value)
    if col in ("compute", "training_flops", "inference_flops", "flops", "shrinkage_per_flop"):
        return f"{value:.3g}"
    if col in ("rank", "ess"):
        return f"{value:.0f}"
    text = f"{value:.4f}" if col not in ("tokens_per_param",) else f"{value:.1f}"
    if f"{col}_lo" in table:
        text += f" [{row[f'{col}_lo']:.4f}, {row[f'{col}_hi']:.4f}]"
    return text


@app.command()
def decide(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    budget: Annotated[list[str] | None, typer.Option(help="Compute budget in FLOPs (lifetime FLOPs with --inference-tokens), repeatable: best plan.")] = None,
    risk: Annotated[str, typer.Option(help="Criterion of the chosen plan: mean, quantile:0.9 or cvar:0.9.")] = "mean",
    target_loss: Annotated[float | None, typer.Option(help="Target loss (nats/token): cheapest compute reaching it, and each plan's chance.")] = None,
    prob: Annotated[float, typer.Option(help="Probability of reaching --target-loss.")] = 0.9,
    plan: Annotated[list[str] | None, typer.Option(help="Plan PARAMS:TOKENS (e.g. 70B:1.4T), repeatable: compare plans.")] = None,
    max_params: Annotated[str | None, typer.Option(help="Most parameters a plan may have (e.g. 70B).")] = None,
    max_tokens: Annotated[str | None, typer.Option(help="Most training tokens available (e.g. 2T).")] = None,
    inference_tokens: Annotated[str, typer.Option(help="Tokens the model will generate in service; adds 2·N FLOPs per token to the cost.")] = "0",
    next_run_budget: Annotated[str | None, typer.Option(help="FLOPs of a candidate small run: rank runs by how much they pin down N_opt at the first --budget.")] = None,
    noise: Annotated[bool, typer.Option("--noise/--no-noise", help="Judge one run's loss (law x observation noise) or the law's.")] = True,
    group: Annotated[str | None, typer.Option(help="For a pooled fit: the group whose parameters to use.")] = None,
    level: LevelOpt = 0.9,
    seed: Annotated[int, typer.Option(help="Seed of the simulated observation noise.")] = 0,
    fmt: FormatOpt = "table",
) -> None:
    """Risk-aware decisions: best plan for a budget, cheapest way to a target, plan comparison, next run."""
    import math

    from .decisions import Constraints
    from .decisions import decide as decide_api
    from .fit import Fit

    _check_format(fmt)
    limits = Constraints(max_params=max_params or math.inf, max_tokens=max_tokens or math.inf,
                         inference_tokens=inference_tokens)
    answers = decide_api(Fit.load(fit_file), budgets=budget, risk=risk, target_loss=target_loss, prob=prob,
                         plans=plan or (), constraints=limits, next_run_budget=next_run_budget, level=level,
                         noise=noise, seed=seed, group=group)
    if fmt == "json":
        _json({name: {"assumptions": dict(t.attrs), "rows": t.to_dict(orient="records")}
               for name, t in answers.items()})
        return
    for name, table in answers.items():
        notes = [f"{k}: {v}" for k, v in table.attrs.items()]
        if fmt == "csv":
            sys.stdout.write("\n".join([f"# {name}", *(f"# {n}" for n in notes), table.to_csv(index=False)]))
            continue
        cols = [c for c in _DECISION_COLUMNS[name]
                if c in table and not (c == "inference_flops" and not table[c].any())]
        rows = [[_decision_cell(table, r, c) for c in cols] for _, r in table.iterrows()]
        _print_table(_DECISION_TITLES[name], cols, rows)
        out.print("assumptions: " + "; ".join(notes), highlight=False, soft_wrap=True)


@app.command()
def report(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    out: Annotated[Path, typer.Option(help="HTML page to write (report.html); <stem>.json and .md go beside it.")],
    budget: Annotated[list[str] | None, typer.Option(
        help="Budget in FLOPs for the headline table, repeatable (default: largest run × 0.1, 1, 10, 100); "
             "given explicitly, the report also shows the best plan for each.")] = None,
    level: LevelOpt = 0.9,
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when diagnostics fail (report written anyway).")] = False,
    group: Annotated[str | None, typer.Option(help="For a pooled fit: the group to report on.")] = None,
    risk: Annotated[str | None, typer.Option(help="Decision section: criterion of the chosen plan, mean, quantile:0.9 or cvar:0.9.")] = None,
    target_loss: Annotated[float | None, typer.Option(help="Decision section: target loss (nats/token), its cheapest compute and each plan's chance.")] = None,
    prob: Annotated[float | None, typer.Option(help="Probability of reaching --target-loss (default 0.9).")] = None,
    plan: Annotated[list[str] | None, typer.Option(help="Decision section: plan PARAMS:TOKENS (e.g. 70B:1.4T) to compare, repeatable.")] = None,
    max_params: Annotated[str | None, typer.Option(help="Decision section: most parameters a plan may have (e.g. 70B).")] = None,
    max_tokens: Annotated[str | None, typer.Option(help="Decision section: most training tokens available (e.g. 2T).")] = None,
    inference_tokens: Annotated[str | None, typer.Option(help="Decision section: tokens generated in service; budgets become lifetime FLOPs.")] = None,
) -> None:
    """Write a self-contained HTML report of a fit (no network needed to view it), plus JSON and markdown.

    With --budget, --risk, --target-loss, --plan or a limit the report gains a Decision
    section (the answers of `bayes-scaling decide` for the report's budgets).
    """
    import time

    from .decisions import Constraints
    from .fit import Fit
    from .report import DecisionRequest

    if prob is not None and target_loss is None:
        raise InputError("--prob is the chance of reaching --target-loss: give a target loss too")
    asked = [budget, risk, target_loss, plan, max_params, max_tokens, inference_tokens]
    decision = None if all(a is None for a in asked) else DecisionRequest(
        risk=risk or "mean", target_loss=target_loss, prob=0.9 if prob is None else prob, plans=plan or (),
        constraints=Constraints(max_params=max_params or math.inf, max_tokens=max_tokens or math.inf,
                                inference_tokens=inference_tokens or 0.0))
    result = Fit.load(fit_file)
    start = time.perf_counter()
    page = result.report(out, budget or None, level, group=group, decision=decision)
    err.print(f"wrote {page}, {page.with_suffix('.json').name} and {page.with_suffix('.md').name} "
              f"({time.perf_counter() - start:.1f} s)")
    sys.stdout.write(f"{page}\n")
    _report_diagnostics(result, strict)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit status (0 ok, 1 failed diagnostics, 2 user error)."""
    command = typer.main.get_command(app)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            command.main(args=argv, prog_name="bayes-scaling", standalone_mode=True)
        except SystemExit as exc:
            code = exc.code
            return code if isinstance(code, int) else (0 if code is None else 2)
        except BayesScalingError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
            return 2
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
