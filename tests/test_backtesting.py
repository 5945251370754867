import importlib
import io
import json
import types

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import bayes_scaling as bs
from bayes_scaling import inference
from bayes_scaling.cli import main
from bayes_scaling.report.analysis_figures import plot_calibration, plot_predictions

# The module, not the function of the same name that `bayes_scaling.backtesting` resolves to.
bt = importlib.import_module("bayes_scaling.backtesting")

#: The predictive distribution of every held-out run in the constructed case: 101 equally
#: likely losses 1.00, 1.02, ..., 3.00 nats/token.
GRID = np.linspace(1.0, 3.0, 101)
HELD_OUT_LOSS = np.array([1.999, 1.21, 2.95, 0.5])  # none on the grid


def constructed_runs() -> pd.DataFrame:
    """8 runs at or below 1e20 FLOPs to fit, 4 above it to predict."""
    params = np.array([1e8, 2e8, 4e8, 8e8, 1e8, 2e8, 4e8, 8e8, 1e9, 2e9, 3e9, 4e9])
    flops = np.array([1e19] * 4 + [1e20] * 4 + [1e21, 2e21, 4e21, 8e21])
    loss = np.concatenate([np.linspace(3.0, 2.6, 8), HELD_OUT_LOSS])
    return pd.DataFrame({"params": params, "flops": flops, "loss": loss})


def fake_fit(train, card, **kwargs):
    return types.SimpleNamespace(card=card, method="nuts", elapsed_s=0.0,
                                 diagnostics=lambda: types.SimpleNamespace(has_errors=False))


def fake_predictive(fit, runs, *, seed=0):
    draws = np.tile(np.log(GRID)[:, None], (1, len(runs)))
    # 51 draws give the observed value density 0.2, 50 give 0.6: predictive density 40.2 / 101.
    density = np.log(np.where(np.arange(len(GRID))[:, None] % 2 == 0, 0.2, 0.6)) * np.ones((1, len(runs)))
    return draws, density


def test_backtest_json_matches_a_hand_computation(tmp_path, monkeypatch, capsys):
    path = tmp_path / "runs.csv"
    constructed_runs().to_csv(path, index=False)
    fitted = []

    def counting_fit(train, card, **kwargs):
        fitted.append(len(train))
        return fake_fit(train, card)

    monkeypatch.setattr(inference, "fit", counting_fit)
    monkeypatch.setattr(bt, "predictive_draws", fake_predictive)
    code = main(["backtest", str(path), "--cutoff", "1e20", "--method", "nuts", "--workers", "1", "--format", "json"])
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert fitted == [8] and len(records) == 1
    record = records[0]
    assert set(bt.RECORD_KEYS) <= set(record)

    # By hand: the 50% interval of the grid, [1.5, 2.5], holds 1.999 only; the 90% interval,
    # [1.1, 2.9], holds 1.999 and 1.21. Widths are 1.8 / loss; the predictive median is 2.0,
    # so the absolute errors are 0.001, 0.79, 0.95, 1.5 (median 0.87).
    crps = np.mean([np.mean(np.abs(GRID - y)) - 0.5 * np.mean(np.abs(GRID[:, None] - GRID[None, :]))
                    for y in HELD_OUT_LOSS])
    expected = {"card": "chinchilla", "method": "nuts", "cutoff": 1e20, "n_train": 8, "n_test": 4,
                "coverage_50": 0.25, "coverage_90": 0.5, "median_width_90": (1.8 / 1.999 + 1.8 / 1.21) / 2,
                "mean_log_pred_density": np.log(40.2 / 101), "crps": crps, "median_abs_error": 0.87}
    for key, value in expected.items():
        assert record[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), key
    curve = {point["level"]: point["coverage"] for point in record["calibration"]}
    assert curve[0.5] == 0.25 and curve[0.9] == 0.5


def test_pit_and_calibration_of_held_out_runs_are_kept(monkeypatch):
    monkeypatch.setattr(inference, "fit", fake_fit)
    monkeypatch.setattr(bt, "predictive_draws", fake_predictive)
    result = bt.backtest(bs.load_runs(constructed_runs()), cutoffs=[1e20], methods=["nuts"], workers=1)
    np.testing.assert_allclose(result.runs["pit"], [50 / 101, 11 / 101, 98 / 101, 0.0])
    curve = result.calibration.set_index("level")["coverage"]
    # The 99% interval, [1.01, 2.99], also holds 2.95.
    assert curve[0.5] == 0.25 and curve[0.9] == 0.5 and curve[0.99] == 0.75
    for figure in (plot_calibration(result), plot_predictions(result)):
        assert isinstance(figure, Figure)
        figure.savefig(io.BytesIO(), format="png")  # renders every artist


