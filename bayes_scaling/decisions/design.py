"""Experiment design: which runs a study should make, and what they will teach, before running any.

A study is a set of runs (N, D) costing 6 N D FLOPs each. What the team will decide
from it is the compute-optimal model size N_opt at a target budget and the loss there;
a design is good when the intervals of both, after the study is fitted, are narrow. The
expected widths and calibration come from :mod:`.preposterior` (a Laplace approximation
over truths drawn from the card's prior or a fit's posterior);
``benchmarks/bench_design.py`` checks them against NUTS fits of simulated studies.

:func:`plan_study` searches designs within the limits (model sizes, tokens per parameter,
number of runs, the study budget): it scores IsoFLOP-like families (3, 5 or 7 budgets spanning
1.5 to 3.5 decades, model sizes from 0.5 to 2 decades each way around the median N_opt,
clipped to the limits), then improves the best two by exchanging one run at a time for any
candidate (a grid of model sizes x tokens per parameter within the limits, and the starts'
runs) while the objective falls and the budget holds; each (N, D) is used at most once.
:func:`score_design` scores any design. Designs are written and read as CSV here.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..allocation import optimal_log_params
from ..cards import ModelCard
from ..errors import InputError
from ..files import check_output, write_atomically
from ..posterior import PosteriorInput
from ..simulate import EXAMPLE_BUDGETS, isoflop_grid
from ..tables import Table
from ..units import parse_quantity
from .plans import plan_label
from .preposterior import (
    QUANTITIES,
    Scenarios,
    covariances,
    coverage,
    gradients,
    interval_widths,
    jacobians,
    scenarios,
    z_value,
)

#: Objectives of :func:`plan_study`: weights of each quantity's mean ln width over truths.
OBJECTIVES = {"n_opt": (1.0, 0.0), "loss": (0.0, 1.0), "both": (1.0, 1.0)}
#: Columns of a design file written by ``bayes-scaling plan``, in order.
DESIGN_COLUMNS = ("name", "params", "tokens", "flops", "target_budget")
#: Structured starts (IsoFLOP-like families within the limits): spreads of ln N around the
#: median N_opt (decades each way), numbers of budgets, and decades from the smallest budget to the largest.
_SPREADS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
_BUDGET_COUNTS = (3, 5, 7)
_BUDGET_SPANS = (1.5, 2.7, 3.5)
_EXCHANGED_STARTS = 2
_RUN_NAME = re.compile(r"^[0-9.e+-]+[A-Za-z]*:[0-9.e+-]+[A-Za-z]*$")
_SIZES_PER_BUDGET = 9


@dataclass(frozen=True)
class DesignLimits:
    """Limits a planned study respects.

    Attributes
    ----------
    min_params, max_params : float, default 1e7 and inf
        Smallest and largest model size N (parameters).
    min_tokens_per_param, max_tokens_per_param : float, default 1 and 1000
        Range of D / N.
    max_runs : int, default 63
        Most runs in the study.

    Examples
    --------
    >>> DesignLimits.parse(min_params="50M", max_params="7B", max_runs=40).max_params
    7000000000.0
    """

    min_params: float = 1e7
    max_params: float = math.inf
    min_tokens_per_param: float = 1.0
    max_tokens_per_param: float = 1000.0
    max_runs: int = 63

    @classmethod
    def parse(cls, min_params: float | str = 1e7, max_params: float | str = math.inf,
              min_tokens_per_param: float | str = 1.0, max_tokens_per_param: float | str = 1000.0,
              max_runs: int = 63) -> DesignLimits:
        """Limits from numbers or strings such as ``"10M"``, checked (:meth:`checked`)."""
        return cls(parse_quantity(min_params, what="--min-params"),
                   math.inf if max_params == math.inf else parse_quantity(max_params, what="--max-params"),
                   parse_quantity(min_tokens_per_param, what="--min-tokens-per-param"),
                   parse_quantity(max_tokens_per_param, what="--max-tokens-per-param"), max_runs).checked()

    def checked(self) -> DesignLimits:
        """The limits, checked (each message names the CLI option); raises :class:`InputError`."""
        lo_n, hi_n = float(self.min_params), float(self.max_params)
        lo_r, hi_r = float(self.min_tokens_per_param), float(self.max_tokens_per_param)
        for value, option in ((lo_n, "--min-params"), (lo_r, "--min-tokens-per-param")):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{option} must be a finite, positive number but got {value:g}")
        if not hi_n > lo_n:
            raise InputError(f"--max-params must exceed --min-params ({lo_n:.3g}) but got {hi_n:.3g}")
        if not (math.isfinite(hi_r) and hi_r > lo_r):
            raise InputError(f"--max-tokens-per-param must be finite and exceed --min-tokens-per-param "
                             f"({lo_r:g}) but got {hi_r:g}")
        if isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int) or self.max_runs < 1:
            raise InputError(f"--max-runs must be a positive integer but got {self.max_runs!r}")
        return DesignLimits(lo_n, hi_n, lo_r, hi_r, self.max_runs)

    def describe(self) -> str:
        """E.g. ``N in [1e+06, inf], D/N in [1, 1000], at most 63 runs``."""
        return (f"N in [{self.min_params:.3g}, {self.max_params:.3g}], D/N in [{self.min_tokens_per_param:g}, "
                f"{self.max_tokens_per_param:g}], at most {self.max_runs} runs")


def isoflop_design(sc: Scenarios, study_budget: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The standard IsoFLOP grid costing ``study_budget``: the example grid's budgets scaled, 9 sizes each
    around the source's median N_opt (:func:`bayes_scaling.simulate.isoflop_grid`)."""
    budgets = np.array(EXAMPLE_BUDGETS) * study_budget / (_SIZES_PER_BUDGET * sum(EXAMPLE_BUDGETS))
    theta = {k: v[:, None] for k, v in sc.theta(sc.u).items()}
    log_n = np.asarray(optimal_log_params(sc.card.law, {k: np.asarray(v) for k, v in theta.items()},
                                          np.log(budgets)[None, :]))
    return isoflop_grid(budgets.tolist(), np.exp(np.median(log_n, axis=0)), _SIZES_PER_BUDGET)


