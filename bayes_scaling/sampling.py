"""Draws of a law's posterior: NUTS from a robust start, or the bootstrap of the classic approach-3 fit.

:func:`draw_law` samples the law alone (no model discrepancy) and :func:`assemble_fit`
turns the draws into a :class:`~bayes_scaling.fitted.Fit`; :func:`fit_law` does both.
:func:`bayes_scaling.fit` (:mod:`bayes_scaling.inference`) adds the discrepancy, whose
inner leave-future-out fits (:mod:`bayes_scaling.discrepancy_scale`) are ``fit_law`` calls.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax import Array
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import biject_to
from numpyro.handlers import seed as seed_handler
from numpyro.handlers import trace
from numpyro.infer import Predictive
from numpyro.infer.util import potential_energy, unconstrain_fn
from scipy.optimize import minimize

from . import _jax  # noqa: F401  (float64 before any JAX array exists)
from .cards import ModelCard, Prior
from .diagnostics import Diagnostics, convergence_stats, gate
from .errors import ConvergenceWarning, InputError
from .fitted import Fit, build_datatree, fit_attrs
from .huber import fit_huber
from .laws.sigmoid import TASK_VARIABLES
from .model import build_model, covariates, sampler_values
from .nuts import Schedule, model_key, pad_table, padded_rows, run_chains
from .replicate_model import NOISE_SITES
from .task_model import block_model

METHODS = ("nuts", "huber")
#: Tables with more rows (e.g. loss curves: many checkpoints per run) start from a pre-fit
#: on a random subsample of SUBSAMPLE_ROWS rows and warm up for at most LARGE_TABLE_WARMUP
#: iterations on the full table (see :func:`_prefit`).
LARGE_TABLE_ROWS = 2_000
SUBSAMPLE_ROWS = 1_000
LARGE_TABLE_WARMUP = 200
#: A fit failing the diagnostics gate runs again at most MAX_EXTENSIONS times; a failed run whose
#: R-hat was below POOL_RHAT keeps its draws; fits of fewer than EXTEND_MIN_DRAWS draws (chains ×
#: draws: quick looks, tests) are not extended.
MAX_EXTENSIONS, POOL_RHAT, EXTEND_MIN_DRAWS = 3, 1.05, 1000
#: Target acceptance of a run after one with divergent transitions (whose draws are then dropped).
DIVERGENCE_TARGET_ACCEPT = 0.97
#: Prior draws from which the MAP that starts NUTS is searched (laws without a classic fit).
MAP_STARTS = 8


@dataclass
class LawDraws:
    """Draws of a law's posterior for one run table, before they become a :class:`Fit`.

    Attributes
    ----------
    posterior : dict of str to array
        Each variable, shape (chain, draw[, group]).
    sample_stats : dict of str to array or None
        NUTS statistics (``None`` for the bootstrap).
    x : dict of str to array
        The runs' covariates (:func:`bayes_scaling.model.covariates`).
    log_loss : array
        The runs' observed log loss.
    extra : dict
        Method-specific records (the bootstrap's point estimate and converged share).
    elapsed_s : float
        Seconds spent drawing.
    """

    posterior: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray] | None
    x: dict[str, np.ndarray]
    log_loss: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0


def draw_law(runs: pd.DataFrame, card: ModelCard, *, method: str = "nuts", chains: int = 4, warmup: int = 1000,
             draws: int = 1000, seed: int = 0, target_accept: float = 0.9, bootstrap: int = 1000,
             progress: bool = False, param_count: str = "total") -> LawDraws:
    """Draws of the law's posterior (NUTS) or of its bootstrap (``method="huber"``) for validated runs.

    See :func:`bayes_scaling.fit` for the parameters; the card's discrepancy is ignored here.
    """
    x = covariates(runs, card, param_count)
    log_loss = np.log(runs["loss"].to_numpy(float))
    start = time.perf_counter()
    if method == "huber":
        if card.law.name != "chinchilla" or card.pooling:
            raise InputError(f"method 'huber' (approach 3) fits the unpooled chinchilla law only, "
                             f"not card {card.name!r}")
        result = fit_huber(runs.assign(params=np.exp(x["log_params"])), bootstrap=bootstrap, seed=seed)
        posterior = {k: result.bootstrap[k].to_numpy()[None, :] for k in card.law.parameters}
        posterior["sigma"] = np.full_like(posterior["E"], result.sigma)
        if isinstance(card.nu, Prior):
            # A fixed nu stands in for the prior's: the bootstrap does not estimate tails.
            posterior["nu"] = np.full_like(posterior["E"], 5.0)
        extra = {"point_estimate": {k: float(v) for k, v in result.point.items()},
                 "bootstrap_converged": result.converged_fraction}
        return LawDraws(posterior, None, x, log_loss, extra, time.perf_counter() - start)
    posterior, stats, record = sample_nuts(card, x, log_loss, runs, chains=chains, warmup=warmup, draws=draws,
                                           seed=seed, target_accept=target_accept, progress=progress)
    return LawDraws(posterior, stats, x, log_loss, {"sampler": record} if record else {}, time.perf_counter() - start)


def assemble_fit(card: ModelCard, runs: pd.DataFrame, law_draws: LawDraws, *, method: str, seed: int,
                 param_count: str = "total", elapsed_s: float | None = None) -> Fit:
    """The :class:`Fit` of drawn posterior: its DataTree and its provenance, built before it is."""
    tree = build_datatree(card, runs, law_draws.x, law_draws.log_loss, law_draws.posterior, law_draws.sample_stats,
                          seed=seed)
    attrs = fit_attrs(card, method=method, seed=seed,
                      elapsed_s=law_draws.elapsed_s if elapsed_s is None else elapsed_s, extra=law_draws.extra,
                      runs_source=str(runs.attrs.get("source", "")), runs_sha256=str(runs.attrs.get("sha256", "")),
                      param_count=param_count)
    return Fit(tree, card=card, attrs=attrs)


def fit_law(runs: pd.DataFrame, card: ModelCard, *, method: str = "nuts", seed: int = 0,
            param_count: str = "total", **options: Any) -> Fit:
    """The law's posterior for validated runs, as a :class:`Fit` without model discrepancy.

    ``options``: ``chains``, ``warmup``, ``draws``, ``target_accept``, ``bootstrap``, ``progress``
    (see :func:`bayes_scaling.fit`).
    """
    law_draws = draw_law(runs, card, method=method, seed=seed, param_count=param_count, **options)
    return assemble_fit(card, runs, law_draws, method=method, seed=seed, param_count=param_count)


def fit_law_subsets(runs: pd.DataFrame, card: ModelCard, subsets: Sequence[np.ndarray], *, chains: int = 4,
                    warmup: int = 1000, draws: int = 1000, target_accept: float = 0.9, seed: int = 0,
                    param_count: str = "total") -> list[Fit]:
    """The law's posterior on each of several subsets of one run table, drawn as one compiled run.

    The chains are dealt out over the subsets (chain i fits subset i mod len(subsets);
    ``max(chains, len(subsets))`` chains in all), each masking out the runs not in its
    subset, so that the fits share one program with every other fit of the same card,
    table-size bucket and schedule (:mod:`bayes_scaling.nuts`). All chains start around the
    whole table's robust point estimate. Used for the discrepancy's leave-future-out fits.

    Parameters
    ----------
    runs : DataFrame
        Validated run table.
    card : ModelCard
    subsets : sequence of int arrays
        Row positions in ``runs`` of each subset.
    chains, warmup, draws, target_accept, seed, param_count
        See :func:`bayes_scaling.fit`; ``chains`` counts all subsets together.

    Returns
    -------
    list of Fit
        One per subset, without model discrepancy, on that subset's runs.
    """
    start = time.perf_counter()
    union = np.unique(np.concatenate([np.asarray(s, int) for s in subsets]))
    table = runs.iloc[union].reset_index(drop=True)
    table.attrs = dict(runs.attrs)
    total = max(chains, len(subsets))
    owner = np.arange(total) % len(subsets)
    masks = np.zeros((total, len(table)), bool)
    for c in range(total):
        masks[c, np.searchsorted(union, subsets[owner[c]])] = True
    x = covariates(table, card, param_count)
    log_loss = np.log(table["loss"].to_numpy(float))
    init = _initial_values(card, covariates(runs, card, param_count), np.log(runs["loss"].to_numpy(float)), runs,
                           total, seed)
    result = run_chains(card, x, log_loss, init, schedule=Schedule(total, warmup, draws, target_accept), seed=seed,
                        masks=masks)
    elapsed = (time.perf_counter() - start) / len(subsets)
    fits = []
    for k, subset in enumerate(subsets):
        sub = runs.iloc[np.asarray(subset, int)].reset_index(drop=True)
        sub.attrs = dict(runs.attrs)
        chosen = owner == k
        law_draws = LawDraws({n: v[chosen] for n, v in _law_sites(card, result.samples).items()},
                             {n: v[chosen] for n, v in result.stats.items()}, covariates(sub, card, param_count),
                             np.log(sub["loss"].to_numpy(float)), {}, elapsed)
        fits.append(assemble_fit(card, sub, law_draws, method="nuts", seed=seed, param_count=param_count))
    return fits


def _initial_values(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray,
                    runs: pd.DataFrame, chains: int, seed: int) -> dict[str, jnp.ndarray]:
    """Per-chain unconstrained starting points jittered around a robust point estimate.

    The unpooled Chinchilla law starts from approach 3 (Huber); every other card from the
    best of :data:`MAP_STARTS` MAPs (:func:`_map_start`). Starting all chains from one
    point would hide multimodality from R-hat; the jitter (10% on scales, ±0.03 on
    exponents; ±0.1 in unconstrained space after a MAP) keeps them apart but inside the
    main mode.
    """
    rng = np.random.default_rng(seed)
    model = build_model(card)
    if card.law.name != "chinchilla" or card.pooling:
        return _jittered_map_starts(card, x, log_loss, chains, rng, seed)
    point = dict(_robust_point(np.exp(x["log_params"]), runs["tokens"].to_numpy(float), runs["loss"].to_numpy(float)))
    resid = log_loss - card.law.log_loss(point, {k: np.asarray(v) for k, v in x.items()})
    point["sigma"] = float(np.clip(np.std(resid), 1e-3, 0.5))
    if isinstance(card.nu, Prior):
        point["nu"] = 5.0
    out: dict[str, list] = {}
    for _ in range(chains):
        jittered = {}
        for k, v in point.items():
            if k in ("alpha", "beta"):
                jittered[k] = v + rng.uniform(-0.03, 0.03)
            else:
                jittered[k] = v * float(np.exp(rng.uniform(-0.1, 0.1)))
        support = {k: p.to_numpyro().support for k, p in card.priors.items()}
        for k, s in support.items():
            lo, hi = getattr(s, "lower_bound", -np.inf), getattr(s, "upper_bound", np.inf)
            jittered[k] = float(np.clip(jittered[k], np.asarray(lo) + 1e-6, np.asarray(hi) - 1e-6))
        # The transforms do not depend on the runs: one run stands for the table.
        unc = unconstrain_fn(model, ({k: np.asarray(v)[:1] for k, v in x.items()},), {"log_loss": log_loss[:1]},
                             sampler_values(card, jittered))
        for k, v in unc.items():
            out.setdefault(k, []).append(v)
    return {k: jnp.stack(v) for k, v in out.items()}


def _jittered_map_starts(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray, chains: int,
                        rng: np.random.Generator, seed: int, block: str = "law") -> dict[str, jnp.ndarray]:
    """Per-chain starts: the best MAP (:func:`_map_start`) jittered by ±0.1 in unconstrained space."""
    best, unravel = _map_start(card, x, log_loss, seed, block=block)
    starts = [unravel(jnp.asarray(best + rng.uniform(-0.1, 0.1, best.shape))) for _ in range(chains)]
    return {k: jnp.stack([s[k] for s in starts]) for k in starts[0]}


def _robust_point(params: np.ndarray, tokens: np.ndarray, loss: np.ndarray) -> dict[str, float]:
    """Approach 3's point estimate, remembered by the table's content (a fit and its inner fits share it)."""
    return _robust_point_cached(params.tobytes(), tokens.tobytes(), loss.tobytes())


@lru_cache(maxsize=16)
def _robust_point_cached(params: bytes, tokens: bytes, loss: bytes) -> dict[str, float]:
    columns = {k: np.frombuffer(v) for k, v in (("params", params), ("tokens", tokens), ("loss", loss))}
    return fit_huber(pd.DataFrame(columns), n_best=8).point


_POTENTIALS: dict[tuple, Any] = {}


def _potential_value_and_grad(card: ModelCard, unravel: Any, dim: int, block: str = "law") -> Any:
    """Jitted (potential, gradient) of a block of the card's model at a flat unconstrained point, the
    padded table an argument: compiled once per card, block, dimension and table-size bucket."""
    key = (model_key(card, block), dim)
    if key not in _POTENTIALS:
        model = block_model(card, block)
        _POTENTIALS[key] = jax.jit(jax.value_and_grad(
            lambda u, x, log_loss, mask: potential_energy(model, (x, log_loss, mask), {}, unravel(u))))
    return _POTENTIALS[key]


def _map_start(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray, seed: int,
               starts: int = MAP_STARTS, block: str = "law") -> tuple[np.ndarray, Callable[[Array], Any]]:
    """Best unconstrained MAP (flat vector and its unravel function) over prior-draw starts.

    The posterior is multimodal (a single MAP from the prior median can land at
    alpha ≈ 0.9), so L-BFGS runs from ``starts`` prior draws and the lowest potential wins.
    ``log_loss``: the block's observed values (accuracy for a task block).
    """
    model = block_model(card, block)
    # The priors do not depend on the runs: one run stands for the table (no compile per table size), and
    # the draws are vectorised (parallel), not a lax.map over a closure of that run, which compiled anew per table.
    one_run = ({k: jnp.asarray(v[:1]) for k, v in x.items()},)
    sites = trace(seed_handler(model, seed)).get_trace(*one_run, jnp.asarray(log_loss[:1]))
    latent = [n for n, site in sites.items() if site["type"] == "sample" and not site["is_observed"]]
    prior = Predictive(model, num_samples=starts, return_sites=latent, parallel=True)(jax.random.PRNGKey(seed),
                                                                                      *one_run)
    unconstrained = {n: biject_to(sites[n]["fn"].support).inv(prior[n]) for n in latent}
    unravel = ravel_pytree({n: v[0] for n, v in unconstrained.items()})[1]
    u0 = np.asarray(jax.vmap(lambda u: ravel_pytree(u)[0])(unconstrained), dtype=float)
    value_and_grad = _potential_value_and_grad(card, unravel, len(u0[0]), block)
    px, pll = pad_table(x, log_loss, padded_rows(len(log_loss)))
    mask = np.arange(len(pll)) < len(log_loss)
    data = ({k: jnp.asarray(v) for k, v in px.items()}, jnp.asarray(pll), jnp.asarray(mask))

    def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(jnp.asarray(u), *data)
        return float(value), np.asarray(grad, dtype=float)

    best = None
    for u in u0:
        if not np.isfinite(objective(u)[0]):
            continue
        res = minimize(objective, u, jac=True, method="L-BFGS-B", options={"maxiter": 1000})
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise InputError(f"card {card.name!r}: the log density is not finite at any of {starts} prior draws; "
                         "check the priors against the run table's scale")
    return best.x, unravel


def sample_nuts(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray, runs: pd.DataFrame, *,
                chains: int, warmup: int, draws: int, seed: int, target_accept: float, progress: bool,
                block: str = "law") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """NUTS draws of the card's model (dense mass matrix), grouped by chain, the sampler's statistics, and a record.

    ``block`` (:func:`bayes_scaling.task_model.block_model`): ``"law"``, the loss model
    (``log_loss`` the runs' log loss); ``"link"``, a chain task card's sigmoid (``x`` is
    ``{"inter": intermediate}``, ``log_loss`` the accuracy); ``"direct"``, a direct task
    card's model (``log_loss`` the accuracy); ``"replicate"``, the replicate model (``x``
    and ``log_loss`` per cell: see :func:`bayes_scaling.replicates.fit_replicates`). Starts:
    the law's robust point estimate (:func:`_initial_values`); for the link, NumPyro's
    default (uniform in (-2, 2), unconstrained; jittered starts around the least-squares
    sigmoid, whose ceiling often sits at its bound 1, left chains stuck at the boundary:
    R-hat 1.15 on HellaSwag); for a direct card and the replicate model, the best of
    :data:`MAP_STARTS` MAPs, jittered.

    The chains run as a compiled program reused by every fit of the same card, table size
    bucket and schedule (:mod:`bayes_scaling.nuts`); ``progress`` shows a bar (stderr, or a
    notebook widget) moved between the pieces of that program: the draws are the same without it.

    A fit that fails the diagnostics gate (R-hat, bulk ESS, divergences; small tables do)
    runs again from where its chains ended, at most :data:`MAX_EXTENSIONS` times, with the
    same compiled program: a run whose chains had agreed (R-hat < :data:`POOL_RHAT`) keeps
    its draws and the next run's, else it counts as warm-up; after divergent transitions
    the next run targets acceptance :data:`DIVERGENCE_TARGET_ACCEPT` and the divergent
    run's draws are dropped. Each extension warns
    (:class:`~bayes_scaling.errors.ConvergenceWarning`) and is recorded
    (``{"runs": n, "extended_because": [...], "draws_per_chain": d}``); a fit that still
    fails warns again. Fits of fewer than :data:`EXTEND_MIN_DRAWS` draws in all are not extended.
    """
    schedule = Schedule(chains, warmup, draws, target_accept)
    init: Mapping[str, Any]
    inverse_mass: np.ndarray | None = None
    if block == "link":
        init = _uniform_start(card, x, log_loss, chains, seed)
    elif block in ("direct", "replicate"):
        init = _jittered_map_starts(card, x, log_loss, chains, np.random.default_rng(seed), seed, block)
    elif len(log_loss) > LARGE_TABLE_ROWS:
        init, inverse_mass = _prefit(card, x, log_loss, runs, chains=chains, seed=seed, target_accept=target_accept)
        schedule = Schedule(chains, min(warmup, LARGE_TABLE_WARMUP), draws, target_accept, adapt_mass=False)
    else:
        init = _initial_values(card, x, log_loss, runs, chains, seed)
    with _progress_bar(progress, schedule, f"NUTS, {chains} chain(s)") as report:
        result = run_chains(card, x, log_loss, init, schedule=schedule, seed=seed, inverse_mass=inverse_mass,
                            progress=report, block=block)
    samples, stats = _law_sites(card, result.samples), result.stats
    if chains < 2 or chains * draws < EXTEND_MIN_DRAWS:
        return samples, stats, {}
    record: dict[str, Any] = {}
    what = f"NUTS fit of card {card.name!r}{_block_label(block)} on {_rows_label(block, len(log_loss))}"
    verdict = _gate(card, samples, stats, block)
    for k in range(MAX_EXTENSIONS):
        if not verdict.has_errors:
            break
        record.setdefault("extended_because", []).append(verdict.messages)
        warnings.warn(f"{what} failed its diagnostics gate ({'; '.join(verdict.messages)}); running it again from "
                      f"where its chains ended (run {k + 2} of at most {MAX_EXTENSIONS + 1})", ConvergenceWarning,
                      stacklevel=3)
        if verdict.divergences:
            # Divergences: smaller steps (the same program; the target is one of its arguments).
            target = max(schedule.target_accept, DIVERGENCE_TARGET_ACCEPT)
            schedule = dataclasses.replace(schedule, target_accept=target)
            record["target_accept"] = schedule.target_accept
        with _progress_bar(progress, schedule, f"NUTS, {chains} chain(s), run {k + 2}") as report:
            result = run_chains(card, x, log_loss, result.last, schedule=schedule, seed=seed + 7777 * (k + 1),
                                inverse_mass=inverse_mass, progress=report, block=block)
        more, more_stats = _law_sites(card, result.samples), result.stats
        if verdict.max_rhat < POOL_RHAT and not verdict.divergences:
            samples = {n: np.concatenate([v, more[n]], axis=1) for n, v in samples.items()}
            stats = {n: np.concatenate([v, more_stats[n]], axis=1) for n, v in stats.items()}
        else:
            samples, stats = more, more_stats
        verdict = _gate(card, samples, stats, block)
    if record:
        record.update(runs=len(record["extended_because"]) + 1, draws_per_chain=int(stats["n_steps"].shape[1]),
                      passed=not verdict.has_errors)
        if verdict.has_errors:
            warnings.warn(f"{what} still fails its diagnostics gate after {record['runs']} runs: "
                          f"{'; '.join(verdict.messages)}. Do not trust its intervals; check the run table, or try "
                          "another card", ConvergenceWarning, stacklevel=3)
    return samples, stats, record


@contextmanager
def _progress_bar(show: bool, schedule: Schedule, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over a run's warm-up and draws (tqdm), or ``None`` when not shown."""
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=schedule.warmup + schedule.draws, desc=f"{label}: warm-up", unit="it") as bar:
        def report(done: int) -> None:
            if done > schedule.warmup:
                bar.set_description(f"{label}: draws", refresh=False)
            bar.update(done - bar.n)

        yield report


