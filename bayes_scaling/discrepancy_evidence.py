"""Evidence about the model discrepancy's scale tau: likelihoods on a grid of tau, and its posterior.

Pure statistics on posterior draws and residuals; the fits that produce them are run by
:mod:`bayes_scaling.discrepancy_scale`. What the discrepancy is, and how it enters a
prediction, is in :mod:`bayes_scaling.discrepancy`.

Learning tau (internal leave-future-out)
----------------------------------------
The runs below the largest one cannot say how wrong the law is beyond it, but they can
say how wrong it was at *their* frontier. With ``calibrate = [1.0, 2.0]`` in the card,
the fit cuts its own run table 1 and 2 e-folds of compute below the largest run, fits the
plain law to each lower part, and asks how well it predicted the upper part. Each split k
contributes the marginal likelihood of its held-out residuals r (observed minus law),
the slope integrated out and the inner fit's predictive distribution matched by a normal,

    p(r̄_k | tau) = Normal(r̄_k; 0, Cov_posterior(r_k) + noise² I + tau² g_k g_kᵀ),   g_k = √d_k,

so the inner fit's parameter uncertainty (correlated between runs) is not counted as
discrepancy. The posterior of tau on a grid is the card's prior times these
likelihoods; each posterior draw of the main fit then gets a draw of tau and a slope s,
stored with the fit as ``discrepancy_tau`` and ``discrepancy_slope``. Without
``calibrate`` tau is drawn from its prior.

Learning tau from the law's misfit inside the data
--------------------------------------------------
A law that misses the runs it was fitted to (residuals with structure, beyond noise) is
the law that drifts beyond them; one that fits them to noise level has no such evidence
against it. With ``misfit_ratio = kappa`` in the card, the fit's own residuals r (observed
minus posterior-mean law log loss) are modelled as a smooth misfit plus noise,

    r ~ Normal(0, eta² K_ell + sigma² I),   K_ell = exp(−|x − x'|² / (2 ell²)),  x = (ln N, ln D),

a Gaussian process of amplitude eta over the runs' log parameters and log tokens, and tau
is tied to it by tau = kappa · eta: one e-fold of compute beyond the data the law has
drifted by about kappa times what it misses inside (sd of delta = kappa · eta · √d). The
length scale ell (from twice to four times the median distance between neighbouring runs:
shorter cannot be told from noise; longer departures are largely absorbed by the law's own
parameters, and the amplitude of what is left of them is so weakly identified that it made
tau jump from 0.01 to 0.03 when the real table's top 17 runs were added) and the noise sigma
(0.1 to 2 times the residuals' sd) are integrated out on log grids, so p(r | eta) is a
likelihood of tau on its grid, multiplied with the prior and the leave-future-out
splits'. On data where the law is exact, this likelihood falls off within a fraction of
the noise and tau shrinks towards zero; on the Chinchilla reconstruction (smooth residual
structure of 0.6-0.7% amplitude) it does not. kappa = 2 in the default card was chosen
across five published tables (``benchmarks/bench_calibration_tables.py``, docs/calibration.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .cards import ModelCard, Prior
from .discrepancy import discrepancy_growth, fitted_region
from .fitted import Fit
from .model import covariates, law_parameters
from .prediction import heldout_covariates

_TAU_POINTS, _MAX_DRAWS = 401, 1000
#: Misfit model: fewest and most runs used (a random subset of a larger table), and grid
#: points of the length scale and of the noise integrated out.
MIN_MISFIT_ROWS, MAX_MISFIT_ROWS = 10, 800
MISFIT_LENGTHS, MISFIT_NOISES = 8, 24


@dataclass(frozen=True)
class TauPosterior:
    """Posterior of tau (log loss per √e-fold of compute) on a grid.

    Attributes
    ----------
    grid : array
        Values of tau, ascending, starting at 0.
    weights : array
        Posterior probability of each grid cell (sums to 1).
    splits : list of dict
        Per internal split: ``offset`` (e-folds below the largest run), ``n_train``,
        ``n_test``, ``tau_mle`` (the grid value of highest likelihood) or ``skipped`` (why).
    misfit : dict or None
        When the fit's residuals informed tau (card key ``misfit_ratio``): ``n_runs``,
        ``ratio``, ``length_scales`` (e-folds, the grid's ends), ``amplitude_mle`` (eta of
        highest likelihood, log loss) or ``skipped`` (why).
    """

    grid: np.ndarray
    weights: np.ndarray
    splits: list[dict[str, Any]]
    misfit: dict[str, Any] | None = None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of tau: a grid cell by its weight, then uniform within the cell."""
        cell = rng.choice(len(self.grid), size=n, p=self.weights)
        lo = self.grid[np.maximum(cell - 1, 0)]
        return lo + (self.grid[cell] - lo) * rng.uniform(size=n)

    def mean(self) -> float:
        """Posterior mean of tau."""
        return float(np.sum(self.grid * self.weights))

    def quantile(self, q: float) -> float:
        """Posterior q-quantile of tau (grid resolution)."""
        return float(self.grid[min(int(np.searchsorted(np.cumsum(self.weights), q)), len(self.grid) - 1)])


