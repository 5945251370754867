"""Calibration across every real table (issue #18): approach 3, plain NUTS and the default card, per table and split.

For each table of ``../shared/data`` (Chinchilla, Porian RefinedWeb and OpenWebText2,
Gemstones, OLMo ladder C4) at two compute cutoffs and one or two model-size splits:
coverage of the 50% and 90% intervals, median 90% width, log predictive density and CRPS
of approach 3 (Huber + bootstrap), the plain law (``chinchilla-plain``), the discrepancy tuned on
Chinchilla alone (prior 0.015, misfit ratio 1.3 on every run, compute only), the previous default
(chosen across tables by mean density, splits read as one shared slope) and today's default card. Then the leave-one-table-out summary: the discrepancy's hyperparameters chosen on four
tables (and the exact-law twins of all five) and scored on the fifth.

    python benchmarks/bench_calibration_tables.py            # default schedule (4 x 1000 + 1000), ~15 min
    python benchmarks/bench_calibration_tables.py --quick    # 2 x 400 + 400, one split per table
    python benchmarks/bench_calibration_tables.py --evidence ev.pkl   # keep the fits (reused when the file exists)
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling as bs  # before JAX: sets the host-device flag so chains run in parallel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine  # noqa: E402

from bayes_scaling import calibration as cal  # noqa: E402
from bayes_scaling import calibration_evidence as ce  # noqa: E402
from bayes_scaling.backtesting import Split  # noqa: E402
from bayes_scaling.nuts import Schedule  # noqa: E402
from tests.real_tables import REAL_TABLES  # noqa: E402

SPLITS = {
    "chinchilla": [Split("compute", 1e20), Split("compute", 5e20), Split("compute", 1.5e21), Split("params", 2.5e9)],
    "porian-rw": [Split("compute", 1.6e18), Split("compute", 5e18), Split("params", 4e8)],
    "porian-owt2": [Split("compute", 1.6e18), Split("compute", 5e18), Split("params", 4e8)],
    "gemstones": [Split("compute", 1.5e20), Split("compute", 3.5e20), Split("params", 1.1e9)],
    "olmo-c4": [Split("compute", 3e20), Split("compute", 1.1e21), Split("params", 8e8), Split("params", 1.3e9)],
}
CHINCHILLA_ONLY = cal.Setting(0.015, 1.3, True, ("compute",), None)
PREVIOUS_DEFAULT = cal.Setting(0.005, 2.0, True, cal.DIRECTIONS, 2.0)
PLAIN = cal.Setting(1e-9, None, False, ("compute",), None)
LABELS = ("a3", "plain", "chinchilla_only", "previous", "default")
#: Internal leave-future-out splits fitted for every split (settings choose among them).
OFFSETS = (0.5, 1.0, 1.5, 2.0, 3.0)


def approach3(runs: pd.DataFrame, split: Split, bootstrap: int) -> dict:
    kwargs = {"cutoffs": [split.limit]} if split.kind == "compute" else {"max_params": [split.limit]}
    result = bs.backtest(runs, ["chinchilla-plain"], methods=["huber"], workers=1,
                         fit_kwargs={"bootstrap": bootstrap}, **kwargs)
    return result.table.iloc[0].to_dict()


def gather(schedule: Schedule, bootstrap: int, quick: bool) -> tuple[list, list, list]:
    """Fit every split once: the real tables' evidence, the exact-law twins' and approach 3's scores."""
    evidence, exact, baseline = [], [], []
    for k, (name, build) in enumerate(REAL_TABLES.items()):
        runs = build()
        if runs is None:
            print(f"{name}: absent (../shared/data), skipped")
            continue
        splits = SPLITS[name][:1] if quick else SPLITS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for split in splits:
                evidence.append(ce.split_evidence(runs, "chinchilla", split, table=name, schedule=schedule,
                                                  offsets=OFFSETS))
                baseline.append(approach3(runs, split, bootstrap))
            twin = cal.exact_twin(runs, seed=k)
            exact.append(ce.split_evidence(twin, "chinchilla", splits[0], table=f"exact-{name}", schedule=schedule,
                                           offsets=OFFSETS))
    # the bundled example design (an IsoFLOP grid of 63 runs, 1% noise) is an exact-law table too
    example = bs.load_runs(bs.simulate_runs(seed=0))
    exact += [ce.split_evidence(example, "chinchilla", split, table="exact-example", schedule=schedule,
                                offsets=OFFSETS)
              for split in (Split("compute", 1.5e21), Split("compute", 6e20))[: 1 if quick else 2]]
    return evidence, exact, baseline


