import json
import subprocess
import sys

import numpy as np
import pytest

from bayes_scaling.allocation import QUANTITIES
from bayes_scaling.cli import main
from bayes_scaling.decisions import Constraints, decide
from bayes_scaling.fitfile import read_fit
from bayes_scaling.fitted import Fit, build_datatree
from bayes_scaling.model import covariates


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
        assert item["params_opt"] == {"median": row["params_opt"], "lo": row["params_opt_lo"],
                                      "hi": row["params_opt_hi"]}


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
    path.write_text("params,tokens,loss\n"
                    + "".join(f"{n},{d},3.0\n" for n in (1e8, 1e9, 1e10) for d in (1e10, 1e11, 1e12))
                    .replace("1000000000000.0,3.0", "1000000000000.0,-3.0", 1))
    assert main(["fit", str(path), "--out", str(tmp_path / "f.nc")]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "row 4, column 'loss' is -3" in err and not (tmp_path / "f.nc").exists()  # header = row 1


def test_help_explains_units(capsys):
    assert main(["allocate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "FLOPs" in text


# -- answers from a saved fit: h5py + numpy, the same numbers as the Python API on Fit.load ------------

HEAVY_MODULES = ("jax", "numpyro", "arviz", "xarray", "pandas", "scipy")


@pytest.fixture(scope="module")
def slope_file(small_fit, example_runs, tmp_path_factory):
    """The small fit's draws plus a model-discrepancy slope per draw (as a card with [discrepancy] stores)."""
    posterior = {k: np.asarray(v) for k, v in small_fit.posterior.data_vars.items()}
    posterior["discrepancy_slope"] = np.random.default_rng(5).normal(0.0, 0.02, posterior["sigma"].shape)
    card = small_fit.card
    tree = build_datatree(card, example_runs, covariates(example_runs, card),
                          np.log(example_runs["loss"].to_numpy()), posterior, None, seed=0)
    fit = Fit(tree, card=card, method="nuts", seed=0, elapsed_s=0.0)
    return str(fit.save(tmp_path_factory.mktemp("cli") / "slope.nc"))


def _cli(capsys, *argv):
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _assert_close(fast, slow, path="") -> None:
    """Equal structures; numbers to 1e-12 relative (both paths run the same numpy code: in fact exact)."""
    if isinstance(slow, dict):
        assert fast.keys() == slow.keys(), path
        for key in slow:
            _assert_close(fast[key], slow[key], f"{path}.{key}")
    elif isinstance(slow, list):
        assert len(fast) == len(slow), path
        for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
            _assert_close(a, b, f"{path}[{i}]")
    elif isinstance(slow, float) and not isinstance(fast, str):
        assert fast == pytest.approx(slow, rel=1e-12, abs=0.0), path
    else:
        assert fast == slow, path


@pytest.mark.parametrize("which", ["fit_file", "slope_file"])
def test_allocate_from_the_saved_fit_equals_the_api_on_the_loaded_fit(which, request, capsys):
    path = request.getfixturevalue(which)
    budgets = ["1e20", "5.76e23", "1e26"]
    items = json.loads(_cli(capsys, "allocate", path, *[a for b in budgets for a in ("--budget", b)], "--level",
                            "0.8", "--format", "json"))
    table = Fit.load(path).allocate(budgets, level=0.8)
    slow = [{"compute": r["compute"], **{q: {"median": r[q], "lo": r[f"{q}_lo"], "hi": r[f"{q}_hi"]}
                                          for q in QUANTITIES}, "level": 0.8} for _, r in table.iterrows()]
    _assert_close(items, slow)
    csv = _cli(capsys, "allocate", path, *[a for b in budgets for a in ("--budget", b)], "--format", "csv")
    assert csv == Fit.load(path).allocate(budgets).to_csv(index=False)


def test_allocated_loss_carries_the_stored_discrepancy_beyond_the_data(fit_file, slope_file, capsys):
    plain, wide = (json.loads(_cli(capsys, "allocate", p, "--budget", "1e26", "--format", "json"))[0]["loss_opt"]
                   for p in (fit_file, slope_file))
    arrays = read_fit(slope_file)
    law = arrays.card.law
    theta = {k: v[:, None] for k, v in arrays.draws(law.parameters).items()}
    log_n, log_d = law.compute_optimal(theta, np.log(1e26))
    distance = np.log(1e26) - np.log(arrays.constant_data["flops"].max())
    loss = np.exp(law.log_loss(theta, {"log_params": log_n, "log_tokens": log_d})[:, 0]
                  + arrays.discrepancy_slope() * np.sqrt(distance))
    assert wide["median"] == pytest.approx(np.median(loss), rel=1e-12)
    assert wide["hi"] - wide["lo"] > 1.5 * (plain["hi"] - plain["lo"])


@pytest.mark.parametrize("which", ["fit_file", "slope_file"])
def test_predict_from_the_saved_fit_equals_the_api_on_the_loaded_fit(which, request, capsys):
    path = request.getfixturevalue(which)
    args = ["--params", "70B", "--params", "1B", "--tokens", "1.4T", "--tokens", "20B", "--seed", "3"]
    items = json.loads(_cli(capsys, "predict", path, *args, "--format", "json"))
    table = Fit.load(path).predict(["70B", "1B"], ["1.4T", "20B"], seed=3)
    slow = [{"params": r["params"], "tokens": r["tokens"],
             **{q: {"median": r[q], "lo": r[f"{q}_lo"], "hi": r[f"{q}_hi"]} for q in ("loss", "loss_predictive")},
             "level": 0.9} for _, r in table.iterrows()]
    _assert_close(items, slow)
    assert _cli(capsys, "predict", path, *args, "--format", "csv") == table.to_csv(index=False)


def test_summary_from_the_saved_fit_equals_the_api_on_the_loaded_fit(fit_file, capsys):
    out = json.loads(_cli(capsys, "summary", fit_file, "--level", "0.8", "--format", "json"))
    loaded = Fit.load(fit_file)
    table, diag = loaded.summary(0.8), loaded.diagnostics()
    slow = {"parameters": {p: {k: float(r[k]) for k in ("median", "lo", "hi", "r_hat", "ess_bulk", "ess_tail")}
                           for p, r in table.iterrows()},
            "divergences": diag.divergences, "max_rhat": diag.max_rhat, "min_ess_bulk": diag.min_ess_bulk,
            "ok": not diag.has_errors, "messages": diag.messages, "level": 0.8, "card": "chinchilla", "method": "nuts",
            "criteria": diag.criteria}
    _assert_close(out, slow)
    assert _cli(capsys, "summary", fit_file, "--format", "csv") == loaded.summary().to_csv()


ALL_QUESTIONS = ["--budget", "1e22", "--budget", "1e24", "--risk", "quantile:0.8", "--target-loss", "2.1", "--plan",
                 "70B:1.4T", "--plan", "30B:3T", "--max-params", "100B", "--inference-tokens", "1e12", "--seed", "4"]


@pytest.mark.parametrize(("which", "args"), [
    ("fit_file", ["--budget", "5.76e23", "--risk", "cvar:0.9"]),
    ("slope_file", ["--budget", "5.76e23", "--risk", "cvar:0.9"]),
    ("fit_file", ALL_QUESTIONS),
    ("slope_file", [a for a in ALL_QUESTIONS if a not in ("--target-loss", "2.1")]),
    ("slope_file", ["--plan", "70B:1.4T", "--plan", "10B:2T", "--no-noise", "--level", "0.8"]),
])
def test_decide_from_the_saved_fit_equals_the_api_on_the_loaded_fit(which, args, request, capsys):
    path = request.getfixturevalue(which)
    out = json.loads(_cli(capsys, "decide", path, *args, "--format", "json"))
    pairs = list(zip(args, args[1:], strict=False))
    opts = {"budgets": [a for k, a in pairs if k == "--budget"] or None,
            "plans": [a for k, a in pairs if k == "--plan"]}
    for flag, key, cast in (("--risk", "risk", str), ("--target-loss", "target_loss", float), ("--seed", "seed", int),
                            ("--level", "level", float)):
        if flag in args:
            opts[key] = cast(args[args.index(flag) + 1])
    limits = {"max_params": args[args.index("--max-params") + 1]} if "--max-params" in args else {}
    inference = args[args.index("--inference-tokens") + 1] if "--inference-tokens" in args else "0"
    answers = decide(Fit.load(path), **opts, noise="--no-noise" not in args,
                     constraints=Constraints(**limits, inference_tokens=inference))
    slow = {name: {"assumptions": dict(t.attrs), "rows": t.to_dict(orient="records")} for name, t in answers.items()}
    _assert_close(out, json.loads(json.dumps(slow)))
    csv = _cli(capsys, "decide", path, *args, "--format", "csv")
    assert csv == "".join("\n".join([f"# {name}", *(f"# {k}: {v}" for k, v in t.attrs.items()),
                                     t.to_csv(index=False)]) for name, t in answers.items())


def test_decide_next_batch_from_the_saved_fit_equals_the_api(fit_file, capsys):
    args = ["--budget", "1e24", "--next-run-budget", "1e20", "--next-batch", "3", "--batch-budget", "2.5e20"]
    out = json.loads(_cli(capsys, "decide", fit_file, *args, "--format", "json"))
    rows = out["next_batch"]["rows"]
    assert 1 <= len(rows) <= 3 and rows[-1]["total_flops"] <= 2.5e20 * (1 + 1e-12)
    assert len({r["plan"] for r in rows}) == len(rows)          # each candidate at most once
    api = decide(Fit.load(fit_file), budgets=["1e24"], next_run_budget="1e20", next_batch=3, batch_budget="2.5e20")
    assert [r["plan"] for r in rows] == list(api["next_batch"]["plan"])
    assert "--next-batch" in _cli(capsys, "decide", "--help")


@pytest.mark.parametrize("argv", [
    ["allocate", "FIT", "--budget", "1e21", "--budget", "1e24", "--format", "json"],
    ["predict", "FIT", "--params", "70B", "--tokens", "1.4T"],
    ["summary", "FIT"],
    ["decide", "FIT", "--budget", "5.76e23", "--risk", "cvar:0.9"],
])
def test_answers_from_a_saved_fit_import_neither_jax_nor_pandas(argv, fit_file):
    code = ("import sys\nfrom bayes_scaling.cli import main\n"
            f"assert main({[fit_file if a == 'FIT' else a for a in argv]!r}) == 0\n"
            f"heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_importing_the_cli_imports_no_jax():
    code = "import bayes_scaling.cli, sys; assert 'jax' not in sys.modules and 'pandas' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
