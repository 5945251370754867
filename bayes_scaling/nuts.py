"""NUTS chains as one compiled program per (model, table size, schedule), reused by every fit.

A fit through :class:`numpyro.infer.MCMC` traces and compiles its sampler anew for every
run table, because the table is a constant of the program. Here the table is an argument:
rows are padded to a size bucket (:func:`padded_rows`) and the padding is masked out of
the likelihood, so every fit of the same card whose table falls in the same bucket, with
the same chains, warm-up and draws (the main fit, the discrepancy's leave-future-out fits,
backtest cutoffs, sensitivity refits), runs the same compiled program: compiled once per
process, and loaded from JAX's persistent cache in the next one.

Each chain has its own row mask, so chains of one program can fit different subsets of one
table: the discrepancy's leave-future-out splits are one run (:func:`run_chains`).

The dense mass matrix is adapted without Stan's shrinkage towards 1e-3·I: the posterior
of a scaling law has ridge directions whose variance (~2e-7 in unconstrained space on the
Chinchilla table) is far below that shrinkage, which then sets the step size and tripled
the leapfrog steps per draw (34 → 11 on that table, same posterior). The ``link`` block (a
task card's sigmoid) keeps the shrinkage: its posterior has no such ridge, and without it
the adapted matrix left 1-6 divergences per 4,000 draws at target acceptance 0.97 on the
OLMo ladder's HellaSwag and ARC-Easy (the gate then ran it 3-4 times); with it, none.

A run goes in pieces (:func:`pieces`: warm-up iterations, then draws), each a call of the
same compiled programs, between which :func:`run_chains` can report progress: a fit with a
progress bar runs exactly what one without runs, and draws the same.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, potential_energy

from . import _jax  # noqa: F401  (float64 before any JAX array exists)
from .cards import ModelCard
from .task_model import BLOCKS, block_model

#: Smallest padded table, and the size above which tables pad to a multiple of it, not a power of two.
MIN_ROWS, LINEAR_ABOVE = 64, 2048
#: Statistics of every draw (names as stored in a fit's ``sample_stats``).
STATS = ("diverging", "n_steps", "energy", "acceptance_rate", "step_size")
#: Pieces each phase of a run (warm-up, draws) is cut into, whether or not progress is reported.
PIECES = 20


def padded_rows(n: int) -> int:
    """Rows of the compiled program for a table of ``n`` rows: the next power of two (at least
    :data:`MIN_ROWS`), or the next multiple of :data:`LINEAR_ABOVE` above that size."""
    if n <= LINEAR_ABOVE:
        return max(MIN_ROWS, 1 << max(0, math.ceil(math.log2(max(n, 1)))))
    return LINEAR_ABOVE * math.ceil(n / LINEAR_ABOVE)


def pad_table(x: Mapping[str, np.ndarray], log_loss: np.ndarray, rows: int
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The covariates and log losses padded to ``rows`` rows with copies of the first row.

    Padding rows repeat a real run, so every term stays finite; the mask removes them.
    """
    n = len(log_loss)
    index = np.concatenate([np.arange(n), np.zeros(rows - n, dtype=int)])
    return {k: np.asarray(v)[index] for k, v in x.items()}, np.asarray(log_loss)[index]


def model_key(card: ModelCard, block: str = "law") -> str:
    """What the compiled program of one block of the card's model depends on.

    ``"law"`` (the loss model): the law, the priors, the likelihood, the pooling; two cards
    that differ only in name, description, references, discrepancy or task share it (so
    the law of a task card compiles once for every task). ``"link"`` (a chain card's
    sigmoid) and ``"direct"`` (a direct card's whole model) add the task's kind, chance
    and priors, not its column names. ``"replicate"`` (the replicate model over cells of
    repeated runs) depends on what the law block does.
    """
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)} but got {block!r}")
    data = card.to_dict()
    keep: dict[str, Any] = {k: data[k] for k in ("priors", "likelihood", "pooling") if k in data}
    if block in ("link", "direct"):
        task = data.get("task", {})
        keep["task"] = {k: task.get(k) for k in ("kind", "chance", "priors")}
        if block == "link":
            keep = {"task": keep["task"]}
    return json.dumps({"block": block, "law": card.law.name, **_without_rationale(keep)}, sort_keys=True)


def _without_rationale(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_rationale(v) for k, v in value.items() if k != "rationale"}
    return value


@dataclass(frozen=True)
class Schedule:
    """What a compiled program is specialised to besides the model and the table size.

    Attributes
    ----------
    chains, warmup, draws : int
        Chains, warm-up iterations and kept draws per chain.
    target_accept : float
        Target acceptance of the step-size adaptation (an argument of the compiled program:
        schedules that differ only in it share one).
    adapt_mass : bool
        Adapt the dense mass matrix (``False``: keep the one given).
    """

    chains: int
    warmup: int
    draws: int
    target_accept: float
    adapt_mass: bool = True


