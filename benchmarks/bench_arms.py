"""Compare arms on generated two-arm studies with a known crossover (issue #17, item 4 targets).

Each study draws a truth: arm ``a`` is :data:`bayes_scaling.simulate.EXAMPLE_TRUTH`; arm ``b``
shares its exponents, has an irreducible loss lower by delta ~ U(0.03, 0.07) nats and A, B
larger by the factor that puts the true crossover of the compute-optimal frontiers at
10^U(21.5, 23) FLOPs, beyond the runs (IsoFLOP grids 6e18-3e21 FLOPs, 3 sizes per budget,
21 runs per arm, noise sd 0.01 on log loss). ``compare_arms`` (hierarchical card, jointly)
then gives:

- the crossover's 90% interval: target, it covers the truth in 85-95% of the studies;
- P(b gives the lowest loss) at 1e20 ... 1e24 FLOPs: its Brier score against the truth's
  winner, beside that of a constant forecast (the base rate over all studies and budgets,
  and the per-budget base rate, both known only in hindsight).

    python benchmarks/bench_arms.py --studies 40 --out arms.jsonl   # 2 chains x 400+400 draws

800 draws in all stay below sampling.EXTEND_MIN_DRAWS, so a fit that misses the ESS gate is
not re-run: a study takes ~20-60 s on a loaded 2-core machine instead of minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling as bs  # before JAX: sets the host-device flag so chains run in parallel
from bayes_scaling.arms import compare_arms
from bayes_scaling.simulate import EXAMPLE_TRUTH, simulate_runs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine  # noqa: E402

BUDGETS = (1e20, 1e21, 1e22, 1e23, 1e24)


def optimal_loss(truth: dict[str, float], compute: float) -> float:
    """The true compute-optimal loss of the Chinchilla law at ``compute`` FLOPs (closed form)."""
    a, b = truth["alpha"], truth["beta"]
    g = (a * truth["A"] / (b * truth["B"])) ** (1 / (a + b))
    n = g * (compute / 6) ** (b / (a + b))
    return truth["E"] + truth["A"] / n**a + truth["B"] / (compute / 6 / n) ** b


def study_truth(rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float], float]:
    """Two arms sharing exponents whose frontiers cross at a drawn compute; returns (a, b, crossover FLOPs)."""
    first = dict(EXAMPLE_TRUTH)
    delta = rng.uniform(0.03, 0.07)
    crossover = 10 ** rng.uniform(21.5, 23.0)
    # With shared exponents, scaling A and B by k scales the frontier's reducible part by k.
    k = 1 + delta / (optimal_loss(first, crossover) - first["E"])
    return first, dict(first, E=first["E"] - delta, A=first["A"] * k, B=first["B"] * k), crossover


def run_study(index: int, fit_kwargs: dict) -> dict:
    rng = np.random.default_rng(1000 + index)
    truth_a, truth_b, crossover = study_truth(rng)
    arms = []
    for offset, (label, truth) in enumerate((("a", truth_a), ("b", truth_b))):
        table = simulate_runs(10 * index + offset, truth=truth, sizes_per_budget=3)
        table["group"] = label
        arms.append(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = bs.load_runs(pd.concat(arms, ignore_index=True))
        start = time.perf_counter()
        result = compare_arms(runs, list(BUDGETS), seed=index, **fit_kwargs)
    wins = result.wins.to_frame()
    p_b = wins[wins["arm"] == "b"].set_index("compute")["p_lowest"]
    cross = result.crossovers.to_frame().iloc[0]
    lo, hi = float(cross["crossover_lo"]), float(cross["crossover_hi"])
    return {
        "study": index, "true_crossover": crossover, "crossover": float(cross["crossover"]),
        "crossover_lo": lo, "crossover_hi": hi, "p_crossover": float(cross["p_crossover"]),
        "covered": bool(lo <= crossover <= hi), "width_decades": float(np.log10(hi / lo)) if hi > 0 else None,
        "p_b": {f"{c:.0e}": float(p_b[c]) for c in BUDGETS},
        "b_wins": {f"{c:.0e}": bool(optimal_loss(truth_b, c) < optimal_loss(truth_a, c)) for c in BUDGETS},
        "converged": not any("joint fit" in w for w in result.warnings), "seconds": time.perf_counter() - start,
    }


def summarise(rows: list[dict]) -> dict:
    covered = np.array([r["covered"] for r in rows])
    p = np.array([[r["p_b"][k] for k in r["p_b"]] for r in rows])
    o = np.array([[r["b_wins"][k] for k in r["b_wins"]] for r in rows], dtype=float)
    base = o.mean()
    per_budget = o.mean(axis=0, keepdims=True)
    return {"studies": len(rows), "coverage_90": float(covered.mean()), "covered": int(covered.sum()),
            "median_width_decades": float(np.median([r["width_decades"] for r in rows if r["width_decades"]])),
            "brier": float(np.mean((p - o) ** 2)), "brier_constant": float(np.mean((base - o) ** 2)),
            "brier_constant_per_budget": float(np.mean((per_budget - o) ** 2)),
            "converged_share": float(np.mean([r["converged"] for r in rows])),
            "median_seconds": float(np.median([r["seconds"] for r in rows]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=40)
    parser.add_argument("--first", type=int, default=0, help="index of the first study (to split the studies "
                        "over processes; then summarise the merged --out files with --summarise)")
    parser.add_argument("--summarise", type=Path, nargs="*", default=None, help="only summarise these --out files")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per study, then the summary")
    args = parser.parse_args()
    if args.summarise is not None:
        rows = [json.loads(line) for path in args.summarise for line in path.read_text().splitlines()
                if '"study"' in line and '"benchmark"' not in line]
        emit("compare-arms: crossover coverage and win-probability calibration", [summarise(rows)], None)
        return
    print(machine())
    fit_kwargs = {"chains": args.chains, "warmup": args.draws, "draws": args.draws, "target_accept": 0.95}
    rows = []
    for i in range(args.first, args.first + args.studies):
        rows.append(run_study(i, fit_kwargs))
        print(json.dumps(rows[-1]), flush=True)
        if args.out is not None:
            with args.out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(rows[-1]) + "\n")
    emit("compare-arms: crossover coverage and win-probability calibration", [summarise(rows)], args.out)


if __name__ == "__main__":
    main()