def gated_sites(card: ModelCard, block: str = "law") -> list[str]:
    """The variables of one block's draws that the diagnostics gate judges (a Student-t ``nu`` is not)."""
    return {"law": [*card.law.parameters, "sigma"], "link": list(TASK_VARIABLES),
            "direct": [*card.law.parameters, *TASK_VARIABLES],
            "replicate": [*card.law.parameters, *NOISE_SITES]}[block]


def block_convergence_stats(card: ModelCard, samples: Mapping[str, np.ndarray], stats: Mapping[str, np.ndarray],
                            block: str = "law") -> dict[str, Any]:
    """:func:`bayes_scaling.diagnostics.convergence_stats` of one block's draws (not yet a fit) over
    :func:`gated_sites`; ``samples`` and ``stats`` as :func:`sample_nuts` returns them."""
    import arviz as az

    names = gated_sites(card, block)
    tree = az.from_dict({"posterior": {k: samples[k] for k in names},
                         "sample_stats": {"diverging": stats["diverging"], "tree_depth": stats["tree_depth"]}})
    return convergence_stats(tree["posterior"].to_dataset(), tree["sample_stats"].to_dataset(), names)


def _gate(card: ModelCard, samples: Mapping[str, np.ndarray], stats: Mapping[str, np.ndarray],
          block: str = "law") -> Diagnostics:
    """The diagnostics gate (:func:`bayes_scaling.diagnostics.gate`) of one block's draws, not yet a fit."""
    return gate(block_convergence_stats(card, samples, stats, block), gated_sites(card, block))


