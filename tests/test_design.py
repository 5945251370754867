"""Study design (issue #17): plan and score a study before running it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.cli import main
from bayes_scaling.decisions import design as ds
from bayes_scaling.decisions import preposterior as pp
from bayes_scaling.errors import OutputFileError

SMALL = {"scenarios_count": 8, "seed": 3}


@pytest.fixture(scope="module")
def planned() -> dict:
    limits = ds.DesignLimits.parse(min_params="20M", max_params="2B", min_tokens_per_param=5,
                                   max_tokens_per_param=200, max_runs=12)
    return {"limits": limits,
            "tables": ds.plan_study(1e24, 3e20, card="chinchilla-plain", limits=limits, **SMALL)}


def test_design_never_exceeds_its_budget_or_limits(planned: dict) -> None:
    design, limits = planned["tables"]["design"], planned["limits"]
    n, d = design["params"], design["tokens"]
    assert 1 <= len(design) <= limits.max_runs
    assert (6 * n * d).sum() <= 3e20
    assert np.allclose(design["flops"], 6 * n * d)
    assert (n >= limits.min_params).all() and (n <= limits.max_params).all()
    ratio = d / n
    assert (ratio >= limits.min_tokens_per_param * (1 - 1e-12)).all()
    assert (ratio <= limits.max_tokens_per_param * (1 + 1e-12)).all()
    assert len(set(zip(n, d, strict=True))) == len(n)  # each candidate at most once


def test_isoflop_grid_costs_the_study_budget(planned: dict) -> None:
    grid, widths = planned["tables"]["isoflop"], planned["tables"]["widths"]
    assert len(grid) == 63
    assert math.isclose(grid["flops"].sum(), 3e20, rel_tol=1e-9)
    assert list(widths["design"]) == ["plan", "isoflop"]
    assert (np.isfinite(widths["width_n_opt"]) & (widths["width_n_opt"] > 0)).all()


def test_plan_is_no_worse_than_its_best_start_on_its_own_objective(planned: dict) -> None:
    """The exchange search only accepts improvements: the plan's mean ln width is at most the best start's."""
    sc = pp.scenarios(None, "chinchilla-plain", count=SMALL["scenarios_count"], seed=SMALL["seed"])
    grad, z = pp.gradients(sc, 1e24), pp.z_value(0.9)
    starts = ds._structured_starts(sc, 3e20, planned["limits"])
    assert all((6 * a * b).sum() <= 3e20 and a.size <= planned["limits"].max_runs for a, b in starts)
    best = ds._start_objectives(sc, starts, grad, np.ones(2), z).min()
    plan = planned["tables"]["design"]
    assert ds._objective(sc, pp.jacobians(sc, plan["params"], plan["tokens"]), grad, np.ones(2), z) <= best + 1e-9


def test_scoring_twice_with_the_same_seed_is_identical(planned: dict) -> None:
    design = planned["tables"]["design"]
    first = ds.score_design(design["params"], design["tokens"], 1e24, card="chinchilla-plain", **SMALL)
    again = ds.score_design(design["params"], design["tokens"], 1e24, card="chinchilla-plain", **SMALL)
    assert first.rows() == again.rows()
    assert list(first["quantity"]) == ["n_opt", "loss_opt"]
    assert (first["width"] < first["width_now"]).all()
    assert ((first["coverage"] >= 0) & (first["coverage"] <= 1)).all()


def test_more_runs_never_widen_the_expected_interval() -> None:
    sc = pp.scenarios(None, "chinchilla-plain", count=6, seed=1)
    grad = pp.gradients(sc, 1e24)
    n = np.array([1e8, 3e8, 1e9, 3e8])
    d = np.array([2e9, 6e9, 2e10, 6e10])
    few = pp.interval_widths(pp.covariances(sc, pp.jacobians(sc, n[:2], d[:2])), grad, 1.64)
    more = pp.interval_widths(pp.covariances(sc, pp.jacobians(sc, n, d)), grad, 1.64)
    assert (more <= few + 1e-12).all()


def test_laplace_width_matches_a_linear_gaussian_case() -> None:
    """With a law linear in u near the truth and tiny noise, P0 + i J^T J is the exact posterior precision."""
    sc = pp.scenarios(None, "chinchilla-plain", count=4, seed=2)
    jac = pp.jacobians(sc, np.array([1e8, 1e9]), np.array([1e10, 1e10]))
    cov = pp.covariances(sc, jac)
    expected = np.linalg.inv(sc.precision + sc.info[0] * jac[0].T @ jac[0])
    assert np.allclose(cov[0], expected)


def test_design_file_round_trips_and_is_replaced_only_if_ours(tmp_path: Path, planned: dict) -> None:
    path = tmp_path / "design.csv"
    ds.write_design(planned["tables"]["design"], path)
    assert ds.is_design_file(path)
    runs = ds.read_design(path)
    assert np.allclose(runs["params"], planned["tables"]["design"]["params"])
    assert runs["target_budget"] == 1e24
    ds.write_design(planned["tables"]["design"], path)  # ours: replaced
    other = tmp_path / "runs.csv"
    other.write_text("params,tokens,loss\n1e8,2e9,3.1\n")
    with pytest.raises(OutputFileError, match="refusing to overwrite"):
        ds.check_design_output(other)
    assert other.read_text() == "params,tokens,loss\n1e8,2e9,3.1\n"


def test_plan_and_score_design_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "design.csv"
    code = main(["plan", "--target-budget", "1e24", "--study-budget", "1e20", "--card", "chinchilla-plain",
                 "--max-runs", "6", "--scenarios", "4", "--out", str(out), "--format", "csv"])
    assert code == 0
    assert ds.is_design_file(out)
    assert capsys.readouterr().out.startswith("name,params,tokens,flops,target_budget")
    code = main(["score-design", str(out), "--card", "chinchilla-plain", "--scenarios", "4", "--format", "csv"])
    assert code == 0
    assert capsys.readouterr().out.startswith("quantity,width_now,width")


@pytest.mark.parametrize(("args", "option"), [
    (["plan", "--target-budget", "1e24", "--study-budget", "2e24"], "--study-budget"),
    (["plan", "--target-budget", "lots", "--study-budget", "1e21"], "--target-budget"),
    (["plan", "--target-budget", "1e24", "--study-budget", "1e21", "--max-runs", "0"], "--max-runs"),
    (["plan", "--target-budget", "1e24", "--study-budget", "1e21", "--min-params", "1B", "--max-params", "1M"],
     "--max-params"),
    (["plan", "--target-budget", "1e24", "--study-budget", "1e21", "--max-tokens-per-param", "0.5"],
     "--max-tokens-per-param"),
    (["plan", "--target-budget", "1e24", "--study-budget", "1e21", "--objective", "fun"], "--objective"),
    (["plan", "--target-budget", "1e24", "--study-budget", "1e21", "--scenarios", "1"], "--scenarios"),
    (["plan", "--target-budget", "1e24", "--study-budget", "1e21", "--card", "chinchilla", "--prior-fit", "f.nc"],
     "--prior-fit"),
    (["plan", "--target-budget", "1e24", "--study-budget", "1e21", "--out", "design.txt"], "--out"),
    (["score-design", "missing.csv", "--target-budget", "1e24"], "missing.csv"),
])
def test_bad_options_exit_2_with_one_line(args: list[str], option: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    assert option in err
    assert "Traceback" not in err


def test_score_design_needs_a_target_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("params,tokens\n100M,2B\n")
    assert main(["score-design", str(path)]) == 2
    assert "--target-budget" in capsys.readouterr().err


def test_a_prior_fit_starts_the_study_from_its_posterior() -> None:
    rng = np.random.default_rng(0)
    draws = {"E": 1.8 + 0.01 * rng.standard_normal(400), "A": 480 * np.exp(0.05 * rng.standard_normal(400)),
             "B": 2000 * np.exp(0.05 * rng.standard_normal(400)), "alpha": 0.35 + 0.01 * rng.standard_normal(400),
             "beta": 0.36 + 0.01 * rng.standard_normal(400), "sigma": np.full(400, 0.01)}
    fitted = pp.scenarios(draws, "chinchilla-plain", count=8, seed=0)
    prior = pp.scenarios(None, "chinchilla-plain", count=8, seed=0)
    assert fitted.source.startswith("posterior") and prior.source.startswith("prior")
    assert (np.diag(fitted.precision) > 10 * np.diag(prior.precision)).all()


@pytest.mark.slow  # a small NUTS fit (~10 s of compilation) to have a fit file
def test_plan_from_a_prior_fit(tmp_path: Path, example_runs: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import bayes_scaling as bs

    path = bs.fit(example_runs, card="chinchilla-plain", chains=1, warmup=150, draws=150, seed=0).save(
        tmp_path / "pilot.nc")
    code = main(["plan", "--target-budget", "1e24", "--study-budget", "1e22", "--prior-fit", str(path),
                 "--max-runs", "5", "--scenarios", "4", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["assumptions"]["scenarios"].startswith("4 truths from the posterior")
    assert 1 <= len(out["design"]) <= 5 and sum(r["flops"] for r in out["design"]) <= 1e22
    assert main(["plan", "--target-budget", "1e24", "--study-budget", "1e22", "--prior-fit",
                 str(tmp_path / "missing.nc")]) == 2
    assert "missing.nc" in capsys.readouterr().err
