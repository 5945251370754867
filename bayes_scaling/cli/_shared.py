"""Shared pieces of the CLI: the typer app, consoles, option types and output helpers.

The helpers take rows as plain mappings (a ``Table``'s rows, or a DataFrame's), so the
answers from a saved fit print without importing pandas.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import InputError
from ..units import format_quantity

if TYPE_CHECKING:
    from ..diagnostics import Diagnostics

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
# No emoji codes: user text such as ":red_circle:" in a path or a cell is printed as written.
err = Console(stderr=True, emoji=False)
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
FORMATS = ("table", "json", "csv")

FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="Output: table (for people), json or csv (for machines).")
]
LevelOpt = Annotated[float, typer.Option(help="Credible level of the intervals, in (0, 1).")]
# Options every fitting verb shares (fit, compare, backtest, sensitivity): one wording, one place.
RunsArg = Annotated[Path, typer.Argument(help="Run table: CSV or Parquet with params, tokens (or flops), loss.")]
ChainsOpt = Annotated[int, typer.Option(help="NUTS chains per fit.")]
WarmupOpt = Annotated[int, typer.Option(help="NUTS warm-up iterations per chain.")]
DrawsOpt = Annotated[int, typer.Option(help="NUTS draws kept per chain.")]
TargetAcceptOpt = Annotated[float, typer.Option(help="NUTS target acceptance probability.")]
ParamCountOpt = Annotated[str, typer.Option(help="Count N as total or non_embedding (params - embedding_params).")]
ColumnOpt = Annotated[
    list[str] | None, typer.Option(help="Column mapping CANONICAL=SOURCE, repeatable, e.g. params='Model Size'.")
]


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


def _interval(row: Mapping[str, Any], name: str) -> dict[str, float]:
    return {"median": float(row[name]), "lo": float(row[f"{name}_lo"]), "hi": float(row[f"{name}_hi"])}


def _fmt_interval(row: Mapping[str, Any], name: str, kind: str = "count") -> str:
    if kind == "loss":
        return f"{row[name]:.4f} [{row[f'{name}_lo']:.4f}, {row[f'{name}_hi']:.4f}]"
    if kind == "ratio":
        return f"{row[name]:.1f} [{row[f'{name}_lo']:.1f}, {row[f'{name}_hi']:.1f}]"
    return f"{format_quantity(row[name])} [{format_quantity(row[f'{name}_lo'])}, {format_quantity(row[f'{name}_hi'])}]"


def _print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    # Cells and titles may hold user text (card names, group labels, paths): never markup.
    table = Table(title=escape(title), title_justify="left")
    for h in headers:
        table.add_column(escape(h), justify="right" if h not in ("parameter",) else "left")
    for r in rows:
        table.add_row(*(escape(str(c)) for c in r))
    console.print(table)


def one_line(message: str) -> str:
    """A (possibly multi-line) message on one line: ``"x: problems:\\n  - a\\n  - b"`` -> ``"x: problems: a; b"``."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    rest = [line[2:] if line.startswith("- ") else line for line in lines[1:]]
    return f"{lines[0]} {'; '.join(rest)}"


def say(message: str) -> None:
    """Print a message (not a result) on stderr; any user text in it is shown literally."""
    err.print(escape(message), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr, the message shown literally."""
    err.print(f"[yellow]warning:[/yellow] {escape(one_line(message))}", highlight=False, soft_wrap=True)


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



def _report_diagnostics(diag: Diagnostics, strict: bool) -> None:
    for msg in diag.messages:
        warn(msg)
    if diag.has_errors and strict:
        raise typer.Exit(1)



SchedulerOpt = Annotated[str | None, typer.Option(
    help="Dask scheduler address (tcp://HOST:PORT) to run the fits on; default local processes.")]
WorkersOpt = Annotated[int | None, typer.Option(
    help="Local worker processes (default one per fit, at most one per CPU; 1 = in this process).")]


