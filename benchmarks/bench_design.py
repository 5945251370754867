"""Study design (issue #17): plan's design vs the standard IsoFLOP grid, checked by NUTS fits.

A team with an informed prior (the card below: exponents known to ±0.05, scales to a
factor of 1.6-2.2, noise HalfNormal(0.02)) plans a study for a 1e24-FLOP run. The
truths of the simulated studies are drawn from that same prior (independently of the
truths the planner used), so the predictions and the fits answer the same question.

For each of ``--studies`` truths the script simulates three studies (the card's
Student-t noise on log loss), fits each with NUTS (``--chains`` x (``--draws`` warm-up +
``--draws``), the card has no discrepancy) and measures the 90% interval of N_opt and of
the loss at the target budget, as ln(hi/lo), and whether it holds the truth:

- ``isoflop``: the standard IsoFLOP grid (7 budgets x 9 sizes) of the full budget;
- ``plan``: ``plan_study`` at the study budget (1e21 FLOPs, default limits: N >= 10M,
  1 <= D/N <= 1000, at most 63 runs);
- ``plan_0.6``, ``plan_0.1``: the same at 0.6 x and 0.1 x that budget;
- ``plan_wide``: at the full budget with 0.1 <= D/N <= 10,000.

It prints, per design, the mean width actually obtained, the width ``score_design``
predicted (its mean over its own 64 truths, and the Laplace width at the benchmark's
truths), their ratio, and the coverage; then the targets: plan / isoflop width ratio
(<= 0.7), or plan at 0.6 x the cost no wider than the grid; predicted within 20% of actual.
The card has no discrepancy term (``[discrepancy]``), as the predictions assume.

Measured 2026-12-01 (2 cores, 512 s; the table is in docs/design.md): mean N_opt width
isoflop 0.779, plan 0.657 (0.84x), plan_0.6 0.674, plan_0.1 0.773, plan_wide 0.553 (0.71x);
predicted / actual N_opt width 0.95-0.99, loss width 1.08-1.20.

    python benchmarks/bench_design.py               # 20 studies, 2 chains x (500 + 500)
    python benchmarks/bench_design.py --studies 4   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

import bayes_scaling as bs
from bayes_scaling.allocation import allocation
from bayes_scaling.cards import parse_card
from bayes_scaling.decisions import design as ds
from bayes_scaling.decisions import preposterior as pp
from bayes_scaling.noise import observation_noise
from bayes_scaling.simulate import chinchilla_loss

TARGET, BUDGET = 1e24, 1e21
CARD = parse_card('''
[card]
name = "informed"
law = "chinchilla"
description = "Chinchilla law, priors informed by earlier studies (benchmark of study design)."

[priors.E]
dist = "LogNormal"
kwargs = { loc = 0.6, scale = 0.1 }

[priors.A]
dist = "LogNormal"
kwargs = { loc = 6.2, scale = 0.5 }

[priors.B]
dist = "LogNormal"
kwargs = { loc = 7.6, scale = 0.8 }

[priors.alpha]
dist = "TruncatedNormal"
kwargs = { loc = 0.35, scale = 0.05, low = 0.05, high = 1.0 }

[priors.beta]
dist = "TruncatedNormal"
kwargs = { loc = 0.35, scale = 0.05, low = 0.05, high = 1.0 }

[likelihood]
family = "student_t"
target = "log_loss"

[likelihood.sigma]
dist = "HalfNormal"
kwargs = { scale = 0.02 }

[likelihood.nu]
value = 5.0
''', source="bench_design")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    start = time.perf_counter()
    planned = ds.plan_study(TARGET, BUDGET, card=CARD, seed=0)
    wide = ds.DesignLimits(min_tokens_per_param=0.1, max_tokens_per_param=1e4)
    designs = {"isoflop": planned["isoflop"], "plan": planned["design"],
               "plan_0.6": ds.plan_study(TARGET, 0.6 * BUDGET, card=CARD, seed=0)["design"],
               "plan_0.1": ds.plan_study(TARGET, 0.1 * BUDGET, card=CARD, seed=0)["design"],
               "plan_wide": ds.plan_study(TARGET, BUDGET, card=CARD, seed=0, limits=wide)["design"]}
    print(f"planned in {time.perf_counter() - start:.0f} s")
    for name, table in designs.items():
        print(f"  {name}: {len(table)} runs, {table['flops'].sum():.3g} FLOPs, largest {table['name'][-1]}")

    truths = pp.scenarios(None, CARD, count=args.studies, seed=args.seed)  # independent of the planner's truths
    z = pp.z_value(0.9)
    grad = pp.gradients(truths, TARGET)
    true_q = np.stack([np.asarray(pp.log_quantities(truths, TARGET)(u)) for u in truths.u])  # (T, 2)
    theta = {k: np.asarray(v) for k, v in truths.theta(truths.u).items()}
    rows = []
    for name, table in designs.items():
        n, d = table["params"], table["tokens"]
        score = ds.score_design(n, d, TARGET, card=CARD, seed=0)
        at_truths = pp.interval_widths(pp.covariances(truths, pp.jacobians(truths, n, d)), grad, z)  # (T, 2)
        for t in range(args.studies):
            law = {k: v[t] for k, v in theta.items()}
            log_loss = np.log(chinchilla_loss(n, d, law)) + observation_noise(
                CARD, truths.sigma[t], truths.nu[t], (n.size,), seed=1000 + t)
            runs = pd.DataFrame({"params": n, "tokens": d, "loss": np.exp(log_loss)})
            tic = time.perf_counter()
            fit = bs.fit(runs, card=CARD, chains=args.chains, warmup=args.draws, draws=args.draws, seed=t)
            alloc = allocation(fit, [TARGET], level=0.9).rows()[0]
            lo = np.log([alloc["params_opt_lo"], alloc["loss_opt_lo"]])
            hi = np.log([alloc["params_opt_hi"], alloc["loss_opt_hi"]])
            rows.append({"design": name, "study": t, "width_n_opt": hi[0] - lo[0], "width_loss_opt": hi[1] - lo[1],
                         "laplace_n_opt": at_truths[t, 0], "laplace_loss_opt": at_truths[t, 1],
                         "predicted_n_opt": score["width"][0], "predicted_loss_opt": score["width"][1],
                         "covered_n_opt": bool(lo[0] <= true_q[t, 0] <= hi[0]),
                         "covered_loss_opt": bool(lo[1] <= true_q[t, 1] <= hi[1]),
                         "expected_coverage_n_opt": score["coverage"][0],
                         "divergences": fit.diagnostics().divergences,
                         "seconds": time.perf_counter() - tic})
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}),
                  flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby("design", sort=False).mean(numeric_only=True).drop(columns=["study"])
    summary["median_width_n_opt"] = frame.groupby("design", sort=False)["width_n_opt"].median()
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    grid = summary.loc["isoflop"]
    for name in ("plan", "plan_0.6", "plan_0.1", "plan_wide"):
        row = summary.loc[name]
        print(f"{name} / isoflop, mean N_opt width: {row['width_n_opt'] / grid['width_n_opt']:.3f}; "
              f"loss width: {row['width_loss_opt'] / grid['width_loss_opt']:.3f}")
    for name, row in summary.iterrows():
        print(f"{name}: predicted / actual N_opt width {row['predicted_n_opt'] / row['width_n_opt']:.3f} "
              f"(Laplace at these truths {row['laplace_n_opt'] / row['width_n_opt']:.3f}); loss "
              f"{row['predicted_loss_opt'] / row['width_loss_opt']:.3f}; coverage N_opt {row['covered_n_opt']:.2f} "
              f"(expected {row['expected_coverage_n_opt']:.2f}), loss {row['covered_loss_opt']:.2f}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
