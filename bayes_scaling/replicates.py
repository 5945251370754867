"""Repeated runs: run-to-run (seed) noise told apart from the law's misfit.

Runs of the same (N, D) that differ only in their seed (column ``replicate``) form a
*cell*. The replicate model writes the log loss of replicate i of cell c as

    y_ci = law(N_c, D_c) + u_c + e_ci,   u_c ~ Normal(0, sigma_misfit),   e_ci ~ Normal(0, sigma_run)

u_c is what every seed of a cell shares: where the law misses that (N, D) (and any
evaluation noise common to the seeds); e_ci is the run-to-run noise of a seed. Both are
Gaussian on log loss, and u_c is integrated out exactly: a cell of n_c runs with mean
ybar_c and within-cell sum of squares S_c contributes

    Normal(ybar_c | law, sqrt(sigma_misfit^2 + sigma_run^2 / n_c))
    × sigma_run^-(n_c - 1) exp(-S_c / (2 sigma_run^2)) (2 pi)^-((n_c - 1) / 2)

which is the joint Gaussian density of the cell's runs, factorised, less its constant factor
n_c^(-1/2) (no parameter in it, so the posterior is the same). Only cells with at
least two replicates inform S_c, so only they separate sigma_run from sigma_misfit; a
table without any is refused. The card gives the law and its priors; both scales take the
card's prior of ``sigma`` (the noise on log loss). The card's likelihood family and
discrepancy are not used: the exact integration needs Gaussian noise, and the model is
about noise within the fitted region.

The model itself (:func:`bayes_scaling.replicate_model.build_replicate_model`) is one
block of the compiled NUTS program (:mod:`bayes_scaling.nuts`, ``block="replicate"``, one
row per cell), so a replicate fit shares the program cache, the diagnostics gate and its
extensions with every other fit (:func:`bayes_scaling.sampling.sample_nuts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .cards import GROUP_COLUMN, ModelCard, load_card
from .diagnostics import Diagnostics, gate
from .errors import InputError, RunTableError
from .replicate_model import NOISE_SITES, build_replicate_model
from .sampling import block_convergence_stats, gated_sites, sample_nuts
from .tables import check_level, check_seed, credible_interval

REPLICATE_COLUMN = "replicate"


def replicate_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs grouped into cells of equal (N, D) (and group, if any).

    Returns
    -------
    DataFrame
        One row per cell: ``params``, ``tokens`` (and ``group``), ``n`` (runs),
        ``mean_log_loss``, ``ss`` (within-cell sum of squares of log loss) and ``spread``
        (within-cell standard deviation of log loss; NaN for a single run).
    """
    keys = ["params", "tokens", *([GROUP_COLUMN] if GROUP_COLUMN in runs else [])]
    table = runs[keys].copy()
    table["log_loss"] = np.log(runs["loss"].to_numpy(dtype=float))
    grouped = table.groupby(keys, sort=True)["log_loss"]
    cells = grouped.agg(n="size", mean_log_loss="mean").reset_index()
    cells["ss"] = grouped.apply(lambda v: float(np.sum((v - v.mean()) ** 2))).to_numpy()
    cells["spread"] = np.where(cells["n"] > 1, np.sqrt(cells["ss"] / np.maximum(cells["n"] - 1, 1)), np.nan)
    return cells


