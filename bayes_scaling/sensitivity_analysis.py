"""Fit-region sensitivity: refit without some runs and watch N_opt at a target budget move.

Scaling-law fits are known to depend on which runs they see. The variants here drop
the smallest runs (by compute), the largest runs, or one IsoFLOP budget at a time;
each is refitted (independently, through :func:`bayes_scaling.executor.map_fits`) and
the compute-optimal model size at a target budget is compared with the all-runs fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .allocation import as_budgets
from .approaches import budget_groups
from .backtesting import fit_ok
from .cards import ModelCard, load_card
from .data import MIN_RUNS
from .errors import InputError
from .executor import map_fits

if TYPE_CHECKING:
    pass

#: Columns of the allocation carried into the sensitivity table.
_QUANTITIES = ("params_opt", "tokens_opt", "tokens_per_param", "loss_opt")


def variants(runs: pd.DataFrame, *, fractions: Sequence[float] = (0.2,), resolution: float = 0.25,
             min_budget_runs: int = 3) -> list[tuple[str, str, np.ndarray]]:
    """The subsets of runs to refit: ``(label, kind, mask of kept runs)``.

    Parameters
    ----------
    runs : DataFrame
        Validated run table.
    fractions : sequence of float, default (0.2,)
        For each f, drop the runs below the f-quantile of compute (``drop_smallest``) and,
        separately, above the (1 - f)-quantile (``drop_largest``).
    resolution : float, default 0.25
        Budget grouping (decades of compute; see :func:`bayes_scaling.approaches.budget_groups`).
    min_budget_runs : int, default 3
        Budgets with fewer runs are not dropped on their own.

    Returns
    -------
    list of (str, str, array of bool)
        The first is ``("all runs", "all", all True)``. Subsets keeping fewer than
        ``MIN_RUNS`` runs are left out.
    """
    flops = runs["flops"].to_numpy(float)
    out = [("all runs", "all", np.ones(len(runs), bool))]
    for f in fractions:
        if not 0 < f < 1:
            raise InputError(f"fractions must be in the interval (0, 1) but got {f}")
        out.append((f"drop smallest {f:.0%}", "drop_smallest", flops > np.quantile(flops, f)))
        out.append((f"drop largest {f:.0%}", "drop_largest", flops < np.quantile(flops, 1 - f)))
    budgets = budget_groups(flops, resolution)
    for budget in np.unique(budgets):
        if np.sum(budgets == budget) >= min_budget_runs:
            out.append((f"drop budget {budget:.2g}", "drop_budget", budgets != budget))
    return [v for v in out if v[2].sum() >= MIN_RUNS]


def run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """Fit one subset and allocate at the target budget; the unit of work of :func:`sensitivity`."""
    from .inference import fit

    kept = task["runs"][task["mask"]].reset_index(drop=True)
    result = fit(kept, task["card"], method=task["method"], seed=task["seed"], **task["fit_kwargs"])
    row = result.allocate([task["budget"]], level=task["level"]).iloc[0]
    return {"variant": task["label"], "kind": task["kind"], "n_runs": len(kept),
            "dropped": int(len(task["mask"]) - task["mask"].sum()),
            "min_flops": float(kept["flops"].min()), "max_flops": float(kept["flops"].max()),
            **{k: float(v) for k, v in row.items() if k.startswith(_QUANTITIES) or k == "compute"},
            "diagnostics_ok": fit_ok(result)}


def sensitivity(
    runs: pd.DataFrame,
    card: str | ModelCard = "chinchilla",
    *,
    budget: float | str = 5.76e23,
    method: str = "nuts",
    fractions: Sequence[float] = (0.2,),
    resolution: float = 0.25,
    min_budget_runs: int = 3,
    level: float = 0.9,
    seed: int = 0,
    executor: Any = None,
    workers: int | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Refit on subsets of the runs and report the compute-optimal allocation at ``budget``.

    Parameters
    ----------
    runs : DataFrame
        Validated run table.
    card : str or ModelCard, default "chinchilla"
    budget : float or str, default 5.76e23
        Target compute budget in FLOPs (Chinchilla's by default).
    method : {"nuts", "huber"}, default "nuts"
    fractions, resolution, min_budget_runs
        Which subsets; see :func:`variants`.
    level : float, default 0.9
        Level of the intervals.
    seed : int, default 0
        Seed of every fit.
    executor, workers
        Where the fits run; see :func:`bayes_scaling.executor.map_fits`.
    fit_kwargs : mapping, optional
        Passed to :func:`bayes_scaling.fit` (``chains``, ``warmup``, ``draws``, ``bootstrap``).

    Returns
    -------
    DataFrame
        One row per variant: ``variant``, ``kind`` (``all``, ``drop_smallest``,
        ``drop_largest``, ``drop_budget``), ``n_runs``, ``dropped``, ``min_flops``,
        ``max_flops``, ``compute`` (the budget), the median and ``_lo``/``_hi`` bounds of
        ``params_opt`` (parameters), ``tokens_opt`` (tokens), ``tokens_per_param`` and
        ``loss_opt`` (nats/token), ``params_ratio`` (median N_opt over the all-runs
        median) and ``diagnostics_ok`` (see :func:`bayes_scaling.backtesting.fit_ok`).
    """
    card = card if isinstance(card, ModelCard) else load_card(card)
    target = float(as_budgets(budget)[0])
    subsets = variants(runs, fractions=fractions, resolution=resolution, min_budget_runs=min_budget_runs)
    tasks = [{"runs": runs, "mask": mask, "label": label, "kind": kind, "card": card, "method": method,
              "budget": target, "level": level, "seed": seed, "fit_kwargs": dict(fit_kwargs or {})}
             for label, kind, mask in subsets]
    table = pd.DataFrame(map_fits(run_task, tasks, executor=executor, workers=workers))
    table["params_ratio"] = table["params_opt"] / table["params_opt"].iloc[0]
    table.attrs.update({"level": level, "budget": target, "card": card.name, "method": method})
    return table


__all__ = ["run_task", "sensitivity", "variants"]
