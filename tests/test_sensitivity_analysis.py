import io
import json
import types

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import bayes_scaling as bs
from bayes_scaling.allocation import allocation_draws
from bayes_scaling.errors import InputError
from bayes_scaling.laws import get_law
from bayes_scaling.report.analysis_figures import plot_sensitivity
from bayes_scaling.sensitivity_analysis import sensitivity, variants


def test_variants_drop_smallest_largest_and_each_budget(example_runs):
    # The example grid: 7 budgets x 9 sizes.
    found = {label: (kind, mask) for label, kind, mask in variants(example_runs, fractions=(0.2,))}
    assert list(found)[0] == "all runs" and found["all runs"][1].all()
    flops = example_runs["flops"].to_numpy()
    smallest, largest = found["drop smallest 20%"][1], found["drop largest 20%"][1]
    # 20% of 63 runs falls inside the second budget: both of the two smallest budgets go.
    assert flops[~smallest].max() < flops[smallest].min() and (~smallest).sum() == 18
    assert flops[~largest].min() > flops[largest].max() and (~largest).sum() == 18
    budgets = [label for label, (kind, _) in found.items() if kind == "drop_budget"]
    assert len(budgets) == 7
    for label in budgets:
        assert (~found[label][1]).sum() == 9
    with pytest.raises(InputError, match="fractions must be"):
        variants(example_runs, fractions=(1.5,))


def test_variants_that_leave_too_few_runs_are_left_out():
    runs = bs.load_runs(bs.simulate_runs(seed=0, budgets=(1e19, 1e20), sizes_per_budget=6))
    labels = [label for label, _, _ in variants(runs, fractions=(0.5,))]
    assert labels == ["all runs"]  # dropping half or one budget leaves 6 < 8 runs


def test_sensitivity_of_a_correct_law_stays_inside_the_all_runs_interval():
    runs = bs.load_runs(bs.simulate_runs(seed=5, budgets=(1e19, 1e20, 1e21), sizes_per_budget=6))
    # 99% intervals: four variants at 90% would miss a correct truth about a third of the time (with the
    # sampler of stop 21 "all runs" missed by 1.5%); a wrong law or a broken variant still misses at 99%.
    table = sensitivity(runs, budget="1e22", fractions=(), min_budget_runs=6, level=0.99, seed=1, workers=1,
                        fit_kwargs={"chains": 1, "warmup": 150, "draws": 150})
    assert list(table["variant"]) == ["all runs", "drop budget 1e+19", "drop budget 1e+20", "drop budget 1e+21"]
    assert list(table["n_runs"]) == [18, 12, 12, 12] and list(table["dropped"]) == [0, 6, 6, 6]
    assert table["params_ratio"].iloc[0] == 1.0
    np.testing.assert_allclose(table["compute"], 1e22)
    # The law is right, so every subset's interval holds the true optimum.
    truth = {k: np.array([v]) for k, v in bs.EXAMPLE_TRUTH.items()}
    n_true = allocation_draws(get_law("chinchilla"), truth, np.array([1e22]))["params_opt"][0, 0]
    assert ((table["params_opt_lo"] < n_true) & (n_true < table["params_opt_hi"])).all()
    figure = plot_sensitivity(table)
    assert isinstance(figure, Figure)
    assert len(figure.axes[0].get_yticklabels()) == len(table)
    figure.savefig(io.BytesIO(), format="png")  # renders every artist
    assert isinstance(table, pd.DataFrame) and table.attrs["budget"] == 1e22


def test_cli_json_has_one_object_per_variant(tmp_path, monkeypatch, capsys):
    from bayes_scaling import inference
    from bayes_scaling.cli import main

    def fake_fit(runs, card, **kwargs):
        # N_opt = 1e9 x (runs seen): every variant gets a different, known answer.
        n_opt = 1e9 * len(runs)
        allocation = pd.DataFrame({"compute": [1e22], **{f"params_opt{s}": [n_opt] for s in ("", "_lo", "_hi")}})
        return types.SimpleNamespace(method="nuts", allocate=lambda budgets, level: allocation,
                                     diagnostics=lambda: types.SimpleNamespace(has_errors=False))

    monkeypatch.setattr(inference, "fit", fake_fit)
    path = tmp_path / "runs.csv"
    bs.simulate_runs(seed=0).to_csv(path, index=False)
    assert main(["sensitivity", str(path), "--budget", "1e22", "--workers", "1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["n_runs"] for r in rows] == [63, 45, 45] + [54] * 7
    assert [r["params_ratio"] for r in rows] == pytest.approx([n / 63 for n in [63, 45, 45] + [54] * 7])
