"""Command-line interface: thin verbs over the Python API.

Every command prints results on stdout (``--format table|json|csv``) and messages on
stderr. A user error prints one line ``error: ...`` and exits with status 2, before any
sampling starts (options are checked by :mod:`.checks`); no traceback, and no file the
command did not write is touched. The verbs live in :mod:`.fitting`, :mod:`.answers`,
:mod:`.analysis` and :mod:`.study`; importing them registers them on the shared typer ``app``.
"""

from __future__ import annotations

import sys
import warnings
from functools import cache
from typing import TextIO

import typer
from rich.markup import escape
from typer._click.core import Command
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from ..errors import BayesScalingError
from . import analysis, answers, fitting, study  # noqa: F401  (register the commands)
from ._shared import app, err, one_line


@cache
def _command() -> Command:
    """The app as one click command, built once: building it reads every verb's signature (~60 ms)."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit status (0 ok, 1 failed diagnostics, 2 user error)."""
    command = _command()
    shown: set[str] = set()

    def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: TextIO | None = None, line: str | None = None) -> None:
        text = one_line(str(message))
        if text not in shown:  # the same table is validated by load_runs and again by fit: say it once
            shown.add(text)
            err.print(f"[yellow]warning:[/yellow] {escape(text)}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show_warning
        try:
            code = command.main(args=argv, prog_name="bayes-scaling", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
            return code if isinstance(code, int) else (0 if code is None else 2)
        except NoArgsIsHelpError:
            return 2  # the help was shown
        except ClickException as exc:  # a usage error: unknown option, value of the wrong type, ...
            ctx = getattr(exc, "ctx", None)  # usage errors carry the command's context; other click errors do not
            where = ctx.command_path if ctx is not None else "bayes-scaling"
            err.print(f"[red]error:[/red] {escape(where)}: {escape(one_line(exc.format_message()))} "
                      f"(see {escape(where)} --help)", highlight=False, soft_wrap=True)
            return exc.exit_code
        except BayesScalingError as exc:
            err.print(f"[red]error:[/red] {escape(one_line(str(exc)))}", highlight=False, soft_wrap=True)
            return 2
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
