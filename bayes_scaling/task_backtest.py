"""Backtests of task fits: fit the smaller runs, predict the accuracy of the larger; and the rerun check.

A task backtest splits the runs as any backtest does (:class:`bayes_scaling.backtesting.Split`:
by model size, fit the rungs with N <= limit and predict the larger ones, or by compute), fits the task
card, and scores each held-out run's *accuracy* under its predictive distribution (one
run: law × noise on the intermediate, through the sigmoid, plus the accuracy's noise).
The point two-step fit of Bhagia et al. (:mod:`bayes_scaling.task_baseline`) is scored
on the same runs (method ``two-step``: a point, so no coverage and no density).

Records carry the keys of :data:`bayes_scaling.backtesting.RECORD_KEYS`, in accuracy
units: ``median_abs_error``, ``median_width_90`` and ``crps`` in accuracy points (0-100).

:func:`rerun_check` compares a fit's noise with runs trained twice with different seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import metrics
from .backtesting import RECORD_KEYS, Split, fit_ok
from .cards import ModelCard, load_card
from .data import MIN_RUNS
from .errors import InputError
from .fitted import Fit
from .model import covariates
from .posterior import Posterior
from .task_baseline import fit_two_step
from .task_model import task_columns, task_of
from .task_prediction import metric_draws

#: Accuracy points per unit of accuracy.
POINTS = 100.0


def score_accuracy(observed: np.ndarray, draws: np.ndarray, log_density: np.ndarray | None) -> pd.DataFrame:
    """Scores of each held-out run's accuracy under predictive draws of shape (S, T) (or (1, T): a point).

    Returns
    -------
    DataFrame
        ``observed``, ``median``, ``lo_90``, ``hi_90``, ``covered_50``, ``covered_90``,
        ``width_90``, ``abs_error``, ``crps`` (the last three in accuracy points),
        ``log_pred_density`` (NaN for a point) and ``pit``.
    """
    observed = np.asarray(observed, dtype=float)
    point = draws.shape[0] == 1
    table = pd.DataFrame({"observed": observed, "median": np.median(draws, axis=0)})
    for level in (0.5, 0.9):
        pct = round(level * 100)
        lo, hi = metrics.interval(draws, level)
        table[f"lo_{pct}"], table[f"hi_{pct}"] = lo, hi
        table[f"covered_{pct}"] = np.nan if point else metrics.covered(draws, observed, level)
    table["width_90"] = (table["hi_90"] - table["lo_90"]) * POINTS
    table["abs_error"] = np.abs(table["median"] - observed) * POINTS
    table["crps"] = metrics.crps(draws, observed) * POINTS
    table["log_pred_density"] = np.nan if log_density is None else metrics.log_predictive_density(log_density)
    table["pit"] = np.nan if point else metrics.pit(draws, observed)
    return table


def predictive_accuracy(fit: Fit, runs: pd.DataFrame, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draws of one run's accuracy at each of ``runs`` and the log density of its observed accuracy, (S, T) each.

    The density is that of the accuracy's normal noise around each draw's sigmoid of one
    run's intermediate (law × its noise): a Monte Carlo over both noises.
    """
    arrays = fit.arrays
    task = task_of(fit.card)
    observed, _ = task_columns(runs, task)
    x = covariates(runs, fit.card, str(fit.attrs.get("param_count", "total")))
    post: Posterior = arrays.posterior_draws()
    log_l = post.log_loss(x["log_params"], x["log_tokens"])
    log_run = log_l + _noise(post, log_l.shape, seed)
    law_run, acc = metric_draws(arrays, log_run, seed=seed)
    sd = arrays.draws(["sigma_metric"])["sigma_metric"][:, None]
    return acc, stats.norm.logpdf(observed[None, :], law_run, sd)


