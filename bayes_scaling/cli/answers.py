"""CLI verbs that answer questions from a saved fit: allocate, predict, decide, report.

``allocate``, ``predict`` and ``decide`` read the fit with h5py alone
(:func:`bayes_scaling.fitfile.read_fit`) and compute with numpy, through the same
functions as the Python API: they answer in well under a second, where importing JAX,
ArviZ and pandas would take several. Only ``decide --next-run-budget`` imports JAX
(to simulate outcomes with NumPyro's distributions); ``report`` loads the full fit.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..errors import InputError
from ..units import format_quantity
from ._shared import (
    FormatOpt,
    LevelOpt,
    _check_format,
    _fmt_interval,
    _interval,
    _json,
    _print_table,
    _report_diagnostics,
    app,
    console,
    say,
)
from .checks import check_open_interval, check_positive, check_seed

if TYPE_CHECKING:
    from ..tables import Table


@app.command()
def allocate(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    budget: Annotated[list[str], typer.Option(help="Compute budget in FLOPs (e.g. 5.76e23), repeatable.")],
    level: LevelOpt = 0.9,
    group: Annotated[
        str | None, typer.Option(help="For a pooled (hierarchical) fit: the group whose parameters to use.")
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Compute-optimal parameters, tokens, tokens/param and loss for each budget (C = 6 N D)."""
    from ..allocation import QUANTITIES, allocation
    from ..fitfile import read_fit

    _check_format(fmt)
    arrays = read_fit(fit_file)
    task = arrays.card.task is not None
    if task:
        from ..task_prediction import task_allocation

        table = task_allocation(arrays, budget, level=level)
    else:
        table = allocation(arrays, budget, level=level, group=group)
    extra = ("metric_opt", "metric_opt_predictive") if task else ()
    if fmt == "json":
        _json([{"compute": float(r["compute"]), **{q: _interval(r, q) for q in (*QUANTITIES, *extra)},
                **({"metric_name": table.attrs["metric"]} if task else {}), "level": level}
               for r in table.rows()])
    elif fmt == "csv":
        sys.stdout.write(table.to_csv())
    else:
        rows = [[f"{r['compute']:.3g}", _fmt_interval(r, "params_opt"), _fmt_interval(r, "tokens_opt"),
                 _fmt_interval(r, "tokens_per_param", "ratio"), _fmt_interval(r, "loss_opt", "loss"),
                 *[_fmt_interval(r, q, "loss") for q in extra]] for r in table.rows()]
        via = arrays.card.task.via if arrays.card.task is not None else None
        loss_header = f"{via} (law)" if via else "loss (nats/token)"
        _print_table(f"Compute-optimal allocation (median [{level:.0%} interval]), C = 6·N·D",
                     ["compute (FLOPs)", "parameters N", "tokens D", "tokens / param", loss_header,
                      *([f"{table.attrs['metric']} (law)", f"{table.attrs['metric']} (one run)"] if task else [])],
                     rows)


