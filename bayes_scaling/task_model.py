"""The NumPyro model of a task card: a law on an intermediate metric, a sigmoid to accuracy.

Step 1 is the card's own loss model (:func:`bayes_scaling.model.build_model`): the law
on the log of the intermediate metric x (a task's bits per byte, or C4 loss) with its
noise ``sigma``. Step 2 observes each run's accuracy around the sigmoid of that run's x,
acc ~ Normal(floor + (ceiling - floor) · σ(slope · (midpoint - x)), sigma_metric)
(:mod:`bayes_scaling.laws.sigmoid`), with its own noise. Both steps are one model, so one
posterior holds them; a prediction at a new (N, D) pushes step 1's posterior of x (and one
run's noise on it) through step 2's posterior.

Why step 2 takes each run's *observed* x rather than the law's: a run whose seed gave a
lower bits per byte also scores higher, so accuracy follows the realised x; and a misfit of
the law at some runs then does not bend the sigmoid. The joint likelihood factorises, so
the two steps' parameters are a posteriori independent given the runs.

Why normal noise on accuracy (not binomial): the spread of one run's accuracy is the
sampling of a few hundred to ten thousand questions *plus* seed-to-seed variation of the
model; the ladder's second seeds show the latter dominates on small benchmarks. The
check against the reruns is :func:`bayes_scaling.task_backtest.rerun_check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import Array
from numpyro import handlers
from scipy import stats

from .cards import ModelCard, Task
from .data import row_name
from .errors import InputError, RunTableError
from .laws.sigmoid import LINK_PARAMETERS, TASK_VARIABLES, accuracy, bounds
from .model import build_model, law_sites
from .replicate_model import build_replicate_model


def task_of(card: ModelCard) -> Task:
    """The card's resolved ``[task]`` table (metric, via and chance set).

    Raises
    ------
    InputError
        If the card is not a task card or its task is not resolved (see :meth:`Task.resolved`).
    """
    task = card.task
    if task is None:
        raise InputError(f"card {card.name!r} is not a task card (it has no [task] table)")
    if task.metric is None or task.chance is None or (task.kind == "chain" and task.via is None):
        raise InputError(f"card {card.name!r}: its task is not resolved; call card.task.resolved(metric, via, chance)")
    return task


def task_columns(runs: pd.DataFrame, task: Task) -> tuple[np.ndarray, np.ndarray | None]:
    """The runs' accuracy and intermediate metric (``None`` for a direct card), checked.

    Raises
    ------
    RunTableError
        If a column is missing, or a value is not finite (or, for accuracy, not in [0, 1],
        and for the intermediate, not positive), naming the row and column.
    """
    label = runs.attrs.get("source", "<runs>")
    out: list[np.ndarray | None] = []
    for column, kind in ((task.metric, "accuracy"), (task.via, "intermediate")):
        if column is None:
            out.append(None)
            continue
        if column not in runs:
            metrics = [c for c in runs.columns if c not in ("name", "group", "params", "tokens", "flops", "loss")]
            raise RunTableError(f"{label}: no column {column!r} ({kind}); the table's metric columns are "
                                f"{', '.join(metrics) or 'none'}")
        values = runs[column].to_numpy(dtype=float)
        bad = ~np.isfinite(values) | ((values < 0) | (values > 1) if kind == "accuracy" else values <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            rule = "an accuracy in [0, 1]" if kind == "accuracy" else "a positive loss or bits per byte"
            raise RunTableError(f"{label}: {row_name(runs, row)}, column {column!r} is {values[row]:g}; every "
                                f"fitted run needs {rule}")
        out.append(values)
    accuracy, intermediate = out
    assert accuracy is not None  # task.metric is always set on a resolved task
    return accuracy, intermediate


def link_sites(task: Task) -> dict[str, Array]:
    """Sample the link's parameters; record floor and ceiling as deterministic sites."""
    offset = numpyro.sample("floor_offset", task.priors["floor_offset"].to_numpyro())
    headroom = numpyro.sample("headroom", task.priors["headroom"].to_numpyro())
    floor, ceiling = bounds(task.chance, offset, headroom)
    return {"floor": numpyro.deterministic("floor", floor), "ceiling": numpyro.deterministic("ceiling", ceiling),
            "slope": numpyro.sample("slope", task.priors["slope"].to_numpyro()),
            "midpoint": numpyro.sample("midpoint", task.priors["midpoint"].to_numpyro())}


def build_link_model(card: ModelCard) -> Callable[..., None]:
    """Step 2 alone: ``model(x, metric=None, mask=None)``, accuracy around the sigmoid of ``x["inter"]``.

    ``x["inter"]``: each run's observed intermediate metric. The joint likelihood of a chain
    card factorises (step 2 conditions on the observed intermediate), and so does its
    posterior: this block is sampled on its own. ``mask`` leaves runs out (padding rows).
    """
    task = task_of(card)

    def model(x: Mapping[str, Array], metric: Array | None = None, mask: Array | None = None) -> None:
        link = link_sites(task)
        sigma_metric = numpyro.sample("sigma_metric", task.priors["sigma_metric"].to_numpyro())
        _observe(accuracy(link, x["inter"]), sigma_metric, metric, mask)

    return model