def _noise(post: Posterior, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """One run's noise on the log intermediate, independent per draw and run."""
    from .noise import observation_noise

    nu = post.nu[:, None] if isinstance(post.nu, np.ndarray) else post.nu
    return observation_noise(post.card, post.sigma[:, None], nu, shape, seed + 5)




def backtest_task(train: pd.DataFrame, test: pd.DataFrame, card: str | ModelCard = "task-chain", *,
                  metric: str | None = None, via: str | None = None, chance: float | None = None, seed: int = 0,
                  baseline: bool = True, fit_kwargs: Mapping[str, Any] | None = None,
                  split: Split | None = None, label: Mapping[str, Any] | None = None
                  ) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Fit a task card on ``train``, score the accuracy of ``test``; the two-step baseline beside it.

    Parameters
    ----------
    train, test : DataFrame
        Validated run tables (with the metric and intermediate columns).
    card, metric, via, chance
        As for :func:`bayes_scaling.fit`.
    seed : int, default 0
    baseline : bool, default True
        Also score the point two-step fit (method ``two-step``; chain cards only).
    fit_kwargs : mapping, optional
        ``chains``, ``warmup``, ``draws``, ``target_accept`` of the fit.
    split : Split, optional
        How ``train`` and ``test`` were divided (:meth:`Split.divide`), for the records'
        ``split``, ``cutoff`` and ``max_params``; NaN without.
    label : mapping, optional
        Extra keys of each record (e.g. ``task``).

    Returns
    -------
    (list of dict, DataFrame)
        One record per method with :data:`~bayes_scaling.backtesting.RECORD_KEYS` (accuracy
        points), ``metric``, ``diagnostics_ok`` and ``elapsed_s``; and one row per held-out
        run and method with its scores (:func:`score_accuracy`).
    """
    from .inference import fit

    card = card if isinstance(card, ModelCard) else load_card(card)
    if len(train) < MIN_RUNS or len(test) == 0:
        raise InputError(f"a task backtest needs at least {MIN_RUNS} runs to fit and 1 to predict; "
                         f"got {len(train)} and {len(test)}")
    result = fit(train, card, metric=metric, via=via, chance=chance, seed=seed, **dict(fit_kwargs or {}))
    task = task_of(result.card)
    draws, log_density = predictive_accuracy(result, test, seed=seed)
    observed, _ = task_columns(test, task)
    base = {"split": split.kind if split else None, "cutoff": float(split.limit) if split else float("nan"),
            "max_params": float(split.limit) if split and split.kind == "params" else float("nan"), **(label or {})}
    names = test["name"].astype(str).to_numpy() if "name" in test else np.arange(len(test)).astype(str)
    scored = [("nuts", score_accuracy(observed, draws, log_density), fit_ok(result), result.elapsed_s)]
    if baseline and task.kind == "chain":  # the point two-step fit needs the observed intermediate
        train_metric, train_inter = task_columns(train, task)
        assert train_inter is not None and task.chance is not None  # a resolved chain task
        point = fit_two_step(train["params"].to_numpy(float), train["tokens"].to_numpy(float), train_inter,
                             train_metric, task.chance)
        _, acc = point.predict(np.log(test["params"].to_numpy(float)), np.log(test["tokens"].to_numpy(float)))
        scored.append(("two-step", score_accuracy(observed, np.asarray(acc)[None, :], None), True, float("nan")))
    records, rows = [], []
    for method, scores, ok, elapsed in scored:
        head = {"card": result.card.name, "method": method, "metric": task.metric, **base}
        records.append({**head, "n_train": len(train),
                        "n_test": len(test),
                        "coverage_50": float(scores["covered_50"].mean()),
                        "coverage_90": float(scores["covered_90"].mean()),
                        "median_width_90": float(scores["width_90"].median()),
                        "mean_log_pred_density": float(scores["log_pred_density"].mean()),
                        "crps": float(scores["crps"].mean()), "median_abs_error": float(scores["abs_error"].median()),
                        "diagnostics_ok": bool(ok), "elapsed_s": float(elapsed)})
        rows.append(scores.assign(name=names, **head))
    records = [{k: r[k] for k in (*RECORD_KEYS, *[c for c in r if c not in RECORD_KEYS])} for r in records]
    return records, pd.concat(rows, ignore_index=True)


def rerun_check(fit: Fit, pairs: pd.DataFrame, *, seed: int = 0) -> dict[str, float]:
    """Is the fit's run-to-run noise of accuracy consistent with runs trained twice (two seeds)?

    For each pair the model predicts the difference of two runs at the same (N, D): each
    run's intermediate is the law's times its own noise, its accuracy the sigmoid of that
    plus its own accuracy noise; the law cancels out of the difference, the noises do not.
    The standardised differences z = d / sd(d) are pooled: sum z^2 ~ chi^2(pairs) if the
    noise is right; too large says the fit's noise is too small.

    Parameters
    ----------
    fit : Fit
        A task fit.
    pairs : DataFrame
        Columns ``params``, ``tokens``, ``first`` and ``second``: the two runs' accuracies.

    Returns
    -------
    dict
        ``pairs``; ``observed_sd`` (root mean square of the differences over √2, accuracy
        points: one run's noise as the reruns show it); ``fitted_sd`` (the fit's median sd of
        one run's accuracy at the pairs, points); ``chi2`` (sum z^2) and ``p_value``
        (two-sided, of chi^2 with as many degrees of freedom as pairs).
    """
    n, d = pairs["params"].to_numpy(float), pairs["tokens"].to_numpy(float)
    arrays = fit.arrays
    post = arrays.posterior_draws()
    log_l = post.log_loss(np.log(n), np.log(d))
    one = metric_draws(arrays, log_l + _noise(post, log_l.shape, seed), seed=seed)[1]
    two = metric_draws(arrays, log_l + _noise(post, log_l.shape, seed + 11), seed=seed + 11)[1]
    sd = np.std(one - two, axis=0)
    diff = pairs["first"].to_numpy(float) - pairs["second"].to_numpy(float)
    chi2 = float(np.sum((diff / sd) ** 2))
    tail = stats.chi2.sf(chi2, len(diff))
    return {"pairs": len(diff), "observed_sd": float(np.sqrt(np.mean(diff**2) / 2) * POINTS),
            "fitted_sd": float(np.median(sd / np.sqrt(2)) * POINTS), "chi2": chi2,
            "p_value": float(2 * min(tail, 1 - tail))}


__all__ = ["backtest_task", "predictive_accuracy", "rerun_check", "score_accuracy"]
