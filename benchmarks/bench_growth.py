"""Growth of the default fit with rows: generated loss-curve tables, time and peak memory.

Users fit many checkpoints per run (loss curves), not only final losses. This script
generates such tables from a known Chinchilla law -- 250 runs on an IsoFLOP-like grid,
each with ``rows / 250`` checkpoints along its token axis -- fits each with the default
``bs.fit`` in a fresh process (compilation included, cache off), and prints wall time,
peak resident memory, divergences and min bulk ESS per size, plus the exponent k of
time ∝ rows^k fitted over the sizes (target: k <= 1; 250,000 rows in <= 600 s, <= 4 GiB).

``truth_in_90pct`` counts the true parameters inside their 90% intervals for one generated
table and ``truth_z`` gives (posterior mean - truth) / posterior sd for each. The five errors
are strongly correlated (E with A-alpha and B-beta), so one table's count is nearly all or
nothing: table 0 gives 2/5 at 2,500 rows (every z between -1.5 and -2.1) and 3/5 at 25,000,
with the ordinary path as with the large-table one. Calibration takes many tables (issue #9:
83% of 500 intervals over 100 tables at 2,500 rows, 88% of 200 over 40 at 25,000; the
Student-t likelihood's intervals are ~4% narrow on Gaussian noise, so ~88.5% is expected).

    python benchmarks/bench_growth.py                  # 2,500 / 25,000 / 250,000 rows
    python benchmarks/bench_growth.py --quick          # 2,500 / 25,000 rows, 2 chains x 200+200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, run_python  # noqa: E402

RUNS = 250
TARGET_S, TARGET_MIB = 600.0, 4096.0


def loss_curve_runs(rows: int, seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
    """A loss-curve table of ``rows`` rows: 250 runs × ``rows // 250`` checkpoints each.

    Runs sit on 10 IsoFLOP budgets (1e18 to 1e21 FLOPs) × 25 model sizes around the
    optimum; checkpoint k of K has seen D_k = D·k/K tokens and its loss is the law at
    (N, D_k) times log-normal noise. Truth: :data:`bayes_scaling.EXAMPLE_TRUTH`.
    """
    from bayes_scaling.simulate import EXAMPLE_TRUTH, chinchilla_loss

    rng = np.random.default_rng(seed)
    k = max(1, rows // RUNS)
    budgets = np.logspace(18, 21, 10)
    t = EXAMPLE_TRUTH
    g = (t["alpha"] * t["A"] / (t["beta"] * t["B"])) ** (1 / (t["alpha"] + t["beta"]))
    params, tokens, names = [], [], []
    for c in budgets:
        n_opt = g * (c / 6) ** (t["beta"] / (t["alpha"] + t["beta"]))
        for n in np.round(n_opt * np.logspace(-0.75, 0.75, RUNS // len(budgets)), -3):
            final = c / (6 * n)
            for j in range(1, k + 1):
                params.append(n)
                tokens.append(final * j / k)
                names.append(f"C{c:.1e}-N{n:.3g}-ckpt{j}")
    table = pd.DataFrame({"name": names, "params": params, "tokens": tokens})
    table["loss"] = chinchilla_loss(table["params"].to_numpy(), table["tokens"].to_numpy(), t) * np.exp(
        noise * rng.standard_normal(len(table)))
    return table


_WORKER = """
import json, os, sys, time
os.environ["BAYES_SCALING_JAX_CACHE"] = "off"
sys.path.insert(0, "benchmarks")
start = time.perf_counter()
import bayes_scaling as bs
from bench_growth import loss_curve_runs
from _common import peak_rss_mib
runs = bs.load_runs(loss_curve_runs({rows}))
t0 = time.perf_counter()
fit = bs.fit(runs, seed=0, **{kwargs})
wall = time.perf_counter() - t0
s, d = fit.summary(), fit.diagnostics()
truth = bs.EXAMPLE_TRUTH
covered = sum(s.loc[k, "lo"] <= v <= s.loc[k, "hi"] for k, v in truth.items())
z = " ".join(f"{{k}} {{(s.loc[k, 'mean'] - v) / s.loc[k, 'sd']:+.1f}}" for k, v in truth.items())
print(json.dumps({{"rows": len(runs), "fit_s": wall, "process_s": time.perf_counter() - start,
                  "peak_mib": peak_rss_mib(), "divergences": d.divergences, "min_ess_bulk": float(s["ess_bulk"].min()),
                  "max_rhat": float(s["r_hat"].max()), "truth_in_90pct": f"{{covered}}/5", "truth_z": z}}))
"""


def growth_exponent(rows: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) on log(rows)."""
    return float(np.polyfit(np.log(rows), np.log(seconds), 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,500 and 25,000 rows, 2 chains x 200+200")
    parser.add_argument("--rows", type=int, nargs="*", help="table sizes (default 2500 25000 250000)")
    parser.add_argument("--out", type=Path, help="append the figures as JSON lines to this file")
    args = parser.parse_args(argv)
    sizes = args.rows or ([2_500, 25_000] if args.quick else [2_500, 25_000, 250_000])
    kwargs = {"chains": 2, "warmup": 200, "draws": 200} if args.quick else {}
    rows = []
    for n in sizes:
        result, _ = run_python(_WORKER.format(rows=n, kwargs=json.dumps(kwargs)))
        rows.append(result)
        print(f"  {n} rows: {result['fit_s']:.1f} s, peak {result['peak_mib']:.0f} MiB", flush=True)
    big = max(rows, key=lambda r: r["rows"])
    k = growth_exponent([r["rows"] for r in rows], [r["fit_s"] for r in rows])
    summary = [{"growth exponent k (time ~ rows^k)": k,
                "largest rows": big["rows"], "its fit_s": big["fit_s"], "<= 600 s": big["fit_s"] <= TARGET_S,
                "its peak MiB": big["peak_mib"], "<= 4 GiB": big["peak_mib"] <= TARGET_MIB}]
    label = " -- QUICK settings, not the real targets" if args.quick else ""
    emit(f"growth of the default fit with rows{label}", rows, args.out)
    emit("growth summary", summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
