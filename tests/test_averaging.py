import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.averaging import average
from bayes_scaling.errors import InputError


@pytest.mark.slow
def test_stacking_weights_sum_to_one_and_favour_the_true_law(kaplan_fits):
    avg = average(kaplan_fits)
    assert sum(avg.weights.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(w >= 0 for w in avg.weights.values())
    assert avg.weights["kaplan"] >= 0.8, avg.weights


@pytest.mark.slow
def test_mixture_allocation_lies_between_and_draws_follow_the_weights(kaplan_fits):
    avg = average(kaplan_fits)
    budgets = [1e22]
    mix = avg.allocate(budgets)
    parts = {name: fit.allocate(budgets) for name, fit in kaplan_fits.items()}
    lo = min(p.loc[0, "params_opt_lo"] for p in parts.values())
    hi = max(p.loc[0, "params_opt_hi"] for p in parts.values())
    assert lo <= mix.loc[0, "params_opt"] <= hi
    shares = avg.shares()
    total = sum(len(i) for i in shares.values())
    for name, index in shares.items():
        assert len(index) / total == pytest.approx(avg.weights[name], abs=2 / total)
    pred = avg.predict("1B", "20B")
    assert pred.loc[0, "loss_predictive_lo"] < pred.loc[0, "loss"] < pred.loc[0, "loss_predictive_hi"]
    assert np.isfinite(pred.filter(like="loss").to_numpy()).all()


def test_average_needs_two_fits(small_fit):
    with pytest.raises(InputError, match="at least two fits"):
        average([small_fit])


@pytest.mark.slow
def test_decisions_of_an_average_with_all_weight_on_one_card_equal_that_cards(kaplan_fits):
    from bayes_scaling.averaging import ModelAverage

    avg = average(kaplan_fits)
    one = ModelAverage(fits=kaplan_fits, weights={"kaplan": 1.0, "chinchilla": 0.0}, comparison=avg.comparison)
    mixed = one.decide(budgets=[1e21], risk="cvar:0.9", seed=3)["best_plan"]
    alone = bs.decide(kaplan_fits["kaplan"], budgets=[1e21], risk="cvar:0.9", seed=3)["best_plan"]
    np.testing.assert_allclose(mixed[["params", "tokens", "expected_loss"]].to_numpy(),
                               alone[["params", "tokens", "expected_loss"]].to_numpy(), rtol=1e-12)
    assert mixed.attrs["card"] == "stacking of kaplan (1.00)"


@pytest.mark.slow
def test_chance_of_a_target_under_the_average_is_the_weighted_chance_of_each_card(kaplan_fits):
    from bayes_scaling.decisions import as_posterior, target_probability

    avg = average(kaplan_fits)
    target = float(avg.predict("1B", "20B").loc[0, "loss"])  # the median: a chance far from 0 and 1
    got = avg.decide(target_loss=target, plans=["1B:20B"], seed=5)["target_probability"].loc[0, "prob"]
    shares = {name: index for name, index in avg.shares().items() if len(index)}
    total = sum(len(i) for i in shares.values())
    want = sum(len(index) / total * target_probability(as_posterior(kaplan_fits[name]).take(index), target,
                                                       plans=["1B:20B"], seed=5 + i).loc[0, "prob"]
               for i, (name, index) in enumerate(shares.items()))
    assert got == pytest.approx(want, rel=1e-12)
    assert 0.2 < got < 0.8
    with pytest.raises(InputError, match="needs the draws of one card"):
        avg.decide(budgets=[1e21], next_run_budget=1e18)


@pytest.mark.slow
def test_report_of_an_average_shows_the_weights_and_the_mixtures_allocation(kaplan_fits):
    from bayes_scaling.report import render_report

    avg = average(kaplan_fits)
    report = render_report(avg, [1e21, 1e23])
    section = report.data["sections"]["averaging"]
    assert section["weights"] == pytest.approx(avg.weights)
    headline = report.data["sections"]["headline"]["rows"]
    mix = avg.allocate([1e21, 1e23])
    assert [r["params_opt"]["median"] for r in headline] == pytest.approx(mix["params_opt"].tolist(), rel=1e-12)
    assert "stacking mixture of cards" in report.html and "model average" in report.data["title"]
