"""Fit a task card: NUTS on both steps at once, started from the point two-step fit.

:func:`fit_task` is what :func:`bayes_scaling.fit` does for a card with a ``[task]`` table.
The fit is a :class:`~bayes_scaling.fitted.Fit` like any other: the intermediate metric
plays the part of the loss (``observed_data.log_loss``; allocation and predictions of the
intermediate work unchanged), and the accuracy is a second observed variable
``metric`` with its own ``log_likelihood`` and ``posterior_predictive``. The stored card
names the columns and the chance level, so a saved fit round-trips.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from . import _jax  # noqa: F401  (float64 before any JAX array exists)
from .cards import ModelCard
from .fitted import Fit, build_datatree, fit_attrs
from .model import covariates
from .sampling import DIVERGENCE_TARGET_ACCEPT, draw_law, sample_nuts
from .task_model import metric_log_likelihood, metric_predictive, task_columns, task_of

#: Canonical columns a task fit keeps of the run table (plus its metric and intermediate).
_KEEP = ("name", "group", "params", "tokens", "flops", "unique_tokens", "epochs", "embedding_params")


def task_table(runs: pd.DataFrame, card: ModelCard) -> pd.DataFrame:
    """The columns a task fit keeps: canonical ones, the accuracy, and the intermediate as ``loss``."""
    task = task_of(card)
    metric, inter = task_columns(runs, task)
    table = runs[[c for c in _KEEP if c in runs]].copy()
    table[task.metric] = metric
    if inter is not None:
        table[task.via] = inter
        table["loss"] = inter
    table.attrs.update(runs.attrs)
    return table


def fit_task(runs: pd.DataFrame, card: ModelCard, *, chains: int = 4, warmup: int = 1000, draws: int = 1000,
             seed: int = 0, target_accept: float = 0.9, progress: bool = False,
             param_count: str = "total") -> Fit:
    """The joint posterior of a resolved task card (see :meth:`bayes_scaling.cards.Task.resolved`).

    A direct card (``task-direct``) is one NUTS run over the law and the link
    (:func:`bayes_scaling.task_model.build_direct_model`); a chain card is fitted in two blocks:

    Parameters are those of :func:`bayes_scaling.fit`. For a chain card, step 2 conditions on each run's
    observed intermediate, so the joint posterior is the product of the two steps'
    posteriors: step 1 is drawn as any law's (:func:`bayes_scaling.sampling.draw_law`,
    NUTS from the approach-3 start), step 2 by NUTS (dense mass matrix) on its own. Exact,
    and it mixes better than one mass matrix over both steps (measured on the OLMo ladder:
    257 divergences and R-hat 1.2 for the joint sampler, none and 1.00 for the blocks).
    Both blocks run compiled-once programs (:mod:`bayes_scaling.nuts`; the link's is shared
    by every task of one chance level and table-size bucket) and each passes the same
    diagnostics gate, run again from where its chains ended when it fails
    (:func:`bayes_scaling.sampling.sample_nuts`); the fit's ``extra`` attr records both.
    """
    start = time.perf_counter()
    task = task_of(card)
    if task.kind == "direct":
        return _fit_direct(runs, card, chains=chains, warmup=warmup, draws=draws, seed=seed,
                           target_accept=target_accept, progress=progress, param_count=param_count, start=start)
    table = task_table(runs, card)
    metric, inter = task_columns(table, task)
    assert inter is not None
    step1 = draw_law(table, card, chains=chains, warmup=warmup, draws=draws, seed=seed,
                     target_accept=target_accept, progress=progress, param_count=param_count)
    # The link's posterior leans on the ceiling's bound (runs rarely reach it): at target
    # acceptance 0.9 it diverged 1-5 times per 600 draws on generated data, at 0.97 never,
    # for ~45 leapfrog steps per draw on a 5-parameter model.
    link, link_stats, record = sample_nuts(card, {"inter": inter}, metric, table, chains=chains, warmup=warmup,
                                           draws=draws, seed=seed + 1,
                                           target_accept=max(target_accept, DIVERGENCE_TARGET_ACCEPT),
                                           progress=progress, block="link")
    # A block run again after failing its gate may keep more draws than the other: both keep
    # their last n draws per chain (the most recent, the most converged).
    n = min(next(iter(step1.posterior.values())).shape[1], next(iter(link.values())).shape[1])
    posterior = {k: v[:, -n:] for k, v in {**step1.posterior, **link}.items()}
    stats = None
    if step1.sample_stats:  # one gate over both blocks: any divergence, the deeper tree
        stats = _merge_stats({k: v[:, -n:] for k, v in step1.sample_stats.items()},
                             {k: v[:, -n:] for k, v in link_stats.items()})
    tree = build_datatree(card, table, step1.x, step1.log_loss, posterior, stats, seed=seed)
    _add_metric(tree, card, posterior, step1.x, inter, metric, seed)
    extra = {"steps": "law by sampling.draw_law; link by NUTS on its own (the posterior factorises)",
             **({"sampler": step1.extra["sampler"]} if "sampler" in step1.extra else {}),
             **({"link_sampler": record} if record else {})}
    attrs = fit_attrs(card, method="nuts", seed=seed, elapsed_s=time.perf_counter() - start, extra=extra,
                      runs_source=str(runs.attrs.get("source", "")), runs_sha256=str(runs.attrs.get("sha256", "")),
                      param_count=param_count)
    return Fit(tree, card=card, attrs=attrs)


def _fit_direct(runs: pd.DataFrame, card: ModelCard, *, chains: int, warmup: int, draws: int, seed: int,
                target_accept: float, progress: bool, param_count: str, start: float) -> Fit:
    """A direct card's posterior: one NUTS run over the law and the link (no intermediate observed).

    The fit stores no ``sigma``: the latent law has no run-to-run noise of its own (one
    run's spread is ``sigma_metric``), so its one-run intermediate is the law's value.
    Its observed data, log-likelihood and posterior predictive hold ``metric`` only.
    """
    import arviz as az

    table = task_table(runs, card)
    metric, _ = task_columns(table, task_of(card))
    x = covariates(table, card, param_count)
    # Starts: the best of several MAPs, jittered; the target acceptance as for the link (the
    # ceiling's bound) since both blocks are one posterior here.
    posterior, stats, record = sample_nuts(card, x, metric, table, chains=chains, warmup=warmup, draws=draws,
                                           seed=seed, target_accept=max(target_accept, DIVERGENCE_TARGET_ACCEPT),
                                           progress=progress, block="direct")
    names = table["name"].astype(str).tolist() if "name" in table else [f"run{i}" for i in range(len(table))]
    if len(set(names)) != len(names):
        names = [f"{n} #{i}" for i, n in enumerate(names)]
    groups = {"posterior": posterior, "sample_stats": stats, "observed_data": {"metric": metric},
              "log_likelihood": {"metric": metric_log_likelihood(card, posterior, x, None, metric)},
              "posterior_predictive": {"metric": metric_predictive(card, posterior, x, None, seed)},
              "constant_data": {c: table[c].to_numpy(float) for c in table.columns
                                if pd.api.types.is_numeric_dtype(table[c])}}
    dims = {"metric": ["run"], **{c: ["run"] for c in groups["constant_data"]}}
    tree = az.from_dict(groups, dims=dims, coords={"run": names})
    for name in ("log_likelihood", "posterior_predictive"):
        tree[name].attrs["thinned_every"] = 1
    extra = {"steps": "law and link by one NUTS run (no intermediate observed)",
             **({"sampler": record} if record else {})}
    attrs = fit_attrs(card, method="nuts", seed=seed, elapsed_s=time.perf_counter() - start, extra=extra,
                      runs_source=str(runs.attrs.get("source", "")), runs_sha256=str(runs.attrs.get("sha256", "")),
                      param_count=param_count)
    return Fit(tree, card=card, attrs=attrs)


def _merge_stats(law: dict[str, np.ndarray], link: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The two blocks' sampler statistics as one: divergent in either, the deeper tree, steps of both."""
    return {**law, "diverging": law["diverging"] | link["diverging"],
            "tree_depth": np.maximum(law["tree_depth"], link["tree_depth"]),
            "n_steps": law["n_steps"] + link["n_steps"]}


def _add_metric(tree: Any, card: ModelCard, posterior: dict[str, np.ndarray], x: dict[str, np.ndarray],
                inter: np.ndarray | None, metric: np.ndarray, seed: int) -> None:
    """Add the accuracy to the fit's observed data, log-likelihood and posterior predictive."""
    runs = tree["observed_data"]["log_loss"].coords["run"].values
    step = int(tree["log_likelihood"].attrs.get("thinned_every", 1))
    thinned = {k: v[:, ::step] for k, v in posterior.items()}
    values = {"observed_data": metric,
              "log_likelihood": metric_log_likelihood(card, thinned, x, inter, metric),
              "posterior_predictive": metric_predictive(card, thinned, x, inter, seed)}
    for group, value in values.items():
        data = tree[group].to_dataset()
        dims = ("run",) if value.ndim == 1 else ("chain", "draw", "run")
        data["metric"] = (dims, value)
        data = data.assign_coords(run=runs)
        attrs = dict(tree[group].attrs)
        tree[group] = data
        tree[group].attrs.update(attrs)


__all__ = ["fit_task", "task_table"]
