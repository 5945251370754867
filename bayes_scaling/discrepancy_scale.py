"""Learning the model discrepancy's scale tau for a fit, and attaching it to a fit.

A card's ``[discrepancy]`` table (see :mod:`bayes_scaling.discrepancy` for what the
discrepancy is) gives a prior of tau; ``calibrate = [1.0, 2.0]`` learns it from internal
leave-future-out splits (the plain law fitted below each split, :func:`calibrate_tau`)
and ``misfit_ratio`` from the law's misfit to its own runs. The statistics are in
:mod:`bayes_scaling.discrepancy_evidence`; here are the inner fits and the draws stored
with the main fit (:func:`discrepancy_posterior`), and :func:`attach`, which adds a
discrepancy to a fit made without one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .cards import Discrepancy, ModelCard, Prior
from .discrepancy import DISCREPANCY_SLOPE, DISCREPANCY_TAU
from .discrepancy_evidence import (
    TauPosterior,
    misfit_record,
    prior_draws,
    prior_log_density,
    split_log_likelihood,
    tau_grid,
)
from .errors import InputError
from .fitted import Fit
from .nuts import Schedule
from .provenance import text_sha256
from .sampling import fit_law_subsets

#: Posterior variables a fit with a discrepancy stores, shape (chain, draw).
TAU, SLOPE = DISCREPANCY_TAU, DISCREPANCY_SLOPE
#: Each internal split needs at least this many runs on each side.
MIN_SPLIT_TRAIN, MIN_SPLIT_TEST = 20, 3
#: Most rows an inner fit uses, and most held-out rows scored, per split (a random subset of
#: a larger table, e.g. loss curves): the inner fits stay small and the held-out covariance
#: (rows × rows) stays cheap.
MAX_SPLIT_TRAIN, MAX_SPLIT_TEST = 2000, 400
#: Inner fits when no main fit sets their schedule (:func:`attach`, direct calls): the default
#: fit's, so that they run the default fit's compiled program.
INNER_SCHEDULE = Schedule(chains=4, warmup=1000, draws=1000, target_accept=0.9)


def calibrate_tau(card: ModelCard, runs: pd.DataFrame, *, seed: int = 0, param_count: str = "total",
                  splits: Sequence[float] | None = None, schedule: Schedule = INNER_SCHEDULE,
                  posterior: Any | None = None) -> TauPosterior:
    """Posterior of tau from internal leave-future-out splits and the law's misfit inside the data.

    Parameters
    ----------
    card : ModelCard
        A card with a ``[discrepancy]`` prior.
    runs : DataFrame
        The run table the main fit uses.
    seed : int, default 0
        Seed of the inner fits.
    param_count : {"total", "non_embedding"}
    splits : sequence of float, optional
        E-folds of compute below the largest run at which to cut; default the card's
        ``calibrate`` list. A split with fewer than :data:`MIN_SPLIT_TRAIN` runs below or
        :data:`MIN_SPLIT_TEST` above is skipped (and listed as such). Larger tables are
        subsampled to :data:`MAX_SPLIT_TRAIN` rows to fit and :data:`MAX_SPLIT_TEST` to score.
    schedule : Schedule, default :data:`INNER_SCHEDULE`
        Chains (all splits together), warm-up, draws and target acceptance of the inner
        fits. They run as one compiled program (:func:`bayes_scaling.sampling.fit_law_subsets`),
        the main fit's when the schedule is the main fit's.
    posterior : mapping, optional
        The main fit's posterior draws; with the card's ``misfit_ratio`` the law's
        residuals on ``runs`` add the misfit likelihood (:func:`misfit_record`).

    Returns
    -------
    TauPosterior
        The prior alone when no split and no residuals could be used.
    """
    assert card.discrepancy is not None
    plain = dataclasses.replace(card, discrepancy=None)
    grid = tau_grid(card.discrepancy.prior, seed)
    log_post = prior_log_density(card.discrepancy.prior, grid)
    log_flops = np.log(runs["flops"].to_numpy(float))
    info, train, held_out = [], [], []
    for k, offset in enumerate(card.discrepancy.calibrate if splits is None else splits):
        below = log_flops <= log_flops.max() - offset
        record: dict[str, Any] = {"offset": float(offset), "n_train": int(below.sum()), "n_test": int((~below).sum())}
        info.append(record)
        if record["n_train"] < MIN_SPLIT_TRAIN or record["n_test"] < MIN_SPLIT_TEST:
            record["skipped"] = (f"needs at least {MIN_SPLIT_TRAIN} runs below and {MIN_SPLIT_TEST} above "
                                 "the split")
            continue
        rng = np.random.default_rng(seed + k)
        train.append(_at_most(np.flatnonzero(below), MAX_SPLIT_TRAIN, rng))
        test = runs.iloc[_at_most(np.flatnonzero(~below), MAX_SPLIT_TEST, rng)].reset_index(drop=True)
        held_out.append((record, test))
    if train:
        inner = fit_law_subsets(runs, plain, train, chains=schedule.chains, warmup=schedule.warmup,
                                draws=schedule.draws, target_accept=schedule.target_accept, seed=seed + 101,
                                param_count=param_count)
        for fit, (record, test) in zip(inner, held_out, strict=True):
            ll = split_log_likelihood(plain, fit, test, grid, card.discrepancy.directions,
                                      card.discrepancy.split_correlation)
            record["tau_mle"] = float(grid[np.argmax(ll)])
            log_post = log_post + ll
    misfit = None
    if card.discrepancy.misfit_ratio is not None and posterior is not None:
        ll, misfit = misfit_record(card, posterior, runs, grid, seed=seed, param_count=param_count)
        log_post = log_post + ll
    weights = np.exp(log_post - log_post.max())
    return TauPosterior(grid, weights / weights.sum(), info, misfit)


def _at_most(rows: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """The row positions, or a random subset of ``most`` of them (order kept)."""
    if len(rows) > most:
        rows = rows[np.sort(rng.choice(len(rows), most, replace=False))]
    return rows


def discrepancy_posterior(card: ModelCard, runs: pd.DataFrame, shape: tuple[int, int], *, seed: int = 0,
                          param_count: str = "total", schedule: Schedule = INNER_SCHEDULE,
                          posterior: Any | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Draws of tau and of the slope s to store with a fit, and a record of how tau was set.

    Parameters
    ----------
    card : ModelCard
        A card with a ``[discrepancy]`` prior (``calibrate`` splits optional).
    runs : DataFrame
        The fit's run table.
    shape : (int, int)
        (chains, draws) of the fit's posterior.
    seed : int, default 0
    param_count : {"total", "non_embedding"}
    schedule : Schedule, default :data:`INNER_SCHEDULE`
        Of the inner fits (see :func:`calibrate_tau`); a fit passes its own.
    posterior : mapping, optional
        The fit's posterior draws, whose residuals on ``runs`` inform tau with the card's
        ``misfit_ratio``.

    Returns
    -------
    (dict, dict)
        ``{TAU: array, SLOPE: array}`` of shape ``shape``, and ``{"tau_source": "prior" |
        "leave-future-out" | "misfit" | "misfit + leave-future-out", "tau_mean", "tau_q90",
        "splits", "misfit"}``.
    """
    assert card.discrepancy is not None
    n = shape[0] * shape[1]
    rng = np.random.default_rng(seed + 7919)
    use_misfit = card.discrepancy.misfit_ratio is not None and posterior is not None
    if card.discrepancy.calibrate or use_misfit:
        learnt = calibrate_tau(card, runs, seed=seed, param_count=param_count, schedule=schedule,
                               posterior=posterior)
        tau = learnt.sample(n, rng)
        info: dict[str, Any] = {"splits": learnt.splits, "misfit": learnt.misfit}
    else:
        tau = prior_draws(card.discrepancy.prior, n, seed + 7919)
        info = {"splits": [], "misfit": None}
    sources = [*(["misfit"] if info["misfit"] and "amplitude_mle" in info["misfit"] else []),
               *(["leave-future-out"] if any("tau_mle" in s for s in info["splits"]) else [])]
    info["tau_source"] = " + ".join(sources) or "prior"
    slope = tau * rng.standard_normal(n)
    info.update(tau_mean=float(np.mean(tau)), tau_q90=float(np.quantile(tau, 0.9)))
    return {TAU: tau.reshape(shape), SLOPE: slope.reshape(shape)}, info


