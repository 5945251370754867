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
                 target_accept=target_accept, bootstrap=bootstrap, progress=show)
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
    fmt: FormatOpt = "table",
) -> None:
    """Compute-optimal parameters, tokens, tokens/param and loss for each budget (C = 6 N D)."""
    from .allocation import QUANTITIES
    from .fit import Fit

    _check_format(fmt)
    table = Fit.load(fit_file).allocate(budget, level=level)
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
    fmt: FormatOpt = "table",
) -> None:
    """Predicted loss at (N, D): the law's credible interval and a single run's predictive interval."""
    from .fit import Fit

    _check_format(fmt)
    table = Fit.load(fit_file).predict(params, tokens, level=level, seed=seed)
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
