"""Backtests: fit on the runs below a compute cutoff, predict the runs above it, score.

The question a backtest answers is the one a user asks before spending compute: if I
had fitted on my small runs, would the intervals have held at the large ones? For each
(card, method, cutoff) the law is fitted to the runs with compute <= cutoff, and the
posterior predictive distribution of each held-out run (law + observation noise) is
scored against its observed loss. The fits are independent and run through
:func:`bayes_scaling.executor.map_fits` (local processes or a Dask cluster).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import metrics
from .allocation import as_budgets
from .cards import ModelCard, load_card
from .data import MIN_RUNS
from .errors import InputError
from .executor import map_fits
from .prediction import predictive_draws

if TYPE_CHECKING:

    from .fitted import Fit

#: Keys of one machine-readable backtest record (``bayes-scaling backtest --format json``): ``split`` is
#: ``"compute"`` (``cutoff`` in FLOPs) or ``"params"`` (``cutoff`` = ``max_params``, parameters).
RECORD_KEYS = ("card", "method", "split", "cutoff", "max_params", "n_train", "n_test", "coverage_50", "coverage_90",
               "median_width_90", "mean_log_pred_density", "crps", "median_abs_error")


#: Split kinds: fit the runs with compute (FLOPs) or parameters at most the limit.
SPLIT_KINDS = ("compute", "params")


@dataclass(frozen=True)
class Split:
    """How a backtest cuts a table: fit the runs with ``kind`` <= ``limit``, predict the rest.

    Attributes
    ----------
    kind : {"compute", "params"}
        ``"compute"``: FLOPs (a larger budget); ``"params"``: parameters (a larger model).
    limit : float
        FLOPs or parameters.
    """

    kind: str
    limit: float

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_KINDS:
            raise InputError(f"split kind must be one of {', '.join(SPLIT_KINDS)} but got {self.kind!r}")

    @property
    def label(self) -> str:
        unit = "FLOPs" if self.kind == "compute" else "parameters"
        return f"{self.kind} <= {self.limit:.3g} {unit}"

    def divide(self, runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The runs to fit (at most the limit) and to predict (above it)."""
        column = "flops" if self.kind == "compute" else "params"
        below = runs[column].to_numpy(float) <= self.limit
        return runs[below].reset_index(drop=True), runs[~below].reset_index(drop=True)




@dataclass(frozen=True)
class BacktestResult:
    """Scores of every (card, method, cutoff) of a backtest.

    Attributes
    ----------
    table : DataFrame
        One row per (card, method, cutoff): the keys of :data:`RECORD_KEYS` (see
        :func:`summarise`) plus ``diagnostics_ok`` (:func:`fit_ok`) and ``elapsed_s``
        (seconds of the fit).
    runs : DataFrame
        One row per held-out run and (card, method, cutoff): ``name``, ``params``,
        ``tokens``, ``flops``, ``loss`` and the scores of :func:`score_runs`.
    calibration : DataFrame
        Calibration curves: ``card``, ``method``, ``cutoff``, ``level`` (nominal),
        ``coverage`` (empirical share of held-out runs inside the central interval).
    """

    table: pd.DataFrame
    runs: pd.DataFrame
    calibration: pd.DataFrame

    def records(self) -> list[dict[str, Any]]:
        """The table as JSON-ready dicts, one per row, each with its ``calibration`` curve.

        ``calibration`` is a list of ``{"level": nominal, "coverage": empirical}``.
        """
        out = []
        for row in self.table.to_dict(orient="records"):
            record = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            curve = self.calibration[(self.calibration["card"] == row["card"])
                                     & (self.calibration["method"] == row["method"])
                                     & (self.calibration["split"] == row["split"])
                                     & (self.calibration["cutoff"] == row["cutoff"])]
            if record.get("max_params") is not None and not np.isfinite(record["max_params"]):
                record["max_params"] = None
            record["calibration"] = [{"level": float(q), "coverage": float(c)}
                                     for q, c in zip(curve["level"], curve["coverage"], strict=True)]
            out.append(record)
        return out


def split_label(record: Mapping[str, Any]) -> str:
    """What a backtest record was fitted on: ``C ≤ 1e+20 FLOPs`` or ``N ≤ 1.3e+09 parameters``.

    Records written before size splits existed have no ``split``: they are compute cutoffs.
    """
    if record.get("split", "compute") == "params":
        return f"N ≤ {float(record['cutoff']):.3g} parameters"
    return f"C ≤ {float(record['cutoff']):.3g} FLOPs"


