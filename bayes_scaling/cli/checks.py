"""Checks of the CLI's options, run before any work: a bad option fails in a second, not after a fit.

Each check names the option, the value and the rule, and raises
:class:`~bayes_scaling.errors.InputError` (printed as one ``error:`` line, exit status 2).
Checks of files live with their formats (run tables in :mod:`bayes_scaling.data`, cards in
:mod:`bayes_scaling.cards`, fits in :mod:`bayes_scaling.fitfile`, outputs in
:mod:`bayes_scaling.files`); this module only calls them early.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..files import check_output
from ..fitfile import FIT_METHODS, is_fit_file
from ..tables import SEED_MAX

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..cards import ModelCard

#: File types ``--plot`` writes (matplotlib infers the format from them).
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
PARAM_COUNTS = ("total", "non_embedding")


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed`` is an integer from 0 to 2**32 - 1 (both NumPy's and JAX's generators take it)."""
    if not 0 <= seed <= SEED_MAX:
        raise InputError(f"{option} must be an integer from 0 to {SEED_MAX} but got {seed}")
    return seed


def check_count(value: int, option: str, minimum: int = 1) -> int:
    """``value`` is an integer of at least ``minimum``."""
    if value < minimum:
        raise InputError(f"{option} must be at least {minimum} but got {value}")
    return value


def check_open_interval(value: float, option: str, low: float = 0.0, high: float = 1.0) -> float:
    """``low < value < high`` (NaN fails)."""
    if not low < value < high:
        raise InputError(f"{option} must be in the interval ({low:g}, {high:g}) but got {value}")
    return value


def check_positive(value: float, option: str, allow_zero: bool = False) -> float:
    """``value`` is a finite positive (or, with ``allow_zero``, non-negative) number."""
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        rule = "a finite, non-negative number" if allow_zero else "a finite, positive number"
        raise InputError(f"{option} must be {rule} but got {value}")
    return value


def check_choice(value: str, option: str, choices: Sequence[str]) -> str:
    """``value`` is one of ``choices``."""
    if value not in choices:
        raise InputError(f"{option} must be one of {', '.join(choices)} but got {value!r}")
    return value


def check_sampler(*, chains: int, warmup: int, draws: int, target_accept: float | None = None,
                  seed: int, method: str = "nuts", bootstrap: int | None = None,
                  param_count: str = "total") -> None:
    """The options every fitting verb shares."""
    check_choice(method, "--method", FIT_METHODS)
    check_seed(seed)
    check_count(chains, "--chains")
    check_count(warmup, "--warmup")
    check_count(draws, "--draws")
    if target_accept is not None:
        check_open_interval(target_accept, "--target-accept")
    if bootstrap is not None and method == "huber":
        check_count(bootstrap, "--bootstrap", 2)
    check_choice(param_count, "--param-count", PARAM_COUNTS)


def check_covariates(table: pd.DataFrame, cards: Sequence[ModelCard], param_count: str = "total") -> None:
    """The run table has every column each card's law (and ``--param-count``) needs: checked before any fit."""
    from ..model import covariates

    for card in cards:
        covariates(table, card, param_count)


def check_task(table: pd.DataFrame, card: ModelCard, *, metric: str | None, via: str | None,
               chance: float | None) -> None:
    """``fit --metric/--via/--chance``: given only for a task card, whose columns the table has; before any fit."""
    from ..task_model import task_columns

    if card.task is None:
        given = [o for o, v in (("--metric", metric), ("--via", via), ("--chance", chance)) if v is not None]
        if given:
            raise InputError(f"{', '.join(given)}: only for task cards (task-chain, task-chain-c4, task-direct); card "
                             f"{card.name!r} models the loss column")
        return
    task_columns(table, card.task.resolved(metric, via, chance))


def check_fit_output(out: Path, inputs: Sequence[Path]) -> Path:
    """``fit --out``: a ``.nc`` file in an existing folder, none of the inputs, and no file but a fit replaced."""
    return check_output(out, option="--out", what="fit", example="fit.nc", suffixes=(".nc",), inputs=inputs,
                        is_ours=is_fit_file)


def check_figure_output(plot: Path | None, inputs: Sequence[Path]) -> None:
    """``--plot``: a .png/.pdf/.svg in an existing folder, replacing only a figure bayes-scaling drew."""
    if plot is not None:
        check_output(plot, option="--plot", what="figure", example="figure.png", suffixes=FIGURE_SUFFIXES,
                     inputs=inputs, is_ours=_drawn_by_matplotlib)


def _drawn_by_matplotlib(path: Path) -> bool:
    """Whether an image carries matplotlib's signature (PNG/PDF/SVG metadata), as the ones we save do."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return b"matplotlib" in head.lower()


def save_figure(figure: Figure, path: Path) -> None:
    """Save a figure atomically (checked by :func:`check_figure_output` first)."""
    from ..files import write_atomically

    write_atomically({path: lambda tmp: figure.savefig(tmp, dpi=150, format=path.suffix[1:].lower())})
