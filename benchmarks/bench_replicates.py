"""The replicate model (issue #17, item 5): does it recover a known run-to-run noise, and match real reruns?

1. Generated: ``--datasets`` IsoFLOP grids (7 budgets x 3 sizes, 21 cells), each cell with a
   misfit shared by its seeds (sd 0.012 on log loss) and ``--replicates`` seeds with
   run-to-run noise sd 0.006. Target: the 90% interval of sigma_run covers 0.006 (in about
   90% of the datasets).
2. The OLMo ladder (``../shared/data/olmo_ladder``, 30 runs; each rung's 1xC run rerun with a
   second seed): sigma_run against the observed rerun differences (RMS of |y1 - y2| / sqrt 2),
   and each rerun pair's spread against the model's 90% interval.

    python benchmarks/bench_replicates.py --datasets 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import bayes_scaling as bs  # before JAX: sets the host-device flag
from bayes_scaling.replicates import fit_replicates

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _common import emit, machine  # noqa: E402

from tests.real_tables import olmo_ladder  # noqa: E402
from tests.test_replicates import SIGMA_MISFIT, SIGMA_RUN, replicated_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=5)
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(machine())
    rows = []
    for seed in range(args.datasets):
        fit = fit_replicates(bs.load_runs(replicated_runs(seed=100 + seed, replicates=args.replicates)),
                             chains=2, warmup=500, draws=500, seed=seed)
        s = fit.summary(0.9)
        rows.append({"dataset": seed, "sigma_run": s.loc["sigma_run", "median"], "lo": s.loc["sigma_run", "lo"],
                     "hi": s.loc["sigma_run", "hi"],
                     "covered": bool(s.loc["sigma_run", "lo"] < SIGMA_RUN < s.loc["sigma_run", "hi"]),
                     "sigma_misfit": s.loc["sigma_misfit", "median"], "misfit_truth": SIGMA_MISFIT,
                     "max_r_hat": float(s["r_hat"].max()), "divergences": fit.divergences})
    emit(f"replicate model on generated data (sigma_run = {SIGMA_RUN})", rows, args.out)
    runs = olmo_ladder()
    if runs is None:
        print("OLMo ladder absent: skipped")
        return
    runs = runs.assign(replicate=np.where(runs["name"].str.endswith("-rerun"), "seed2", "seed1"))
    fit = fit_replicates(bs.load_runs(runs), chains=2, warmup=500, draws=500, seed=0)
    s, check = fit.summary(0.9), fit.rerun_check(0.9)
    emit("OLMo ladder reruns: each pair's spread of log loss vs the model's 90% interval",
         check.to_dict(orient="records"), args.out)
    emit("OLMo ladder: noise scales", [{
        "sigma_run": s.loc["sigma_run", "median"], "lo": s.loc["sigma_run", "lo"], "hi": s.loc["sigma_run", "hi"],
        "observed_rms_spread": float(np.sqrt(np.mean(check["spread"] ** 2))),
        "sigma_misfit": s.loc["sigma_misfit", "median"], "misfit_lo": s.loc["sigma_misfit", "lo"],
        "misfit_hi": s.loc["sigma_misfit", "hi"], "pairs_covered": int(check["covered"].sum()),
        "pairs": len(check), "max_r_hat": float(s["r_hat"].max()), "divergences": fit.divergences}], args.out)


if __name__ == "__main__":
    main()