def pieces(schedule: Schedule) -> list[tuple[str, int, int]]:
    """The pieces a run goes in, ``(phase, start, stop)`` in iterations (warm-up first, then draws).

    Each phase is cut into at most :data:`PIECES` pieces of equal length (the last shorter);
    the cut depends on the schedule alone.

    Examples
    --------
    >>> pieces(Schedule(chains=1, warmup=50, draws=30, target_accept=0.9))[16:19]
    [('warmup', 48, 50), ('draws', 50, 52), ('draws', 52, 54)]
    """
    out = []
    for phase, first, n in (("warmup", 0, schedule.warmup), ("draws", schedule.warmup, schedule.draws)):
        step = max(1, math.ceil(n / PIECES))
        out += [(phase, first + lo, first + min(lo + step, n)) for lo in range(0, n, step)]
    return out


@dataclass(frozen=True)
class _Program:
    """The compiled programs of one (model, schedule): ``start`` the chains, ``advance`` them by some
    iterations (recording the draws), ``finish`` (constrain the draws)."""

    start: Callable
    advance: Callable
    finish: Callable


_PROGRAMS: dict[tuple, _Program] = {}


def program_count() -> int:
    """Programs built in this process (each is compiled once per input shape)."""
    return len(_PROGRAMS)


def _program(card: ModelCard, schedule: Schedule, parallel: bool, block: str) -> _Program:
    # The target acceptance is an argument of the program, not part of it.
    key = (model_key(card, block), dataclasses.replace(schedule, target_accept=0.0), parallel)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _build_program(block_model(card, block), schedule, parallel, regularize=block == "link")
    return _PROGRAMS[key]


def _build_program(model: Callable, schedule: Schedule, parallel: bool, regularize: bool = False) -> _Program:
    # Every block's model reads (covariates, observed, mask) positionally: model(x, y, mask).
    def potential_gen(x: Any, log_loss: Any, mask: Any) -> Callable[[Any], Any]:
        return lambda z: potential_energy(model, (x, log_loss, mask), {}, z)

    def kernel(z: Any, key: Any, inverse_mass: Any, target_accept: Any, args: tuple) -> tuple[Any, Callable]:
        # numpyro's init_kernel sets up its sample_kernel (adaptation schedule, tree depth, integrator)
        # in the program being traced, so both programs call it; where only the sampler is wanted
        # (advance), the start state it returns is unused and compiled away.
        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
        state = init_kernel(z, schedule.warmup, inverse_mass_matrix=inverse_mass,
                            adapt_mass_matrix=schedule.adapt_mass, dense_mass=True,
                            target_accept_prob=target_accept, regularize_mass_matrix=regularize,
                            model_args=args, rng_key=key)
        return state, lambda s: sample_kernel(s, model_args=args)

    def start(key: Any, z0: Any, inverse_mass: Any, target_accept: Any, x: Any, log_loss: Any, mask: Any) -> Any:
        state, _ = kernel(z0, key, inverse_mass, target_accept, (x, log_loss, mask))
        records = jax.tree.map(lambda v: jnp.zeros((schedule.draws, *jnp.shape(v)), jnp.result_type(v)),
                               _record(state))
        return state, records

    def advance(state: Any, records: Any, lo: Any, hi: Any, target_accept: Any, x: Any, log_loss: Any,
                mask: Any) -> Any:
        _, step = kernel(state.z, state.rng_key, state.adapt_state.inverse_mass_matrix, target_accept,
                         (x, log_loss, mask))

        def body(i: Any, carry: Any) -> Any:
            s, rec = carry
            s = step(s)
            draw = i - schedule.warmup  # warm-up iterations (draw < 0) leave the records as they are
            at = jnp.maximum(draw, 0)
            return s, jax.tree.map(lambda r, v: r.at[at].set(jnp.where(draw >= 0, v, r[at])), rec, _record(s))

        return lax.fori_loop(lo, hi, body, (state, records))

    def finish(records: Any, x: Any, log_loss: Any, mask: Any) -> Any:
        constrained = jax.vmap(lambda u: constrain_fn(model, (x, log_loss, mask), {}, u,
                                                      return_deterministic=True))(records["z"])
        return constrained, {k: records[k] for k in STATS}

    def compiled(fn: Callable, in_axes: tuple) -> Callable:
        return jax.pmap(fn, in_axes=in_axes) if parallel else jax.jit(jax.vmap(fn, in_axes=in_axes))

    return _Program(start=compiled(start, (0, 0, None, None, None, None, 0)),
                    advance=compiled(advance, (0, 0, None, None, None, None, None, 0)),
                    finish=compiled(finish, (0, None, None, 0)))


