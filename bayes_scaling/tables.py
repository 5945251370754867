"""``Table``: named columns of numpy arrays plus the assumptions behind them.

The answers from a fit (allocation, predicted loss, summary, decisions) are computed
once, as a ``Table`` (their credible intervals by :func:`credible_interval`). The Python
API returns it as a pandas DataFrame (:meth:`Table.to_frame`); the CLI prints it (rows,
CSV) without importing pandas, which alone would take longer than the answer.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Table:
    """Columns of equal length, in order, and ``attrs`` (the assumptions, as in ``DataFrame.attrs``).

    Attributes
    ----------
    columns : dict of str to array
        One 1-d array per column (numbers, or strings for labels).
    attrs : dict
        What the numbers assumed (level, card, criterion, ...).
    index : str, optional
        Column that labels the rows (``parameter`` of a summary): the DataFrame's index.
    """

    columns: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    index: str | None = None

    def __post_init__(self) -> None:
        self.columns = {k: np.asarray(v) for k, v in self.columns.items()}
        lengths = {v.shape for v in self.columns.values()}
        if len(lengths) > 1 or any(len(s) != 1 for s in lengths):
            raise ValueError(f"table columns must be 1-d and of one length; got shapes {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per row, of Python scalars (as ``DataFrame.to_dict(orient="records")``, index included)."""
        lists = {k: v.tolist() for k, v in self.columns.items()}
        return [dict(zip(lists, values, strict=True)) for values in zip(*lists.values(), strict=True)]

    def to_csv(self) -> str:
        """CSV text as ``DataFrame.to_csv`` writes it (shortest round-trip floats, NaN empty)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(list(self.columns))
        for row in self.rows():
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row.values()])
        return out.getvalue()

    def to_frame(self) -> pd.DataFrame:
        """The table as a pandas DataFrame, with ``attrs`` (and the index column as its index)."""
        import pandas as pd

        frame = pd.DataFrame(self.columns)
        if self.index is not None:
            frame = frame.set_index(self.index)
        frame.attrs = dict(self.attrs)
        return frame

    @classmethod
    def concat(cls, tables: Sequence[Table], attrs: Mapping[str, Any] | None = None) -> Table:
        """Rows of ``tables`` one after another (same columns), with ``attrs``."""
        names = list(tables[0].columns)
        return cls({k: np.concatenate([t.columns[k] for t in tables]) for k in names}, dict(attrs or {}),
                   tables[0].index)


#: Seeds are unsigned 32-bit integers: what both NumPy's and JAX's generators accept everywhere.
SEED_MAX = 2**32 - 1


def check_seed(seed: int, what: str = "seed") -> int:
    """Validate a random seed (an integer in [0, 2**32 - 1]); return it as int.

    Raises
    ------
    InputError
        If ``seed`` is not an integer in that range.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= SEED_MAX:
        raise InputError(f"{what} must be an integer from 0 to {SEED_MAX} but got {seed!r}")
    return int(seed)


def check_level(level: float, what: str = "level") -> float:
    """Validate a probability level (credible level, quantile, risk level); return it as float.

    The one check of a level in the package: credible intervals, scores and risk criteria use it.

    Parameters
    ----------
    level : float
    what : str, default "level"
        What the level is, for the message (``"quantile() level"``).

    Raises
    ------
    InputError
        If ``level`` is not a number in the interval (0, 1).
    """
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating, np.integer)) or not 0 < level < 1:
        raise InputError(f"{what} must be in the interval (0, 1) but got {level!r}")  # NaN fails too
    return float(level)


def credible_interval(draws: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower bound, median and upper bound of the equal-tailed ``level`` interval of ``draws`` along ``axis``."""
    lo, median, hi = np.quantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=axis)
    return lo, median, hi


def interval_columns(name: str, draws: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Columns ``name`` (median), ``name_lo`` and ``name_hi`` of draws (axis 0) per row."""
    lo, median, hi = credible_interval(draws, level)
    return {name: median, f"{name}_lo": lo, f"{name}_hi": hi}


def ranked_interval_columns(key: np.ndarray, draws: Mapping[str, tuple[np.ndarray, bool]],
                            level: float) -> dict[str, np.ndarray]:
    """:func:`interval_columns` of several draws that are each a monotone function of ``key``, column by column.

    The order statistics of an increasing (decreasing) function of ``key`` are those at the
    same (mirrored) ranks of ``key``, so one partition of ``key`` serves every quantity;
    the values are those of ``np.quantile`` (linear interpolation) on each. For
    allocations over 4,000 draws × 1,000 budgets this saves a partition per quantity.

    Parameters
    ----------
    key : array of shape (S, K)
    draws : mapping of str to (array of shape (S, K), bool)
        Each quantity's draws and whether it increases with ``key`` (else it decreases).
    level : float
    """
    size = key.shape[0]
    virtual = (size - 1) * np.array([(1 - level) / 2, 0.5, (1 + level) / 2])
    below = np.floor(virtual).astype(int)
    above = np.minimum(below + 1, size - 1)
    gamma = virtual - below
    ranks = np.unique(np.concatenate([below, above, size - 1 - below, size - 1 - above]))
    order = np.argpartition(key, ranks, axis=0)
    out = {}
    for name, (values, increasing) in draws.items():
        def at(rank: int, values: np.ndarray = values, increasing: bool = increasing) -> np.ndarray:
            return np.take_along_axis(values, order[rank if increasing else size - 1 - rank][None], axis=0)[0]

        lo, median, hi = (_lerp(at(b), at(a), g) for b, a, g in zip(below, above, gamma, strict=True))
        out.update({name: median, f"{name}_lo": lo, f"{name}_hi": hi})
    return out


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation as ``np.quantile`` does it (from the nearer end, for accuracy)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def frame_returning(function: Callable[..., Table]) -> Callable[..., pd.DataFrame]:
    """``function``, returning its :class:`Table` as a DataFrame: the public API's form of an answer.

    The name drops a ``_table`` suffix (``best_plan_table`` -> ``best_plan``); the
    signature and docstring are ``function``'s.
    """
    @functools.wraps(function)
    def as_frame(*args: Any, **kwargs: Any) -> pd.DataFrame:
        return function(*args, **kwargs).to_frame()

    as_frame.__name__ = as_frame.__qualname__ = function.__name__.removesuffix("_table")
    return as_frame
