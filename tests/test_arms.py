"""Compare arms (issue #17, item 4): win probabilities, crossovers, comparability, and the CLI's errors."""

import json

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.arms import (
    LOSS_LEVEL_RATIO,
    arm_labels,
    comparability_warnings,
    compare_arms,
    crossover_draws,
    eval_set_warning,
    win_table,
)
from bayes_scaling.cli import main
from bayes_scaling.errors import RunTableError
from bayes_scaling.posterior import Posterior
from bayes_scaling.report import render_report
from bayes_scaling.simulate import EXAMPLE_TRUTH, simulate_runs


def _optimal_loss(truth, compute):
    a, b = truth["alpha"], truth["beta"]
    n = (a * truth["A"] / (b * truth["B"])) ** (1 / (a + b)) * (compute / 6) ** (b / (a + b))
    return truth["E"] + truth["A"] / n**a + truth["B"] / (compute / 6 / n) ** b


#: Arm "b": E lower by 0.05 nats, A and B scaled so that the frontiers cross at 1e22 FLOPs.
CROSSOVER = 1e22
_K = 1 + 0.05 / (_optimal_loss(EXAMPLE_TRUTH, CROSSOVER) - EXAMPLE_TRUTH["E"])
TRUTH_B = dict(EXAMPLE_TRUTH, E=EXAMPLE_TRUTH["E"] - 0.05, A=EXAMPLE_TRUTH["A"] * _K, B=EXAMPLE_TRUTH["B"] * _K)


def two_arms(sizes_per_budget=3, column="mix"):
    a = simulate_runs(1, sizes_per_budget=sizes_per_budget).assign(**{column: "a"})
    b = simulate_runs(2, truth=TRUTH_B, sizes_per_budget=sizes_per_budget).assign(**{column: "b"})
    return pd.concat([a, b], ignore_index=True)


def test_truth_of_the_generated_arms_crosses_where_designed():
    assert _optimal_loss(EXAMPLE_TRUTH, CROSSOVER) == pytest.approx(_optimal_loss(TRUTH_B, CROSSOVER))
    assert _optimal_loss(TRUTH_B, 1e20) > _optimal_loss(EXAMPLE_TRUTH, 1e20)
    assert _optimal_loss(TRUTH_B, 1e24) < _optimal_loss(EXAMPLE_TRUTH, 1e24)


def test_win_probabilities_sum_to_one_and_match_the_differences():
    rng = np.random.default_rng(0)
    loss = 2.0 + 0.01 * rng.standard_normal((3, 500, 4))  # arms x draws x budgets
    table = win_table(["a", "b", "c"], np.array([1e20, 1e21, 1e22, 1e23]), loss, 0.9).to_frame()
    assert np.allclose(table.groupby("compute")["p_lowest"].sum(), 1.0)
    # An arm is lowest exactly when its loss minus the best other arm's is negative.
    for a, arm in enumerate("abc"):
        others = np.min(np.delete(loss, a, axis=0), axis=0)
        expected = np.mean(loss[a] - others < 0, axis=0)
        assert np.allclose(table[table["arm"] == arm]["p_lowest"], expected)


def test_crossover_draws_interpolate_the_flip_and_leave_nan_without_one():
    log_c = np.linspace(np.log(1e15), np.log(1e30), 301)
    root = np.log(3e22)
    diff = np.stack([0.01 * (log_c - root), np.full_like(log_c, 0.2), -0.02 * (log_c - np.log(1e18))])
    cross = crossover_draws(diff, log_c)
    assert cross[0] == pytest.approx(3e22, rel=1e-9)
    assert np.isnan(cross[1])
    assert cross[2] == pytest.approx(1e18, rel=1e-9)


def test_arm_labels_name_the_column_and_the_small_arm():
    runs = bs.load_runs(two_arms(), {"group": "mix"})
    assert arm_labels(runs) == ["a", "b"]
    with pytest.raises(RunTableError, match=r"no column 'tokeniser'"):
        arm_labels(runs, "tokeniser")
    small = bs.load_runs(pd.concat([two_arms().query("mix == 'a'"), two_arms().query("mix == 'b'").head(5)]),
                         {"group": "mix"})
    with pytest.raises(RunTableError, match=r"column 'group'.*'b' has 5.*at least 8"):
        arm_labels(small)
    with pytest.raises(RunTableError, match=r"1 arm\(s\)"):
        arm_labels(runs.assign(group="a"))