def attach(fit: Fit, scale: Prior, *, splits: Sequence[float] = (), misfit_ratio: float | None = None,
           seed: int = 0) -> Fit:
    """The same fit with a model discrepancy: a prior of tau, learnt from ``splits`` and the misfit if given.

    The law's posterior is untouched (the discrepancy is zero inside the data); draws of
    tau and of the slope are added, and the card gains the ``[discrepancy]`` table.

    Parameters
    ----------
    fit : Fit
    scale : Prior
        Prior of tau (log loss per √e-fold of compute beyond the largest run).
    splits : sequence of float, default ()
        Internal leave-future-out splits (e-folds below the largest run), see
        :func:`calibrate_tau`; empty keeps the prior.
    misfit_ratio : float, optional
        Tie tau to the law's misfit inside the data (card key ``misfit_ratio``, see
        :mod:`bayes_scaling.discrepancy_evidence`); ``None`` does not use the residuals.
    seed : int, default 0
    """
    if fit.card.discrepancy is not None:
        raise InputError(f"fit of card {fit.card.name!r} already has a model discrepancy")
    card = fit.card.with_discrepancy(Discrepancy(scale, tuple(float(s) for s in splits),
                                                 None if misfit_ratio is None else float(misfit_ratio)))
    shape = (fit.posterior.sizes["chain"], fit.posterior.sizes["draw"])
    draws, info = discrepancy_posterior(card, fit.runs, shape, seed=seed,
                                        param_count=str(fit.attrs.get("param_count", "total")),
                                        posterior=fit.posterior)
    tree = fit.tree.copy()
    tree["posterior"] = tree["posterior"].to_dataset().assign({k: (("chain", "draw"), v) for k, v in draws.items()})
    extra = {**fit.extra, "discrepancy": info}
    attrs = {**fit.attrs, "card_text": card.text, "card_sha256": text_sha256(card.text), "extra": json.dumps(extra)}
    return Fit(tree, card=card, attrs=attrs)


__all__ = ["INNER_SCHEDULE", "SLOPE", "TAU", "attach", "calibrate_tau", "discrepancy_posterior"]