def _structured_starts(sc: Scenarios, study_budget: float, limits: DesignLimits) -> list[tuple[np.ndarray, np.ndarray]]:
    """IsoFLOP-like designs within the limits: at each of a few geometric budgets, sizes log-uniform over
    ``spread`` decades each way around the median N_opt, clipped to the sizes the limits allow there;
    as many runs per budget as ``max_runs`` allows, the budgets scaled so that the study costs its budget."""
    out = []
    theta = {k: np.asarray(v)[:, None] for k, v in sc.theta(sc.u).items()}
    for count in _BUDGET_COUNTS:
        per = limits.max_runs // count
        if per < 1:
            continue
        for span in _BUDGET_SPANS:
            budgets = np.logspace(-span, 0, count)
            budgets *= study_budget / (per * budgets.sum())
            log_opt = np.median(np.asarray(optimal_log_params(sc.card.law, theta, np.log(budgets)[None, :])), axis=0)
            lo = np.log(np.maximum(limits.min_params, np.sqrt(budgets / (6 * limits.max_tokens_per_param))))
            hi = np.log(np.minimum(limits.max_params, np.sqrt(budgets / (6 * limits.min_tokens_per_param))))
            for spread in _SPREADS:
                a = np.clip(log_opt - spread * math.log(10), lo, hi)
                b = np.clip(log_opt + spread * math.log(10), lo, hi)
                ok = hi > lo
                n = np.exp(a[ok, None] + (b - a)[ok, None] * np.linspace(0, 1, per)[None, :])
                # N and D to 3 digits, D rounded down: within the budget.
                n = _round(n)
                d = _round(budgets[ok, None] / (6 * n), down=True)
                keep = ((n >= limits.min_params) & (n <= limits.max_params) & (d >= limits.min_tokens_per_param * n)
                        & (d <= limits.max_tokens_per_param * n))
                if keep.any():  # clipped ends can coincide: each (N, D) once
                    pairs = np.unique(np.stack([n[keep], d[keep]], axis=1), axis=0)
                    out.append((pairs[:, 0], pairs[:, 1]))
    return out


def _start_objectives(sc: Scenarios, starts: list[tuple[np.ndarray, np.ndarray]], grad: np.ndarray,
                      weights: np.ndarray, z: float) -> np.ndarray:
    """The objective of each start (one Jacobian call for all their runs)."""
    jac = jacobians(sc, np.concatenate([a for a, _ in starts]), np.concatenate([b for _, b in starts]))
    ends = np.cumsum([a.size for a, _ in starts])
    return np.array([_objective(sc, jac[:, end - a.size:end], grad, weights, z)
                     for (a, _), end in zip(starts, ends, strict=True)])


