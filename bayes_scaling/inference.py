"""``bayes_scaling.fit``: the posterior of a law for a run table, with the card's model discrepancy.

The law's draws come from :mod:`bayes_scaling.sampling` (NUTS, or approach 3's bootstrap);
a card with a ``[discrepancy]`` table adds draws of its scale and slope, learnt by
:mod:`bayes_scaling.discrepancy_scale`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .cards import ModelCard, load_card
from .data import validate_runs
from .discrepancy_scale import discrepancy_posterior
from .errors import InputError
from .fitted import Fit
from .nuts import Schedule
from .sampling import METHODS, assemble_fit, draw_law
from .tables import check_seed
from .task_inference import fit_task


def fit(
    runs: pd.DataFrame,
    card: str | ModelCard = "chinchilla",
    *,
    method: str = "nuts",
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    target_accept: float = 0.9,
    bootstrap: int = 1000,
    progress: bool = False,
    param_count: str = "total",
    metric: str | None = None,
    via: str | None = None,
    chance: float | None = None,
) -> Fit:
    """Fit a scaling law to a run table.

    Parameters
    ----------
    runs : DataFrame
        Validated run table (:func:`bayes_scaling.load_runs`).
    card : str or ModelCard, default "chinchilla"
        Bundled card name, card path, or a loaded card.
    method : {"nuts", "huber"}, default "nuts"
        ``"nuts"``: Bayesian posterior by NUTS with a dense mass matrix.
        ``"huber"``: Chinchilla approach 3 with ``bootstrap`` resamples, stored as
        draws so that every downstream function treats both alike.
    chains, warmup, draws : int, default 4, 1000, 1000
        NUTS chains, warm-up iterations and kept draws per chain. Tables of more than
        :data:`LARGE_TABLE_ROWS` rows (loss curves) take their starting points and mass
        matrix from a pre-fit on a subsample and warm up for at most
        :data:`LARGE_TABLE_WARMUP` iterations on the full table.
    seed : int, default 0
        Seed of the sampler (and of the bootstrap); same seed, same draws.
    target_accept : float, default 0.9
        NUTS target acceptance; 0.9 removes the few divergences 0.8 leaves on this ridge.
    bootstrap : int, default 1000
        Resamples for ``method="huber"``.
    progress : bool, default False
        Show a progress bar while sampling (on stderr, or a widget in a notebook). The draws
        are the same without it.
    param_count : {"total", "non_embedding"}, default "total"
        Fit on the ``params`` column, or on ``params - embedding_params`` (Kaplan's
        counting); allocations and predictions then use the same counting.
    metric, via : str, optional
        For a task card (``task-chain``, ...): the run table's accuracy column (e.g.
        ``hellaswag_acc``) and intermediate metric column (e.g. ``hellaswag_bpb``; a card
        may fix it, as ``task-chain-c4`` fixes ``c4_loss``). See :mod:`bayes_scaling.task_model`.
    chance : float, optional
        For a task card: chance accuracy, the centre of the sigmoid's floor; default from
        the card or, for known benchmarks, :data:`bayes_scaling.cards.CHANCE_LEVELS`.

    Returns
    -------
    Fit
        With a card that has a ``[discrepancy]`` table, a NUTS fit also stores draws of
        the discrepancy scale tau and slope (:mod:`bayes_scaling.discrepancy`); learning
        tau by leave-future-out adds the inner fits of its splits, drawn together as one run
        of the fit's own compiled sampler (its chains dealt out over the splits, its warm-up
        and draws); with ``misfit_ratio`` the fit's residuals inform tau too.
    """
    card = card if isinstance(card, ModelCard) else load_card(card)
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)} but got {method!r}")
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if int(value) < 1:
            raise InputError(f"{name} must be a positive integer but got {value}")
    if not 0 < target_accept < 1:
        raise InputError(f"target_accept must be in the interval (0, 1) but got {target_accept}")
    check_seed(seed)
    if method == "huber" and not int(bootstrap) >= 2:
        raise InputError(f"bootstrap must be at least 2 resamples for method 'huber' (its draws) but got {bootstrap}")
    runs = validate_runs(runs, label=runs.attrs.get("source", "<DataFrame>"))
    if card.task is not None:
        if method != "nuts":
            raise InputError(f"card {card.name!r} is a task card: fit it with method nuts (the point two-step fit "
                             "is bayes_scaling.task_baseline.fit_two_step)")
        card = card.with_task(card.task.resolved(metric, via, chance))
        return fit_task(runs, card, chains=chains, warmup=warmup, draws=draws, seed=seed,
                        target_accept=target_accept, progress=progress, param_count=param_count)
    if metric is not None or via is not None or chance is not None:
        raise InputError(f"metric, via and chance are for task cards; card {card.name!r} models the loss column")
    start = time.perf_counter()
    law_draws = draw_law(runs, card, method=method, chains=chains, warmup=warmup, draws=draws, seed=seed,
                         target_accept=target_accept, bootstrap=bootstrap, progress=progress,
                         param_count=param_count)
    if card.discrepancy is not None and method == "nuts":
        # tau from the card's prior, or learnt by internal leave-future-out splits and the law's misfit
        # (bayes_scaling.discrepancy_scale); approach 3 stays the classic baseline, without one.
        shape = np.shape(law_draws.posterior["sigma"])[:2]
        more, law_draws.extra["discrepancy"] = discrepancy_posterior(
            card, runs, shape, seed=seed, param_count=param_count,
            schedule=Schedule(chains, warmup, draws, target_accept),
            posterior=law_draws.posterior)
        law_draws.posterior.update(more)
    return assemble_fit(card, runs, law_draws, method=method, seed=seed, param_count=param_count,
                        elapsed_s=time.perf_counter() - start)


__all__ = ["METHODS", "fit"]
