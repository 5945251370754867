import json
from pathlib import Path

import pytest

import bayes_scaling as bs
from bayes_scaling import inference
from bayes_scaling.cli import main
from bayes_scaling.report import render_report
from bayes_scaling.report.backtest_section import backtest_records

from .test_backtesting import bt, constructed_runs, fake_fit, fake_predictive


@pytest.fixture()
def backtest_json(tmp_path, monkeypatch, capsys) -> Path:
    """The JSON of `bayes-scaling backtest` on the constructed case (hand-checked in test_backtesting)."""
    runs = tmp_path / "runs.csv"
    constructed_runs().to_csv(runs, index=False)
    monkeypatch.setattr(inference, "fit", fake_fit)
    monkeypatch.setattr(bt, "predictive_draws", fake_predictive)
    assert main(["backtest", str(runs), "--cutoff", "1e20", "--cutoff", "2e21", "--method", "nuts",
                 "--workers", "1", "--format", "json"]) == 0
    path = tmp_path / "backtest.json"
    path.write_text(capsys.readouterr().out)
    return path


def test_report_gains_a_backtest_section_with_its_numbers(small_fit: bs.Fit, backtest_json: Path) -> None:
    plain = render_report(small_fit)
    assert "backtest" not in plain.data["sections"]
    report = render_report(small_fit, backtest=backtest_json)
    section = report.data["sections"]["backtest"]
    assert section["records"] == json.loads(backtest_json.read_text())
    keys = list(report.data["sections"])
    assert keys.index("backtest") == len(keys) - 2  # before provenance
    assert 'id="backtest"' in report.html and "Backtest: calibration beyond the data" in report.html
    # the hand-computed 90% coverage of the constructed case: 2 of 4 held-out runs
    assert "50% (2/4)" in report.html and "50% (2/4)" in report.markdown


def test_cli_report_takes_a_backtest_file(small_fit: bs.Fit, backtest_json: Path, tmp_path: Path, capsys) -> None:
    fit_file = small_fit.save(tmp_path / "fit.nc")
    out = tmp_path / "report.html"
    assert main(["report", str(fit_file), "--out", str(out), "--backtest", str(backtest_json)]) == 0
    assert "backtest" in json.loads(out.with_suffix(".json").read_text())["sections"]


def test_a_bad_backtest_file_is_a_clear_error_and_writes_nothing(small_fit: bs.Fit, tmp_path: Path, capsys) -> None:
    fit_file = small_fit.save(tmp_path / "fit.nc")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"card": "chinchilla", "method": "nuts"}]))
    out = tmp_path / "report.html"
    assert main(["report", str(fit_file), "--out", str(out), "--backtest", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json: record 1 lacks cutoff" in err and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(bs.InputError, match="no such backtest file"):
        backtest_records(tmp_path / "missing.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(bs.InputError, match="not a backtest JSON file"):
        backtest_records(tmp_path / "text.json")