def candidate_runs(study_budget: float, limits: DesignLimits, sizes: int = 25,
                   ratios: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """Candidate runs: ``sizes`` model sizes x ``ratios`` tokens per parameter, log-spaced within the
    limits, N and D rounded to 3 significant digits, each costing at most the study budget."""
    hi_n = min(limits.max_params, math.sqrt(study_budget / (6 * limits.min_tokens_per_param)))
    if hi_n < limits.min_params:
        raise InputError(f"no run fits the study budget {study_budget:.3g} FLOPs with at least "
                         f"{limits.min_params:.3g} parameters and {limits.min_tokens_per_param:g} tokens per "
                         "parameter")
    n = _round(np.geomspace(limits.min_params, hi_n, sizes))[:, None]
    d = _round(n * np.geomspace(limits.min_tokens_per_param, limits.max_tokens_per_param, ratios)[None, :])
    n, d = np.broadcast_to(n, d.shape).ravel(), d.ravel()
    keep = ((6 * n * d <= study_budget) & (n >= limits.min_params) & (n <= limits.max_params)
            & (d >= limits.min_tokens_per_param * n) & (d <= limits.max_tokens_per_param * n))
    return n[keep], d[keep]


def _round(x: np.ndarray, down: bool = False) -> np.ndarray:
    """To 3 significant digits (``down``: never above ``x``)."""
    digits = np.floor(np.log10(x)) - 2
    return (np.floor if down else np.round)(x / 10**digits * (1 + 1e-12)) * 10**digits


def plan_study(target_budget: float | str, study_budget: float | str, source: PosteriorInput | None = None, *,
               card: ModelCard | str | None = None, limits: DesignLimits | None = None, objective: str = "both",
               level: float = 0.9, scenarios_count: int = 64, seed: int = 0) -> dict[str, Table]:
    """Design a study: the runs whose total cost fits ``study_budget`` and that minimise the expected widths.

    Parameters
    ----------
    target_budget : float or str
        Compute (FLOPs) of the large run the study prepares: N_opt and the loss there are decided.
    study_budget : float or str
        Most FLOPs the study's runs may cost in all (6 N D summed).
    source : Fit, FitArrays or mapping of draws, optional
        A fit the study extends (its posterior is the prior); default the card's prior.
    card : ModelCard or str, optional
        Card of the prior (default ``"chinchilla"``), or of a mapping of draws.
    limits : DesignLimits, optional
        Default :class:`DesignLimits` (N >= 10M, 1 <= D/N <= 1000, at most 63 runs).
    objective : {"both", "n_opt", "loss"}, default "both"
        What to narrow: the mean over truths of ln width, of N_opt's interval, the loss's, or their sum.
    level : float, default 0.9
    scenarios_count : int, default 64
        Truths drawn from the source.
    seed : int, default 0

    Returns
    -------
    dict of str to Table
        ``"design"``: the runs (``name``, ``params``, ``tokens``, ``flops``, ``target_budget``);
        ``"isoflop"``: the standard IsoFLOP grid of the same cost, same columns; ``"widths"``:
        one row per design (``design``, ``runs``, ``flops``, ``width_n_opt``, ``width_loss_opt``,
        expected ln(hi/lo) of each interval). Assumptions in each table's ``attrs``.
    """
    target = parse_quantity(target_budget, what="--target-budget")
    budget = parse_quantity(study_budget, what="--study-budget")
    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)} but got {objective!r}")
    limits, z = (limits or DesignLimits()).checked(), z_value(level)
    if budget >= target:
        raise InputError(f"--study-budget ({budget:.3g} FLOPs) must be below --target-budget ({target:.3g})")
    sc = scenarios(source, card, count=scenarios_count, seed=seed)
    grad = gradients(sc, target)
    grid = isoflop_design(sc, budget)
    grid_widths = interval_widths(covariances(sc, jacobians(sc, grid[0], grid[1])), grad, z).mean(axis=0)
    weights = np.array(OBJECTIVES[objective])
    starts = _structured_starts(sc, budget, limits)
    values = _start_objectives(sc, starts, grad, weights, z)
    starts = [starts[i] for i in np.argsort(values, kind="stable")[:_EXCHANGED_STARTS]]
    # Candidates: the grid within the limits and the best starts' runs, each (N, D) once.
    pairs = np.unique(np.concatenate([np.stack(candidate_runs(budget, limits), axis=1),
                                      *(np.stack(run, axis=1) for run in starts)]), axis=0)
    n, d = pairs[:, 0], pairs[:, 1]
    jac, cost = jacobians(sc, n, d), 6 * n * d
    best: tuple[float, list[int]] = (math.inf, [])
    for run in starts:
        start = [int(np.flatnonzero((n == a) & (d == b))[0]) for a, b in zip(*run, strict=True)]
        chosen = _exchange(sc, jac, grad, cost, budget, weights, z, start)
        value = _objective(sc, jac[:, chosen], grad, weights, z)
        if value < best[0]:
            best = (value, chosen)
    pick = np.array(sorted(best[1], key=lambda k: (6 * n[k] * d[k], n[k])), dtype=int)
    plan_widths = interval_widths(covariances(sc, jac[:, pick]), grad, z).mean(axis=0)
    notes = {"target_budget": target, "study_budget": budget, "scenarios": f"{scenarios_count} truths from the "
             f"{sc.source} (seed {seed})", "level": level, "limits": limits.describe(), "objective": objective,
             "method": "Laplace (Fisher information) pre-posterior; IsoFLOP-like starts improved by exchanging runs"}
    widths = Table({"design": np.array(["plan", "isoflop"]), "runs": np.array([pick.size, grid[0].size]),
                    "flops": np.array([float((6 * n[pick] * d[pick]).sum()), float(grid[2].sum())]),
                    "width_n_opt": np.array([plan_widths[0], grid_widths[0]]),
                    "width_loss_opt": np.array([plan_widths[1], grid_widths[1]])}, notes)
    return {"design": design_table(n[pick], d[pick], target, notes),
            "isoflop": design_table(grid[0], grid[1], target, notes), "widths": widths}


