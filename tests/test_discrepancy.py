import dataclasses

import numpy as np
import pytest

from bayes_scaling.cards import Prior, load_card
from bayes_scaling.discrepancy import discrepancy_draws, extrapolation_distance, log_loss_draws
from bayes_scaling.fit import Fit


def _with_discrepancy(fit: Fit, scale: float) -> Fit:
    card = dataclasses.replace(fit.card, discrepancy=Prior("HalfNormal", {"scale": scale}))
    return Fit(fit.tree, card=card, method=fit.method, seed=fit.seed, elapsed_s=fit.elapsed_s)


def test_distance_is_zero_inside_and_counts_efolds_of_compute_beyond():
    max_log_c = np.log(1e21)
    n = np.array([1e9, 1e9, 1e10])
    d = 1e21 / (6 * n) * np.array([0.1, 1.0, np.e**2])
    np.testing.assert_allclose(extrapolation_distance(max_log_c, np.log(n), np.log(d)), [0.0, 0.0, 2.0], atol=1e-12)


def test_discrepancy_variance_is_zero_inside_the_data_and_grows_outside(small_fit):
    fit = _with_discrepancy(small_fit, 0.01)
    c_max = float(small_fit.runs["flops"].max())
    budgets = c_max * np.array([1e-2, 1.0, 10.0, 1000.0])
    n = 1e9 * np.ones(4)
    log_n, log_d = np.log(n), np.log(budgets / (6 * n))
    plain = log_loss_draws(small_fit, log_n, log_d)
    wide = log_loss_draws(fit, log_n, log_d)
    extra = wide - plain
    assert np.all(extra[:, :2] == 0.0)
    sd = extra.std(axis=0)
    assert 0 < sd[2] < sd[3]
    # The slope's sd is E|tau| * ... : for HalfNormal(0.01), sd(s) = 0.01; sd(delta) = 0.01 * distance.
    np.testing.assert_allclose(sd[2:] / np.log([10.0, 1000.0]), 0.01, rtol=0.15)


def test_one_slope_per_draw_is_shared_by_all_predictions():
    draws = discrepancy_draws(Prior("HalfNormal", {"scale": 0.02}), np.array([1.0, 2.0, 4.0]), 500, seed=3)
    np.testing.assert_allclose(draws[:, 1], 2 * draws[:, 0])
    np.testing.assert_allclose(draws[:, 2], 4 * draws[:, 0])


def test_predict_widens_only_beyond_the_data(small_fit):
    fit = _with_discrepancy(small_fit, 0.01)
    c_max = float(small_fit.runs["flops"].max())
    inside = (2e9, c_max / 2 / (6 * 2e9))
    outside = (3e10, 1e3 * c_max / (6 * 3e10))
    for (n, d), same in ((inside, True), (outside, False)):
        a, b = small_fit.predict(n, d), fit.predict(n, d)
        width_a = a.loc[0, "loss_hi"] - a.loc[0, "loss_lo"]
        width_b = b.loc[0, "loss_hi"] - b.loc[0, "loss_lo"]
        if same:
            assert width_b == pytest.approx(width_a, rel=1e-12)
        else:
            assert width_b > 1.5 * width_a


def test_discrepancy_card_is_bundled_and_validated():
    card = load_card("chinchilla-discrepancy")
    assert card.discrepancy is not None and card.discrepancy.dist == "HalfNormal"
    assert load_card("chinchilla").discrepancy is None


def test_allocated_loss_carries_the_discrepancy_beyond_the_data_only(small_fit):
    fit = _with_discrepancy(small_fit, 0.01)
    c_max = float(small_fit.runs["flops"].max())
    plain, wide = small_fit.allocate([c_max / 10, c_max * 1e4]), fit.allocate([c_max / 10, c_max * 1e4])
    width = lambda t: (t["loss_opt_hi"] - t["loss_opt_lo"]).to_numpy()  # noqa: E731
    assert width(wide)[0] == pytest.approx(width(plain)[0], rel=1e-12)
    assert width(wide)[1] > 1.5 * width(plain)[1]
    assert wide["params_opt"].equals(plain["params_opt"])
