import json

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.comparison import allocation_exponents, compare, compare_cards, compare_param_counts
from bayes_scaling.fitted import Fit
from bayes_scaling.report.analysis_figures import plot_comparison
from tests.lawdata import embedding_runs

QUICK = {"chains": 2, "warmup": 300, "draws": 300, "seed": 1}


def _clearly_better(table, best, other):
    assert table.index[0] == best
    assert table.loc[other, "elpd_diff"] < -2 * table.loc[other, "se_diff"] < 0


def test_loo_prefers_chinchilla_on_chinchilla_data(small_fit, example_runs):
    kaplan = bs.fit(example_runs, "kaplan", **QUICK)
    table = compare({"chinchilla": small_fit, "kaplan": kaplan})
    _clearly_better(table, "chinchilla", "kaplan")
    assert list(table.columns) == ["rank", "elpd_loo", "se", "elpd_diff", "se_diff", "p_loo", "weight", "khat_max",
                                   "khat_bad_share", "converged", "warning"]
    assert table.loc["chinchilla", "elpd_diff"] == 0 and table["weight"].sum() == pytest.approx(1)
    assert ((table["khat_bad_share"] >= 0) & (table["khat_bad_share"] <= 1)).all()
    fig = plot_comparison(table)
    assert [len(ax.lines) > 0 for ax in fig.axes] == [True, True]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["chinchilla", "kaplan"]


@pytest.mark.slow
def test_loo_prefers_kaplan_on_kaplan_data(kaplan_fits):
    table = compare(kaplan_fits)
    _clearly_better(table, "kaplan", "chinchilla")


def test_compare_refuses_bootstrap_fits_different_runs_and_single_cards(small_fit, example_runs):
    other = small_fit.tree.copy()
    other["observed_data"] = other["observed_data"].to_dataset().assign(log_loss=lambda d: d["log_loss"] + 0.01)
    shifted = Fit(other, card=small_fit.card, method="nuts", seed=0, elapsed_s=0.0)
    with pytest.raises(bs.InputError, match="saw different runs"):
        compare({"a": small_fit, "b": shifted})
    boot = Fit(small_fit.tree, card=small_fit.card, method="huber", seed=0, elapsed_s=0.0)
    with pytest.raises(bs.InputError, match="LOO needs posterior draws, but card 'chinchilla' was fitted by 'huber'"):
        compare({"a": small_fit, "b": boot})
    with pytest.raises(bs.InputError, match="at least two cards but got 1"):
        compare_cards(example_runs, ["chinchilla"])


def test_allocation_exponent_of_chinchilla_is_beta_over_alpha_plus_beta(small_fit):
    table = allocation_exponents(small_fit, level=0.8)
    d = small_fit.draws(["alpha", "beta"])
    a = d["beta"] / (d["alpha"] + d["beta"])
    np.testing.assert_allclose(table.loc["a", ["lo", "median", "hi"]].to_numpy(float),
                               np.quantile(a, [0.1, 0.5, 0.9]), rtol=1e-9)
    np.testing.assert_allclose(table.loc["a"].to_numpy(float) + table.loc["b"].to_numpy(float)[[0, 2, 1]], 1.0)


@pytest.mark.slow
def test_non_embedding_count_recovers_the_exponent_that_total_count_misses():
    runs = bs.load_runs(embedding_runs())
    truth = bs.EXAMPLE_TRUTH["beta"] / (bs.EXAMPLE_TRUTH["alpha"] + bs.EXAMPLE_TRUTH["beta"])
    table = compare_param_counts(runs, level=0.9, **QUICK)
    assert table.loc["non_embedding", "a_lo"] < truth < table.loc["non_embedding", "a_hi"]
    assert not table.loc["total", "a_lo"] < truth < table.loc["total", "a_hi"]


def test_cli_compare_prints_json_ranking(tmp_path, example_runs, capsys):
    path = tmp_path / "runs.csv"
    example_runs.to_csv(path, index=False)
    code = main(["compare", str(path), "--card", "chinchilla", "--card", "chinchilla-tied", "--chains", "1",
                 "--warmup", "150", "--draws", "150", "--format", "json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["card"] for r in rows} == {"chinchilla", "chinchilla-tied"}
    assert rows[0]["elpd_diff"] == 0 and rows[0]["rank"] == 0


def test_cli_compare_needs_two_cards(tmp_path, example_runs, capsys):
    path = tmp_path / "runs.csv"
    example_runs.to_csv(path, index=False)
    assert main(["compare", str(path), "--card", "chinchilla"]) == 2
    assert "at least two cards" in capsys.readouterr().err
