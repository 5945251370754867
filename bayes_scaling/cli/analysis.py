"""CLI verbs that run many fits: compare (PSIS-LOO), backtest, sensitivity, compare-arms."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..diagnostics import BOOTSTRAP_CONVERGED_MIN
from ..errors import InputError
from ..units import format_quantity
from ._shared import (
    ChainsOpt,
    ColumnOpt,
    DrawsOpt,
    FormatOpt,
    LevelOpt,
    ParamCountOpt,
    RunsArg,
    SchedulerOpt,
    TargetAcceptOpt,
    WarmupOpt,
    WorkersOpt,
    _check_format,
    _columns,
    _fmt_interval,
    _json,
    _print_table,
    app,
    say,
    warn,
)
from .checks import (
    check_count,
    check_covariates,
    check_figure_output,
    check_open_interval,
    check_positive,
    check_sampler,
    save_figure,
)


@app.command()
def compare(
    runs: RunsArg,
    card: Annotated[
        list[str], typer.Option(help="Model card to fit and compare (name or .toml path), repeatable; at least two.")
    ],
    seed: Annotated[int, typer.Option(help="Random seed of every fit.")] = 0,
    chains: ChainsOpt = 4,
    warmup: WarmupOpt = 1000,
    draws: DrawsOpt = 1000,
    target_accept: TargetAcceptOpt = 0.9,
    param_count: ParamCountOpt = "total",
    column: ColumnOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Fit each card by NUTS and rank them by PSIS-LOO (ELPD on log loss, with standard errors and k-hat)."""
    from ..cards import load_card
    from ..data import load_runs

    _check_format(fmt)
    check_sampler(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept, seed=seed,
                  param_count=param_count)
    if len(card) < 2:
        raise InputError(f"compare needs at least two cards (--card, repeatable) but got {len(card)}")
    table = load_runs(runs, _columns(column))
    cards = [load_card(c) for c in card]  # every card checked before the first fit
    check_covariates(table, cards, param_count)
    from ..comparison import compare_cards

    say(f"fitting {len(table)} runs from {runs} with cards {', '.join(card)}")
    result = compare_cards(table, cards, chains=chains, warmup=warmup, draws=draws, seed=seed,
                           target_accept=target_accept, param_count=param_count)
    for name, row in result.iterrows():
        if row["warning"]:
            warn(f"{name}: {row['warning']}")
    if fmt == "json":
        _json(result.reset_index().to_dict(orient="records"))
    elif fmt == "csv":
        sys.stdout.write(result.to_csv())
    else:
        rows = [[str(name), f"{r['elpd_loo']:.1f} ± {r['se']:.1f}", f"{r['elpd_diff']:.1f} ± {r['se_diff']:.1f}",
                 f"{r['p_loo']:.1f}", f"{r['weight']:.2f}", f"{r['khat_bad_share']:.0%}",
                 "yes" if r["converged"] else "NO"] for name, r in result.iterrows()]
        _print_table("PSIS-LOO comparison (ELPD of log loss, nats; best first)",
                     ["card", "ELPD-LOO ± SE", "difference ± SE", "p_loo", "weight", "k̂ > 0.7", "converged"], rows)


