import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.averaging import average
from bayes_scaling.errors import InputError

from tests.lawdata import KAPLAN_TRUTH, isoflop_grid, law_runs


@pytest.fixture(scope="module")
def kaplan_fits():
    n, d = isoflop_grid()
    runs = bs.load_runs(law_runs("kaplan", KAPLAN_TRUTH, n, d, seed=0, noise=0.01))
    kwargs = {"chains": 2, "warmup": 300, "draws": 300, "seed": 0}
    return {card: bs.fit(runs, card, **kwargs) for card in ("kaplan", "chinchilla")}


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
    shares = avg._shares()
    total = sum(len(i) for i in shares.values())
    for name, index in shares.items():
        assert len(index) / total == pytest.approx(avg.weights[name], abs=2 / total)
    pred = avg.predict("1B", "20B")
    assert pred.loc[0, "loss_predictive_lo"] < pred.loc[0, "loss"] < pred.loc[0, "loss_predictive_hi"]
    assert np.isfinite(pred.filter(like="loss").to_numpy()).all()


def test_average_needs_two_fits(small_fit):
    with pytest.raises(InputError, match="at least two fits"):
        average([small_fit])