def _record(state: Any) -> dict[str, Any]:
    """What a draw keeps of a NUTS state: the unconstrained point and :data:`STATS`."""
    return {"z": state.z, "diverging": state.diverging, "n_steps": state.num_steps, "energy": state.energy,
            "acceptance_rate": state.accept_prob, "step_size": state.adapt_state.step_size}


@dataclass
class Chains:
    """Draws of one program run.

    Attributes
    ----------
    samples : dict of str to array
        Every sample and deterministic site, constrained, shape (chain, draw, ...).
    stats : dict of str to array
        :data:`STATS` plus ``tree_depth``, shape (chain, draw).
    last : dict of str to array
        Each chain's last unconstrained state (chain, ...).
    inverse_mass : array
        Each chain's adapted inverse mass matrix (chain, d, d).
    """

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    last: dict[str, np.ndarray]
    inverse_mass: np.ndarray


def run_chains(card: ModelCard, x: Mapping[str, np.ndarray], log_loss: np.ndarray, init: Mapping[str, Any], *,
               schedule: Schedule, seed: int, masks: np.ndarray | None = None,
               inverse_mass: Any | None = None, progress: Callable[[int], None] | None = None,
               block: str = "law") -> Chains:
    """Run ``schedule.chains`` NUTS chains of one block of the card's model on one run table.

    Parameters
    ----------
    card : ModelCard
    x : mapping
        The runs' covariates (:func:`bayes_scaling.model.covariates`), one row per run
        (for the ``"link"`` block: ``{"inter": intermediate metric per run}``).
    log_loss : array
        Observed log loss per run (for the ``"link"`` and ``"direct"`` blocks: accuracy).
    init : mapping
        Unconstrained starting point of each chain, each site with a leading chain axis.
    schedule : Schedule
    seed : int
        Seed of the chains.
    masks : array of bool, shape (chain, run), optional
        The runs each chain fits (default all): chains may fit different subsets.
    inverse_mass : array, optional
        Starting (or, with ``adapt_mass=False``, fixed) dense inverse mass matrix; default identity.
    progress : callable, optional
        Called after each of the run's :func:`pieces` with the iterations done per chain
        (warm-up and draws, out of ``schedule.warmup + schedule.draws``). It changes no draw.
    block : {"law", "link", "direct", "replicate"}, default "law"
        Which model (:func:`bayes_scaling.task_model.block_model`): the card's loss model, a
        chain task card's sigmoid alone, a direct task card's whole model, or the replicate
        model (``x`` and ``log_loss`` per cell of repeated runs, see
        :func:`bayes_scaling.replicates.fit_replicates`).

    Returns
    -------
    Chains
    """
    n = len(log_loss)
    rows = padded_rows(n)
    px, pll = pad_table(x, log_loss, rows)
    chain_masks = np.ones((schedule.chains, n), bool) if masks is None else np.asarray(masks, bool)
    pmask = np.zeros((schedule.chains, rows), bool)
    pmask[:, :n] = chain_masks
    init = {k: jnp.asarray(v) for k, v in init.items()}
    dim = ravel_pytree({k: v[0] for k, v in init.items()})[0].shape[0]
    mass = jnp.eye(dim) if inverse_mass is None else jnp.asarray(inverse_mass)
    parallel = 1 < schedule.chains <= jax.local_device_count()
    program = _program(card, schedule, parallel, block)
    keys = jax.random.split(jax.random.PRNGKey(seed), schedule.chains)
    target_accept = jnp.asarray(float(schedule.target_accept))
    table = ({k: jnp.asarray(v) for k, v in px.items()}, jnp.asarray(pll), jnp.asarray(pmask))
    state, records = program.start(keys, init, mass, target_accept, *table)
    for _, lo, hi in pieces(schedule):
        state, records = program.advance(state, records, lo, hi, target_accept, *table)
        if progress is not None:
            jax.block_until_ready(state)
            progress(hi)
    samples, stats = program.finish(records, *table)
    stats = {k: np.asarray(v) for k, v in stats.items()}
    stats["tree_depth"] = np.floor(np.log2(np.maximum(stats["n_steps"], 1))).astype(int) + 1
    return Chains({k: np.asarray(v) for k, v in samples.items()}, stats,
                  {k: np.asarray(v) for k, v in state.z.items()}, np.asarray(state.adapt_state.inverse_mass_matrix))


__all__ = ["Chains", "Schedule", "model_key", "pad_table", "padded_rows", "pieces", "program_count", "run_chains"]