@app.command()
def backtest(
    runs: RunsArg,
    cutoff: Annotated[list[str] | None, typer.Option(
        help="Compute cutoff in FLOPs: fit runs with flops <= cutoff, predict the rest; repeatable.")] = None,
    max_params: Annotated[list[str] | None, typer.Option(
        help="Size split in parameters: fit runs with params <= this, predict the larger models; repeatable. "
             "Give --cutoff, --max-params or both.")] = None,
    card: Annotated[list[str] | None, typer.Option(help="Model card (name or .toml path), repeatable.")] = None,
    method: Annotated[list[str] | None, typer.Option(
        help="nuts and/or huber (approach 3 + bootstrap), repeatable; default both.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of every fit and of the predictive noise.")] = 0,
    chains: ChainsOpt = 4,
    warmup: WarmupOpt = 1000,
    draws: DrawsOpt = 1000,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per huber fit.")] = 200,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    plot: Annotated[Path | None, typer.Option(
        help="Also save the calibration curves (nominal vs empirical coverage) to this image.")] = None,
    column: ColumnOpt = None,
    metric: Annotated[str | None, typer.Option(
        help="Task cards: the accuracy column to predict (e.g. hellaswag_acc); scores in accuracy points, "
             "beside the point two-step fit.")] = None,
    via: Annotated[str | None, typer.Option(
        help="Task cards: the intermediate metric column (e.g. hellaswag_bpb).")] = None,
    chance: Annotated[float | None, typer.Option(
        help="Task cards: chance accuracy (1 / choices); known benchmarks have one.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Fit on the runs below each compute cutoff (or model size) and score the predictions of the runs above it."""
    from ..allocation import as_budgets
    from ..cards import load_card
    from ..data import load_runs
    from ..report.analysis_figures import plot_calibration

    _check_format(fmt)
    if metric is not None or via is not None or chance is not None:
        for name, given in (("--method", method and method != ["nuts"]), ("--scheduler", scheduler),
                            ("--workers", workers), ("--plot", plot)):
            if given:
                raise InputError(f"{name}: not for a task backtest (--metric), which fits each split by NUTS, one "
                                 "at a time, beside the point two-step fit")
        _backtest_task(runs, cutoff=cutoff, max_params=max_params, cards=card or ["task-chain"], metric=metric,
                       via=via, chance=chance, seed=seed, chains=chains, warmup=warmup, draws=draws, column=column,
                       fmt=fmt)
        return
    methods = method or ["nuts", "huber"]
    for m in methods:
        check_sampler(chains=chains, warmup=warmup, draws=draws, seed=seed, method=m, bootstrap=bootstrap)
    if workers is not None:
        check_count(workers, "--workers")
    check_figure_output(plot, [runs])
    if not cutoff and not max_params:
        raise InputError("give at least one --cutoff (FLOPs) or --max-params (parameters) at which to split the runs")
    cutoffs: list[float] = [float(c) for c in as_budgets(cutoff, what="cutoff")] if cutoff else []
    sizes: list[float] = [float(n) for n in as_budgets(max_params, what="max_params")] if max_params else []
    table = load_runs(runs, _columns(column))
    cards = [load_card(c) for c in card or ["chinchilla"]]
    check_covariates(table, cards)
    from ..backtesting import backtest as run_backtest
    from ..backtesting import split_label

    say(f"backtesting {len(table)} runs from {runs}: cards {', '.join(card or ['chinchilla'])}, "
              f"methods {', '.join(methods)}, splits "
              f"{', '.join([*(f'C <= {c:.3g} FLOPs' for c in cutoffs), *(f'N <= {n:.3g} parameters' for n in sizes)])}")
    result = run_backtest(table, cards, [float(c) for c in cutoffs], max_params=[float(n) for n in sizes],
                          methods=methods, seed=seed,
                          executor=scheduler, workers=workers,
                          fit_kwargs={"chains": chains, "warmup": warmup, "draws": draws, "bootstrap": bootstrap})
    for r in result.records():
        if not r["diagnostics_ok"]:
            advice = (f"fewer than {BOOTSTRAP_CONVERGED_MIN:.0%} of its bootstrap refits converged; inspect the "
                      "runs below the cutoff for outliers (`bayes-scaling fit --method huber`, then `summary`)"
                      if r["method"] == "huber" else
                      "R-hat, bulk ESS, divergences or tree depth; raise --draws/--warmup or inspect it with "
                      "`bayes-scaling fit` and `summary`")
            warn(f"{r['card']} ({r['method']}) fitted on {split_label(r)}: the fit failed its checks: {advice}")
    if plot is not None:
        save_figure(plot_calibration(result), plot)
        say(f"saved calibration curves to {plot}")
    if fmt == "json":
        _json(result.records())
    elif fmt == "csv":
        sys.stdout.write(result.table.to_csv(index=False))
    else:
        rows = [[r["card"], r["method"], split_label(r), str(r["n_train"]), str(r["n_test"]),
                 f"{r['coverage_50']:.0%}", f"{r['coverage_90']:.0%}", f"{r['median_width_90']:.2%}",
                 f"{r['mean_log_pred_density']:.2f}", f"{r['crps']:.4f}", f"{r['median_abs_error']:.4f}"]
                for r in result.records()]
        _print_table("Backtest: fit below each split, predict the larger runs (loss in nats/token)",
                     ["card", "method", "fitted on", "fitted", "held out", "50% covered", "90% covered",
                      "90% width / loss", "mean log density", "CRPS", "median |error|"], rows)


def _backtest_task(runs: Path, *, cutoff: list[str] | None, max_params: list[str] | None, cards: list[str],
                   metric: str | None, via: str | None, chance: float | None, seed: int, chains: int, warmup: int,
                   draws: int, column: list[str] | None, fmt: str) -> None:
    """``backtest --metric``: each task card fitted below each split, the larger runs' accuracy scored."""
    import pandas as pd

    from ..allocation import as_budgets
    from ..backtesting import Split, split_label
    from ..cards import load_card
    from ..data import load_runs
    from ..task_backtest import backtest_task
    from .checks import check_task

    check_sampler(chains=chains, warmup=warmup, draws=draws, seed=seed, method="nuts")
    if not cutoff and not max_params:
        raise InputError("give at least one --cutoff (FLOPs) or --max-params (parameters) at which to split the runs")
    splits = [*(Split("compute", float(c)) for c in (as_budgets(cutoff, what="cutoff") if cutoff else [])),
              *(Split("params", float(n)) for n in (as_budgets(max_params, what="max_params") if max_params else []))]
    table = load_runs(runs, _columns(column), require_loss=False)
    models = [load_card(c) for c in cards]
    for model in models:
        if model.task is None:
            raise InputError(f"--card: {model.name!r} is not a task card; --metric backtests task cards "
                             "(task-chain, task-chain-c4, task-direct)")
        check_task(table, model, metric=metric, via=via, chance=chance)
    check_covariates(table, models)
    say(f"backtesting accuracy {metric or 'of the card'} on {len(table)} runs from {runs}: cards "
        f"{', '.join(cards)}, splits {', '.join(s.label for s in splits)}")
    records, rows = [], []
    for model in models:
        for split in splits:
            train, test = split.divide(table)
            found, per_run = backtest_task(train, test, model, metric=metric, via=via, chance=chance, seed=seed,
                                           fit_kwargs={"chains": chains, "warmup": warmup, "draws": draws},
                                           split=split)
            records += found
            rows.append(per_run)
    for r in records:
        if not r["diagnostics_ok"]:
            warn(f"{r['card']} ({r['method']}) fitted on {split_label(r)}: the fit failed its checks (R-hat, bulk "
                 "ESS, divergences or tree depth); raise --draws/--warmup or inspect it with `bayes-scaling fit`")
    if fmt == "json":
        _json(records)
    elif fmt == "csv":
        sys.stdout.write(pd.concat(rows, ignore_index=True).to_csv(index=False))
    else:
        _print_table("Backtest of accuracy: fit below each split, predict the larger runs (accuracy points)",
                     ["card", "method", "fitted on", "fitted", "held out", "50% covered", "90% covered",
                      "90% width", "CRPS", "median |error|"],
                     [[r["card"], r["method"], split_label(r), str(r["n_train"]), str(r["n_test"]),
                       f"{r['coverage_50']:.0%}", f"{r['coverage_90']:.0%}", f"{r['median_width_90']:.2f}",
                       f"{r['crps']:.3f}", f"{r['median_abs_error']:.2f}"] for r in records])


@app.command()
def sensitivity(
    runs: RunsArg,
    card: Annotated[str, typer.Option(help="Model card: a bundled name or a .toml path.")] = "chinchilla",
    method: Annotated[str, typer.Option(help="nuts (Bayesian posterior) or huber (approach 3 + bootstrap).")] = "nuts",
    budget: Annotated[str, typer.Option(help="Target compute budget in FLOPs at which N_opt is compared.")] = "5.76e23",
    drop_fraction: Annotated[list[float] | None, typer.Option(
        help="Drop this share of the smallest (and, separately, largest) runs by compute; repeatable; "
             "default 0.2.")] = None,
    resolution: Annotated[float, typer.Option(
        help="IsoFLOP budget grouping: width of a budget in decades of compute.")] = 0.25,
    level: LevelOpt = 0.9,
    seed: Annotated[int, typer.Option(help="Random seed of every fit.")] = 0,
    chains: ChainsOpt = 4,
    warmup: WarmupOpt = 1000,
    draws: DrawsOpt = 1000,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per huber fit.")] = 200,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    plot: Annotated[Path | None, typer.Option(help="Also save the N_opt-per-variant figure to this image.")] = None,
    column: ColumnOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Refit without the smallest runs, the largest runs, or one IsoFLOP budget at a time; compare N_opt."""
    from ..allocation import as_budgets
    from ..cards import load_card
    from ..data import load_runs
    from ..tables import check_level

    _check_format(fmt)
    check_sampler(chains=chains, warmup=warmup, draws=draws, seed=seed, method=method, bootstrap=bootstrap)
    check_level(level)
    check_positive(resolution, "--resolution")
    if workers is not None:
        check_count(workers, "--workers")
    for fraction in drop_fraction or []:
        check_open_interval(fraction, "--drop-fraction")
    check_figure_output(plot, [runs])
    as_budgets(budget)
    table = load_runs(runs, _columns(column))
    model = load_card(card)
    check_covariates(table, [model])
    from ..report.analysis_figures import plot_sensitivity
    from ..sensitivity_analysis import sensitivity as run_sensitivity

    say(f"refitting subsets of {len(table)} runs from {runs} with card {card!r}, method {method}")
    result = run_sensitivity(table, model, budget=budget, method=method, fractions=drop_fraction or [0.2],
                             resolution=resolution, level=level, seed=seed, executor=scheduler, workers=workers,
                             fit_kwargs={"chains": chains, "warmup": warmup, "draws": draws, "bootstrap": bootstrap})
    if plot is not None:
        save_figure(plot_sensitivity(result), plot)
        say(f"saved the sensitivity figure to {plot}")
    if fmt == "json":
        _json([{**r, "level": level} for r in result.to_dict(orient="records")])
    elif fmt == "csv":
        sys.stdout.write(result.to_csv(index=False))
    else:
        rows = [[r["variant"], str(r["n_runs"]), f"{r['min_flops']:.2g}–{r['max_flops']:.2g}",
                 _fmt_interval(r, "params_opt"), _fmt_interval(r, "tokens_per_param", "ratio"),
                 f"{r['params_ratio']:.2f}", "yes" if r["diagnostics_ok"] else "NO"] for _, r in result.iterrows()]
        _print_table(f"N_opt at C = {result.attrs['budget']:.3g} FLOPs by fit region (median [{level:.0%} interval])",
                     ["variant", "runs", "compute range", "parameters N_opt", "tokens / param", "vs all runs",
                      "converged"], rows)



#: Columns ``decide`` shows per answer; a column with ``_lo``/``_hi`` siblings shows its interval.


#: First line of a card written by ``calibrate`` (such a file may be replaced by the next run).
CALIBRATED_HEADER = "# Model card written by `bayes-scaling calibrate`"


@app.command()
def calibrate(
    runs: Annotated[list[Path], typer.Argument(
        help="Run tables of past scaling studies (CSV or Parquet with params, tokens or flops, loss); two or more "
             "to learn what transfers between studies.")],
    out: Annotated[Path, typer.Option(help="Where to write the learnt model card (.toml).")],
    card: Annotated[str, typer.Option(
        help="Card whose law and priors to keep (bundled name or .toml path); its discrepancy is replaced.")]
    = "chinchilla",
    exact: Annotated[bool, typer.Option(
        help="Also fit an exact-law twin of each table, so the learnt discrepancy widens intervals at most "
             "1.25x where the law is right (one more fit per table).")] = True,
    seed: Annotated[int, typer.Option(help="Random seed of every fit.")] = 0,
    chains: ChainsOpt = 4,
    warmup: WarmupOpt = 1000,
    draws: DrawsOpt = 1000,
    column: ColumnOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Learn the model discrepancy (how far intervals widen beyond the data) from your own tables of runs.

    Each table is backtested at two compute cutoffs and one model-size split; every
    candidate setting of the discrepancy is scored on all of them by log predictive
    density, and the one that falls least short of the best on every table (least
    root-mean-square regret) is written into a copy of the card with a [calibration]
    record (tables, splits, coverage and density before and after). Use the card with
    `bayes-scaling fit RUNS --card OUT`.
    """
    from ..calibration import calibrate as learn
    from ..cards import load_card
    from ..data import load_runs
    from ..files import check_output, write_atomically
    from ..nuts import Schedule

    _check_format(fmt)
    check_sampler(chains=chains, warmup=warmup, draws=draws, seed=seed, method="nuts", bootstrap=1)
    if len(set(runs)) != len(runs):
        raise InputError("calibrate: a run table is given twice; give each study's table once")
    target = check_output(out, option="--out", what="calibrated card", example="my-card.toml", suffixes=(".toml",),
                          inputs=runs, is_ours=lambda p: p.read_text(encoding="utf-8", errors="replace")
                          .startswith(CALIBRATED_HEADER))
    base = load_card(card)
    names = [str(p.stem) for p in runs]
    if len(set(names)) != len(names):
        names = [str(p) for p in runs]
    tables = {name: load_runs(path, _columns(column)) for name, path in zip(names, runs, strict=True)}
    for table in tables.values():
        check_covariates(table, [base])
    say(f"calibrating card {base.name!r} on {len(tables)} table(s): {', '.join(names)}")
    result = learn(tables, base, exact=exact, seed=seed, schedule=Schedule(chains, warmup, draws, 0.9))
    text = f"{CALIBRATED_HEADER} from {', '.join(names)}\n" + result.card.text
    write_atomically({target: lambda tmp: tmp.write_text(text, encoding="utf-8")})
    say(f"saved the calibrated card to {target}")
    say(f"learnt: {result.setting.describe()}")
    rows = [[r["table"], r["split"], str(int(r["n_test"])), f"{b['coverage_90']:.0%} -> {r['coverage_90']:.0%}",
             f"{b['coverage_50']:.0%} -> {r['coverage_50']:.0%}",
             f"{b['mean_log_pred_density']:.2f} -> {r['mean_log_pred_density']:.2f}"]
            for (_, r), (_, b) in zip(result.after.iterrows(), result.before.iterrows(), strict=True)]
    if fmt == "json":
        _json({"card": str(target), "setting": result.setting.to_dict(), "calibration": result.card.calibration})
    elif fmt == "csv":
        sys.stdout.write(result.after.to_csv(index=False))
    else:
        _print_table(f"Backtests before (card {base.name!r}) -> after (learnt)",
                     ["table", "split", "held out", "90% covered", "50% covered", "log pred. density"], rows)


@app.command("compare-arms")
def compare_arms(
    runs: RunsArg,
    by: Annotated[str, typer.Option(help="Column naming each run's arm (data mix, tokeniser, architecture).")],
    budget: Annotated[list[str], typer.Option(help="Compute budget in FLOPs at which to rank the arms, repeatable.")],
    card: Annotated[str, typer.Option(help="Model card: a pooled card (default arms: hierarchical, non-centred) fits "
                                           "the arms jointly, any other card fits each arm on its own.")
                    ] = "arms",
    seed: Annotated[int, typer.Option(help="Random seed of the fits.")] = 0,
    chains: ChainsOpt = 4,
    warmup: WarmupOpt = 1000,
    draws: DrawsOpt = 1000,
    target_accept: TargetAcceptOpt = 0.9,
    level: LevelOpt = 0.9,
    plot: Annotated[Path | None, typer.Option(help="Also save the arms' frontiers with bands to this image.")] = None,
    column: ColumnOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Which arm gives the lowest loss at each budget (each at its own compute-optimal plan), and where that flips."""
    from ..allocation import as_budgets
    from ..arms import MIN_ARM_RUNS, arm_labels
    from ..cards import GROUP_COLUMN, load_card
    from ..data import load_runs, source_columns
    from ..errors import RunTableError
    from ..report.analysis_figures import plot_arm_frontiers

    _check_format(fmt)
    check_sampler(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept, seed=seed)
    check_open_interval(level, "--level")
    check_figure_output(plot, [runs])
    budgets = as_budgets(budget)
    columns = _columns(column)
    if by != GROUP_COLUMN:
        found = source_columns(runs)
        if by not in found:
            raise InputError(f"--by: {runs} has no column {by!r} to split the runs into arms; its columns are {found}")
        columns[GROUP_COLUMN] = by
    table = load_runs(runs, columns)
    try:
        arms = arm_labels(table, GROUP_COLUMN, min_runs=MIN_ARM_RUNS)
    except RunTableError as exc:
        raise InputError(f"--by {by}: {str(exc).replace(repr(GROUP_COLUMN), repr(by))}") from None
    fitted_card = load_card(card)
    check_covariates(table, [fitted_card])
    from ..arms import compare_arms as run_compare

    how = "jointly" if fitted_card.pooling else "one by one"
    say(f"fitting {len(table)} runs from {runs}, arms {', '.join(arms)} (column {by}), {how} with card {card}")
    result = run_compare(table, budgets, by=GROUP_COLUMN, card=fitted_card, level=level, chains=chains,
                         warmup=warmup, draws=draws, seed=seed, target_accept=target_accept)
    for message in result.warnings:
        warn(message)
    if plot is not None:
        save_figure(plot_arm_frontiers(result), plot)
        say(f"saved the arms' frontiers to {plot}")
    if fmt == "json":
        _json({"by": by, "card": fitted_card.name, "joint": result.joint, "level": level, "arms": result.arms,
               "wins": result.wins.rows(), "crossovers": result.crossovers.rows(), "warnings": result.warnings})
    elif fmt == "csv":
        sys.stdout.write(result.wins.to_csv())
    else:
        pct = f"{level:.0%}"
        _print_table(f"Arms by {by}: each at its own compute-optimal plan ({pct} intervals)",
                     ["compute (FLOPs)", "arm", "P(lowest loss)", "loss at optimum", "minus best other arm"],
                     [[format_quantity(r["compute"]), r["arm"], f"{r['p_lowest']:.2f}",
                       _fmt_interval(r, "loss_opt", "loss"),
                       f"{r['diff']:+.4f} [{r['diff_lo']:+.4f}, {r['diff_hi']:+.4f}]"] for r in result.wins.rows()])
        _print_table(f"Crossovers: where the ranking of two arms flips ({pct} intervals)",
                     ["arms", "P(flips in range)", "crossover (FLOPs)", "wins below / above"],
                     [[f"{r['arm_a']} vs {r['arm_b']}", f"{r['p_crossover']:.2f}",
                       _fmt_interval(r, "crossover") if r["below"] else "none",
                       f"{r['below']} / {r['above']}" if r["below"] else "n/a"] for r in result.crossovers.rows()])