@dataclass(frozen=True)
class ReplicateFit:
    """Posterior of the replicate model.

    Attributes
    ----------
    draws : dict of str to array of shape (chain, draw)
        The law's parameters, ``sigma_run`` and ``sigma_misfit``.
    cells : DataFrame
        The cells (:func:`replicate_cells`).
    card : ModelCard
    stats : dict
        The draws' :func:`bayes_scaling.diagnostics.convergence_stats` (R-hat, ESS,
        divergences, tree-depth hits), as every fit stores them.
    sampler : dict
        The sampler's record of extensions after a failed gate (empty when there were none;
        see :func:`bayes_scaling.sampling.sample_nuts`).
    """

    draws: dict[str, np.ndarray]
    cells: pd.DataFrame
    card: ModelCard
    stats: dict[str, Any]
    sampler: dict[str, Any] = field(default_factory=dict)

    @property
    def diagnostics(self) -> Diagnostics:
        """The diagnostics gate (:func:`bayes_scaling.diagnostics.gate`) of the draws."""
        return gate(self.stats, gated_sites(self.card, "replicate"))

    @property
    def divergences(self) -> int:
        """Divergent transitions after warm-up, all chains."""
        return int(self.stats["divergences"])

    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """Median, ``lo``, ``hi`` (equal-tailed ``level`` interval), R-hat and bulk ESS of every site.

        R-hat (NaN for a single chain) and ESS are the fit's :attr:`stats`.
        """
        level = check_level(level)
        rows = []
        for name, v in self.draws.items():
            lo, med, hi = credible_interval(v.ravel(), level)
            stat = self.stats["variables"][name]
            rows.append({"parameter": name, "median": med, "lo": lo, "hi": hi, "r_hat": float(stat["r_hat"]),
                         "ess_bulk": float(stat["ess_bulk"])})
        out = pd.DataFrame(rows).set_index("parameter")
        out.attrs["level"] = level
        return out

    def rerun_check(self, level: float = 0.9, seed: int = 0) -> pd.DataFrame:
        """Each replicated cell's observed spread of log loss against the model's predictive interval of it.

        For every posterior draw, ``n`` runs of the cell are drawn with noise ``sigma_run``
        and their standard deviation taken; ``covered`` says whether the observed spread lies
        in the ``level`` interval of those. With two replicates the spread is |y1 - y2| / √2.
        """
        level = check_level(level)
        rng = np.random.default_rng(check_seed(seed))
        sigma = self.draws["sigma_run"].ravel()
        cells = self.cells[self.cells["n"] > 1].reset_index(drop=True)
        rows = []
        for cell in cells.itertuples(index=False):
            n = int(cell.n)
            sims = sigma[:, None] * rng.standard_normal((sigma.size, n))
            lo, med, hi = credible_interval(np.std(sims, axis=1, ddof=1), level)
            rows.append({"params": cell.params, "tokens": cell.tokens, "n": n, "spread": cell.spread,
                         "spread_pred": med, "spread_pred_lo": lo, "spread_pred_hi": hi,
                         "covered": bool(lo <= cell.spread <= hi)})
        out = pd.DataFrame(rows)
        out.attrs["level"] = level
        return out


def fit_replicates(
    runs: pd.DataFrame,
    card: str | ModelCard = "chinchilla",
    *,
    chains: int = 2,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    target_accept: float = 0.9,
) -> ReplicateFit:
    """Fit the replicate model: the law, run-to-run noise ``sigma_run`` and misfit ``sigma_misfit``.

    Parameters
    ----------
    runs : DataFrame
        Validated run table; runs sharing (N, D) (and ``group``) are replicates. A
        ``replicate`` column labels their seeds (:func:`bayes_scaling.load_runs` refuses the
        same label twice in a cell).
    card : str or ModelCard, default "chinchilla"
        An unpooled card of a law in N and D: its priors of the law's parameters, and its
        prior of ``sigma`` for both noise scales.
    chains, warmup, draws : int, default 2, 1000, 1000
        NUTS chains, warm-up iterations and draws per chain (dense mass matrix), run as the
        compiled program of :mod:`bayes_scaling.nuts` and started from jittered MAPs; a fit
        failing the diagnostics gate runs again as :func:`bayes_scaling.sampling.sample_nuts`
        says (with a :class:`~bayes_scaling.errors.ConvergenceWarning`).
    seed : int, default 0
    target_accept : float, default 0.9

    Returns
    -------
    ReplicateFit

    Raises
    ------
    RunTableError
        If no (N, D) has two runs (nothing separates the two noises).
    InputError
        If the card is pooled or its law needs inputs other than N and D.

    Examples
    --------
    >>> rf = fit_replicates(runs)  # doctest: +SKIP
    >>> rf.summary().loc[["sigma_run", "sigma_misfit"]]  # doctest: +SKIP
    """
    card = card if isinstance(card, ModelCard) else load_card(card)
    if card.pooling or set(card.law.covariates) != {"params", "tokens"}:
        raise InputError(f"the replicate model takes an unpooled card of a law in params and tokens only; card "
                         f"{card.name!r} {'pools over groups' if card.pooling else 'needs other inputs'}")
    check_seed(seed)
    cells = replicate_cells(runs)
    if not (cells["n"] > 1).any():
        raise RunTableError(f"{runs.attrs.get('source', '<runs>')}: no (N, D) has two runs; the replicate model "
                            "needs repeated runs (column 'replicate', e.g. seeds) to tell run-to-run noise apart")
    x = {"log_params": np.log(cells["params"].to_numpy(float)), "log_tokens": np.log(cells["tokens"].to_numpy(float)),
         "n": cells["n"].to_numpy(float), "ss": cells["ss"].to_numpy(float)}
    samples, stats, record = sample_nuts(card, x, cells["mean_log_loss"].to_numpy(float), cells, chains=chains,
                                         warmup=warmup, draws=draws, seed=seed, target_accept=target_accept,
                                         progress=False, block="replicate")
    names = gated_sites(card, "replicate")
    return ReplicateFit({k: samples[k] for k in names}, cells, card,
                        block_convergence_stats(card, samples, stats, "replicate"), record)


__all__ = ["NOISE_SITES", "REPLICATE_COLUMN", "ReplicateFit", "build_replicate_model", "fit_replicates",
           "replicate_cells"]
