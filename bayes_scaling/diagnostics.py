"""One diagnostics gate (R-hat, ESS, divergences, tree depth) for summary, report and CLI.

Each method is judged by its own criteria (:func:`judge`): a NUTS posterior by R-hat,
ESS, divergences and tree depth (:func:`gate`); a bootstrap (``--method huber``) by the
share of its refits that converged (:func:`bootstrap_gate`), since bootstrap draws have
no chains and their ESS is just their number.

Computing ESS and R-hat needs ArviZ; judging them does not. So the statistics are
computed once (:func:`convergence_stats`, when a fit is saved), stored with the fit as
plain JSON, and both the gate (:func:`gate`) and the posterior summary
(:func:`summary_table`) read them from there: ``bayes-scaling summary`` answers from a
saved fit without importing ArviZ.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .tables import Table, check_level, credible_interval

if TYPE_CHECKING:
    import xarray as xr

    from .fitfile import FitArrays

#: Thresholds of the gate.
RHAT_MAX = 1.01
ESS_MIN = 400
MAX_TREE_DEPTH = 10
#: Share of bootstrap refits that must converge for an approach-3 (huber) fit to pass.
BOOTSTRAP_CONVERGED_MIN = 0.95
#: The criteria of each method, as the summary and the report state them.
NUTS_CRITERIA = (f"NUTS criteria: R-hat < {RHAT_MAX}, bulk ESS >= {ESS_MIN}, no divergences, "
                 f"no draw at tree depth {MAX_TREE_DEPTH}")
BOOTSTRAP_CRITERIA = (f"bootstrap criteria: >= {BOOTSTRAP_CONVERGED_MIN:.0%} of the refits converged; "
                      "R-hat and ESS do not apply to bootstrap draws")


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a fit.

    Attributes
    ----------
    has_errors : bool
        True when any check failed; the CLI exits non-zero on it under ``--strict``.
    messages : list of str
        One sentence per failed check, naming the parameter and the value.
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst values over the law parameters and the noise scale.
    divergences : int
        Divergent transitions after warm-up, all chains.
    max_tree_depth_hits : int
        Draws whose trajectory hit the maximum tree depth.
    criteria : str
        The checks applied, in words (they differ by method, see :func:`judge`).
    converged_share : float
        Bootstrap fits: share of the refits that converged (NaN for NUTS).
    """

    has_errors: bool
    messages: list[str] = field(default_factory=list)
    max_rhat: float = float("nan")
    min_ess_bulk: float = float("nan")
    min_ess_tail: float = float("nan")
    divergences: int = 0
    max_tree_depth_hits: int = 0
    criteria: str = NUTS_CRITERIA
    converged_share: float = float("nan")


def convergence_stats(posterior: xr.Dataset, sample_stats: xr.Dataset | None, var_names: Sequence[str],
                      *, max_tree_depth: int = MAX_TREE_DEPTH) -> dict[str, Any]:
    """ESS and R-hat of each variable, divergences and tree-depth hits, as plain (JSON-ready) data.

    A single-chain posterior (e.g. bootstrap draws) gets ESS but no R-hat (NaN).

    Returns
    -------
    dict
        ``variables``: ``{name: {"r_hat", "ess_bulk", "ess_tail"}}``, each a float, or a
        list over the groups of a per-group parameter; ``chains``, ``divergences``,
        ``tree_depth_hits`` and ``max_tree_depth``.
    """
    import arviz as az

    ds = posterior[list(var_names)]
    chains = int(ds.sizes.get("chain", 1))
    with warnings.catch_warnings():
        # A constant variable (e.g. a fixed noise scale) has no variance: NaN, which the gate reports.
        warnings.simplefilter("ignore", RuntimeWarning)
        ess_bulk = az.ess(ds, method="bulk")
        ess_tail = az.ess(ds, method="tail")
        rhat = az.rhat(ds) if chains > 1 else None
    variables = {v: {"r_hat": np.asarray(rhat[v]).tolist() if rhat is not None else float("nan"),
                     "ess_bulk": np.asarray(ess_bulk[v]).tolist(), "ess_tail": np.asarray(ess_tail[v]).tolist()}
                 for v in var_names}
    divergences = hits = 0
    if sample_stats is not None and "diverging" in sample_stats:
        divergences = int(np.asarray(sample_stats["diverging"]).sum())
    if sample_stats is not None and "tree_depth" in sample_stats:
        hits = int((np.asarray(sample_stats["tree_depth"]) >= max_tree_depth).sum())
    return {"variables": variables, "chains": chains, "divergences": divergences, "tree_depth_hits": hits,
            "max_tree_depth": max_tree_depth}