def design_table(params: np.ndarray, tokens: np.ndarray, target: float, attrs: dict[str, Any] | None = None) -> Table:
    """A study's runs as a table: ``name`` (N:D), ``params``, ``tokens``, ``flops`` (6 N D), ``target_budget``."""
    params, tokens = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    return Table({"name": np.array([plan_label(a, b) for a, b in zip(params, tokens, strict=True)]),
                  "params": params, "tokens": tokens, "flops": 6 * params * tokens,
                  "target_budget": np.full(params.size, target)}, dict(attrs or {}))


def _objective(sc: Scenarios, jac: np.ndarray, grad: np.ndarray, weights: np.ndarray, z: float) -> float:
    return float(_log_mean(interval_widths(covariances(sc, jac), grad, z)) @ weights)


def _log_mean(widths: np.ndarray) -> np.ndarray:
    """Mean over truths (axis 0) of ln width: each truth's relative narrowing counts alike, so a few
    barely identifiable truths (huge widths) do not decide the design alone."""
    return np.log(np.maximum(widths, 1e-300)).mean(axis=0)


def _with_each(sc: Scenarios, inv: np.ndarray, jac: np.ndarray, grad: np.ndarray, weights: np.ndarray,
               z: float) -> np.ndarray:
    """Objective after adding each candidate to the design of covariance ``inv`` (Sherman-Morrison), shape (K,)."""
    a = np.einsum("spq,skq->skp", inv, jac)
    denom = 1 + sc.info[:, None] * np.einsum("skp,skp->sk", jac, a)
    var = np.einsum("sqp,spr,sqr->sq", grad, inv, grad)[:, None, :] \
        - sc.info[:, None, None] * np.einsum("sqp,skp->skq", grad, a) ** 2 / denom[..., None]
    return _log_mean(2 * z * np.sqrt(np.maximum(var, 0))) @ weights


def _exchange(sc: Scenarios, jac: np.ndarray, grad: np.ndarray, cost: np.ndarray, budget: float,
              weights: np.ndarray, z: float, chosen: list[int], passes: int = 3) -> list[int]:
    """Replace one run at a time by the candidate that most improves the objective within the budget."""
    chosen = list(chosen)
    now = _objective(sc, jac[:, chosen], grad, weights, z)
    for _ in range(passes):
        improved = False
        for i in range(len(chosen)):
            rest = chosen[:i] + chosen[i + 1:]
            after = _with_each(sc, covariances(sc, jac[:, rest]), jac, grad, weights, z)
            after[cost > budget - cost[rest].sum()] = np.inf
            after[rest] = np.inf
            k = int(np.argmin(after))
            if after[k] < now - 1e-9 * abs(now):
                chosen[i], now, improved = k, float(after[k]), True
        if not improved:
            break
    return chosen


