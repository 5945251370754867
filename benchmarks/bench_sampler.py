"""The NUTS sampler at the limit (issue 20): against other samplers, where a fit's time goes, adaptation, reuse.

Every figure of a section is measured in the same run, so that ratios hold on a noisy
machine; leapfrog steps per draw and ESS do not depend on the load, wall and CPU seconds
do (the load average is printed with the figures). Compile time counts everywhere: the
persistent compilation cache is off, except where the ``phases`` section fills one.
On the real Chinchilla table (240 runs; the example grid when it is absent):

1. ``samplers``: ``bs.fit(runs)`` with card ``chinchilla`` (the default) and
   ``chinchilla-plain``: wall time, min bulk ESS, ESS/s, divergences, leapfrog steps per
   draw; the default card again in the same process (compiled programs reused in memory);
   nutpie (numba backend; its default diagonal adaptation and its low-rank one) and PyMC's
   default NUTS on the PyMC twin of ``chinchilla-plain`` (same priors read from the card,
   same law in log space, same Student-t likelihood on log loss), nutpie's compile and
   sampling times apart; and the targets of issue 20.
2. ``phases``: the default fit split into its phases (import, approach-3 start, NUTS, the
   discrepancy's inner fits, ArviZ data, saving), in a fresh process with an empty
   persistent compilation cache, then in one with the cache it left, two fits each.
3. ``adaptation``: the sampler before (numpyro's ``MCMC``, dense mass regularised towards
   1e-3·I, compiled per table) and now (:mod:`bayes_scaling.nuts`: no shrinkage, one
   compiled program per table-size bucket), from the same starting points, on the real
   table and on generated ones: steps per draw, min bulk ESS, R-hat, divergences, wall;
   and that the posterior is unchanged (every parameter's 5%, 50% and 95% quantiles
   within 0.2 posterior sd of each other).
4. ``backtest``: a 3-cutoff backtest of the default card against one default fit, each in
   a fresh process, with the XLA compilations each made (target ≤ 2× the fit's time).
5. ``small``: the default fit's diagnostics gate on 30–40-run tables.

    python benchmarks/bench_sampler.py                              # every section (an hour or more on 2 cores)
    python benchmarks/bench_sampler.py --only adaptation --only small   # some sections
    python benchmarks/bench_sampler.py --quick                      # reduced sizes: checks the script end to end

nutpie and PyMC are in the ``bench`` extra only (``pip install -c constraints.txt -e ".[bench]"``);
without them the ``samplers`` section measures bayes-scaling alone and says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine, real_runs, run_python, timed  # noqa: E402

PARAMS = ("E", "A", "B", "alpha", "beta", "sigma")
#: Targets of issue 20 (printed beside the figures).
TARGET_WARM_S, TARGET_ESS, TARGET_BACKTEST_RATIO, TARGET_SHIFT_SD = 4.0, 1000, 2.0, 0.2
#: Modules that may hold the names a phase is timed by (any layout of the package works).
_PHASE_MODULES = ("bayes_scaling.inference", "bayes_scaling.sampling", "bayes_scaling.discrepancy")


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def table_or_example():
    """The real table and its label, or the example grid when the real one is absent."""
    import bayes_scaling as bs

    runs = real_runs()
    if runs is None:
        return bs.load_runs(bs.simulate_runs(seed=0)), "simulated example grid (real data absent)"
    return runs, "real Chinchilla table"


# -- 1. samplers --------------------------------------------------------------------------------------------------


def fit_figures(fit, wall: float) -> dict:
    """Min bulk ESS over the sampled law and noise parameters, ESS/s, divergences, steps per draw."""
    from _pymc import sampled_names

    table = fit.summary()
    names = [n for n in sampled_names(fit.card) if n in table.index]
    stats = fit.tree["sample_stats"]
    min_ess = float(table.loc[names, "ess_bulk"].min())
    return {"wall_s": wall, "min_ess_bulk": min_ess, "ess_per_s": min_ess / wall,
            "divergences": int(stats["diverging"].sum()), "steps_per_draw": float(stats["n_steps"].mean()),
            "max_rhat": float(table.loc[names, "r_hat"].max())}


def samplers(args, out) -> None:
    """Section 1: our fits, nutpie and PyMC on the same model and table; the targets of issue 20."""
    import bayes_scaling as bs

    runs, label = table_or_example()
    print(f"samplers: {len(runs)} runs ({label}); {args.chains} chains x {args.warmup}+{args.draws}")
    sizes = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws}
    rows = []
    fits = (("default card, first fit", "chinchilla"), ("default card, second fit (same process)", "chinchilla"),
            ("chinchilla-plain", "chinchilla-plain"))
    for what, card in fits:
        fit, wall = timed(lambda c=card: bs.fit(runs, c, seed=0, **sizes))
        rows.append({"sampler": f"bayes-scaling NUTS: {what}", **fit_figures(fit, wall)})
    ours, warm = rows[0], rows[1]
    plain_card = bs.load_card("chinchilla-plain")
    others: dict[str, dict] = {}
    try:
        from _pymc import nutpie_figures, pymc_figures

        for adaptation in ("diag", "low_rank"):
            others[f"nutpie ({adaptation})"] = nutpie_figures(plain_card, runs, draws=args.draws, tune=args.warmup,
                                                              chains=args.chains, adaptation=adaptation)
        others["PyMC default NUTS"] = pymc_figures(plain_card, runs, draws=args.draws, tune=args.warmup,
                                                   chains=args.chains)
    except ImportError as err:
        print(f"nutpie/PyMC not installed ({err}): pip install -c constraints.txt -e '.[bench]' (skipping them)")
    rows += [{"sampler": f"{name}, chinchilla-plain", **fig} for name, fig in others.items()]
    emit("samplers on the same model and table (wall includes compilation)", rows, out)

    checks = []
    if others.get("nutpie (diag)") is not None:
        best = max((f for n, f in others.items() if n.startswith("nutpie")), key=lambda f: f["ess_per_s"])
        checks.append({"figure": "ESS/s default fit / best nutpie (walls incl. compile)",
                       "value": ours["ess_per_s"] / best["ess_per_s"], "target": ">= 1",
                       "met": ours["ess_per_s"] >= best["ess_per_s"]})
        sampling_only = best["min_ess_bulk"] / best["sample_s"]
        checks.append({"figure": "ESS/s default fit (2nd in process) / best nutpie (sampling only)",
                       "value": warm["ess_per_s"] / sampling_only, "target": ">= 1",
                       "met": warm["ess_per_s"] >= sampling_only})
        # the model nutpie samples: the law alone, without the default card's two inner leave-future-out fits
        plain = rows[2]
        checks.append({"figure": "same model: ESS/s chinchilla-plain / best nutpie (walls incl. compile)",
                       "value": plain["ess_per_s"] / best["ess_per_s"], "target": "-",
                       "met": plain["ess_per_s"] >= best["ess_per_s"]})
        checks.append({"figure": "same model: ESS/s chinchilla-plain / best nutpie (sampling only)",
                       "value": plain["ess_per_s"] / sampling_only, "target": "-",
                       "met": plain["ess_per_s"] >= sampling_only})
    checks += [{"figure": "default fit min bulk ESS", "value": ours["min_ess_bulk"], "target": f">= {TARGET_ESS}",
                "met": ours["min_ess_bulk"] >= TARGET_ESS},
               {"figure": "default fit divergences", "value": ours["divergences"], "target": "0",
                "met": ours["divergences"] == 0}]
    emit("sampler targets (issue 20)" + (" -- QUICK sizes, not the real targets" if args.quick else ""), checks, out)


# -- 2. phases ----------------------------------------------------------------------------------------------------


def phase_worker(card: str, kwargs: dict, fits: int = 2) -> dict:
    """Run in a fresh process: import, then ``fits`` fits split into phases, then a save."""
    start = time.perf_counter()
    import bayes_scaling as bs  # first: it sets JAX's flags (x64, host devices) before JAX is imported

    modules = [m for m in (_try_import(name) for name in _PHASE_MODULES) if m is not None]
    out = {"import_s": time.perf_counter() - start}
    runs, _ = table_or_example()
    phases: dict[str, float] = defaultdict(float)
    stack: list[str] = []

    def wrap(owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def timed_phase(*args, **kw):
            if stack:  # inside another phase (e.g. the discrepancy's inner fits): counted there
                return fn(*args, **kw)
            stack.append(label)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                phases[label] += time.perf_counter() - t0
                stack.pop()

        setattr(owner, name, timed_phase)

    for module in modules:
        for name, label in (("fit_huber", "approach-3 start"), ("run_chains", "NUTS (warm-up and draws)"),
                            ("build_datatree", "ArviZ data"), ("discrepancy_posterior", "discrepancy inner fits")):
            if hasattr(module, name):
                wrap(module, name, label)
    for i in range(fits):
        phases.clear()
        fit, wall = timed(lambda: bs.fit(runs, card, seed=0, **kwargs))
        out[f"fit{i + 1}"] = {"total_s": wall, **phases, "other_s": wall - sum(phases.values())}
    with tempfile.TemporaryDirectory() as folder:
        _, out["save_s"] = timed(lambda: fit.save(Path(folder) / "fit.nc"))
    return out


def _try_import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def phases(args, out) -> None:
    """Section 2: :func:`phase_worker` in a fresh process with an empty cache folder, then again with the one
    it filled; the target for a new process with a filled cache."""
    kwargs = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws}
    code = ("import json, sys; sys.path.insert(0, 'benchmarks'); import bench_sampler as b; "
            f"print(json.dumps(b.phase_worker('chinchilla', {kwargs!r})))")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for label in ("empty cache", "cache filled by the first process"):
            result, process_s = run_python(code, env={"BAYES_SCALING_JAX_CACHE": cache})
            for i in (1, 2):
                fit = result[f"fit{i}"]
                rows.append({"process": label, "fit": "first in process" if i == 1 else "second in process",
                             "process_s": process_s if i == 1 else None,
                             "import_s": result["import_s"] if i == 1 else None, **fit,
                             "save_s": result["save_s"] if i == 2 else None})
    emit("where the default fit's time goes (seconds; fresh processes)", rows, out)
    cached = next(r for r in rows if r["process"].startswith("cache filled") and r["fit"] == "first in process")
    emit("phase target (issue 20)" + (" -- QUICK sizes, not the real target" if args.quick else ""),
         [{"figure": "default fit, new process, cache filled (s)", "value": cached["total_s"],
           "target": f"<= {TARGET_WARM_S}", "met": cached["total_s"] <= TARGET_WARM_S}], out)


# -- 3. adaptation ------------------------------------------------------------------------------------------------


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


def adaptation_tables(quick: bool) -> dict:
    """The real table and two generated ones (the first available one only when ``quick``)."""
    import bayes_scaling as bs

    budgets = (3e18, 6e18, 1e19, 2e19, 4e19, 6e19, 1e20, 2e20, 4e20, 6e20, 1e21, 1.5e21, 2e21, 3e21, 4e21, 6e21, 8e21,
               1e22, 1.5e22, 2e22)
    tables = {"chinchilla-240": real_runs, "generated-63": lambda: bs.load_runs(bs.simulate_runs(seed=0)),
              "generated-240": lambda: bs.load_runs(bs.simulate_runs(seed=1, budgets=budgets, sizes_per_budget=12))}
    out = {}
    for name, make in tables.items():
        runs = make()
        if runs is not None:
            out[name] = runs
            if quick:
                break
    return out


def adaptation(args, out) -> None:
    """Section 3: before/now on each table, back to back, ``--repeats`` times; medians."""
    import numpy as np

    from bayes_scaling.cards import load_card
    from bayes_scaling.model import covariates
    from bayes_scaling.sampling import _initial_values

    card = load_card("chinchilla-plain")
    rows = []
    for name, runs in adaptation_tables(args.quick).items():
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


# -- 4. backtest --------------------------------------------------------------------------------------------------

_WORKER = """
import json, os, time, warnings
os.environ["BAYES_SCALING_JAX_CACHE"] = "off"
import sys; sys.path.insert(0, "benchmarks")
start = time.perf_counter()
import bayes_scaling as bs  # first: it sets JAX's flags before JAX is imported
import jax
compiles = []
jax.monitoring.register_event_duration_secs_listener(
    lambda e, d, **k: compiles.append(d) if e == "/jax/core/compile/backend_compile_duration" else None)