def _law_sites(card: ModelCard, samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The posterior variables a fit stores: every site but the observed one."""
    return {k: v for k, v in samples.items() if k not in ("log_loss", "metric")}


def _block_label(block: str) -> str:
    """How a warning names a block other than the law: ``" (link block)"``."""
    return "" if block == "law" else f" ({block} block)"


def _rows_label(block: str, rows: int) -> str:
    """How a warning names a block's rows: ``"240 runs"``, or ``"25 cells"`` of the replicate model."""
    return f"{rows} {'cells' if block == 'replicate' else 'runs'}"


def _uniform_start(card: ModelCard, x: Mapping[str, np.ndarray], observed: np.ndarray, chains: int,
                   seed: int) -> dict[str, jnp.ndarray]:
    """Per-chain starts uniform in (-2, 2), unconstrained (NumPyro's default), for the link block."""
    model = block_model(card, "link")
    one_run = ({k: jnp.asarray(v[:1]) for k, v in x.items()}, jnp.asarray(observed[:1]))
    sites = trace(seed_handler(model, seed)).get_trace(*one_run)
    rng = np.random.default_rng(seed + 1)
    return {n: jnp.asarray(rng.uniform(-2.0, 2.0, (chains, *np.shape(site["value"]))))
            for n, site in sites.items() if site["type"] == "sample" and not site["is_observed"]}


def _prefit(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray, runs: pd.DataFrame, *,
            chains: int, seed: int, target_accept: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Starting points and a dense inverse mass matrix for a large table, from a subsample.

    A full warm-up costs ~2,000 gradients per chain, each over every row (~10 ms at
    250,000 rows). NUTS on a random subsample of :data:`SUBSAMPLE_ROWS` rows is cheap and
    lands in the same mode; as the posterior covariance shrinks like 1/rows, the
    covariance of its unconstrained draws times ``m / n`` is a good inverse mass matrix
    for the full table, which then only adapts its step size. Each full-table chain
    starts where one subsample chain ended.
    """
    n, m = len(log_loss), SUBSAMPLE_ROWS
    idx = np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
    sub_x = {k: np.asarray(v)[idx] for k, v in x.items()}
    init = _initial_values(card, sub_x, log_loss[idx], runs.iloc[idx], chains, seed)
    result = run_chains(card, sub_x, log_loss[idx], init, seed=seed,
                        schedule=Schedule(chains, 400, max(1000 // chains, 50), target_accept))
    model = build_model(card)
    one_run = ({k: v[:1] for k, v in sub_x.items()},), {"log_loss": log_loss[:1]}
    flat_samples = {k: v.reshape(-1, *v.shape[2:]) for k, v in result.samples.items() if k in init}
    unconstrained = jax.vmap(lambda s: ravel_pytree(unconstrain_fn(model, *one_run, s))[0])(flat_samples)
    flat = np.asarray(unconstrained)
    return result.last, np.atleast_2d(np.cov(flat, rowvar=False)) * (m / n)


__all__ = ["METHODS", "LawDraws", "assemble_fit", "block_convergence_stats", "draw_law", "fit_law", "fit_law_subsets",
           "gated_sites", "sample_nuts"]