def tau_grid(prior: Prior, seed: int = 0) -> np.ndarray:
    """Even grid of tau from 0 to the prior's 99.95% quantile (estimated from 20,000 prior draws)."""
    top = float(np.quantile(prior_draws(prior, 20_000, seed), 0.9995))
    return np.linspace(0.0, top, _TAU_POINTS)


def prior_draws(prior: Prior, n: int, seed: int) -> np.ndarray:
    import jax

    return np.asarray(prior.to_numpyro().sample(jax.random.PRNGKey(seed), (n,)), dtype=float)


def prior_log_density(prior: Prior, grid: np.ndarray) -> np.ndarray:
    import jax.numpy as jnp

    return np.asarray(prior.to_numpyro().log_prob(jnp.asarray(np.maximum(grid, 1e-12))), dtype=float)


def marginal_log_likelihood(resid: np.ndarray, noise_variance: float, growth: np.ndarray,
                            grid: np.ndarray, correlation: float = 1.0) -> np.ndarray:
    """log p(residuals | tau) of held-out runs, the slope integrated out, for each tau of ``grid``.

    The inner fit's predictive distribution of the held-out log losses is matched by a
    normal with the draws' mean and covariance (parameter uncertainty, correlated between
    runs) plus independent noise; the shared slope adds tau² g gᵀ. So

        r̄ ~ Normal(0, Σ + tau² g gᵀ),    Σ = Cov_draws(r) + noise_variance · I,

    evaluated for every tau at once by the matrix determinant lemma and Sherman–Morrison.

    Parameters
    ----------
    resid : array of shape (S, T)
        Observed minus law log loss per posterior draw and held-out run.
    noise_variance : float
        Variance of one run's noise on log loss (``E[sigma²]·nu/(nu−2)`` for Student-t).
    growth : array of shape (T,)
        How much of the slope each run carries: √(extrapolation distance in e-folds of
        compute), see :func:`bayes_scaling.discrepancy.discrepancy_growth`.
    grid : array
        Values of tau (log loss per √e-fold), >= 0.
    correlation : float, default 1.0
        How the discrepancy at two held-out runs is read (see :func:`moments_log_likelihood`):
        1 a shared slope, 0 independent per run.

    Returns
    -------
    array of shape grid.shape
    """
    resid = np.asarray(resid, float)
    mean = resid.mean(axis=0)
    cov = np.atleast_2d(np.cov(resid, rowvar=False)) if resid.shape[0] > 1 else np.zeros((len(mean),) * 2)
    return moments_log_likelihood(mean, cov, noise_variance, growth, grid, correlation)


