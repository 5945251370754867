import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.approaches import _law_draws, approach1, approach2, budget_groups, fit_exponents
from bayes_scaling.errors import InputError
from bayes_scaling.laws import get_law
from bayes_scaling.simulate import chinchilla_loss

TRUTH = bs.EXAMPLE_TRUTH
#: Exponent of N_opt ∝ C^a for the Chinchilla law: a = beta / (alpha + beta).
A_TRUE = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])


def fixed_size_runs(seed: int, noise: float = 0.002) -> pd.DataFrame:
    """Approach 1's design: 21 model sizes, each trained at 15 compute levels (1e18 to 3e21 FLOPs)."""
    rng = np.random.default_rng(seed)
    sizes = np.round(np.logspace(7.5, 10, 21), -3)
    compute = np.logspace(18, 21.5, 15)
    n, c = (g.ravel() for g in np.meshgrid(sizes, compute))
    table = pd.DataFrame({"params": n, "tokens": c / (6 * n), "flops": c})
    table["loss"] = chinchilla_loss(n, table["tokens"].to_numpy(), TRUTH) * np.exp(noise * rng.standard_normal(len(n)))
    return bs.load_runs(table)


@pytest.mark.parametrize("seed", [0, 1])
def test_approach1_recovers_the_exponent_within_its_interval(seed):
    result = approach1(fixed_size_runs(seed), bootstrap=100, seed=seed)
    a = result.exponents.set_index("exponent").loc["a"]
    assert a["lo"] < A_TRUE < a["hi"]
    assert a["estimate"] == pytest.approx(A_TRUE, abs=0.04)
    assert len(result.draws) == 100


def test_approach2_recovers_the_exponent_within_its_interval():
    runs = bs.load_runs(bs.simulate_runs(seed=0, sizes_per_budget=15))
    result = approach2(runs, bootstrap=200, seed=0)
    exps = result.exponents.set_index("exponent")
    assert exps.loc["a", "lo"] < A_TRUE < exps.loc["a", "hi"]
    assert exps.loc["b", "lo"] < 1 - A_TRUE < exps.loc["b", "hi"]
    # One vertex per simulated budget, each bracketed by its bootstrap interval.
    optima = result.optima
    assert len(optima) == 7 and optima["inside"].all()
    assert (optima["params_opt_lo"] <= optima["params_opt"]).all()
    assert (optima["params_opt"] <= optima["params_opt_hi"]).all()


def test_tokens_exponent_is_one_minus_params_exponent_and_frontier_spends_the_budget():
    # C = 6 N D, so ln D_opt = ln C - ln 6 - ln N_opt: b = 1 - a for every resample too.
    result = approach2(bs.load_runs(bs.simulate_runs(seed=2)), bootstrap=20, seed=0)
    np.testing.assert_allclose(result.draws["a"] + result.draws["b"], 1.0, atol=1e-9)
    frontier = result.frontier([1e22, 5.76e23], level=0.8)
    np.testing.assert_allclose(6 * frontier["params_opt"] * frontier["tokens_opt"], frontier["compute"], rtol=1e-9)
    assert (frontier["params_opt_lo"] < frontier["params_opt"]).all()
    assert (frontier["params_opt"] < frontier["params_opt_hi"]).all()


def test_law_exponent_is_beta_over_alpha_plus_beta():
    theta = {k: np.array([v, v]) for k, v in TRUTH.items()}
    theta["beta"] = np.array([TRUTH["beta"], 0.5])
    draws = _law_draws(get_law("chinchilla"), theta, pd.Series([1e18, 1e22]))
    expected = theta["beta"] / (theta["alpha"] + theta["beta"])
    np.testing.assert_allclose(draws["a"], expected, rtol=1e-9)
    np.testing.assert_allclose(draws["b"], 1 - expected, rtol=1e-9)


def test_fit_exponents_brackets_the_true_exponent(small_fit):
    result = fit_exponents(small_fit, level=0.95)
    a = result.exponents.set_index("exponent").loc["a"]
    assert a["lo"] < A_TRUE < a["hi"]
    assert result.approach == "chinchilla (nuts)"


def test_budget_groups_collect_scattered_flops_around_nominal_budgets():
    rng = np.random.default_rng(0)
    nominal = np.repeat([6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21], 5)
    flops = nominal * np.exp(rng.uniform(-0.08, 0.08, nominal.size))  # ±3.5% scatter, as in figure data
    budgets = budget_groups(flops)
    assert len(np.unique(budgets)) == 9
    np.testing.assert_allclose(budgets, nominal, rtol=0.05)


def test_approach2_refuses_a_single_budget():
    runs = bs.load_runs(bs.simulate_runs(seed=0, budgets=(1e20,), sizes_per_budget=12))
    with pytest.raises(InputError, match="at least 2 IsoFLOP budgets"):
        approach2(runs, bootstrap=0)


@pytest.mark.real_data
def test_approaches_1_and_2_on_the_chinchilla_table_match_the_paper(chinchilla_runs):
    # Hoffmann et al. 2022, Table 2: a = 0.50 (approach 1) and 0.49 (approach 2).
    for estimator in (approach1, approach2):
        a = estimator(chinchilla_runs, bootstrap=100).exponents.set_index("exponent").loc["a"]
        assert 0.45 < a["estimate"] < 0.56, estimator.__name__
        assert a["lo"] < 0.5 < a["hi"], estimator.__name__