def split_runs(runs: pd.DataFrame, cutoff: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs with compute <= ``cutoff`` FLOPs (training) and above it (held out): a compute :class:`Split`."""
    return Split("compute", float(cutoff)).divide(runs)


def score_runs(loss: np.ndarray, log_loss_draws: np.ndarray, log_density: np.ndarray) -> pd.DataFrame:
    """Score the predictive distribution of each held-out run.

    Parameters
    ----------
    loss : array of shape (T,)
        Observed loss of each held-out run, nats/token.
    log_loss_draws : array of shape (S, T)
        Predictive draws of the log loss.
    log_density : array of shape (S, T)
        log p(observed log loss | draw).

    Returns
    -------
    DataFrame
        One row per run: ``loss``, ``median`` (predictive median, nats/token), ``lo_50``,
        ``hi_50``, ``lo_90``, ``hi_90``, ``covered_50``, ``covered_90``, ``width_90``
        ((hi_90 - lo_90) / loss), ``abs_error`` (|median - loss|, nats/token), ``crps``
        (nats/token), ``log_pred_density`` (of the observed log loss) and ``pit``.
    """
    loss = np.asarray(loss, dtype=float)
    draws = np.exp(np.asarray(log_loss_draws, dtype=float))
    table = pd.DataFrame({"loss": loss, "median": np.median(draws, axis=0)})
    for level in (0.5, 0.9):
        pct = round(level * 100)
        table[f"lo_{pct}"], table[f"hi_{pct}"] = metrics.interval(draws, level)
        table[f"covered_{pct}"] = metrics.covered(draws, loss, level)
    table["width_90"] = (table["hi_90"] - table["lo_90"]) / loss
    table["abs_error"] = np.abs(table["median"] - loss)
    table["crps"] = metrics.crps(draws, loss)
    table["log_pred_density"] = metrics.log_predictive_density(log_density)
    table["pit"] = metrics.pit(draws, loss)
    return table


def summarise(scores: pd.DataFrame) -> dict[str, float]:
    """Aggregate :func:`score_runs` over held-out runs.

    Returns
    -------
    dict
        ``n_test``, ``coverage_50``, ``coverage_90`` (shares of runs covered),
        ``median_width_90`` (median relative width of the 90% interval),
        ``mean_log_pred_density``, ``crps`` (mean) and ``median_abs_error`` (nats/token).
    """
    return {"n_test": len(scores), "coverage_50": float(scores["covered_50"].mean()),
            "coverage_90": float(scores["covered_90"].mean()),
            "median_width_90": float(scores["width_90"].median()),
            "mean_log_pred_density": float(scores["log_pred_density"].mean()),
            "crps": float(scores["crps"].mean()), "median_abs_error": float(scores["abs_error"].median())}


def fit_ok(result: Fit) -> bool:
    """Whether a fit passed its checks.

    NUTS: the diagnostics gate (R-hat, ESS, divergences). Huber: at least 95% of the
    bootstrap refits converged (ESS and R-hat mean nothing for bootstrap resamples).
    """
    if result.method == "huber":
        return float(result.extra.get("bootstrap_converged", 0.0)) >= 0.95
    return not result.diagnostics().has_errors


def run_task(task: Mapping[str, Any]) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Fit one (card, method, cutoff) and score it; the unit of work of :func:`backtest`."""
    from .inference import fit

    split: Split = task["split"]
    train, test = split.divide(task["runs"])
    result = fit(train, task["card"], method=task["method"], seed=task["seed"], **task["fit_kwargs"])
    log_loss_draws, log_density = predictive_draws(result, test, seed=task["seed"])
    scores = score_runs(test["loss"].to_numpy(float), log_loss_draws, log_density)
    label = {"card": result.card.name, "method": task["method"], "split": split.kind, "cutoff": float(split.limit),
             "max_params": float(split.limit) if split.kind == "params" else np.nan}
    row = {**label, "n_train": len(train), **summarise(scores),
           "diagnostics_ok": fit_ok(result), "elapsed_s": result.elapsed_s}
    keep = [c for c in ("name", "params", "tokens", "flops") if c in test]
    runs = pd.concat([test[keep].assign(**label), scores], axis=1)
    curve = metrics.calibration_curve(np.exp(log_loss_draws), test["loss"].to_numpy(float)).assign(**label)
    return row, runs, curve


def backtest(
    runs: pd.DataFrame,
    cards: Sequence[str | ModelCard] = ("chinchilla",),
    cutoffs: Sequence[float] | None = None,
    *,
    max_params: Sequence[float] = (),
    methods: Sequence[str] = ("nuts", "huber"),
    seed: int = 0,
    executor: Any = None,
    workers: int | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> BacktestResult:
    """Backtest cards and methods: fit below each cutoff, score the predictions above it.

    Parameters
    ----------
    runs : DataFrame
        Validated run table (:func:`bayes_scaling.load_runs`).
    cards : sequence of str or ModelCard, default ("chinchilla",)
    cutoffs : sequence of float, optional
        Compute cutoffs in FLOPs: runs with ``flops <= cutoff`` are fitted; default (1e20,)
        unless ``max_params`` is given.
    max_params : sequence of float, default ()
        Size splits in parameters: runs with ``params <= max_params`` are fitted and the
        larger models predicted (extrapolation in N, often at a compute inside the data).
    methods : sequence of {"nuts", "huber"}, default ("nuts", "huber")
        ``"huber"`` (approach 3 with bootstrap) applies to cards of the Chinchilla law
        only; it is skipped for the others.
    seed : int, default 0
        Seed of every fit and of the predictive noise.
    executor, workers
        Where the fits run; see :func:`bayes_scaling.executor.map_fits`.
    fit_kwargs : mapping, optional
        Passed to :func:`bayes_scaling.fit` (``chains``, ``warmup``, ``draws``, ``bootstrap``, ...).

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> result = backtest(runs, cutoffs=[1e20, 5e20], methods=["nuts"])  # doctest: +SKIP
    >>> result.table[["card", "cutoff", "coverage_90", "crps"]]         # doctest: +SKIP
    """
    models = [c if isinstance(c, ModelCard) else load_card(c) for c in cards]
    bad = [m for m in methods if m not in ("nuts", "huber")]
    if bad or not methods:
        raise InputError(f"methods must be a non-empty selection of nuts, huber but got {list(methods)}")
    if not models:
        raise InputError("give at least one card")
    if cutoffs is None:
        cutoffs = () if len(max_params) else (1e20,)
    splits = [*(Split("compute", float(c)) for c in (as_budgets(cutoffs, what="cutoff") if len(cutoffs) else [])),
              *(Split("params", float(n)) for n in (as_budgets(max_params, what="max_params")
                                                    if len(max_params) else []))]
    if not splits:
        raise InputError("give at least one compute cutoff or one max_params size split")
    for split in splits:
        train, test = split.divide(runs)
        if len(train) < MIN_RUNS or len(test) == 0:
            column, unit = ("flops", "FLOPs") if split.kind == "compute" else ("params", "parameters")
            what = "cutoff" if split.kind == "compute" else "max_params"
            raise InputError(f"{what} {split.limit:.3g} {unit} leaves {len(train)} runs to fit and {len(test)} to "
                             f"predict; it needs at least {MIN_RUNS} and 1 (runs span {runs[column].min():.3g} to "
                             f"{runs[column].max():.3g} {unit})")
    tasks = [{"runs": runs, "card": card, "method": method, "split": split, "seed": seed,
              "fit_kwargs": dict(fit_kwargs or {})}
             for card, method, split in itertools.product(models, methods, splits)
             if method != "huber" or card.law.name == "chinchilla"]
    if not tasks:
        raise InputError("method huber applies to Chinchilla-law cards only; add --method nuts")
    results = map_fits(run_task, tasks, executor=executor, workers=workers)
    table = pd.DataFrame([r[0] for r in results])
    table = table[[*RECORD_KEYS, *[c for c in table.columns if c not in RECORD_KEYS]]]
    return BacktestResult(table, pd.concat([r[1] for r in results], ignore_index=True),
                          pd.concat([r[2] for r in results], ignore_index=True))


__all__ = ["RECORD_KEYS", "SPLIT_KINDS", "BacktestResult", "Split", "split_label", "backtest", "fit_ok",
           "predictive_draws", "score_runs", "split_runs", "summarise"]
