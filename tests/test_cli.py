import json

import pytest

from bayes_scaling.cli import main
from bayes_scaling.fit import Fit


@pytest.fixture(scope="module")
def fit_file(small_fit, tmp_path_factory):
    return str(small_fit.save(tmp_path_factory.mktemp("cli") / "fit.nc"))


def test_simulate_fit_summary_end_to_end(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    assert main(["simulate", "--out", str(runs), "--seed", "2"]) == 0
    assert runs.read_text().startswith("name,params,tokens,flops,loss")
    out = tmp_path / "fit.nc"
    assert main(["fit", str(runs), "--out", str(out), "--chains", "1", "--warmup", "150", "--draws", "100",
                 "--no-progress"]) == 0
    assert Fit.load(out).posterior["alpha"].shape == (1, 100)
    capsys.readouterr()
    assert main(["summary", str(out), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["parameters"]) >= {"E", "A", "B", "alpha", "beta"}
    assert set(summary["parameters"]["alpha"]) >= {"median", "lo", "hi", "r_hat", "ess_bulk"}
    assert summary["level"] == 0.9 and isinstance(summary["divergences"], int)


def test_strict_exits_non_zero_when_diagnostics_fail(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    main(["simulate", "--out", str(runs)])
    out = tmp_path / "fit.nc"
    code = main(["fit", str(runs), "--out", str(out), "--chains", "2", "--warmup", "20", "--draws", "20",
                 "--no-progress", "--strict"])
    assert code == 1
    assert "bulk ESS" in capsys.readouterr().err


def test_allocate_json_matches_the_python_api(fit_file, small_fit, capsys):
    assert main(["allocate", fit_file, "--budget", "1e21", "--budget", "5.76e23", "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    table = small_fit.allocate([1e21, 5.76e23])
    assert [i["compute"] for i in items] == [1e21, 5.76e23]
    for item, (_, row) in zip(items, table.iterrows(), strict=True):
        assert set(item) == {"compute", "params_opt", "tokens_opt", "tokens_per_param", "loss_opt", "level"}
        assert item["params_opt"] == {"median": row["params_opt"], "lo": row["params_opt_lo"], "hi": row["params_opt_hi"]}


def test_allocate_table_and_csv(fit_file, capsys):
    assert main(["allocate", fit_file, "--budget", "5.76e23"]) == 0
    out = capsys.readouterr().out
    assert "parameters N" in out and "tokens / param" in out
    assert main(["allocate", fit_file, "--budget", "5.76e23", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("compute,params_opt,params_opt_lo")


def test_predict_json_has_both_intervals(fit_file, capsys):
    assert main(["predict", fit_file, "--params", "70B", "--tokens", "1.4T", "--format", "json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["params"] == 7e10 and item["tokens"] == 1.4e12 and item["level"] == 0.9
    assert item["loss_predictive"]["lo"] < item["loss"]["lo"] < item["loss"]["hi"] < item["loss_predictive"]["hi"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["allocate", "absent.nc", "--budget", "1e21"], "absent.nc: no such fit file"),
        (["allocate", "FIT", "--budget", "lots"], "budget: cannot read 'lots' as a number"),
        (["allocate", "FIT", "--budget", "1e21", "--format", "xml"], "--format must be one of table, json, csv"),
        (["fit", "missing.csv", "--out", "x.nc"], "missing.csv: no such file"),
        (["fit", "RUNS", "--out", "x.nc", "--card", "nope"], "no model card named 'nope'"),
        (["fit", "RUNS", "--out", "x.nc", "--column", "params"], "--column wants CANONICAL=SOURCE"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(argv, message, fit_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["simulate", "--out", "runs.csv"])
    capsys.readouterr()
    argv = [fit_file if a == "FIT" else "runs.csv" if a == "RUNS" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ")
    assert "Traceback" not in err


def test_bad_run_table_error_names_row_and_column(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n" + "".join(f"{n},{d},3.0\n" for n in (1e8, 1e9, 1e10) for d in (1e10, 1e11, 1e12)).replace("1000000000000.0,3.0", "1000000000000.0,-3.0", 1))
    assert main(["fit", str(path), "--out", str(tmp_path / "f.nc")]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "row 3, column 'loss' is -3" in err and not (tmp_path / "f.nc").exists()


def test_help_explains_units(capsys):
    assert main(["allocate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "FLOPs" in text
