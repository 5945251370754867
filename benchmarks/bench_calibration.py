"""Calibration beyond the data: do 90% intervals hold where the money is spent? (issue #10 targets)

Two backtests, each fitting the runs with compute <= a cutoff and predicting the larger ones:

1. The real Chinchilla reconstruction (``../shared/data``, 240 runs) at cutoffs 1e20, 5e20
   and 1.5e21 FLOPs: the default card, the plain Chinchilla card and approach 3 (Huber +
   bootstrap). Targets: the default's 90% intervals cover 85-95% of held-out runs at each
   cutoff (>= 15 of 17 at 1.5e21) and its log predictive density beats both others.
2. Generated data where the Chinchilla law is exactly right: the discrepancy card's
   coverage should stay within 85-95% and its intervals should be no more than 25% wider
   than the plain fit's. Two designs, ``--datasets`` tables each:
   - "real design": the (N, D) of the 240 real runs, losses from Besiroglu et al.'s law
     with log-normal noise of sd 0.004 (about the real fit's sigma), the same 3 cutoffs;
   - "isoflop grid": :func:`bayes_scaling.simulate_runs` on 8 budgets, 3e18-1e22 FLOPs,
     noise sd 0.01, cutoff 5e20 (noisier runs make the discrepancy harder to rule out).

    python benchmarks/bench_calibration.py             # 4 chains x 500+500 draws, 200 bootstrap, 6 datasets
    python benchmarks/bench_calibration.py --quick     # 2 chains x 300+300, 50 bootstrap, 2 datasets
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import bayes_scaling as bs  # before JAX: sets the host-device flag so chains run in parallel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine, real_runs  # noqa: E402

CUTOFFS = (1e20, 5e20, 1.5e21)
DISCREPANCY_CARD, PLAIN_CARD = "chinchilla", "chinchilla-plain"
GENERATED_BUDGETS = (3e18, 1e19, 3e19, 1e20, 3e20, 1e21, 3e21, 1e22)
GENERATED_CUTOFF = 5e20


def real_backtest(fit_kwargs: dict, out: Path | None) -> None:
    runs = real_runs()
    if runs is None:
        print("real table absent (../shared/data): real-data backtest skipped")
        return
    result = bs.backtest(runs, [PLAIN_CARD, DISCREPANCY_CARD], CUTOFFS, methods=["nuts", "huber"],
                         workers=1, fit_kwargs=fit_kwargs)
    table = result.table
    rows = []
    for _, r in table.iterrows():
        rows.append({"card": r["card"], "method": r["method"], "cutoff": f"{r['cutoff']:.2g}",
                     "n_test": int(r["n_test"]), "covered_90": int(round(r["coverage_90"] * r["n_test"])),
                     "coverage_90": r["coverage_90"], "coverage_50": r["coverage_50"],
                     "median_width_90": r["median_width_90"], "log_pred_density": r["mean_log_pred_density"],
                     "crps": r["crps"], "fit_ok": bool(r["diagnostics_ok"]), "fit_s": r["elapsed_s"]})
    emit("real table backtest (Chinchilla reconstruction, 240 runs)", rows, out)
    verdicts = []
    for cutoff in CUTOFFS:
        at = table[table["cutoff"] == cutoff]
        default = at[(at["card"] == DISCREPANCY_CARD) & (at["method"] == "nuts")].iloc[0]
        plain = at[(at["card"] == PLAIN_CARD) & (at["method"] == "nuts")].iloc[0]
        huber = at[(at["card"] == PLAIN_CARD) & (at["method"] == "huber")].iloc[0]
        covered = int(round(default["coverage_90"] * default["n_test"]))
        coverage_ok = 0.85 <= default["coverage_90"] <= 0.95 and (cutoff < 1.5e21 or covered >= 15)
        verdicts.append({
            "cutoff": f"{cutoff:.2g}", "coverage_90": default["coverage_90"],
            "coverage_target": "met" if coverage_ok else "NOT met",
            "lpd_default": default["mean_log_pred_density"], "lpd_plain": plain["mean_log_pred_density"],
            "lpd_approach3": huber["mean_log_pred_density"],
            "lpd_target": "met" if default["mean_log_pred_density"] > max(plain["mean_log_pred_density"],
                                                                          huber["mean_log_pred_density"])
            else "NOT met"})
    emit(f"targets on the real table ({DISCREPANCY_CARD} vs plain NUTS vs approach 3)", verdicts, out)


def real_design_runs(seed: int, noise: float = 0.004):
    """The real runs' (N, D) with losses from Besiroglu et al.'s fitted law and log-normal noise."""
    from bayes_scaling.simulate import EXAMPLE_TRUTH, chinchilla_loss

    runs = real_runs()
    if runs is None:
        return None
    law = chinchilla_loss(runs["params"].to_numpy(float), runs["tokens"].to_numpy(float), EXAMPLE_TRUTH)
    rng = np.random.default_rng(seed)
    table = runs[["params", "tokens", "flops"]].assign(loss=law * np.exp(noise * rng.standard_normal(len(runs))))
    return bs.load_runs(table)


def isoflop_runs(seed: int):
    """An IsoFLOP grid from the Chinchilla law, 8 budgets 3e18-1e22 FLOPs, noise sd 0.01."""
    return bs.load_runs(bs.simulate_runs(seed=100 + seed, budgets=GENERATED_BUDGETS))


def generated_backtest(datasets: int, fit_kwargs: dict, out: Path | None) -> None:
    for design, cutoffs, make in (("real design", CUTOFFS, real_design_runs),
                                  ("isoflop grid", (GENERATED_CUTOFF,), isoflop_runs)):
        rows = []
        for seed in range(datasets):
            runs = make(seed)
            if runs is None:
                print(f"real table absent: generated data of the {design} skipped")
                break
            result = bs.backtest(runs, [PLAIN_CARD, DISCREPANCY_CARD], cutoffs, methods=["nuts"], seed=seed,
                                 workers=1, fit_kwargs=fit_kwargs)
            for cutoff in cutoffs:
                t = result.table[result.table["cutoff"] == cutoff].set_index("card")
                plain, wide = t.loc[PLAIN_CARD], t.loc[DISCREPANCY_CARD]
                rows.append({"dataset": seed, "cutoff": f"{cutoff:.2g}", "n_test": int(plain["n_test"]),
                             "coverage_plain": plain["coverage_90"], "coverage_discrepancy": wide["coverage_90"],
                             "width_plain": plain["median_width_90"], "width_discrepancy": wide["median_width_90"],
                             "widening": wide["median_width_90"] / plain["median_width_90"],
                             "lpd_plain": plain["mean_log_pred_density"],
                             "lpd_discrepancy": wide["mean_log_pred_density"]})
        if not rows:
            continue
        emit(f"generated data, law exactly right: {design}", rows, out)
        n = np.array([r["n_test"] for r in rows], dtype=float)
        cov = float(np.sum(np.array([r["coverage_discrepancy"] for r in rows]) * n) / n.sum())
        cov_plain = float(np.sum(np.array([r["coverage_plain"] for r in rows]) * n) / n.sum())
        widening = float(np.median([r["widening"] for r in rows]))
        emit(f"targets on generated data: {design}", [{
            "pooled_coverage_90_discrepancy": cov, "pooled_coverage_90_plain": cov_plain,
            "coverage_target": "met" if 0.85 <= cov <= 0.95 else "NOT met",
            "median_widening": widening, "widening_target": "met" if widening <= 1.25 else "NOT met"}], out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer draws, bootstrap resamples and datasets.")
    parser.add_argument("--datasets", type=int, default=None, help="Generated datasets (default 6, quick 2).")
    parser.add_argument("--skip-real", action="store_true", help="Only the generated-data part.")
    parser.add_argument("--skip-generated", action="store_true", help="Only the real-table part.")
    parser.add_argument("--out", type=Path, default=None, help="Append the rows as JSON lines to this file.")
    args = parser.parse_args()
    fit_kwargs = (dict(chains=2, warmup=300, draws=300, bootstrap=50) if args.quick
                  else dict(chains=4, warmup=500, draws=500, bootstrap=200))
    emit("machine", [machine()], args.out)
    start = time.perf_counter()
    if not args.skip_real:
        real_backtest(fit_kwargs, args.out)
    if not args.skip_generated:
        generated_backtest(args.datasets or (2 if args.quick else 6), fit_kwargs, args.out)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
