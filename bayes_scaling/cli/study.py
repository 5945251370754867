"""CLI verbs that design a study before running it: plan, score-design.

Both judge runs by the expected posterior width of what the team will decide, N_opt and
the loss at the target budget (:mod:`bayes_scaling.decisions.design`), under the card's
prior or an existing fit's posterior. Every option is checked before any computation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InputError
from ..units import format_quantity, parse_quantity
from ._shared import FormatOpt, LevelOpt, _check_format, _json, _print_table, app, console, say
from .checks import check_count, check_seed

if TYPE_CHECKING:
    from ..tables import Table

PriorFitOpt = Annotated[Path | None, typer.Option(
    help="A fit saved by `bayes-scaling fit` whose posterior is the prior of the study (default: the card's prior).")]
CardOpt = Annotated[str | None, typer.Option(help="Card whose prior the study starts from (default chinchilla).")]
ScenariosOpt = Annotated[int, typer.Option(help="Truths drawn from the prior (or the fit) to judge designs on.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the truths and of the simulated studies.")]


def _source(prior_fit: Path | None, card: str | None) -> tuple[Any, Any]:
    """(fit arrays or None, card or None), the options checked."""
    from ..cards import load_card
    from ..fitfile import read_fit

    if prior_fit is not None and card is not None:
        raise InputError("give --prior-fit (its card comes with it) or --card, not both")
    if prior_fit is not None:
        return read_fit(prior_fit), None
    return None, load_card(card or "chinchilla")


def _budget(value: str, option: str) -> float:
    budget = parse_quantity(value, what=option)
    if not 0 < budget < float("inf"):
        raise InputError(f"{option} must be a finite, positive number of FLOPs but got {value!r}")
    return budget


@app.command()
def plan(
    target_budget: Annotated[str, typer.Option(help="FLOPs of the large run the study prepares (e.g. 1e24).")],
    study_budget: Annotated[str, typer.Option(help="Most FLOPs the study's runs may cost in all, 6·N·D summed.")],
    prior_fit: PriorFitOpt = None,
    card: CardOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write the design here (.csv), for `score-design`.")] = None,
    min_params: Annotated[str, typer.Option(help="Smallest model size N (parameters).")] = "10M",
    max_params: Annotated[str | None, typer.Option(help="Largest model size N (default: the budget's).")] = None,
    min_tokens_per_param: Annotated[float, typer.Option(help="Smallest D / N of a run.")] = 1.0,
    max_tokens_per_param: Annotated[float, typer.Option(help="Largest D / N of a run.")] = 1000.0,
    max_runs: Annotated[int, typer.Option(help="Most runs in the study.")] = 63,
    objective: Annotated[str, typer.Option(
        help="What to narrow: n_opt (N_opt's interval), loss (the loss's at the target) or both.")] = "both",
    level: LevelOpt = 0.9,
    scenarios: ScenariosOpt = 64,
    seed: SeedOpt = 0,
    fmt: FormatOpt = "table",
) -> None:
    """Design a study: runs within the study budget and limits that pin down N_opt and the loss at the target.

    Prints the design beside the standard IsoFLOP grid of the same cost, with both designs'
    expected interval widths (Laplace pre-posterior over truths drawn from the prior).
    """
    from ..decisions.design import OBJECTIVES, DesignLimits, check_design_output, plan_study, write_design
    from ..tables import check_level

    _check_format(fmt)
    check_seed(seed)
    check_count(scenarios, "--scenarios", 2)
    check_level(level, "--level")
    target, budget = _budget(target_budget, "--target-budget"), _budget(study_budget, "--study-budget")
    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)} but got {objective!r}")
    limits = DesignLimits.parse(min_params, float("inf") if max_params is None else max_params,
                                min_tokens_per_param, max_tokens_per_param, max_runs)
    if budget >= target:
        raise InputError(f"--study-budget ({budget:.3g} FLOPs) must be below --target-budget ({target:.3g})")
    if out is not None:
        check_design_output(out, inputs=[prior_fit] if prior_fit is not None else [])
    source, the_card = _source(prior_fit, card)
    tables = plan_study(target, budget, source, card=the_card, limits=limits, objective=objective, level=level,
                        scenarios_count=scenarios, seed=seed)
    if out is not None:
        say(f"wrote {write_design(tables['design'], out)}")
    if fmt == "json":
        _json({"assumptions": dict(tables["widths"].attrs),
               **{name: tables[name].rows() for name in ("design", "isoflop", "widths")}})
    elif fmt == "csv":
        sys.stdout.write(tables["design"].to_csv())
    else:
        _print_runs("Planned study", tables["design"])
        _print_grid(tables["isoflop"])
        _print_widths(tables["widths"], level)
        console.print("assumptions: " + "; ".join(f"{k}: {v}" for k, v in tables["widths"].attrs.items()),
                      highlight=False, soft_wrap=True, markup=False)


@app.command("score-design")
def score_design(
    design: Annotated[Path, typer.Argument(help="Design CSV (params, tokens; as `plan --out` writes).")],
    target_budget: Annotated[str | None, typer.Option(
        help="FLOPs of the large run (default: the design file's target_budget column).")] = None,
    prior_fit: PriorFitOpt = None,
    card: CardOpt = None,
    level: LevelOpt = 0.9,
    scenarios: ScenariosOpt = 64,
    seed: SeedOpt = 0,
    fmt: FormatOpt = "table",
) -> None:
    """Expected intervals of N_opt and of the loss at the target budget after a study, and their calibration."""
    from ..decisions.design import read_design
    from ..decisions.design import score_design as score
    from ..tables import check_level

    _check_format(fmt)
    check_seed(seed)
    check_count(scenarios, "--scenarios", 2)
    check_level(level, "--level")
    runs = read_design(design)
    if target_budget is not None:
        target = _budget(target_budget, "--target-budget")
    elif runs["target_budget"] is not None:
        target = runs["target_budget"]
    else:
        raise InputError(f"--target-budget is needed: design {design} has no target_budget column")
    source, the_card = _source(prior_fit, card)
    table = score(runs["params"], runs["tokens"], target, source, card=the_card, level=level,
                  scenarios_count=scenarios, seed=seed)
    if fmt == "json":
        _json({"assumptions": dict(table.attrs), "rows": table.rows()})
    elif fmt == "csv":
        sys.stdout.write(table.to_csv())
    else:
        rows = [[r["quantity"], f"{r['width_now']:.3f}", f"{r['width']:.3f} [{r['width_lo']:.3f}, "
                 f"{r['width_hi']:.3f}]", f"{r['ratio']:.3g}", f"{r['coverage']:.0%}"] for r in table.rows()]
        _print_table(f"Expected {level:.0%} intervals after the study ({table.attrs['runs']} runs, "
                     f"{table.attrs['flops']:.3g} FLOPs), target {target:.3g} FLOPs",
                     ["quantity", "ln(hi/lo) now", "ln(hi/lo) after [10%, 90% of truths]", "hi/lo after",
                      f"coverage (nominal {level:.0%})"], rows)
        console.print("assumptions: " + "; ".join(f"{k}: {v}" for k, v in table.attrs.items()),
                      highlight=False, soft_wrap=True, markup=False)


def _print_runs(title: str, table: Table) -> None:
    rows = [[r["name"], format_quantity(r["params"]), format_quantity(r["tokens"]),
             f"{r['tokens'] / r['params']:.1f}", f"{r['flops']:.3g}"] for r in table.rows()]
    _print_table(f"{title}: {len(rows)} runs, {sum(table['flops']):.3g} FLOPs",
                 ["run", "parameters N", "tokens D", "tokens / param", "FLOPs (6·N·D)"], rows)


def _print_grid(table: Table) -> None:
    import numpy as np

    budget = np.round(np.log10(table["flops"]), 6)  # 6 N D of rounded N equals its budget to ~1e-16
    rows = []
    for c in np.unique(budget):
        at = table["params"][budget == c]
        rows.append([f"{10**c:.3g}", str(at.size), format_quantity(at.min()), format_quantity(at.max())])
    _print_table(f"Standard IsoFLOP grid of the same cost: {len(table)} runs, {sum(table['flops']):.3g} FLOPs",
                 ["budget (FLOPs)", "runs", "smallest N", "largest N"], rows)


def _print_widths(table: Table, level: float) -> None:
    import math

    rows = [[r["design"], str(r["runs"]), f"{r['flops']:.3g}", f"{r['width_n_opt']:.3f}",
             f"{math.exp(r['width_n_opt']):.3g}", f"{r['width_loss_opt']:.4f}"] for r in table.rows()]
    _print_table(f"Expected {level:.0%} interval widths at the target budget (mean over truths)",
                 ["design", "runs", "FLOPs", "N_opt ln(hi/lo)", "N_opt hi/lo", "loss ln(hi/lo)"], rows)
