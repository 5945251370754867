"""Example data: a deterministic, Chinchilla-like IsoFLOP grid with a known truth."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .files import check_output, write_atomically
from .tables import check_seed

#: Parameters the example data are drawn from: Besiroglu et al.'s 2024 refit.
EXAMPLE_TRUTH: dict[str, float] = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
#: IsoFLOP budgets of the example grid (FLOPs): 6e18 to 3e21, half a decade apart or so.
EXAMPLE_BUDGETS: tuple[float, ...] = (6e18, 2e19, 6e19, 2e20, 6e20, 1.5e21, 3e21)
#: Columns of a simulated run table, in order.
SIMULATED_COLUMNS = ("name", "params", "tokens", "flops", "loss")
#: File types a run table is written as.
RUN_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
_SIMULATED_NAME = re.compile(r"^C\d(\.\d+)?e[+-]\d+-N[\d.e+-]+$")


def chinchilla_loss(params: np.ndarray, tokens: np.ndarray, truth: Mapping[str, float]) -> np.ndarray:
    """L(N, D) = E + A/N^alpha + B/D^beta in NumPy (nats per token)."""
    return truth["E"] + truth["A"] / params ** truth["alpha"] + truth["B"] / tokens ** truth["beta"]


def simulate_runs(
    seed: int = 0,
    *,
    truth: Mapping[str, float] | None = None,
    budgets: Sequence[float] = EXAMPLE_BUDGETS,
    sizes_per_budget: int = 9,
    noise: float = 0.01,
) -> pd.DataFrame:
    """Generate an IsoFLOP grid of training runs from the Chinchilla law.

    For each compute budget C (FLOPs), ``sizes_per_budget`` model sizes N are spread
    log-uniformly over a factor of ~30 around the true optimum, D = C / (6 N), and the
    log of the loss gets Gaussian noise of standard deviation ``noise``.

    Parameters
    ----------
    seed : int, default 0
        Seed of the noise; the same seed always gives the same table.
    truth : mapping, optional
        E, A, B, alpha, beta; defaults to :data:`EXAMPLE_TRUTH`.
    budgets : sequence of float, default :data:`EXAMPLE_BUDGETS`
        IsoFLOP budgets in FLOPs.
    sizes_per_budget : int, default 9
        Model sizes per budget.
    noise : float, default 0.01
        Standard deviation of the noise on log loss (0.01 ≈ 1% of the loss).

    Returns
    -------
    DataFrame
        Columns ``name``, ``params``, ``tokens``, ``flops``, ``loss``;
        ``attrs["truth"]`` holds the parameters used.
    """
    if not (np.isfinite(noise) and noise >= 0):
        raise InputError(f"noise (--noise) must be a finite, non-negative standard deviation on log loss (e.g. 0.01) "
                         f"but got {noise}")
    truth = dict(EXAMPLE_TRUTH if truth is None else truth)
    rng = np.random.default_rng(check_seed(seed))
    a, b = truth["alpha"], truth["beta"]
    g = (a * truth["A"] / (b * truth["B"])) ** (1 / (a + b))
    params, tokens, flops = isoflop_grid(budgets, g * (np.asarray(budgets, dtype=float) / 6) ** (b / (a + b)),
                                         sizes_per_budget)
    table = pd.DataFrame({"name": [f"C{c:.0e}-N{n:.3g}" for c, n in zip(flops, params, strict=True)],
                          "params": params, "tokens": tokens, "flops": flops})
    clean = chinchilla_loss(table["params"].to_numpy(), table["tokens"].to_numpy(), truth)
    table["loss"] = clean * np.exp(noise * rng.standard_normal(len(table)))
    table.attrs["truth"] = truth
    table.attrs["source"] = f"simulate_runs(seed={seed})"
    return table


def isoflop_grid(budgets: Sequence[float], params_opt: Sequence[float] | np.ndarray, sizes_per_budget: int = 9,
                 spread: float = 0.75) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The standard IsoFLOP grid: at each budget C, model sizes log-uniform around a guess of N_opt.

    Parameters
    ----------
    budgets : sequence of float
        IsoFLOP budgets C in FLOPs.
    params_opt : sequence of float
        The (guessed or true) compute-optimal N at each budget, in parameters.
    sizes_per_budget : int, default 9
        Model sizes per budget.
    spread : float, default 0.75
        Sizes run from N_opt / 10**spread to N_opt * 10**spread (0.75: a factor of ~30 in all).

    Returns
    -------
    (array, array, array)
        N (parameters, rounded to thousands), D = C / (6 N) (tokens) and C (FLOPs), one per run,
        budget by budget.
    """
    rows = [(n, c / (6 * n), float(c)) for c, n_opt in zip(budgets, params_opt, strict=True)
            for n in (float(np.round(x, -3)) for x in n_opt * np.logspace(-spread, spread, sizes_per_budget))]
    params, tokens, flops = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return params, tokens, flops


def is_simulated_table(path: str | Path) -> bool:
    """Whether ``path`` holds a run table written by :func:`write_runs` (so it may be replaced).

    Recognised by its columns and its run names (``C6e+18-N4.2e+07``); any other table,
    above all a user's real runs, is not.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
            names = table["name"].astype(str).tolist() if tuple(table.columns) == SIMULATED_COLUMNS else []
        else:
            with path.open(encoding="utf-8") as fh:
                header = fh.readline().strip().split("\t" if path.suffix.lower() == ".tsv" else ",")
                names = [line.split(",")[0].split("\t")[0] for line in fh if line.strip()]
            if tuple(header) != SIMULATED_COLUMNS:
                return False
    except Exception:  # unreadable: not ours  # noqa: BLE001
        return False
    return bool(names) and all(_SIMULATED_NAME.match(n) for n in names)


def check_runs_output(path: str | Path, option: str = "--out") -> Path:
    """Refuse, before anything is simulated, a path :func:`write_runs` must not write (see there)."""
    return check_output(path, option=option, what="simulated run table", example="runs.csv",
                        suffixes=RUN_TABLE_SUFFIXES, is_ours=is_simulated_table)


def write_runs(runs: pd.DataFrame, path: str | Path) -> Path:
    """Write a simulated run table (``.csv``, ``.tsv`` or ``.parquet``) atomically.

    Refuses, before writing, a missing folder, a folder, a path of another type, and an
    existing file that is not a simulated table (:func:`is_simulated_table`).
    """
    path = check_runs_output(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        write_atomically({path: lambda tmp: runs.to_parquet(tmp, index=False)})
    else:
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        write_atomically({path: lambda tmp: runs.to_csv(tmp, index=False, sep=sep)})
    return path