def test_a_size_split_fits_the_smaller_models_and_predicts_the_larger(tmp_path, monkeypatch, capsys):
    path = tmp_path / "runs.csv"
    constructed_runs().to_csv(path, index=False)
    fitted = []

    def counting_fit(train, card, **kwargs):
        fitted.append(sorted(train["params"]))
        return fake_fit(train, card)

    monkeypatch.setattr(inference, "fit", counting_fit)
    monkeypatch.setattr(bt, "predictive_draws", fake_predictive)
    code = main(["backtest", str(path), "--max-params", "1e9", "--method", "nuts", "--workers", "1",
                 "--format", "json"])
    assert code == 0
    (record,) = json.loads(capsys.readouterr().out)
    # the 9 runs of at most 1e9 parameters are fitted, the 3 larger models predicted
    assert fitted == [[1e8, 1e8, 2e8, 2e8, 4e8, 4e8, 8e8, 8e8, 1e9]]
    assert (record["split"], record["cutoff"], record["max_params"]) == ("params", 1e9, 1e9)
    assert (record["n_train"], record["n_test"]) == (9, 3)
    assert bt.split_label(record) == "N ≤ 1e+09 parameters"
    # a compute cutoff and a size split in one backtest: two records, told apart by split
    result = bt.backtest(bs.load_runs(constructed_runs()), cutoffs=[1e20], max_params=[1e9], methods=["nuts"],
                         workers=1)
    assert list(result.table["split"]) == ["compute", "params"]
    assert [r["max_params"] for r in result.records()] == [None, 1e9]
    assert isinstance(plot_calibration(result), Figure)
    assert main(["backtest", str(path), "--workers", "1"]) == 2
    assert "--max-params" in capsys.readouterr().err


def test_a_cutoff_that_leaves_nothing_to_fit_or_predict_is_a_user_error(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    constructed_runs().to_csv(path, index=False)
    assert main(["backtest", str(path), "--cutoff", "1e22", "--workers", "1"]) == 2
    assert "leaves 12 runs to fit and 0 to predict" in capsys.readouterr().err
    with pytest.raises(bs.InputError, match="methods must be"):
        bt.backtest(bs.load_runs(constructed_runs()), cutoffs=[1e20], methods=["mcmc"])


@pytest.mark.slow
@pytest.mark.real_data
def test_chinchilla_reconstruction_backtest_at_1_5e21(chinchilla_runs):
    result = bt.backtest(chinchilla_runs, cutoffs=[1.5e21], methods=("nuts", "huber"), workers=2,
                         fit_kwargs={"chains": 2, "warmup": 300, "draws": 300, "bootstrap": 10})
    table = result.table.set_index("method")
    print("\nChinchilla reconstruction, fit on C <= 1.5e21 FLOPs:")
    print(table[["n_train", "n_test", "coverage_50", "coverage_90", "median_width_90", "mean_log_pred_density",
                 "crps", "median_abs_error"]].to_string())
    assert (table["n_train"] == 223).all() and (table["n_test"] == 17).all()
    for method, row in table.iterrows():
        assert 0.001 < row["median_width_90"] < 0.2, method
        assert row["median_abs_error"] < 0.05, method  # losses are ~2 nats/token
        assert 0 < row["crps"] < row["median_abs_error"] * 2, method
        assert np.isfinite(row["mean_log_pred_density"]), method
    assert len(result.runs) == 2 * 17 and result.runs["pit"].between(0, 1).all()
    # The default card's learnt discrepancy keeps its 90% intervals honest beyond the data
    # (issue 10: at least 15 of the 17 larger runs) and beats approach 3 on log density.
    nuts, huber = table.loc["nuts"], table.loc["huber"]
    assert round(nuts["coverage_90"] * 17) >= 15
    assert nuts["mean_log_pred_density"] > huber["mean_log_pred_density"]
    assert round(huber["coverage_90"] * 17) <= 12  # the classic fit is overconfident out there


def test_cli_table_lists_every_cutoff(tmp_path, monkeypatch, capsys):
    path = tmp_path / "runs.csv"
    constructed_runs().to_csv(path, index=False)
    monkeypatch.setattr(inference, "fit", fake_fit)
    monkeypatch.setattr(bt, "predictive_draws", fake_predictive)
    argv = ["backtest", str(path), "--cutoff", "1e20", "--cutoff", "2e21", "--method", "nuts", "--workers", "1",
            "--plot", str(tmp_path / "calibration.png")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1e+20" in out and "2e+21" in out
    assert (tmp_path / "calibration.png").stat().st_size > 0