def build_direct_model(card: ModelCard) -> Callable[..., None]:
    """A direct card's model ``model(x, metric=None, mask=None)``: accuracy around the sigmoid of L(N, D).

    ``x``: the runs' covariates (:func:`bayes_scaling.model.covariates`). The law's value
    L(N, D) is the latent intermediate (no observed column, so no ``sigma`` on it); its
    parameters take the card's priors. Sites: the law's parameters, the link's
    (:func:`link_sites`), ``sigma_metric`` and the observed ``metric`` in plate ``run``.
    """
    task = task_of(card)
    if card.pooling:
        raise InputError(f"card {card.name!r}: a direct task card cannot pool parameters over groups")

    def model(x: Mapping[str, Array], metric: Array | None = None, mask: Array | None = None) -> None:
        theta = law_sites(card, x)  # A and B in the sampler's ridge coordinates, as in a loss fit
        link = link_sites(task)
        sigma_metric = numpyro.sample("sigma_metric", task.priors["sigma_metric"].to_numpyro())
        _observe(accuracy(link, jnp.exp(card.law.log_loss(theta, x))), sigma_metric, metric, mask)

    return model


def _observe(loc: Array, sigma_metric: Array, metric: Array | None, mask: Array | None) -> None:
    with numpyro.plate("run", jnp.shape(loc)[-1]), handlers.mask(mask=True if mask is None else mask):
        numpyro.sample("metric", dist.Normal(loc, sigma_metric), obs=metric)


#: The blocks a card's model is sampled in (:func:`block_model`).
BLOCKS = ("law", "link", "direct", "replicate")


def block_model(card: ModelCard, block: str) -> Callable[..., None]:
    """The NumPyro model of one block, each read as ``model(x, observed=None, mask=None)``.

    ``"law"``: the card's loss model (:func:`bayes_scaling.model.build_model`, observed log
    loss); ``"link"``: a chain card's sigmoid (:func:`build_link_model`, observed accuracy);
    ``"direct"``: a direct card's model (:func:`build_direct_model`, observed accuracy);
    ``"replicate"``: the replicate model over cells of repeated runs
    (:func:`bayes_scaling.replicate_model.build_replicate_model`, observed mean log loss).
    """
    if block == "law":
        return build_model(card)
    if block == "link":
        return build_link_model(card)
    if block == "direct":
        return build_direct_model(card)
    if block == "replicate":
        return build_replicate_model(card)
    raise ValueError(f"block must be one of {', '.join(BLOCKS)} but got {block!r}")


def build_task_model(card: ModelCard) -> Callable[..., None]:
    """A NumPyro model ``model(x, log_loss=None, metric=None)`` of a resolved task card.

    ``log_loss``: the runs' log intermediate metric (chain cards); ``metric``: their
    accuracy. Sites: the card's loss model (law parameters, ``sigma``, ``log_loss``), then
    ``floor_offset``, ``headroom``, ``slope``, ``midpoint``, ``sigma_metric``, the
    deterministic ``floor`` and ``ceiling``, and the observed ``metric`` in plate ``run``.
    A direct card has no ``sigma`` nor ``log_loss``: the sigmoid takes the law's value.
    """
    task = task_of(card)
    if task.kind != "chain":
        direct = build_direct_model(card)
        return lambda x, log_loss=None, metric=None: direct(x, metric)
    step1 = build_model(card)
    step2 = build_link_model(card)

    def model(x: Mapping[str, Array], log_loss: Array | None = None, metric: Array | None = None) -> None:
        with handlers.trace() as sites:
            step1(x, log_loss=log_loss)
        step2({"inter": jnp.exp(sites["log_loss"]["value"])}, metric=metric)

    return model


def metric_location(card: ModelCard, posterior: Mapping[str, np.ndarray], x: Mapping[str, np.ndarray],
                    inter: np.ndarray | None) -> np.ndarray:
    """The sigmoid's accuracy per draw and run, shape (*draw shape, run), with numpy.

    ``inter``: the runs' observed intermediate metric (chain cards); ``None`` for a
    direct card, whose sigmoid takes the law's value at the runs' (N, D).
    """
    link = {k: np.asarray(posterior[k])[..., None] for k in LINK_PARAMETERS}
    if inter is None:
        theta = {k: np.asarray(posterior[k])[..., None] for k in card.law.parameters}
        inter = np.exp(card.law.log_loss(theta, x))
    return accuracy(link, np.asarray(inter))


def metric_log_likelihood(card: ModelCard, posterior: Mapping[str, np.ndarray], x: Mapping[str, np.ndarray],
                          inter: np.ndarray | None, metric: np.ndarray) -> np.ndarray:
    """Pointwise log-likelihood of each run's accuracy under each draw, shape (chain, draw, run)."""
    loc = metric_location(card, posterior, x, inter)
    return stats.norm.logpdf(metric, loc, np.asarray(posterior["sigma_metric"])[..., None])


def metric_predictive(card: ModelCard, posterior: Mapping[str, np.ndarray], x: Mapping[str, np.ndarray],
                      inter: np.ndarray | None, seed: int) -> np.ndarray:
    """Posterior predictive draws of each run's accuracy given its intermediate, shape (chain, draw, run)."""
    loc = metric_location(card, posterior, x, inter)
    noise = np.random.default_rng(seed + 2).standard_normal(loc.shape)
    return loc + np.asarray(posterior["sigma_metric"])[..., None] * noise


__all__ = ["BLOCKS", "TASK_VARIABLES", "block_model", "build_direct_model", "build_link_model", "build_task_model",
           "link_sites",
           "metric_location", "metric_log_likelihood", "metric_predictive", "task_columns", "task_of"]