def moments_log_likelihood(mean: np.ndarray, cov: np.ndarray, noise_variance: float, growth: np.ndarray,
                           grid: np.ndarray, correlation: float = 1.0) -> np.ndarray:
    """:func:`marginal_log_likelihood` from the residual draws' ``mean`` (T,) and covariance ``cov`` (T, T).

    ``correlation`` (rho, in [0, 1]) is how the discrepancy at two held-out runs is
    read: ``1`` one shared slope (tau² g gᵀ, this split is one realisation of it);
    ``0`` independent per run (tau² diag(g²), each run one realisation); between, the mix
    tau² (rho g gᵀ + (1 − rho) diag(g²)). Below 1 the likelihood is computed exactly at
    :data:`CORRELATION_POINTS` values of tau and interpolated on ``grid`` by a cubic spline in tau²
    (on which it depends smoothly).
    """
    if correlation < 1.0:
        return _mixed_log_likelihood(mean, cov, noise_variance, growth, grid, correlation)
    chol = np.linalg.cholesky(cov + noise_variance * np.eye(len(mean)))
    white_r = np.linalg.solve(chol, mean)
    white_d = np.linalg.solve(chol, np.asarray(growth, float))
    q, m, quad = white_d @ white_d, white_d @ white_r, white_r @ white_r
    t2 = np.asarray(grid, float) ** 2
    logdet = 2 * np.sum(np.log(np.diag(chol))) + np.log1p(t2 * q)
    return -0.5 * (len(mean) * np.log(2 * np.pi) + logdet + quad - t2 * m * m / (1 + t2 * q))


#: Values of tau at which :func:`moments_log_likelihood` is computed exactly when ``correlation < 1``.
CORRELATION_POINTS = 64


def _mixed_log_likelihood(mean: np.ndarray, cov: np.ndarray, noise_variance: float, growth: np.ndarray,
                          grid: np.ndarray, correlation: float) -> np.ndarray:
    """log Normal(mean; 0, Σ + tau² (rho g gᵀ + (1 − rho) diag(g²))) at a few tau, interpolated on ``grid``."""
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [0, 1]; got {correlation}")
    grid = np.asarray(grid, float)
    g = np.asarray(growth, float)
    base = cov + noise_variance * np.eye(len(mean))
    shape = correlation * np.outer(g, g) + (1.0 - correlation) * np.diag(g * g)
    top = max(float(grid.max()), 1e-9)
    # evenly spaced and geometrically spaced values together: fine both near 0 and across the grid
    half = CORRELATION_POINTS // 2
    taus = np.unique(np.concatenate([np.linspace(0.0, top, half), np.geomspace(top * 1e-3, top, half)]))
    ll = np.empty(len(taus))
    for k, tau in enumerate(taus):
        chol = np.linalg.cholesky(base + tau * tau * shape)
        white = np.linalg.solve(chol, mean)
        ll[k] = -0.5 * (len(mean) * np.log(2 * np.pi) + 2 * np.sum(np.log(np.diag(chol))) + white @ white)
    from scipy.interpolate import CubicSpline

    return np.asarray(CubicSpline(taus * taus, ll)(grid * grid), float)


