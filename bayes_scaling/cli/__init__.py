"""Command-line interface: thin verbs over the Python API.

Every command prints results on stdout (``--format table|json|csv``) and messages on
stderr. A user error prints one line ``error: ...`` and exits with status 2. The verbs
live in :mod:`.fitting`, :mod:`.answers` and :mod:`.analysis`; importing them registers
them on the shared typer ``app``.
"""

from __future__ import annotations

import sys
import warnings
from typing import TextIO

import typer

from ..errors import BayesScalingError
from . import analysis, answers, fitting  # noqa: F401  (register the commands)
from ._shared import app, err


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


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())