def score_design(params: Sequence[float] | np.ndarray, tokens: Sequence[float] | np.ndarray,
                 target_budget: float | str, source: PosteriorInput | None = None, *,
                 card: ModelCard | str | None = None, level: float = 0.9, scenarios_count: int = 64,
                 seed: int = 0) -> Table:
    """Expected intervals of N_opt and of the loss at the target budget after a study, and their calibration.

    Parameters
    ----------
    params, tokens : arrays
        The study's runs: N (parameters) and D (tokens).
    target_budget, source, card, level, scenarios_count, seed
        As in :func:`plan_study`.

    Returns
    -------
    Table
        One row per quantity (``n_opt``: N_opt; ``loss_opt``: the loss at the compute-optimal
        plan): ``width_now`` (ln(hi/lo) of the interval under the source), ``width``
        (expected after the study), ``width_lo`` and ``width_hi`` (10% and 90% of it over
        truths), ``ratio`` (expected hi/lo, exp(width)) and ``coverage`` (share of simulated
        studies whose interval holds the truth: the expected calibration, ideally ``level``).
    """
    n, d = np.asarray(params, dtype=float).ravel(), np.asarray(tokens, dtype=float).ravel()
    if n.size == 0 or n.shape != d.shape or not (np.isfinite(n).all() and np.isfinite(d).all() and (n > 0).all()
                                                 and (d > 0).all()):
        raise InputError("a design needs one or more runs with finite, positive params and tokens")
    target, z = parse_quantity(target_budget, what="--target-budget"), z_value(level)
    sc = scenarios(source, card, count=scenarios_count, seed=seed)
    grad = gradients(sc, target)
    jac = jacobians(sc, n, d)
    width = interval_widths(covariances(sc, jac), grad, z)
    before = interval_widths(np.broadcast_to(np.linalg.inv(sc.precision), (len(sc.u),) + sc.precision.shape), grad, z)
    covered = coverage(sc, n, d, target, z, seed)
    return Table({"quantity": np.array(QUANTITIES), "width_now": before.mean(axis=0), "width": width.mean(axis=0),
                  "width_lo": np.quantile(width, 0.1, axis=0), "width_hi": np.quantile(width, 0.9, axis=0),
                  "ratio": np.exp(width.mean(axis=0)), "coverage": covered},
                 {"target_budget": target, "runs": n.size, "flops": float((6 * n * d).sum()), "level": level,
                  "scenarios": f"{scenarios_count} truths from the {sc.source} (seed {seed})",
                  "method": "Laplace (Fisher information) pre-posterior; coverage of Gauss-Newton fits of "
                            "simulated studies"})


def is_design_file(path: str | Path) -> bool:
    """Whether ``path`` holds a design written by :func:`write_design` (so it may be replaced)."""
    try:
        with Path(path).open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return (len(rows) > 1 and tuple(rows[0]) == DESIGN_COLUMNS
            and all(len(r) == len(DESIGN_COLUMNS) and _RUN_NAME.match(r[0]) for r in rows[1:]))


def check_design_output(path: str | Path, option: str = "--out", inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse, before any work, a path :func:`write_design` must not write (a folder, a missing folder,
    not ``.csv``, an input, or an existing file that is not a design)."""
    return check_output(path, option=option, what="study design", example="design.csv", suffixes=(".csv",),
                        inputs=inputs, is_ours=is_design_file)


def write_design(design: Table, path: str | Path) -> Path:
    """Write a design (:func:`design_table`) as CSV, atomically, after :func:`check_design_output`."""
    path = check_design_output(path)
    write_atomically({path: lambda tmp: tmp.write_text(design.to_csv(), encoding="utf-8")})
    return path


def read_design(path: str | Path) -> dict[str, Any]:
    """A design CSV's runs: ``params`` and ``tokens`` (arrays; ``70M``-style values accepted) and
    ``target_budget`` (float, or None when the file has no such column).

    Raises
    ------
    InputError
        Naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"design {path}: cannot be read ({exc})") from None
    if not rows or not {"params", "tokens"} <= set(rows[0]):
        raise InputError(f"design {path}: needs a header with params and tokens columns and at least one run")
    try:
        n = np.array([parse_quantity(r["params"], what="params") for r in rows])
        d = np.array([parse_quantity(r["tokens"], what="tokens") for r in rows])
        targets = {parse_quantity(r["target_budget"], what="target_budget") for r in rows
                   if (r.get("target_budget") or "").strip()}
    except (InputError, TypeError) as exc:
        raise InputError(f"design {path}: {exc}") from None
    if not ((n > 0).all() and (d > 0).all() and np.isfinite(n).all() and np.isfinite(d).all()):
        raise InputError(f"design {path}: params and tokens must be finite and positive")
    if len(targets) > 1:
        raise InputError(f"design {path}: the target_budget column holds several budgets")
    return {"params": n, "tokens": d, "target_budget": targets.pop() if targets else None}