def test_comparability_warns_on_differing_eval_sets_and_loss_levels():
    runs = bs.load_runs(two_arms(), {"group": "mix"})
    assert eval_set_warning(runs.assign(eval_set="c4")) is None
    differing = runs.assign(eval_set=np.where(runs["group"] == "a", "c4", "pile"))
    assert "a: c4; b: pile" in eval_set_warning(differing)
    draws = {"E": np.full(10, 1.8), "A": np.full(10, 400.0), "B": np.full(10, 2000.0), "alpha": np.full(10, 0.3),
             "beta": np.full(10, 0.3)}
    card = bs.load_card("chinchilla-plain")
    near = {"a": Posterior(draws, np.full(10, 0.01), None, card), "b": Posterior(dict(draws, E=draws["E"] * 1.1),
                                                                             np.full(10, 0.01), None, card)}
    assert comparability_warnings(runs, near) == []
    far = dict(near, b=Posterior(dict(draws, E=draws["E"] * (LOSS_LEVEL_RATIO + 0.1)), np.full(10, 0.01), None, card))
    assert "irreducible losses differ" in comparability_warnings(runs, far)[0]


def _one_error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "Traceback" not in err
    return err


def test_cli_refuses_an_unknown_by_column_naming_option_and_column(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    two_arms().to_csv(path, index=False)
    err = _one_error_line(capsys, ["compare-arms", str(path), "--by", "tokeniser", "--budget", "1e22"])
    assert "--by" in err and "'tokeniser'" in err and "'mix'" in err


def test_cli_refuses_an_arm_with_fewer_than_8_runs(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    table = two_arms()
    pd.concat([table[table["mix"] == "a"], table[table["mix"] == "b"].head(7)]).to_csv(path, index=False)
    err = _one_error_line(capsys, ["compare-arms", str(path), "--by", "mix", "--budget", "1e22"])
    assert "--by mix" in err and "column 'mix'" in err and "'b' has 7" in err and "at least 8" in err


@pytest.fixture(scope="module")
def comparison():
    runs = bs.load_runs(two_arms(), {"group": "mix"})
    # 2 x 300 draws stay below the extension threshold: one run of the sampler
    return compare_arms(runs, [1e20, 1e24], chains=2, warmup=300, draws=300, seed=1, target_accept=0.95)


@pytest.mark.slow  # one joint NUTS fit (~30 s quiet), shared by the three tests
def test_compare_arms_on_generated_data_ranks_the_arms_and_finds_the_crossover(comparison):
    wins = comparison.wins.to_frame()
    assert np.allclose(wins.groupby("compute")["p_lowest"].sum(), 1.0)
    p_b = wins[wins["arm"] == "b"].set_index("compute")["p_lowest"]
    assert p_b[1e20] < 0.05 and p_b[1e24] > 0.5  # a wins small, b wins large
    cross = comparison.crossovers.to_frame().iloc[0]
    assert cross["p_crossover"] > 0.8 and (cross["below"], cross["above"]) == ("a", "b")
    assert cross["crossover_lo"] < CROSSOVER < cross["crossover_hi"]
    assert comparison.joint and set(comparison.frontiers["arm"]) == {"a", "b"}


@pytest.mark.slow
def test_arms_report_section_draws_the_frontiers(comparison):
    report = render_report(comparison.fits[""], [1e22], group="a", sections=[], arms=comparison)
    section = report.data["sections"]["arms"]
    assert section["arms"] == ["a", "b"] and len(section["wins"]) == 4
    assert "frontiers" in report.html and "<img" in report.html


@pytest.mark.slow
def test_cli_compare_arms_prints_json(comparison, tmp_path, capsys, monkeypatch):
    # The CLI's own work (mapping --by, checks, output) on the fixture's comparison, without a second fit.
    seen = {}

    def stub(table, budgets, **options):
        seen.update(options, arms=sorted(set(table["group"])), budgets=list(budgets))
        return comparison

    monkeypatch.setattr("bayes_scaling.arms.compare_arms", stub)
    path = tmp_path / "runs.csv"
    two_arms().to_csv(path, index=False)
    code = main(["compare-arms", str(path), "--by", "mix", "--budget", "1e20", "--budget", "1e24", "--chains", "2",
                 "--warmup", "200", "--draws", "200", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    assert seen["arms"] == ["a", "b"] and seen["budgets"] == [1e20, 1e24] and seen["by"] == "group"
    result = json.loads(out)
    assert result["arms"] == ["a", "b"] and result["joint"] and result["by"] == "mix"
    assert sum(r["p_lowest"] for r in result["wins"] if r["compute"] == 1e24) == pytest.approx(1.0)
