"""Pre-posterior widths of a study by a Laplace (Fisher information) approximation.

What a study teaches is judged on ``count`` truths drawn from a source (the card's
prior, or a fit's posterior when the study extends earlier runs), in the sampler's
coordinates u (each prior's support mapped to the real line, as NumPyro's NUTS does):

1. the source's precision P0 is the inverse covariance of its draws in u;
2. for each truth, the posterior precision after the study is P0 + i J^T J, J the
   Jacobian of ln L over the study's runs (``jax.jacfwd``) and i the Fisher information
   of one run's log loss about its location: 1 / sigma^2 for normal noise,
   (nu + 1) / ((nu + 3) sigma^2) for Student-t;
3. the width of the ``level`` interval of ln N_opt at the target budget (and of ln L at
   the compute-optimal plan there) is 2 z sqrt(g^T (P0 + i J^T J)^-1 g), g its gradient
   in u (the delta method).

Reweighting draws (:mod:`.next_run`) is not used because its effective sample size
collapses when a whole study is far more informative than the source. :func:`coverage`
checks the approximation on simulated studies: each truth's runs with the card's noise,
fitted by Gauss-Newton (iteratively reweighted for Student-t, started from the truth) to
the Laplace posterior at its mode. Widths ignore any model discrepancy beyond the fitted runs: they are those
of the law's parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtri

from .. import _jax  # noqa: F401  (float64 before the first JAX computation)
from ..allocation import optimal_log_params
from ..cards import ModelCard, Prior, load_card
from ..errors import InputError
from ..noise import observation_noise
from ..posterior import Posterior, PosteriorInput, as_posterior
from ..tables import check_level, check_seed

#: What a study informs: ln N_opt at the target budget, and ln L at the compute-optimal plan there.
QUANTITIES = ("n_opt", "loss_opt")
#: Draws of the card's prior that set its mean and precision in the sampler's coordinates.
PRIOR_DRAWS = 4000


@dataclass(frozen=True)
class Scenarios:
    """Truths a design is judged on, and the source's Gaussian approximation in the sampler's coordinates.

    Attributes
    ----------
    card : ModelCard
    u : array of shape (S, P)
        The truths in the sampler's coordinates (law parameters in the card's order).
    sigma, info : arrays of shape (S,)
        Each truth's noise scale on log loss, and one run's Fisher information about its log loss.
    nu : array of shape (S,) or None
        Student-t degrees of freedom (None: normal noise).
    mean : array of shape (P,)
    precision : array of shape (P, P)
        Mean and precision of the source's draws in the sampler's coordinates.
    source : str
        ``"prior of card X"`` or ``"posterior of fit (card X)"``.
    """

    card: ModelCard
    u: np.ndarray
    sigma: np.ndarray
    info: np.ndarray
    nu: np.ndarray | None
    mean: np.ndarray
    precision: np.ndarray
    source: str

    def theta(self, u: Any) -> dict[str, Any]:
        """Law parameters from coordinates ``u`` (last axis P), NumPy or JAX."""
        return {name: _bijector(self.card.priors[name])(u[..., i]) for i, name in enumerate(self.card.law.parameters)}


def _bijector(prior: Prior) -> Any:
    from numpyro.distributions.transforms import biject_to

    return biject_to(prior.to_numpyro().support)


def scenarios(source: PosteriorInput | None, card: ModelCard | str | None = None, *, count: int = 64,
              seed: int = 0) -> Scenarios:
    """Draw ``count`` truths from a fit's posterior (``source``) or, without one, from the card's prior.

    Parameters
    ----------
    source : Fit, FitArrays, mapping of draws or None
        An existing fit the study extends; ``None``: the card's prior.
    card : ModelCard or str, optional
        The card (default ``"chinchilla"``); a fit brings its own.
    count : int, default 64
    seed : int, default 0
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise InputError(f"scenarios must be an integer of at least 2 but got {count!r}")
    seed = check_seed(seed)
    if source is None:
        card = load_card(card or "chinchilla") if not isinstance(card, ModelCard) else card
        check_card(card)
        keys = jax.random.split(jax.random.PRNGKey(seed), len(card.priors) + 2)
        theta = {n: np.asarray(p.to_numpyro().sample(k, (PRIOR_DRAWS,)))
                 for (n, p), k in zip(card.priors.items(), keys, strict=False)}
        sigma = np.asarray(card.sigma.to_numpyro().sample(keys[-2], (PRIOR_DRAWS,)))
        nu: Any = (np.asarray(card.nu.to_numpyro().sample(keys[-1], (PRIOR_DRAWS,)))
                   if isinstance(card.nu, Prior) else card.nu)
        label = f"prior of card {card.name}"
    else:
        post = as_posterior(source, card)
        if not isinstance(post, Posterior):
            raise InputError("a study design needs the draws of one card, not a model average")
        card, theta, sigma, nu = post.card, post.theta, post.sigma, post.nu
        check_card(card)
        label = f"posterior of a fit (card {card.name})"
    names = card.law.parameters
    u_all = np.stack([np.asarray(_bijector(card.priors[n]).inv(jnp.asarray(theta[n]))) for n in names], axis=-1)
    if not np.isfinite(u_all).all():
        raise InputError("some draws lie on the boundary of their prior's support; the design cannot use them")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(sigma), size=count, replace=count > len(sigma))
    sig = np.asarray(sigma, dtype=float)[pick]
    nus = None if card.likelihood == "normal" else np.broadcast_to(np.asarray(nu, dtype=float), sigma.shape)[pick]
    info = 1 / sig**2 if nus is None else (nus + 1) / ((nus + 3) * sig**2)
    return Scenarios(card, u_all[pick], sig, info, nus, u_all.mean(axis=0), np.linalg.inv(np.cov(u_all.T)), label)


