"""The NUTS sampler at the limit (issue 20): mass-matrix adaptation, compile reuse, small tables.

Every figure is measured in this one run, so that ratios hold on a noisy machine; leapfrog
steps per draw and ESS do not depend on the load, wall and CPU seconds do (the load
average is printed with each section).

1. ``adaptation``: the sampler before (numpyro's ``MCMC``, dense mass regularised towards
   1e-3·I, compiled per table) and after (:mod:`bayes_scaling.nuts`: no shrinkage, one
   compiled program per table-size bucket), from the same starting points, on the real
   Chinchilla table and on generated tables: steps per draw, min bulk ESS, R-hat,
   divergences, wall; and that the posterior is unchanged (every parameter's 5%, 50% and
   95% quantiles within 0.2 posterior sd of each other).
2. ``compiles``: XLA compilations of a second fit of another table of the same size
   bucket (target 0) and of a 3-cutoff backtest.
3. ``backtest``: a 3-cutoff backtest of the default card against one default fit
   (target ≤ 2×).
4. ``small tables``: the default fit's diagnostics gate on 30–40-run tables.

    python benchmarks/bench_sampler.py                    # all sections (many minutes)
    python benchmarks/bench_sampler.py --only adaptation  # one section
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["BAYES_SCALING_JAX_CACHE"] = "off"  # compile time counts in every figure here
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine, real_runs  # noqa: E402

PARAMS = ("E", "A", "B", "alpha", "beta", "sigma")
#: Targets of issue 20 (printed beside the figures).
TARGET_BACKTEST_RATIO, TARGET_SHIFT_SD = 2.0, 0.2


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def sample_before(card, x, log_loss, init, *, chains: int, warmup: int, draws: int, seed: int):
    """The sampler as it was: numpyro's MCMC, dense mass with Stan's regularisation, compiled per call."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    from bayes_scaling.model import build_model

    mcmc = MCMC(NUTS(build_model(card), dense_mass=True, target_accept_prob=0.9), num_warmup=warmup,
                num_samples=draws, num_chains=chains,
                chain_method="parallel" if jax.local_device_count() >= chains else "vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), {k: jnp.asarray(v) for k, v in x.items()}, log_loss=jnp.asarray(log_loss),
             init_params=init, extra_fields=("num_steps", "diverging"))
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return ({k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()},
            {"n_steps": np.asarray(extra["num_steps"]), "diverging": np.asarray(extra["diverging"])})


def sample_after(card, x, log_loss, init, *, chains: int, warmup: int, draws: int, seed: int):
    """The sampler now: :func:`bayes_scaling.nuts.run_chains`."""
    from bayes_scaling.nuts import Schedule, run_chains

    result = run_chains(card, x, log_loss, init, schedule=Schedule(chains, warmup, draws, 0.9), seed=seed)
    return result.samples, result.stats


def chain_figures(samples, stats, wall: float, cpu: float) -> dict:
    """Steps per draw, min bulk ESS, max R-hat, divergences, wall and CPU seconds."""
    import arviz as az
    import numpy as np

    ess = [float(az.ess(samples[k], method="bulk")) for k in PARAMS]
    rhat = [float(az.rhat(samples[k])) for k in PARAMS]
    return {"steps_per_draw": float(np.mean(stats["n_steps"])), "min_ess_bulk": min(ess), "max_rhat": max(rhat),
            "divergences": int(np.sum(stats["diverging"])), "wall_s": wall, "cpu_s": cpu}


def quantile_shift(before, after) -> dict:
    """Largest |Δ quantile| (5%, 50%, 95%) of each parameter, in posterior sd (of ``before``)."""
    import numpy as np

    out = {}
    for k in PARAMS:
        a, b = before[k].reshape(-1), after[k].reshape(-1)
        q = [0.05, 0.5, 0.95]
        out[k] = float(np.max(np.abs(np.quantile(a, q) - np.quantile(b, q))) / a.std())
    return out


def generated_tables() -> dict:
    import bayes_scaling as bs

    return {"generated-63": bs.load_runs(bs.simulate_runs(seed=0)),
            "generated-240": bs.load_runs(bs.simulate_runs(seed=1, budgets=(3e18, 6e18, 1e19, 2e19, 4e19, 6e19, 1e20,
                                                                           2e20, 4e20, 6e20, 1e21, 1.5e21, 2e21, 3e21,
                                                                           4e21, 6e21, 8e21, 1e22, 1.5e22, 2e22),
                                                       sizes_per_budget=12))}