@app.command()
def predict(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    params: Annotated[list[str], typer.Option(help="Model size in parameters (e.g. 70B), repeatable.")],
    tokens: Annotated[list[str], typer.Option(help="Training tokens (e.g. 1.4T), repeatable.")],
    level: LevelOpt = 0.9,
    seed: Annotated[int, typer.Option(help="Seed of the simulated observation noise.")] = 0,
    group: Annotated[
        str | None, typer.Option(help="For a pooled (hierarchical) fit: the group whose parameters to use.")
    ] = None,
    covariate: Annotated[list[str] | None, typer.Option(
        help="The law's other inputs as COLUMN=VALUE, repeatable (e.g. experts=64 for the moe card; "
             "unique_tokens=300B for data-constrained).")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Predicted loss at (N, D): the law's credible interval and a single run's predictive interval."""
    from ..allocation import prediction
    from ..fitfile import read_fit

    _check_format(fmt)
    check_seed(seed)
    covariates = _covariates(covariate)
    arrays = read_fit(fit_file)
    task = arrays.card.task is not None
    if task:
        from ..task_prediction import task_prediction

        if covariates or group is not None:
            raise InputError("--covariate and --group are for loss fits; a task fit predicts from params and tokens")
        table = task_prediction(arrays, params, tokens, level=level, seed=seed)
    else:
        table = prediction(arrays, params, tokens, level=level, seed=seed, group=group, covariates=covariates)
    extra = ("metric", "metric_predictive") if task else ()
    if fmt == "json":
        items = [{"params": float(r["params"]), "tokens": float(r["tokens"]),
                  **{k: float(r[k]) for k in covariates}, "loss": _interval(r, "loss"),
                  "loss_predictive": _interval(r, "loss_predictive"),
                  **{q: {**_interval(r, q), "level": level} for q in extra},
                  **({"metric_name": table.attrs["metric"], "via": table.attrs["via"]} if task else {}),
                  "level": level} for r in table.rows()]
        _json(items[0] if len(items) == 1 else items)
    elif fmt == "csv":
        sys.stdout.write(table.to_csv())
    else:
        rows = [[format_quantity(r["params"]), format_quantity(r["tokens"]),
                 *(f"{r[k]:g}" for k in covariates), f"{r['flops']:.3g}",
                 _fmt_interval(r, "loss", "loss"), _fmt_interval(r, "loss_predictive", "loss"),
                 *[_fmt_interval(r, q, "loss") for q in extra]] for r in table.rows()]
        what = f"{table.attrs['via']} and {table.attrs['metric']}" if task else "loss, nats/token"
        _print_table(f"Predicted {what} (median [{level:.0%} interval])",
                     ["parameters N", "tokens D", *covariates, "compute (FLOPs)", "law L(N, D)",
                      "one run (with noise)", *(["accuracy (law)", "accuracy (one run)"] if task else [])], rows)


def _covariates(items: list[str] | None) -> dict[str, list[str]]:
    """``--covariate experts=8 --covariate experts=64`` as ``{"experts": ["8", "64"]}``."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"--covariate wants COLUMN=VALUE (e.g. experts=64) but got {item!r}")
        out.setdefault(name.strip(), []).append(value.strip())
    return out


_DECISION_COLUMNS = {
    "best_plan": ("compute", "plan", "params", "tokens", "tokens_per_param", "inference_flops", "expected_loss",
                  "loss", "criterion", "delta_criterion", "delta_expected"),
    "cheapest_compute": ("target_loss", "prob", "compute", "params", "tokens", "tokens_per_param",
                         "inference_flops", "prob_achieved"),
    "target_probability": ("plan", "params", "tokens", "training_flops", "inference_flops", "target_loss", "prob",
                           "prob_se"),
    "compare_plans": ("plan", "compute", "expected_loss", "prob_best", "diff", "regret", "best_params", "best_tokens"),
    "next_run": ("rank", "plan", "flops", "width_now", "width_after", "shrinkage", "shrinkage_per_flop", "ess"),
    "next_batch": ("step", "plan", "flops", "total_flops", "width_after", "shrinkage", "gain", "ess"),
}
_DECISION_TITLES = {
    "best_plan": "Best plan per budget (loss in nats/token; deltas vs the chosen / risk-neutral plan)",
    "cheapest_compute": "Cheapest compute reaching the target loss with the given probability",
    "target_probability": "Chance of reaching the target loss",
    "compare_plans": "Plans compared (diff: loss minus the first plan's; regret: vs the best plan of equal cost)",
    "next_run": "Next run: expected shrinkage of the N_opt interval (ln hi/lo) at the target budget",
    "next_batch": "Next batch, chosen jointly: expected N_opt interval (ln hi/lo) after the runs so far",
}

_METRIC_TITLES = {
    "best_plan": "Best plan per budget (accuracy, higher is better; deltas vs the chosen / risk-neutral plan, <= 0)",
    "cheapest_compute": "Cheapest compute reaching the target accuracy with the given probability",
    "target_probability": "Chance of reaching the target accuracy (P(accuracy >= target))",
    "compare_plans": "Plans compared on accuracy (diff: accuracy minus the first plan's; regret: accuracy given up "
                     "vs the best plan of equal cost)",
}


def _decision_cell(table: Table, row: dict[str, Any], col: str) -> str:
    value = row[col]
    if isinstance(value, str):
        return value
    if col in ("params", "tokens", "best_params", "best_tokens"):
        return format_quantity(value)
    if col in ("compute", "training_flops", "inference_flops", "flops", "total_flops", "shrinkage_per_flop"):
        return f"{value:.3g}"
    if col in ("rank", "step", "ess"):
        return f"{value:.0f}"
    text = f"{value:.4f}" if col not in ("tokens_per_param",) else f"{value:.1f}"
    if f"{col}_lo" in table:
        text += f" [{row[f'{col}_lo']:.4f}, {row[f'{col}_hi']:.4f}]"
    return text


@app.command()
def decide(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    budget: Annotated[list[str] | None, typer.Option(
        help="Compute budget in FLOPs (lifetime FLOPs with --inference-tokens), repeatable: best plan.")] = None,
    risk: Annotated[str, typer.Option(help="Criterion of the chosen plan: mean, quantile:0.9 or cvar:0.9.")] = "mean",
    target_loss: Annotated[float | None, typer.Option(
        help="Target loss (nats/token): cheapest compute reaching it, and each plan's chance.")] = None,
    target_metric: Annotated[float | None, typer.Option(
        help="Task fits: target accuracy in (0, 1), higher is better: cheapest compute reaching it, and each "
             "plan's chance.")] = None,
    prob: Annotated[float, typer.Option(help="Probability of reaching --target-loss (or --target-metric).")] = 0.9,
    plan: Annotated[
        list[str] | None, typer.Option(help="Plan PARAMS:TOKENS (e.g. 70B:1.4T), repeatable: compare plans.")
    ] = None,
    max_params: Annotated[str | None, typer.Option(help="Most parameters a plan may have (e.g. 70B).")] = None,
    max_tokens: Annotated[str | None, typer.Option(help="Most training tokens available (e.g. 2T).")] = None,
    inference_tokens: Annotated[str, typer.Option(
        help="Tokens the model will generate in service; adds 2·N FLOPs per token to the cost.")] = "0",
    next_run_budget: Annotated[str | None, typer.Option(
        help="FLOPs of a candidate small run: rank runs by how much they pin down N_opt "
             "at the first --budget.")] = None,
    next_batch: Annotated[int, typer.Option(
        help="With --next-run-budget: also choose a batch of this many runs jointly (greedily, each given the "
             "ones before it).")] = 1,
    batch_budget: Annotated[str | None, typer.Option(
        help="With --next-batch: most FLOPs the whole batch may spend.")] = None,
    noise: Annotated[bool, typer.Option(
        "--noise/--no-noise", help="Judge one run's loss (law x observation noise) or the law's.")] = True,
    group: Annotated[str | None, typer.Option(help="For a pooled fit: the group whose parameters to use.")] = None,
    level: LevelOpt = 0.9,
    seed: Annotated[int, typer.Option(help="Seed of the simulated observation noise.")] = 0,
    fmt: FormatOpt = "table",
) -> None:
    """Risk-aware decisions: best plan for a budget, cheapest way to a target, plan comparison, next run."""
    from ..decisions import Constraints, decide_tables
    from ..fitfile import read_fit

    _check_format(fmt)
    check_seed(seed)
    check_open_interval(prob, "--prob")
    if target_loss is not None:
        check_positive(target_loss, "--target-loss")
    limits = Constraints(max_params=max_params or math.inf, max_tokens=max_tokens or math.inf,
                         inference_tokens=inference_tokens)
    answers = decide_tables(read_fit(fit_file), budgets=budget, risk=risk, target_loss=target_loss, prob=prob,
                            plans=plan or (), constraints=limits, next_run_budget=next_run_budget,
                            next_batch=next_batch, batch_budget=batch_budget, level=level,
                            noise=noise, seed=seed, group=group, target_metric=target_metric)
    if fmt == "json":
        _json({name: {"assumptions": dict(t.attrs), "rows": t.rows()} for name, t in answers.items()})
        return
    for name, table in answers.items():
        notes = [f"{k}: {v}" for k, v in table.attrs.items()]
        if fmt == "csv":
            sys.stdout.write("\n".join([f"# {name}", *(f"# {n}" for n in notes), table.to_csv()]))
            continue
        metric = "direction" in table.attrs  # a task fit: answers about accuracy
        columns = [c.replace("loss", "metric") if metric else c for c in _DECISION_COLUMNS[name]]
        cols = [c for c in columns if c in table and not (c == "inference_flops" and not table[c].any())]
        rows = [[_decision_cell(table, r, c) for c in cols] for r in table.rows()]
        _print_table(_METRIC_TITLES.get(name, _DECISION_TITLES[name]) if metric else _DECISION_TITLES[name],
                     cols, rows)
        console.print(escape("assumptions: " + "; ".join(notes)), highlight=False, soft_wrap=True)


@app.command()
def report(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="A fit saved by `bayes-scaling fit`.")],
    out: Annotated[Path, typer.Option(help="HTML page to write (report.html); <stem>.json and .md go beside it.")],
    budget: Annotated[list[str] | None, typer.Option(
        help="Budget in FLOPs for the headline table, repeatable (default: largest run × 0.1, 1, 10, 100); "
             "given explicitly, the report also shows the best plan for each.")] = None,
    level: LevelOpt = 0.9,
    strict: Annotated[
        bool, typer.Option(help="Exit with status 1 when diagnostics fail (report written anyway).")
    ] = False,
    group: Annotated[str | None, typer.Option(help="For a pooled fit: the group to report on.")] = None,
    risk: Annotated[str | None, typer.Option(
        help="Decision section: criterion of the chosen plan, mean, quantile:0.9 or cvar:0.9.")] = None,
    target_loss: Annotated[float | None, typer.Option(
        help="Decision section: target loss (nats/token), its cheapest compute and each plan's chance.")] = None,
    prob: Annotated[float | None, typer.Option(help="Probability of reaching --target-loss (default 0.9).")] = None,
    plan: Annotated[list[str] | None, typer.Option(
        help="Decision section: plan PARAMS:TOKENS (e.g. 70B:1.4T) to compare, repeatable.")] = None,
    max_params: Annotated[
        str | None, typer.Option(help="Decision section: most parameters a plan may have (e.g. 70B).")
    ] = None,
    max_tokens: Annotated[
        str | None, typer.Option(help="Decision section: most training tokens available (e.g. 2T).")
    ] = None,
    inference_tokens: Annotated[str | None, typer.Option(
        help="Decision section: tokens generated in service; budgets become lifetime FLOPs.")] = None,
    backtest: Annotated[Path | None, typer.Option(
        help="Backtest JSON (`bayes-scaling backtest RUNS --format json > FILE`): "
             "adds its calibration curves and scores.")] = None,
    held_out: Annotated[Path | None, typer.Option(
        help="Task fits: a run table of runs the fit did not see (same metric columns), drawn and scored in the "
             "Task section.")] = None,
) -> None:
    """Write a self-contained HTML report of a fit (no network needed to view it), plus JSON and markdown.

    With --budget, --risk, --target-loss, --plan or a limit the report gains a Decision
    section (the answers of `bayes-scaling decide` for the report's budgets).
    """
    import time

    from ..decisions import Constraints
    from ..report import DecisionRequest, backtest_records, check_report_outputs, write_report
    from ..tables import check_level

    # Checked before the fit is loaded: options, the three outputs, the backtest file.
    check_level(level)
    if prob is not None and target_loss is None:
        raise InputError("--prob is the chance of reaching --target-loss: give a target loss too")
    if prob is not None:
        check_open_interval(prob, "--prob")
    if target_loss is not None:
        check_positive(target_loss, "--target-loss")
    check_report_outputs(out, option="--out", inputs=[p for p in (fit_file, backtest, held_out) if p is not None])
    records = backtest_records(backtest) if backtest is not None else None
    if budget:
        from ..allocation import as_budgets

        as_budgets(budget)
    asked = [budget, risk, target_loss, plan, max_params, max_tokens, inference_tokens]
    decision = None if all(a is None for a in asked) else DecisionRequest(
        risk=risk or "mean", target_loss=target_loss, prob=0.9 if prob is None else prob, plans=plan or (),
        constraints=Constraints(max_params=max_params or math.inf, max_tokens=max_tokens or math.inf,
                                inference_tokens=inference_tokens or 0.0))
    from ..fitted import Fit

    result = Fit.load(fit_file)
    if result.card.task is not None and result.card.task.kind == "direct":
        raise InputError(f"{fit_file}: a task-direct fit observes no intermediate metric, which the report's "
                         "sections plot; report a task-chain fit, or use predict, allocate and decide on this one")
    extra = None
    if held_out is not None:  # checked before any figure: a task fit, a table with its columns
        from ..data import load_runs
        from ..task_model import task_columns

        if result.card.task is None:
            raise InputError(f"--held-out: for task fits; {fit_file} is a fit of card {result.card.name!r}, "
                             "whose report has no task section")
        extra = load_runs(held_out, require_loss=False, min_runs=1, require_spread=False)
        task_columns(extra, result.card.task)
    start = time.perf_counter()
    page = write_report(result, out, budget or None, level, group=group, decision=decision, backtest=records,
                        held_out=extra)
    say(f"wrote {page}, {page.with_suffix('.json').name} and {page.with_suffix('.md').name} "
        f"({time.perf_counter() - start:.1f} s)")
    sys.stdout.write(f"{page}\n")
    _report_diagnostics(result.diagnostics(), strict)