import numpy as np
from bench_sampler import table_or_example
runs, _ = table_or_example()
sizes = {sizes!r}
warnings.simplefilter("ignore")
cpu = time.process_time()
{body}
print(json.dumps({{"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu, "compiles": len(compiles),
                  "compile_s": sum(compiles), **out}}))
"""
_ONE_FIT = """
fit = bs.fit(runs, **sizes)
d = fit.diagnostics()
out = {"max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences}
"""
_BACKTEST = """
cutoffs = np.quantile(runs["flops"], [0.7, 0.8, 0.9])
result = bs.backtest(runs, cutoffs=cutoffs, methods=["nuts"], executor={executor!r}, fit_kwargs=sizes)
out = {{"fits_ok": int(result.table["diagnostics_ok"].sum()), "n_train": result.table["n_train"].tolist()}}
"""


def backtest_ratio(args, out) -> None:
    """Section 4: a 3-cutoff backtest of the default card against one default fit, each in a fresh process
    (import and compilation included, persistent cache off), alternating, ``--repeats`` times."""
    sizes = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws}
    sides = {"one fit": _ONE_FIT, "backtest 3 cutoffs, in-process": _BACKTEST.format(executor="sequential"),
             "backtest 3 cutoffs, local processes": _BACKTEST.format(executor=None)}
    results: dict[str, list] = {k: [] for k in sides}
    for _ in range(args.repeats):
        for name, body in sides.items():
            figures, _ = run_python(_WORKER.format(body=body, sizes=sizes))
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
    emit(f"backtest vs one fit (default card, {args.chains} chains x {args.warmup}+{args.draws}, medians of "
         f"{args.repeats}; a local-process backtest's CPU is its workers', not counted here)", rows, out)


# -- 5. small tables ----------------------------------------------------------------------------------------------


def small_tables(args, out) -> None:
    """Section 5: the default fit's diagnostics gate on small tables (see tests/test_sampling.py)."""
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
            fit = bs.fit(runs, seed=0, chains=args.chains, warmup=args.warmup, draws=args.draws)
        d = fit.diagnostics()
        record = fit.extra.get("sampler", {})
        rows.append({"table": name, "runs": len(runs), "gate": "ok" if not d.has_errors else "FAIL",
                     "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences,
                     "depth_hits": d.max_tree_depth_hits,
                     "steps_per_draw": float(np.mean(fit.tree["sample_stats"]["n_steps"])),
                     "sampler_runs": record.get("runs", 1), "wall_s": time.perf_counter() - w0,
                     "cpu_s": time.process_time() - c0, "load_1m": _load()})
    emit(f"small tables: default card, {args.chains} x {args.warmup} + {args.draws}, gate R-hat < 1.01, "
         "bulk ESS >= 400, no divergences", rows, out)


SECTIONS = {"samplers": samplers, "phases": phases, "adaptation": adaptation, "backtest": backtest_ratio,
            "small": small_tables}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SECTIONS), action="append", help="run only this section (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="reduced sizes (300 + 300 draws, 1 repeat, one adaptation table): checks the script "
                             "end to end, not the targets")
    parser.add_argument("--repeats", type=int, help="back-to-back repeats of each comparison (default 3; quick 1)")
    parser.add_argument("--chains", type=int, default=4, help="chains of every fit (default 4)")
    parser.add_argument("--warmup", type=int, help="warm-up iterations per chain (default 1000; quick 300)")
    parser.add_argument("--draws", type=int, help="draws kept per chain (default 1000; quick 300)")
    parser.add_argument("--out", type=Path, help="append the figures as JSON lines to this file")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.warmup = args.warmup or (300 if args.quick else 1000)
    args.draws = args.draws or (300 if args.quick else 1000)
    # Compile time counts in this process's figures (set before JAX is imported; workers set their own).
    os.environ["BAYES_SCALING_JAX_CACHE"] = "off"
    emit("machine", [{**machine(), "quick": args.quick}], args.out)
    for name in args.only or SECTIONS:
        SECTIONS[name](args, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