def adaptation(args, out) -> None:
    """Section 1: before/after on each table, back to back, ``--repeats`` times; medians."""
    import numpy as np

    from bayes_scaling.cards import load_card
    from bayes_scaling.model import covariates
    from bayes_scaling.sampling import _initial_values

    card = load_card("chinchilla-plain")
    tables = {"chinchilla-240": real_runs(), **generated_tables()}
    rows = []
    for name, runs in tables.items():
        if runs is None:
            continue
        x = covariates(runs, card)
        log_loss = np.log(runs["loss"].to_numpy(float))
        figures: dict[str, list] = {"before": [], "after": []}
        shifts = []
        for r in range(args.repeats):
            init = _initial_values(card, x, log_loss, runs, args.chains, r)
            draws = {}
            for side, sampler in (("before", sample_before), ("after", sample_after)):
                w0, c0 = time.perf_counter(), time.process_time()
                samples, stats = sampler(card, x, log_loss, init, chains=args.chains, warmup=args.warmup,
                                         draws=args.draws, seed=r)
                figures[side].append(chain_figures(samples, stats, time.perf_counter() - w0, time.process_time() - c0))
                draws[side] = samples
            shifts.append(quantile_shift(draws["before"], draws["after"]))
        for side in ("before", "after"):
            med = {k: statistics.median(f[k] for f in figures[side]) for k in figures[side][0]}
            rows.append({"table": name, "rows": len(runs), "sampler": side, **med, "load_1m": _load()})
        worst = {k: max(s[k] for s in shifts) for k in PARAMS}
        rows.append({"table": name, "rows": len(runs), "sampler": "max |Δq|/sd",
                     **{k: worst[k] for k in PARAMS}, "target": TARGET_SHIFT_SD})
    emit(f"adaptation: {args.chains} chains x ({args.warmup} + {args.draws}), medians of {args.repeats} "
         "(before = numpyro MCMC with regularised dense mass, compiled per call; after = bayes_scaling.nuts)",
         rows, out)


_WORKER = """
import json, os, time, warnings
os.environ["BAYES_SCALING_JAX_CACHE"] = "off"
import sys; sys.path.insert(0, "benchmarks")
start = time.perf_counter()
import jax
compiles = []
jax.monitoring.register_event_duration_secs_listener(
    lambda e, d, **k: compiles.append(d) if e == "/jax/core/compile/backend_compile_duration" else None)
import numpy as np
import bayes_scaling as bs
from _common import real_runs
runs = real_runs()
warnings.simplefilter("ignore")
cpu = time.process_time()
{body}
print(json.dumps({{"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu, "compiles": len(compiles),
                  "compile_s": sum(compiles), **out}}))
"""
_ONE_FIT = """
fit = bs.fit(runs)
d = fit.diagnostics()
out = {"max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences}
"""
_BACKTEST = """
cutoffs = np.quantile(runs["flops"], [0.7, 0.8, 0.9])
result = bs.backtest(runs, cutoffs=cutoffs, methods=["nuts"], executor={executor!r})
out = {{"fits_ok": int(result.table["diagnostics_ok"].sum()), "n_train": result.table["n_train"].tolist()}}
"""


def backtest_ratio(args, out) -> None:
    """Section 3: a 3-cutoff backtest of the default card against one default fit, each in a fresh process
    (import and compilation included, persistent cache off), alternating, ``--repeats`` times."""
    from _common import run_python

    if real_runs() is None:
        return
    sides = {"one fit": _ONE_FIT, "backtest 3 cutoffs, in-process": _BACKTEST.format(executor="sequential"),
             "backtest 3 cutoffs, local processes": _BACKTEST.format(executor=None)}
    results: dict[str, list] = {k: [] for k in sides}
    for _ in range(args.repeats):
        for name, body in sides.items():
            figures, _ = run_python(_WORKER.format(body=body))
            results[name].append(figures)
    base = statistics.median(r["wall_s"] for r in results["one fit"])
    base_cpu = statistics.median(r["cpu_s"] for r in results["one fit"])
    rows = []
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rows.append({"run": name, "wall_s": wall, "cpu_s (this process)": cpu, "compiles": runs[-1]["compiles"],
                     "compile_s": runs[-1]["compile_s"], "wall_ratio": wall / base, "cpu_ratio": cpu / base_cpu,
                     "target_ratio": TARGET_BACKTEST_RATIO if name != "one fit" else None,
                     **{k: v for k, v in runs[-1].items() if k not in ("wall_s", "cpu_s", "compiles", "compile_s")},
                     "load_1m": _load()})
    emit(f"backtest vs one fit (Chinchilla table, default card, medians of {args.repeats}; a local-process "
         "backtest's CPU is its workers', not counted here)", rows, out)


def small_tables(args, out) -> None:
    """Section 4: the default fit's diagnostics gate on small tables (see tests/test_sampling.py)."""
    import warnings

    import numpy as np

    import bayes_scaling as bs
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.small_tables import SMALL_TABLES

    rows = []
    for name, make in SMALL_TABLES.items():
        runs = make()
        if runs is None:
            continue
        w0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bs.fit(runs, seed=0)
        d = fit.diagnostics()
        record = fit.extra.get("sampler", {})
        rows.append({"table": name, "runs": len(runs), "gate": "ok" if not d.has_errors else "FAIL",
                     "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences,
                     "depth_hits": d.max_tree_depth_hits,
                     "steps_per_draw": float(np.mean(fit.tree["sample_stats"]["n_steps"])),
                     "sampler_runs": record.get("runs", 1), "wall_s": time.perf_counter() - w0,
                     "cpu_s": time.process_time() - c0, "load_1m": _load()})
    emit("small tables: default fit (4 x 1000 + 1000), gate R-hat < 1.01, bulk ESS >= 400, no divergences", rows, out)


SECTIONS = {"adaptation": adaptation, "backtest": backtest_ratio, "small": small_tables}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only this section")
    parser.add_argument("--repeats", type=int, default=3, help="back-to-back repeats of each comparison")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="append the figures as JSON lines to this file")
    args = parser.parse_args(argv)
    emit("machine", [machine()], args.out)
    for name in args.only or SECTIONS:
        SECTIONS[name](args, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