def gate(stats: Mapping[str, Any], var_names: Sequence[str]) -> Diagnostics:
    """Judge the statistics of :func:`convergence_stats` for ``var_names`` (worst group of a per-group one)."""
    messages: list[str] = []
    variables = stats["variables"]
    max_rhat = float("nan")
    if stats["chains"] > 1:
        worst_rhat = {v: float(np.max(variables[v]["r_hat"])) for v in var_names}
        max_rhat = max(worst_rhat.values())
        for v, r in worst_rhat.items():
            if not r < RHAT_MAX:
                messages.append(f"R-hat of {v} is {r:.3f} (≥ {RHAT_MAX}): chains disagree; run longer or check "
                                "for multimodality")
    min_bulk = {v: float(np.min(variables[v]["ess_bulk"])) for v in var_names}
    min_tail = min(float(np.min(variables[v]["ess_tail"])) for v in var_names)
    for v, ess in min_bulk.items():
        if ess < ESS_MIN:
            messages.append(f"bulk ESS of {v} is {ess:.0f} (< {ESS_MIN}): draw more samples")
    divergences, hits = int(stats["divergences"]), int(stats["tree_depth_hits"])
    if divergences:
        messages.append(f"{divergences} divergent transition(s): raise --target-accept (e.g. 0.95) or check priors")
    if hits:
        messages.append(f"{hits} draw(s) hit the maximum tree depth {stats['max_tree_depth']}: sampling is inefficient")
    return Diagnostics(has_errors=bool(messages), messages=messages, max_rhat=max_rhat,
                       min_ess_bulk=min(min_bulk.values()), min_ess_tail=min_tail, divergences=divergences,
                       max_tree_depth_hits=hits)


def bootstrap_gate(converged_share: float | None, refits: int) -> Diagnostics:
    """Judge a bootstrap (approach 3) fit by the share of its refits that converged.

    ``converged_share`` is ``None`` when the fit did not record it: that fails too.
    """
    if converged_share is None or not math.isfinite(converged_share):
        messages = ["the share of converged bootstrap refits was not recorded: refit with --method huber"]
        share = float("nan")
    else:
        share = float(converged_share)
        messages = [] if share >= BOOTSTRAP_CONVERGED_MIN else [
            f"only {share:.0%} of the {refits} bootstrap refits converged (< {BOOTSTRAP_CONVERGED_MIN:.0%}): "
            "the approach-3 fit is unreliable; check the run table for outliers"]
    return Diagnostics(has_errors=bool(messages), messages=messages, criteria=BOOTSTRAP_CRITERIA,
                       converged_share=share)


def judge(arrays: FitArrays, stats: Mapping[str, Any]) -> Diagnostics:
    """The diagnostics of a fit by its method's own criteria.

    NUTS: :func:`gate` over :func:`gated_parameters`. Bootstrap (``method="huber"``):
    :func:`bootstrap_gate` on the share of converged refits stored with the fit.
    """
    if arrays.method == "huber":
        extra = json.loads(str(arrays.attrs.get("extra", "{}")))
        share = extra.get("bootstrap_converged")
        refits = int(next(iter(arrays.posterior.values())).size)
        return bootstrap_gate(float(share) if isinstance(share, (int, float)) else None, refits)
    names = gated_parameters(arrays)
    # No sampler gives constant draws: statistics stored for them describe other draws, so they are not judged.
    constant = [v for v in names if not np.ptp(arrays.posterior[v]) > 0]
    varying = [v for v in names if v not in constant]
    diag = gate(stats, varying) if varying else Diagnostics(has_errors=False)
    if constant:
        messages = [*diag.messages, f"the draws of {', '.join(constant)} are constant: not a NUTS posterior"]
        return Diagnostics(**{**diag.__dict__, "has_errors": True, "messages": messages})
    return diag


def gated_parameters(arrays: FitArrays) -> list[str]:
    """The parameters the gate judges: the summary's, less a Student-t ``nu`` (weakly identified)."""
    return [v for v in arrays.parameters if v != "nu" or v in arrays.card.priors]


def summary_table(arrays: FitArrays, stats: Mapping[str, Any], level: float = 0.9) -> Table:
    """Posterior summary: one row per parameter (per group for a per-group one, ``"E[group]"``).

    Parameters
    ----------
    arrays : FitArrays
        The fit's draws.
    stats : mapping
        Its :func:`convergence_stats` (stored in a saved fit).
    level : float, default 0.9
        Credible level of the equal-tailed interval.

    Returns
    -------
    Table
        Index column ``parameter``; ``median``, ``lo``, ``hi`` (interval bounds), ``mean``,
        ``sd``, ``r_hat`` (NaN for a single chain), ``ess_bulk``, ``ess_tail``; the last
        three are NaN for bootstrap draws and for constant draws (a fixed value), where they
        mean nothing.
    """
    level = check_level(level)
    rows = []
    for name in arrays.parameters:
        values, stat = arrays.posterior[name], stats["variables"][name]
        for g in range(values.shape[2]) if values.ndim > 2 else [None]:
            d = (values if g is None else values[..., g]).reshape(-1)
            lo, med, hi = credible_interval(d, level)
            meaningless = arrays.method == "huber" or not np.ptp(d) > 0
            rows.append({"parameter": name if g is None else f"{name}[{arrays.groups[g]}]", "median": med,
                         "lo": lo, "hi": hi, "mean": d.mean(), "sd": d.std(ddof=1) if d.size > 1 else float("nan"),
                         **{k: float("nan") if meaningless else
                            float(stat[k] if g is None or np.ndim(stat[k]) == 0 else stat[k][g])
                            for k in ("r_hat", "ess_bulk", "ess_tail")}})
    columns = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return Table(columns, {"level": level}, index="parameter")
