"""One diagnostics gate (R-hat, ESS, divergences, tree depth) for summary, report and CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

import arviz as az
import numpy as np
import xarray as xr

#: Thresholds of the gate.
RHAT_MAX = 1.01
ESS_MIN = 400


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
    """

    has_errors: bool
    messages: list[str] = field(default_factory=list)
    max_rhat: float = float("nan")
    min_ess_bulk: float = float("nan")
    min_ess_tail: float = float("nan")
    divergences: int = 0
    max_tree_depth_hits: int = 0


def diagnose(posterior: xr.Dataset, sample_stats: xr.Dataset | None, var_names: list[str],
             *, max_tree_depth: int = 10) -> Diagnostics:
    """Run the gate on a posterior with ``chain`` and ``draw`` dims.

    A single-chain posterior (e.g. bootstrap draws) gets ESS but no R-hat check.
    """
    messages: list[str] = []
    ds = posterior[var_names]
    n_chains = ds.sizes.get("chain", 1)
    ess_bulk = az.ess(ds, method="bulk")
    ess_tail = az.ess(ds, method="tail")
    rhat = az.rhat(ds) if n_chains > 1 else None
    max_rhat = float("nan")
    if rhat is not None:
        values = {v: float(rhat[v].max()) for v in var_names}  # worst group of a pooled parameter
        max_rhat = max(values.values())
        for v, r in values.items():
            if not r < RHAT_MAX:
                messages.append(f"R-hat of {v} is {r:.3f} (≥ {RHAT_MAX}): chains disagree; run longer or check for multimodality")
    min_bulk = min(float(ess_bulk[v].min()) for v in var_names)
    min_tail = min(float(ess_tail[v].min()) for v in var_names)
    for v in var_names:
        if float(ess_bulk[v].min()) < ESS_MIN:
            messages.append(f"bulk ESS of {v} is {float(ess_bulk[v].min()):.0f} (< {ESS_MIN}): draw more samples")
    divergences = hits = 0
    if sample_stats is not None and "diverging" in sample_stats:
        divergences = int(np.asarray(sample_stats["diverging"]).sum())
        if divergences:
            messages.append(f"{divergences} divergent transition(s): raise --target-accept (e.g. 0.95) or check priors")
    if sample_stats is not None and "tree_depth" in sample_stats:
        hits = int((np.asarray(sample_stats["tree_depth"]) >= max_tree_depth).sum())
        if hits:
            messages.append(f"{hits} draw(s) hit the maximum tree depth {max_tree_depth}: sampling is inefficient")
    return Diagnostics(has_errors=bool(messages), messages=messages, max_rhat=max_rhat,
                       min_ess_bulk=min_bulk, min_ess_tail=min_tail, divergences=divergences,
                       max_tree_depth_hits=hits)