#: Discrepancy forms whose prior scale is learnt across tables (:func:`hierarchical_figures`).
HIERARCHICAL_FORMS = (cal.Setting(0.0, 2.0, True, cal.DIRECTIONS, None, correlation=0.5),
                      cal.Setting(0.0, 2.0, True, cal.DIRECTIONS, 2.0, correlation=0.75),
                      cal.Setting(0.0, 1.3, True, cal.DIRECTIONS, None, correlation=0.5),
                      cal.Setting(0.0, 2.0, True, cal.DIRECTIONS, 2.0, correlation=1.0))


def hierarchical_figures(evidence: list, exact: list) -> list[dict]:
    """Each form with tau's prior scale learnt across tables (:func:`bayes_scaling.calibration.hierarchical_scale`):
    on all tables, and leave-one-table-out (the scale learnt on the other four, scored on the fifth)."""
    import dataclasses

    rows = []
    tables = sorted({ev.table for ev in evidence})
    for form in HIERARCHICAL_FORMS:
        scale, _ = cal.hierarchical_scale(evidence, form)
        learnt = dataclasses.replace(form, scale=scale)
        row = {"form": f"ratio {form.misfit_ratio}, window {form.misfit_window}, correlation {form.correlation}",
               "scale_all": round(scale, 4),
               "widening_far": round(max(cal.widening(ev, learnt, far=True) for ev in exact), 2)}
        hit90 = hit50 = n = 0
        for table in tables:
            rest = [ev for ev in evidence if ev.table != table]
            held = [ev for ev in evidence if ev.table == table]
            setting = dataclasses.replace(form, scale=cal.hierarchical_scale(rest, form)[0])
            scores = cal.split_scores(held, setting)
            hit90 += float((scores["coverage_90"] * scores["n_test"]).sum())
            hit50 += float((scores["coverage_50"] * scores["n_test"]).sum())
            n += int(scores["n_test"].sum())
            row[f"{table}_lpd"] = round(float(scores["mean_log_pred_density"].mean()), 2)
        row.update(loto_c90=round(hit90 / n, 3), loto_c50=round(hit50 / n, 3))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--evidence", type=Path, default=None,
                        help="pickle of the split evidence: read when it exists (no fits), written otherwise")
    args = parser.parse_args()
    schedule = Schedule(2, 400, 400, 0.9) if args.quick else cal.INNER_SCHEDULE
    bootstrap = 50 if args.quick else 200
    emit("machine", [machine()], args.out)
    default = cal.setting_of(bs.load_card("chinchilla"))
    start = time.perf_counter()
    if args.evidence is not None and args.evidence.exists():
        with args.evidence.open("rb") as f:
            evidence, exact, baseline = pickle.load(f)
        print(f"split evidence read from {args.evidence} (no fits)")
    else:
        evidence, exact, baseline = gather(schedule, bootstrap, args.quick)
        if args.evidence is not None:
            with args.evidence.open("wb") as f:
                pickle.dump((evidence, exact, baseline), f)
    rows = []
    for ev, a3 in zip(evidence, baseline, strict=True):
        row = {"table": ev.table, "split": ev.split.label, "n_test": len(ev.heldout.observed),
               "plain_fit_ok": ev.diagnostics_ok}
        row.update({f"a3_{k2}": a3[k1] for k1, k2 in (("coverage_50", "c50"), ("coverage_90", "c90"),
                    ("median_width_90", "width"), ("mean_log_pred_density", "lpd"), ("crps", "crps"))})
        for label, setting in (("plain", PLAIN), ("chinchilla_only", CHINCHILLA_ONLY), ("previous", PREVIOUS_DEFAULT),
                               ("default", default)):
            s = cal.split_scores([ev], setting).iloc[0]
            row.update({f"{label}_c50": s["coverage_50"], f"{label}_c90": s["coverage_90"],
                        f"{label}_width": s["median_width_90"], f"{label}_lpd": s["mean_log_pred_density"],
                        f"{label}_crps": s["crps"]})
        rows.append(row)
    table = pd.DataFrame(rows)
    emit("per table and split: approach 3 (a3), plain NUTS, tuned on Chinchilla only, previous default, default card "
         "(c50/c90: coverage of the 50%/90% intervals; width: median 90% width / loss; lpd: mean log predictive "
         "density; crps: nats/token)", table.round(4).to_dict(orient="records"), args.out)
    n = table["n_test"]
    pooled = {label: {"c90": float((table[f"{label}_c90"] * n).sum() / n.sum()),
                      "c50": float((table[f"{label}_c50"] * n).sum() / n.sum())}
              for label in LABELS}
    per_table = []
    for name, g in table.groupby("table", sort=False):
        w = g["n_test"]
        row = {"table": name, "splits": len(g), "held_out": int(w.sum())}
        row.update({f"{label}_c90": round(float((g[f"{label}_c90"] * w).sum() / w.sum()), 2) for label in LABELS})
        row.update({f"{label}_c50": round(float((g[f"{label}_c50"] * w).sum() / w.sum()), 2) for label in LABELS})
        row.update({f"{label}_lpd": round(float(g[f"{label}_lpd"].mean()), 2) for label in LABELS})
        per_table.append(row)
    emit("per table, pooled over its splits (coverage weighted by held-out runs, lpd the mean over splits)",
         per_table, args.out)
    emit("pooled coverage over every split (weighted by held-out runs)",
         [{"method": k, **{a: round(b, 3) for a, b in v.items()}} for k, v in pooled.items()], args.out)
    emit("pooled coverage against what each setting's own predictive distribution would give if it were right "
         "(a split's runs err together; 5-95% of 400 simulations; p_below small: intervals too narrow)",
         [{"method": label, **row} for label, setting in (("plain", PLAIN), ("previous", PREVIOUS_DEFAULT),
                                                          ("default", default))
          for row in cal.coverage_under_model(evidence, setting).round(3).to_dict(orient="records")], args.out)
    emit("exact-law tables: predictive sd of the default over the plain fit's (median over held-out runs; and at "
         "100x the largest training compute)",
         [{"table": ev.table, "split": ev.split.label, "held_out": round(cal.widening(ev, default), 3),
           "far": round(cal.widening(ev, default, far=True), 3)} for ev in exact], args.out)
    if len({ev.table for ev in evidence}) >= 2:
        loto = cal.leave_one_table_out(evidence, exact=exact)
        n = loto["n_test"]
        emit("leave-one-table-out: setting chosen without the table, scored on it",
             loto.assign(chosen=[str(c) for c in loto["chosen"]]).drop(columns=["chosen_on"]).round(4)
             .to_dict(orient="records"), args.out)
        emit("tau's prior scale learnt across tables (hierarchical, type-II ML): each form's scale on all tables, "
             "its widening of exact-law twins at 100x, and leave-one-table-out coverage and density",
             hierarchical_figures(evidence, exact), args.out)
        print(f"LOTO pooled 90% coverage {float((loto['coverage_90'] * n).sum() / n.sum()):.3f}, "
              f"50% coverage {float((loto['coverage_50'] * n).sum() / n.sum()):.3f} (targets 0.85-0.95, 0.40-0.60)")
    print(f"total {time.perf_counter() - start:.0f} s")
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