def misfit_log_likelihood(resid: np.ndarray, coords: np.ndarray, amplitudes: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """log p(residuals | eta) of a smooth misfit of amplitude eta plus noise, for each eta.

    The residuals are modelled as ``Normal(0, eta² K_ell + sigma² I)`` with a squared-
    exponential kernel ``K_ell`` over ``coords``; the length scale ell and the noise sigma
    are integrated out under log-uniform priors on grids (see the module docstring). For
    each ell the kernel matrix is diagonalised once, so every (eta, sigma) costs O(n).

    Parameters
    ----------
    resid : array of shape (n,)
        Observed minus fitted log loss of the runs.
    coords : array of shape (n, k)
        The runs' inputs in log space (ln parameters, ln tokens).
    amplitudes : array
        Values of eta (log loss), >= 0.

    Returns
    -------
    (array of shape amplitudes.shape, array of shape (2,))
        The log likelihood, and the length-scale grid's ends (e-folds).
    """
    from scipy.special import logsumexp

    resid, coords = np.asarray(resid, float), np.asarray(coords, float)
    sq = np.sum((coords[:, None, :] - coords[None, :, :]) ** 2, axis=-1)
    dist = np.sqrt(sq)
    np.fill_diagonal(dist, np.inf)
    nearest = dist.min(axis=1)
    nearest = nearest[np.isfinite(nearest) & (nearest > 0)]
    lo = 2 * max(float(np.median(nearest)) if len(nearest) else 0.0, 0.025)
    hi = 2 * lo
    lengths = np.geomspace(lo, hi, MISFIT_LENGTHS)
    sd = max(float(np.std(resid)), 1e-12)
    noises = np.geomspace(0.1 * sd, 2 * sd, MISFIT_NOISES)
    amp2 = np.asarray(amplitudes, float).reshape(-1, 1, 1) ** 2
    per_length = []
    for ell in lengths:
        lam, vec = np.linalg.eigh(np.exp(-0.5 * sq / ell**2))
        z2 = (vec.T @ resid) ** 2
        var = amp2 * np.maximum(lam, 0.0) + noises.reshape(1, -1, 1) ** 2        # (A, S, n)
        ll = -0.5 * np.sum(np.log(2 * np.pi * var) + z2 / var, axis=-1)          # (A, S)
        per_length.append(logsumexp(ll, axis=1) - np.log(len(noises)))
    out = logsumexp(np.array(per_length), axis=0) - np.log(len(lengths))
    return out.reshape(np.shape(amplitudes)), np.array([lo, hi])


def draw_index(total: int, max_draws: int) -> np.ndarray:
    """Indices of at most ``max_draws`` of ``total`` flattened draws (chains × draws), evenly spaced."""
    return np.linspace(0, total - 1, min(max_draws, total)).astype(int)


def law_log_loss_draws(card: ModelCard, posterior: Any, x: Mapping[str, np.ndarray], max_draws: int) -> np.ndarray:
    """The law's log loss at ``x`` for at most ``max_draws`` posterior draws (:func:`draw_index`), shape (S, runs)."""
    flat = {k: np.asarray(posterior[k]).reshape(-1, *np.shape(posterior[k])[2:]) for k in card.law.parameters}
    keep = draw_index(len(next(iter(flat.values()))), max_draws)
    pooled = card.pooling.parameters if card.pooling else ()
    theta = {k: v[keep] if k in pooled else v[keep][:, None] for k, v in flat.items()}
    return np.asarray(card.law.log_loss(law_parameters(card, theta, x), x))


def law_residuals(card: ModelCard, posterior: Any, x: Mapping[str, np.ndarray], log_loss: np.ndarray) -> np.ndarray:
    """Observed minus posterior-mean law log loss of the fitted runs (200 draws at most).

    Parameters
    ----------
    card : ModelCard
    posterior : mapping
        Posterior draws of the law's parameters, each of shape (chain, draw[, group]).
    x : dict
        The runs' covariates (:func:`bayes_scaling.model.covariates`).
    log_loss : array
        The runs' observed log loss.
    """
    return np.asarray(log_loss, float) - law_log_loss_draws(card, posterior, x, 200).mean(axis=0)


def frontier_rows(log_flops: np.ndarray, window: float | None) -> np.ndarray:
    """Positions of the runs within ``window`` e-folds of compute below the largest (every run: ``None``).

    The misfit is read there only (card key ``misfit_window``): the law's misfit far below
    the frontier (tiny, under-trained runs) says little about its drift beyond it.
    """
    log_flops = np.asarray(log_flops, float)
    if window is None:
        return np.arange(len(log_flops))
    return np.flatnonzero(log_flops >= log_flops.max() - window)


def misfit_record(card: ModelCard, posterior: Any, runs: pd.DataFrame, grid: np.ndarray, *, seed: int = 0,
                  param_count: str = "total") -> tuple[np.ndarray, dict[str, Any]]:
    """log p(residuals | tau = ratio · eta) on ``grid`` for a fit's runs, and a record of it.

    Zero (no information) with a ``skipped`` record when fewer than
    :data:`MIN_MISFIT_ROWS` runs; tables larger than :data:`MAX_MISFIT_ROWS` are subsampled
    before the residuals (:func:`law_residuals`) are computed, so a loss-curve table costs
    no more than its subsample.

    Parameters
    ----------
    card : ModelCard
        A card with ``misfit_ratio``.
    posterior : mapping
        The fit's posterior draws of the law's parameters, each (chain, draw[, group]).
    runs : DataFrame
        The fit's run table.
    grid : array
        Values of tau.
    seed : int, default 0
        Seed of the subsample.
    param_count : {"total", "non_embedding"}
    """
    assert card.discrepancy is not None and card.discrepancy.misfit_ratio is not None
    ratio = card.discrepancy.misfit_ratio
    record: dict[str, Any] = {"n_runs": int(len(runs)), "ratio": ratio}
    if len(runs) < MIN_MISFIT_ROWS:
        record["skipped"] = f"needs at least {MIN_MISFIT_ROWS} runs"
        return np.zeros_like(grid), record
    window = card.discrepancy.misfit_window
    rows = frontier_rows(np.log(runs["flops"].to_numpy(float)), window)
    if window is not None:
        record["n_runs"], record["window"] = int(len(rows)), float(window)
        if len(rows) < MIN_MISFIT_ROWS:
            record["skipped"] = f"needs at least {MIN_MISFIT_ROWS} runs within {window:g} e-folds of the largest"
            return np.zeros_like(grid), record
    if len(rows) > MAX_MISFIT_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_MISFIT_ROWS, replace=False))
        record["n_runs"] = MAX_MISFIT_ROWS
    # covariates of the whole table (a pooled card's group columns follow all its groups), then the subsample
    x = {k: np.asarray(v)[rows] for k, v in covariates(runs, card, param_count).items()}
    resid = law_residuals(card, posterior, x, np.log(runs["loss"].to_numpy(float)[rows]))
    ll, lengths = misfit_log_likelihood(resid, np.column_stack([x["log_params"], x["log_tokens"]]), grid / ratio)
    record.update(length_scales=[float(v) for v in lengths], amplitude_mle=float(grid[np.argmax(ll)] / ratio))
    return ll, record


