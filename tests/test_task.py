"""Task cards: recovery of known step-1 and step-2 parameters, predictions, saved fits, backtests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.backtesting import RECORD_KEYS, Split
from bayes_scaling.cards import parse_card
from bayes_scaling.cli import main
from bayes_scaling.fitfile import read_fit
from bayes_scaling.laws.sigmoid import accuracy
from bayes_scaling.task_backtest import backtest_task, score_accuracy
from bayes_scaling.task_baseline import fit_sigmoid
from bayes_scaling.task_prediction import task_allocation, task_prediction

LAW = {"E": 0.6, "A": 60.0, "B": 50.0, "alpha": 0.3, "beta": 0.25}
LINK = {"floor": 0.25, "ceiling": 0.9, "slope": 8.0, "midpoint": 0.85}
SIGMA, SIGMA_METRIC = 0.005, 0.01
FAST = {"chains": 2, "warmup": 300, "draws": 300}


def task_runs(seed: int = 0) -> pd.DataFrame:
    """20 runs (5 sizes × 4 token counts) from a known law on bits per byte and a known sigmoid."""
    rng = np.random.default_rng(seed)
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e8, 1e10, 5), np.geomspace(2e9, 2e11, 4)))
    bpb = (LAW["E"] + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]) * np.exp(
        SIGMA * rng.standard_normal(n.size))
    acc = accuracy(LINK, bpb) + SIGMA_METRIC * rng.standard_normal(n.size)
    return bs.load_runs(pd.DataFrame({"name": [f"r{i}" for i in range(n.size)], "params": n, "tokens": d,
                                      "task_bpb": bpb, "task_acc": acc}), require_loss=False)


@pytest.fixture(scope="module")
def task_fit():
    return bs.fit(task_runs(), "task-chain", metric="task_acc", via="task_bpb", chance=0.25, seed=1, **FAST)


def test_recovers_known_step1_and_step2_parameters(task_fit):
    summary = task_fit.summary(level=0.98)
    for name, truth in {**LAW, **LINK, "sigma": SIGMA, "sigma_metric": SIGMA_METRIC}.items():
        if name in ("A", "B"):  # scales on a ridge with their exponents: checked through the law's values below
            continue
        assert summary.loc[name, "lo"] <= truth <= summary.loc[name, "hi"], (name, summary.loc[name].to_dict())
    diag = task_fit.diagnostics()  # 2 × 300 draws: ESS below the gate's 400 is expected, mixing is not
    assert diag.divergences == 0 and diag.max_rhat < 1.05, diag.messages
    # the law's accuracy at an unseen plan, two steps through
    table = task_prediction(task_fit, "20B", "400B", level=0.98)
    truth = accuracy(LINK, LAW["E"] + LAW["A"] / 2e10 ** LAW["alpha"] + LAW["B"] / 4e11 ** LAW["beta"])
    assert table["metric_lo"][0] <= truth <= table["metric_hi"][0]


def test_saved_task_fit_round_trips(task_fit, tmp_path):
    path = task_fit.save(tmp_path / "task.nc")
    loaded, arrays = bs.Fit.load(path), read_fit(path)
    assert loaded.card.task == task_fit.card.task and arrays.card.task.metric == "task_acc"
    assert arrays.card.task.via == "task_bpb" and arrays.card.task.chance == 0.25
    for name in ("floor", "ceiling", "slope", "midpoint", "sigma_metric", "E"):
        np.testing.assert_array_equal(arrays.posterior[name], task_fit.arrays.posterior[name])
    assert "metric" in loaded.tree["posterior_predictive"] and "metric" in loaded.tree["log_likelihood"]
    a = task_prediction(arrays, "7B", "4T").to_frame()
    b = task_prediction(task_fit, "7B", "4T").to_frame()
    pd.testing.assert_frame_equal(a, b)


def test_predict_json_keys_and_interval_ordering(task_fit, tmp_path, capsys):
    path = task_fit.save(tmp_path / "task.nc")
    assert main(["predict", str(path), "--params", "7B", "--tokens", "4T", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"loss", "loss_predictive", "metric", "metric_predictive", "level"} <= set(out)
    for key in ("metric", "metric_predictive"):
        assert set(out[key]) == {"median", "lo", "hi", "level"} and out[key]["level"] == 0.9
        assert 0 <= out[key]["lo"] <= out[key]["median"] <= out[key]["hi"] <= 1
    # one run's interval holds the law's: it adds noise on both steps
    law, run = out["metric"], out["metric_predictive"]
    assert run["lo"] <= law["lo"] and law["hi"] <= run["hi"]
    assert main(["allocate", str(path), "--budget", "1e22", "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["metric_opt"]["lo"] <= row["metric_opt"]["median"] <= row["metric_opt"]["hi"]


def test_allocation_accuracy_rises_with_budget(task_fit):
    table = task_allocation(task_fit, [1e19, 1e21, 1e23])
    assert np.all(np.diff(table["metric_opt"]) > 0) and np.all(table["metric_opt_hi"] <= 1)


def test_score_accuracy_by_hand():
    draws = np.array([[0.50, 0.70], [0.52, 0.72], [0.54, 0.74], [0.56, 0.76], [0.58, 0.78]])
    scores = score_accuracy(np.array([0.53, 0.90]), draws, None)
    assert scores["median"].tolist() == [0.54, 0.74]
    assert scores["abs_error"].round(6).tolist() == [1.0, 16.0]  # accuracy points
    assert scores["covered_90"].tolist() == [True, False]
    # 90% interval of 5 draws 0.02 apart, linear interpolation at positions 0.2 and 3.8:
    # 0.50 + 0.2 * 0.02 = 0.504 to 0.56 + 0.8 * 0.02 = 0.576, 7.2 points wide
    assert scores["width_90"].round(6).tolist() == [7.2, 7.2]
    point = score_accuracy(np.array([0.53]), np.array([[0.55]]), None)
    assert np.isnan(point["covered_90"][0]) and point["abs_error"].round(6)[0] == 2.0


def test_backtest_by_size_keeps_the_record_keys():
    runs = task_runs(seed=2)
    split = Split("params", 2e9)
    train, test = split.divide(runs)
    assert len(train) == 12 and len(test) == 8
    records, per_run = backtest_task(train, test, "task-chain", metric="task_acc", via="task_bpb", chance=0.25,
                                     fit_kwargs=FAST, split=split)
    assert [r["method"] for r in records] == ["nuts", "two-step"]
    assert set(RECORD_KEYS) <= set(records[0])
    nuts, point = records
    assert nuts["n_train"] == 12 and nuts["n_test"] == 8 and nuts["cutoff"] == 2e9
    assert nuts["split"] == "params" and nuts["max_params"] == 2e9
    mine = per_run[per_run["method"] == "nuts"]
    assert nuts["median_abs_error"] == pytest.approx(float(np.median(mine["abs_error"])))
    assert nuts["coverage_90"] == pytest.approx(float(mine["covered_90"].mean()))
    assert np.isnan(point["coverage_90"]) and np.isfinite(point["median_abs_error"])


def test_least_squares_sigmoid_recovers_a_clean_curve():
    x = np.linspace(0.6, 1.2, 30)
    link, rms = fit_sigmoid(x, accuracy(LINK, x), 0.25)
    assert rms < 1e-6 and link["slope"] == pytest.approx(8.0, rel=1e-3)


def test_task_card_round_trips_and_reports_errors():
    card = bs.load_card("task-chain")
    resolved = card.with_task(card.task.resolved("hellaswag_acc", "hellaswag_bpb", None))
    assert resolved.task.chance == 0.25 and parse_card(resolved.text).task == resolved.task
    with pytest.raises(bs.CardError, match="no chance level known"):
        card.task.resolved("mytask_acc", "mytask_bpb", None)
    with pytest.raises(bs.CardError, match="intermediate metric column"):
        card.task.resolved("hellaswag_acc", None, None)
    with pytest.raises(bs.RunTableError, match="no column 'nope_acc'"):
        bs.fit(task_runs(), "task-chain", metric="nope_acc", via="task_bpb", chance=0.25, **FAST)
    with pytest.raises(bs.InputError, match="for task cards"):
        bs.fit(task_runs().assign(loss=1.0), "chinchilla-plain", metric="task_acc")


def test_direct_card_recovers_accuracy_from_params_and_tokens(tmp_path, capsys):
    """task-direct: no intermediate column; the latent law's exponents, the link's floor and ceiling,
    and the accuracy at an unseen plan come back; predict answers with the metric keys."""
    runs = task_runs(seed=0).drop(columns=["task_bpb"])
    fit = bs.fit(runs, "task-direct", metric="task_acc", chance=0.25, seed=1, **FAST)
    assert "sigma" not in fit.posterior and "metric" in fit.tree["observed_data"]
    summary = fit.summary(level=0.98)
    for name in ("alpha", "beta", "floor", "ceiling", "sigma_metric"):
        truth = {**LAW, **LINK, "sigma_metric": SIGMA_METRIC}[name]
        assert summary.loc[name, "lo"] <= truth <= summary.loc[name, "hi"], (name, summary.loc[name].to_dict())
    truth = accuracy(LINK, LAW["E"] + LAW["A"] / 2e10 ** LAW["alpha"] + LAW["B"] / 4e11 ** LAW["beta"])
    table = task_prediction(fit, "20B", "400B", level=0.98)
    assert table["metric_lo"][0] <= truth <= table["metric_hi"][0]
    # no intermediate noise: one run's accuracy spreads by sigma_metric alone, still wider than the law's
    assert table["metric_predictive_lo"][0] <= table["metric_lo"][0]
    path = fit.save(tmp_path / "direct.nc")
    assert bs.Fit.load(path).card.task.kind == "direct"
    assert main(["predict", str(path), "--params", "20B", "--tokens", "400B", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"]["lo"] <= out["metric"]["median"] <= out["metric"]["hi"]
    assert main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 2  # no loss to plot: refused cleanly
    assert "task-direct" in capsys.readouterr().err and not (tmp_path / "r.html").exists()
    with pytest.raises(bs.CardError, match="drop via="):
        bs.fit(task_runs(), "task-direct", metric="task_acc", via="task_bpb", chance=0.25, **FAST)


def test_decide_on_accuracy_targets_points_the_right_way(task_fit, tmp_path, capsys):
    """Higher accuracy is better: P(accuracy >= target) is the share of one run's accuracy draws at or
    above it, falls as the target rises, and a higher target costs more compute."""
    from bayes_scaling.allocation import loss_draws
    from bayes_scaling.decisions import decide_tables
    from bayes_scaling.task_prediction import metric_draws

    log_l, pred = loss_draws(task_fit.arrays, np.array([7e9]), np.array([1.4e11]), seed=0)
    _, run = metric_draws(task_fit.arrays, log_l, pred, seed=0)
    target = float(np.median(run))
    plans = ["7B:140B", "1B:980B"]
    answers = decide_tables(task_fit, plans=plans, target_metric=target, budgets=[1e21])
    prob = answers["target_probability"]
    assert prob["prob"][0] == pytest.approx(float((run[:, 0] >= target).mean()))
    higher = decide_tables(task_fit, plans=plans, target_metric=target + 0.02)["target_probability"]
    assert higher["prob"][0] < prob["prob"][0]
    # 7B:140B is nearer the compute-optimal split than 1B:980B: more accurate, a positive diff the other way
    compare = answers["compare_plans"]
    assert compare["expected_metric"][0] > compare["expected_metric"][1] and compare["diff"][1] < 0
    assert compare["prob_best"][0] > 0.5 and compare["regret"][1] > 0
    best = answers["best_plan"]
    assert np.all(best["delta_expected"] <= 1e-9) and np.all(best["metric_lo"] <= best["metric_hi"])
    cheap = answers["cheapest_compute"]
    cheap_higher = decide_tables(task_fit, target_metric=target + 0.02)["cheapest_compute"]
    assert cheap_higher["compute"][0] > cheap["compute"][0] and cheap["prob_achieved"][0] >= 0.9 - 1e-9
    path = task_fit.save(tmp_path / "task.nc")
    assert main(["decide", str(path), "--target-metric", str(target), "--plan", "7B:140B", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target_probability"]["rows"][0]["target_metric"] == pytest.approx(target)
    for args, option in ((["--target-metric", "1.5"], "--target-metric"), (["--target-loss", "0.8"], "--target-loss"),
                         (["--target-metric", "0.99"], "out of reach")):
        assert main(["decide", str(path), *args]) == 2
        err = capsys.readouterr().err
        assert option in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_backtest_cli_json_of_a_task_card_checked_by_hand(tmp_path, capsys):
    """`backtest --metric`: the records' keys, the split, and the two-step baseline's scores recomputed here."""
    from bayes_scaling.task_baseline import fit_two_step

    runs = task_runs(seed=2)
    path = tmp_path / "runs.csv"
    runs.drop(columns=["flops"], errors="ignore").to_csv(path, index=False)
    argv = ["backtest", str(path), "--card", "task-chain", "--metric", "task_acc", "--via", "task_bpb",
            "--chance", "0.25", "--max-params", "2e9", "--chains", "2", "--warmup", "300", "--draws", "300",
            "--format", "json"]
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in records] == ["nuts", "two-step"]
    for r in records:
        assert set(RECORD_KEYS) <= set(r) and r["split"] == "params" and r["max_params"] == 2e9
        assert r["n_train"] == 12 and r["n_test"] == 8 and r["metric"] == "task_acc"
    train, test = runs[runs["params"] <= 2e9], runs[runs["params"] > 2e9]
    point = fit_two_step(train["params"].to_numpy(float), train["tokens"].to_numpy(float),
                         train["task_bpb"].to_numpy(float), train["task_acc"].to_numpy(float), 0.25)
    _, acc = point.predict(np.log(test["params"].to_numpy(float)), np.log(test["tokens"].to_numpy(float)))
    errors = np.abs(np.asarray(acc) - test["task_acc"].to_numpy(float)) * 100  # accuracy points
    assert records[1]["median_abs_error"] == pytest.approx(float(np.median(errors)))
    assert records[1]["coverage_90"] is None or np.isnan(records[1]["coverage_90"])  # a point fit has no interval
    nuts = records[0]
    assert 0 <= nuts["coverage_50"] <= nuts["coverage_90"] <= 1 and nuts["median_abs_error"] < 5
    for extra, option in ((["--method", "huber"], "--method"), (["--card", "chinchilla"], "--card")):
        assert main([*argv[:2], *extra, *argv[4:]]) == 2
        err = capsys.readouterr().err
        assert option in err and "Traceback" not in err, err
