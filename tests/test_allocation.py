import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import bayes_scaling as bs
from bayes_scaling.allocation import allocation_draws, numeric_optimal_log_params
from bayes_scaling.errors import InputError
from bayes_scaling.laws import get_law
from bayes_scaling.simulate import chinchilla_loss

LAW = get_law("chinchilla")


def _theta(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return {"E": rng.uniform(1.5, 2.0, n), "A": rng.uniform(200, 800, n), "B": rng.uniform(300, 3000, n),
            "alpha": rng.uniform(0.25, 0.45, n), "beta": rng.uniform(0.25, 0.45, n)}


def test_law_matches_direct_formula_in_float64():
    theta = bs.EXAMPLE_TRUTH
    n, d = np.array([7e7, 1.6e10, 7e10]), np.array([5e9, 3e11, 1.4e12])
    log_l = LAW.log_loss({k: jnp.asarray(v) for k, v in theta.items()},
                         {"log_params": jnp.log(n), "log_tokens": jnp.log(d)})
    np.testing.assert_allclose(np.exp(log_l), chinchilla_loss(n, d, theta), rtol=1e-13)
    assert log_l.dtype == jnp.float64


def test_closed_form_matches_numerical_minimisation_of_the_isoflop_line():
    theta = _theta(8)
    budgets = np.array([1e20, 5.76e23, 1e26])
    draws = allocation_draws(LAW, theta, budgets)
    for s in range(8):
        one = {k: v[s] for k, v in theta.items()}
        for k, c in enumerate(budgets):
            res = minimize_scalar(lambda u, c=c, one=one: chinchilla_loss(np.exp(u), c / (6 * np.exp(u)), one),
                                  bounds=(np.log(1e5), np.log(c / 6 / 1e5)), method="bounded",
                                  options={"xatol": 1e-10})
            assert np.log(draws["params_opt"][s, k]) == pytest.approx(res.x, abs=1e-4)
    np.testing.assert_allclose(6 * draws["params_opt"] * draws["tokens_opt"], np.broadcast_to(budgets, (8, 3)),
                               rtol=1e-12)


def test_golden_section_equals_closed_form():
    theta = {k: jnp.asarray(v)[:, None] for k, v in _theta().items()}
    log_c = jnp.log(jnp.array([1e19, 1e22, 1e25]))[None, :]
    closed = np.asarray(LAW.compute_optimal(theta, log_c)[0])
    numeric = numeric_optimal_log_params(LAW, theta, log_c)
    np.testing.assert_allclose(numeric, closed, atol=1e-6)


def test_allocation_medians_agree_with_closed_form_on_the_same_draws(small_fit):
    table = small_fit.allocate([1e21, 5.76e23], level=0.8)
    draws = small_fit.draws(list(LAW.parameters))
    a, b = draws["alpha"], draws["beta"]
    g = (a * draws["A"] / (b * draws["B"])) ** (1 / (a + b))
    n_opt = g * (5.76e23 / 6) ** (b / (a + b))
    assert table.loc[1, "params_opt"] == pytest.approx(np.median(n_opt), rel=1e-10)
    assert table.loc[1, "params_opt_lo"] == pytest.approx(np.quantile(n_opt, 0.1), rel=1e-10)
    assert table.attrs["level"] == 0.8
    assert (table["params_opt_lo"] < table["params_opt"]).all() and (table["params_opt"] < table["params_opt_hi"]).all()


def test_vectorised_allocation_equals_per_draw_loop(small_fit):
    draws = small_fit.draws(list(LAW.parameters))
    budgets = np.logspace(19, 25, 7)
    vec = allocation_draws(LAW, draws, budgets)
    for s in range(0, len(draws["E"]), 97):
        one = {k: v[s : s + 1] for k, v in draws.items()}
        loop = allocation_draws(LAW, one, budgets)
        np.testing.assert_allclose(vec["loss_opt"][s], loop["loss_opt"][0], rtol=1e-14)


def test_predict_law_interval_is_inside_the_predictive_interval(small_fit):
    table = small_fit.predict(["1B", "70B"], ["20B", "1.4T"])
    assert (table["loss_predictive_lo"] < table["loss_lo"]).all()
    assert (table["loss_predictive_hi"] > table["loss_hi"]).all()
    truth = chinchilla_loss(table["params"].to_numpy(), table["tokens"].to_numpy(), bs.EXAMPLE_TRUTH)
    assert ((table["loss_lo"] < truth) & (truth < table["loss_hi"])).all()


def test_bad_budgets_and_levels_are_rejected(small_fit):
    with pytest.raises(InputError, match="budget must be a positive number of FLOPs but got -1"):
        small_fit.allocate([-1.0])
    with pytest.raises(InputError, match="level must be in the interval"):
        small_fit.allocate([1e21], level=1.5)
    with pytest.raises(InputError, match="as many params as tokens"):
        small_fit.predict([1e9, 2e9], [1e10, 2e10, 3e10])


def test_allocation_in_blocks_of_budgets_equals_all_budgets_at_once(small_fit, monkeypatch):
    from bayes_scaling import allocation as allocation_module
    from bayes_scaling.fitfile import fit_arrays

    budgets = np.logspace(19, 25, 11)
    slope, region = fit_arrays(small_fit).discrepancy()
    assert slope is not None  # the default card carries a discrepancy beyond the data
    whole = allocation_module.allocation_table(budgets, allocation_draws(
        LAW, small_fit.draws(list(LAW.parameters)), budgets, slope=slope, region=region), 0.8)
    monkeypatch.setattr(allocation_module, "_BLOCK_VALUES", 3 * small_fit.draws()["E"].size)  # blocks of 3 budgets
    blocked = allocation_module.allocation(small_fit, budgets, level=0.8)
    assert list(blocked.columns) == list(whole.columns) and blocked.attrs == whole.attrs
    for name, values in whole.columns.items():
        np.testing.assert_array_equal(blocked[name], values, err_msg=name)
