"""The report's task section: both steps, accuracy at each budget, held-out runs, identification."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.cards import load_card
from bayes_scaling.cli import main
from bayes_scaling.report import render_report
from bayes_scaling.report.task_section import identification
from tests.test_task import FAST, task_runs


@pytest.fixture(scope="module")
def fitted():
    runs = task_runs(seed=4)
    small = runs["params"] < 5e9  # fit three sizes, hold out the two largest
    fit = bs.fit(runs[small].reset_index(drop=True), "task-chain", metric="task_acc", via="task_bpb", chance=0.25,
                 seed=2, **FAST)
    return fit, runs[~small].reset_index(drop=True)


def test_task_section_holds_both_steps_budgets_and_scored_held_out_runs(fitted):
    fit, held_out = fitted
    report = render_report(fit, budgets=[1e20, 1e22], held_out=held_out)
    section = report.data["sections"]["task"]
    assert section["metric"] == "task_acc" and section["via"] == "task_bpb"
    assert [a["compute"] for a in section["allocation"]] == [1e20, 1e22]
    for row in section["allocation"]:
        for q in ("metric_opt", "metric_opt_predictive"):
            assert row[q]["lo"] <= row[q]["median"] <= row[q]["hi"]
        # one run's interval is at least as wide as the law's
        assert row["metric_opt_predictive"]["hi"] - row["metric_opt_predictive"]["lo"] >= (
            row["metric_opt"]["hi"] - row["metric_opt"]["lo"]) * 0.99
    # more compute, better accuracy (the law's median)
    assert section["allocation"][1]["metric_opt"]["median"] > section["allocation"][0]["metric_opt"]["median"]
    held = section["held_out"]
    assert held["n"] == len(held_out) == len(held["runs"])
    inside = sum(r["lo"] <= r["observed"] <= r["hi"] for r in held["runs"])
    assert held["covered"] == inside
    assert held["covered"] >= len(held_out) // 2  # the truth is the card's law: most runs inside
    assert set(section["bounds"]) == {"floor", "ceiling"}
    assert '<section id="task">' in report.html and "Task: task_acc from task_bpb" in report.html


def test_loss_fit_refuses_held_out_runs(small_fit):
    with pytest.raises(bs.InputError, match="task fit"):
        render_report(small_fit, held_out=task_runs())


def _link(midpoint: float, spread: float, n: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"floor": 0.25 + spread * rng.standard_normal(n), "ceiling": 0.9 + spread * rng.standard_normal(n),
            "slope": np.full(n, 8.0), "midpoint": np.full(n, midpoint)}


def test_identification_by_reach_and_by_prior_spread():
    task = load_card("task-chain").task.resolved("task_acc", "task_bpb", 0.25)
    x = np.linspace(0.5, 1.2, 10)
    # sigmoid share at the best run (x=0.5): 1/(1+exp(-8*0.35)) = 0.94; at the worst (1.2): 1-0.06
    both = identification(task, _link(0.85, 0.005), x)
    assert both["ceiling"]["reached"] == pytest.approx(1 / (1 + np.exp(-2.8)), abs=1e-9)
    assert both["ceiling"]["identified"] and both["floor"]["identified"]
    # the runs stop halfway up (best run at the midpoint): the ceiling is the prior's
    half = identification(task, _link(0.5, 0.005), x)
    assert half["ceiling"]["reached"] == pytest.approx(0.5) and not half["ceiling"]["identified"]
    assert "not identified" in half["ceiling"]["note"] and half["floor"]["identified"]
    # reached, but the posterior is as wide as the prior: not identified either
    wide = identification(task, _link(0.85, 0.3), x)
    assert wide["ceiling"]["sd_ratio"] > 0.7 and not wide["ceiling"]["identified"]


def test_cli_report_held_out(fitted, tmp_path, capsys):
    fit, held_out = fitted
    path = fit.save(tmp_path / "task.nc")
    runs_csv = tmp_path / "held.csv"
    held_out.to_csv(runs_csv, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "r.html"), "--held-out", str(runs_csv)]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["sections"]["task"]["held_out"]["n"] == len(held_out)
    capsys.readouterr()
    held_out.drop(columns=["task_acc"]).to_csv(runs_csv, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "r2.html"), "--held-out", str(runs_csv)]) == 2
    err = capsys.readouterr().err
    assert "task_acc" in err and "Traceback" not in err and not (tmp_path / "r2.html").exists()
