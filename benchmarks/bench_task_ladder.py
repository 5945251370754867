"""Task scaling on the OLMo ladder: fit 190M-1.3B (1, 2, 5, 10x), predict the 3.2B rung's accuracy.

The target of issue 16: for the 8 tasks of Bhagia et al. 2024, 90% predictive intervals of
the task-chain card should cover 85-95% of the (run, task) pairs of the 3.2B rung, with a
median absolute error no worse than the point two-step fit's; and each task's fitted noise
should agree with the ladder's second seeds (the ``*-1xC-rerun`` runs). Run as a file:

    python benchmarks/bench_task_ladder.py [--draws 1000] [--out task_ladder.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

import bayes_scaling as bs
from bayes_scaling.backtesting import Split
from bayes_scaling.task_backtest import backtest_task, rerun_check
from bayes_scaling.training_logs import read_logs

LADDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "olmo_ladder"
#: Non-embedding parameters of each rung (PROVENANCE.md, olmo_ladder).
SIZES = {"190M": 190_354_176, "370M": 371_262_464, "760M": 758_220_288, "1B": 1_279_395_840,
         "3B": 3_169_537_280}
MMLU = ("stem", "humanities", "social_sciences", "other")
#: The paper's 8 tasks: accuracy column and bits-per-byte column of the run table.
TASKS = {"mmlu": ("mmlu_acc", "mmlu_bpb"), "hellaswag": ("hellaswag_acc", "hellaswag_bpb"),
         "arc_challenge": ("arc_challenge_test_acc", "arc_challenge_test_bpb"),
         "arc_easy": ("arc_easy_test_acc", "arc_easy_test_bpb"), "piqa": ("piqa_acc", "piqa_bpb"),
         "csqa": ("csqa_acc", "csqa_bpb"), "socialiqa": ("socialiqa_acc", "socialiqa_bpb"),
         "openbookqa": ("openbookqa_test_acc", "openbookqa_test_bpb")}


def ladder_runs(folder: Path = LADDER) -> pd.DataFrame:
    """The ladder's final evaluations, with MMLU averaged over its four subject groups (test split)."""
    runs = read_logs(folder, SIZES)
    for kind in ("acc", "bpb"):
        runs[f"mmlu_{kind}"] = runs[[f"mmlu_{g}_test_{kind}" for g in MMLU]].mean(axis=1)
    runs["multiplier"] = runs["name"].str.extract(r"-([\d.]+)xC")[0].astype(float)
    with warnings.catch_warnings():  # the reruns repeat (N, D) on purpose
        warnings.simplefilter("ignore", bs.RunTableWarning)
        return bs.load_runs(runs, require_loss=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--card", default="task-chain")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = ladder_runs()
    big = runs["name"].str.startswith("3B").to_numpy()
    rerun = runs["name"].str.endswith("rerun").to_numpy()
    train = runs[~big & (runs["multiplier"] >= 1).to_numpy() & ~rerun].reset_index(drop=True)
    test = runs[big].reset_index(drop=True)
    first = runs[(runs["multiplier"] == 1).to_numpy() & ~rerun].sort_values("params").reset_index(drop=True)
    second = runs[rerun].sort_values("params").reset_index(drop=True)
    records, per_run, noise = [], [], {}
    kwargs = {"chains": args.chains, "warmup": args.draws, "draws": args.draws, "target_accept": 0.95}
    for task in args.tasks:
        metric, via = TASKS[task]
        start = time.perf_counter()
        recs, rows = backtest_task(train, test, args.card, metric=metric, via=None if "c4" in args.card else via,
                                   fit_kwargs=kwargs, split=Split("params", 1.3e9), label={"task": task})
        full = bs.fit(train, args.card, metric=metric, via=None if "c4" in args.card else via, **kwargs)
        pairs = pd.DataFrame({"params": first["params"], "tokens": first["tokens"], "first": first[metric],
                              "second": second[metric]})
        noise[task] = rerun_check(full, pairs)
        records += recs
        per_run.append(rows.assign(task=task))
        print(f"{task}: {[(r['method'], r['coverage_90'], round(r['median_abs_error'], 2)) for r in recs]} "
              f"noise {noise[task]} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    table = pd.concat(per_run, ignore_index=True)
    nuts = table[table["method"] == "nuts"]
    base = table[table["method"] == "two-step"]
    summary = {"pairs": len(nuts), "coverage_90": float(nuts["covered_90"].mean()),
               "coverage_90_without_0.5x": float(nuts[~nuts["name"].str.contains("0.5xC")]["covered_90"].mean()),
               "median_abs_error_nuts": float(nuts["abs_error"].median()),
               "median_abs_error_two_step": float(base["abs_error"].median()),
               "fit_seconds": [r["elapsed_s"] for r in records if r["method"] == "nuts"]}
    out = {"summary": summary, "records": records, "noise": noise,
           "runs": table.drop(columns=[c for c in ("lo_50", "hi_50") if c in table]).to_dict(orient="records")}
    text = json.dumps(out, indent=2, default=float)
    if args.out:
        args.out.write_text(text)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