def check_card(card: ModelCard) -> None:
    law = card.law
    if card.pooling is not None or set(law.covariates) != {"params", "tokens"} or law.compute_optimal is None:
        raise InputError(f"study design needs an unpooled law of N and D alone with a closed-form optimum; "
                         f"card {card.name!r} (law {law.name!r}) is not one")


def jacobians(sc: Scenarios, params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """d ln L / du at each run, shape (S, K, P)."""
    x = {"log_params": jnp.log(jnp.asarray(params)), "log_tokens": jnp.log(jnp.asarray(tokens))}

    def log_loss(u: Any) -> Any:
        return sc.card.law.log_loss(sc.theta(u), x)

    return np.asarray(jax.vmap(jax.jacfwd(log_loss))(jnp.asarray(sc.u)))


def log_quantities(sc: Scenarios, target: float) -> Callable[[Any], Any]:
    """u -> (ln N_opt, ln L at the compute-optimal plan) at the target budget."""
    log_c = math.log(target)

    def both(u: Any) -> Any:
        theta = sc.theta(u)
        log_n = optimal_log_params(sc.card.law, theta, jnp.asarray(log_c))
        log_d = log_c - math.log(6) - log_n
        return jnp.stack([log_n, sc.card.law.log_loss(theta, {"log_params": log_n, "log_tokens": log_d})])

    return both


def gradients(sc: Scenarios, target: float) -> np.ndarray:
    """Gradients of the quantities in u, shape (S, 2, P)."""
    return np.asarray(jax.vmap(jax.jacfwd(log_quantities(sc, target)))(jnp.asarray(sc.u)))


def covariances(sc: Scenarios, jac: np.ndarray) -> np.ndarray:
    """Laplace posterior covariance after the runs of ``jac`` (S, R, P), shape (S, P, P)."""
    info = sc.precision[None] + sc.info[:, None, None] * np.einsum("srp,srq->spq", jac, jac)
    return np.linalg.inv(info)


def interval_widths(cov: np.ndarray, grad: np.ndarray, z: float) -> np.ndarray:
    """Widths 2 z sd of each quantity per scenario, shape (S, 2)."""
    return 2 * z * np.sqrt(np.maximum(np.einsum("sqp,spr,sqr->sq", grad, cov, grad), 0))


def z_value(level: float) -> float:
    """The standard normal (1 + level) / 2 quantile: an interval of ``level`` is 2 z sd wide."""
    return float(ndtri((1 + check_level(level)) / 2))


def coverage(sc: Scenarios, n: np.ndarray, d: np.ndarray, target: float, z: float, seed: int,
              steps: int = 12) -> np.ndarray:
    """Share of simulated studies whose Laplace interval holds the truth, per quantity (NaN fits miss).

    Each fit starts from its truth (``steps`` Gauss-Newton steps): a multimodal posterior's
    other modes are not looked for, so the coverage is that of the mode near the truth.
    """
    x = {"log_params": jnp.log(jnp.asarray(n)), "log_tokens": jnp.log(jnp.asarray(d))}
    quantities = log_quantities(sc, target)
    noise = observation_noise(sc.card, sc.sigma[:, None], None if sc.nu is None else sc.nu[:, None],
                              (len(sc.u), n.size), seed)
    p0, mu0 = jnp.asarray(sc.precision), jnp.asarray(sc.mean)

    def fit_one(u_true: Any, eps: Any, sigma: Any, nu_s: Any, info: Any) -> Any:
        def log_loss(u: Any) -> Any:
            return sc.card.law.log_loss(sc.theta(u), x)

        y = log_loss(u_true) + eps

        def step(_: int, u: Any) -> Any:
            r = y - log_loss(u)
            jac = jax.jacfwd(log_loss)(u)
            # Student-t by iteratively reweighted least squares; nu = inf gives the normal weights 1 / sigma^2.
            w = jnp.where(jnp.isinf(nu_s), 1.0, (nu_s + 1) / (nu_s + (r / sigma) ** 2)) / sigma**2
            h = p0 + (jac * w[:, None]).T @ jac
            return u + jnp.linalg.solve(h, jac.T @ (w * r) - p0 @ (u - mu0))

        u_hat = jax.lax.fori_loop(0, steps, step, u_true)
        jac = jax.jacfwd(log_loss)(u_hat)
        cov = jnp.linalg.inv(p0 + info * jac.T @ jac)
        g = jax.jacfwd(quantities)(u_hat)
        sd = jnp.sqrt(jnp.einsum("qp,pr,qr->q", g, cov, g))
        return jnp.abs(quantities(u_hat) - quantities(u_true)) <= z * sd

    nus = jnp.full(len(sc.u), jnp.inf) if sc.nu is None else jnp.asarray(sc.nu)
    hits = jax.vmap(fit_one)(jnp.asarray(sc.u), jnp.asarray(noise), jnp.asarray(sc.sigma), nus,
                             jnp.asarray(sc.info))
    return np.asarray(hits, dtype=float).mean(axis=0)