def split_log_likelihood(card: ModelCard, inner: Fit, held_out: pd.DataFrame, grid: np.ndarray,
                         directions: Sequence[str] = ("compute",), correlation: float = 1.0) -> np.ndarray:
    """log p(held-out runs | tau) for each tau of ``grid``, under an inner fit's posterior.

    Parameters
    ----------
    card : ModelCard
        The card of the inner fit (no discrepancy).
    inner : Fit
        Fit to the runs below the split.
    held_out : DataFrame
        Runs above the split (validated, with ``loss``).
    grid : array
        Values of tau (log loss per √e-fold of compute).
    directions : sequence of str, default ("compute",)
        Directions in which the held-out runs' distance beyond the inner fit's runs is
        counted (the outer card's ``[discrepancy] directions``).
    correlation : float, default 1.0
        The outer card's ``[discrepancy] split_correlation`` (see :func:`moments_log_likelihood`).

    Returns
    -------
    array of shape grid.shape
        See :func:`marginal_log_likelihood`; at most 1,000 posterior draws are used.
    """
    x = heldout_covariates(inner, held_out)
    post = inner.posterior
    flat = {k: np.asarray(post[k]).reshape(-1) for k in ("sigma", *(["nu"] if "nu" in post else []))}
    keep = draw_index(len(flat["sigma"]), _MAX_DRAWS)                               # the draws of ``loc``
    loc = law_log_loss_draws(card, post, x, _MAX_DRAWS)                                   # (S, T)
    y = np.log(held_out["loss"].to_numpy(float))
    region = fitted_region(inner.arrays.constant_data, directions, str(inner.attrs.get("param_count", "total")))
    growth = discrepancy_growth(region.distance(x["log_params"], x["log_tokens"]))
    nu = np.asarray(flat["nu"][keep]) if "nu" in flat else card.nu
    noise = float(np.mean(flat["sigma"][keep] ** 2))
    if card.likelihood == "student_t":
        assert isinstance(nu, (np.ndarray, float)), "a Student-t card has draws of nu or a fixed nu"
        # the variance of a Student-t is sigma² nu / (nu - 2); for nu <= 2 (infinite) it is capped at 3 sigma²
        noise *= float(np.mean(np.where(nu > 2, nu / np.maximum(nu - 2, 1e-9), 3.0)))
    return marginal_log_likelihood(y - loc, noise, growth, grid, correlation)


