import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.allocation import numeric_optimal_log_params
from bayes_scaling.cli import main
from bayes_scaling.laws import data_constrained
from tests.lawdata import DATA_CONSTRAINED_TRUTH, GROUP_TRUTH, KAPLAN_TRUTH, isoflop_grid, law_runs, two_group_runs

RNG = np.random.default_rng(0)
LOG_N = np.log(10 ** RNG.uniform(7, 11, 50))
LOG_D = np.log(10 ** RNG.uniform(8, 12, 50))


def _theta(values):
    return {k: jnp.asarray(v) for k, v in values.items()}


def test_new_laws_are_registered_and_their_cards_load():
    assert {"kaplan", "chinchilla-tied", "data-constrained"} <= set(bs.available_laws())
    for name in ("kaplan", "chinchilla-tied", "data-constrained", "hierarchical"):
        card = bs.load_card(name)
        assert set(card.priors) == set(card.law.parameters)
        assert all(p.rationale for p in card.priors.values())


def test_kaplan_log_loss_matches_the_formula_in_plain_numpy():
    t = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
    direct = ((t["N_c"] / np.exp(LOG_N)) ** (t["alpha_N"] / t["alpha_D"]) + t["D_c"] / np.exp(LOG_D)) ** t["alpha_D"]
    got = bs.get_law("kaplan").log_loss(_theta(t), {"log_params": LOG_N, "log_tokens": LOG_D})
    np.testing.assert_allclose(np.exp(np.asarray(got)), direct, rtol=1e-12)


@pytest.mark.parametrize("law, theta", [
    ("kaplan", {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}),
    ("chinchilla-tied", {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35}),
    ("data-constrained", DATA_CONSTRAINED_TRUTH),
])
def test_closed_form_optimum_matches_golden_section(law, theta):
    law = bs.get_law(law)
    log_c = np.log(np.array([1e20, 1e22, 1e24]))
    closed = np.asarray(law.compute_optimal(_theta(theta), log_c)[0])
    numeric = numeric_optimal_log_params(law, _theta(theta), log_c)
    np.testing.assert_allclose(closed, numeric, atol=1e-6)


def test_kaplan_optimum_grows_as_c_to_alpha_d_over_alpha_sum():
    t = _theta({"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095})
    log_n = np.asarray(bs.get_law("kaplan").compute_optimal(t, np.log(np.array([1e20, 1e21]))))[0]
    assert np.diff(log_n)[0] / np.log(10) == pytest.approx(0.095 / (0.076 + 0.095), rel=1e-12)


def test_tied_law_is_chinchilla_with_beta_equal_to_alpha():
    x = {"log_params": LOG_N, "log_tokens": LOG_D}
    tied = bs.get_law("chinchilla-tied").log_loss(_theta({"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.3}), x)
    free = bs.get_law("chinchilla").log_loss(_theta({"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.3, "beta": 0.3}), x)
    np.testing.assert_array_equal(np.asarray(tied), np.asarray(free))


def test_data_constrained_effective_counts_follow_muennighoff():
    t = DATA_CONSTRAINED_TRUTH
    n, d = np.array([1e9, 1e9]), np.array([2e10, 2e10])
    unique = d / np.array([1.0, 10.0])
    log_n_eff, log_d_eff = data_constrained.effective_log_counts(
        _theta(t), {"log_params": np.log(n), "log_tokens": np.log(d), "log_unique_tokens": np.log(unique)})
    r_d = d / unique - 1
    np.testing.assert_allclose(np.exp(np.asarray(log_d_eff)),
                               unique + unique * t["R_star_D"] * (1 - np.exp(-r_d / t["R_star_D"])), rtol=1e-12)
    # Useful size for the unique data (Chinchilla optimum), then the excess-parameter discount.
    u_n = np.minimum(n, (t["alpha"] * t["A"] / (t["beta"] * t["B"])) ** (1 / t["alpha"])
                     * unique ** (t["beta"] / t["alpha"]))
    r_n = n / u_n - 1
    np.testing.assert_allclose(np.exp(np.asarray(log_n_eff)),
                               u_n + u_n * t["R_star_N"] * (1 - np.exp(-r_n / t["R_star_N"])), rtol=1e-12)
    assert np.exp(log_d_eff[0]) == pytest.approx(d[0]) and unique[1] < np.exp(log_d_eff[1]) < 0.8 * d[1]


def test_data_constrained_equals_chinchilla_with_fresh_data_at_the_optimum():
    t = _theta(DATA_CONSTRAINED_TRUTH)
    log_c = np.log(np.array([1e21, 1e23]))
    log_n, log_d = bs.get_law("chinchilla").compute_optimal(t, log_c)
    x = {"log_params": log_n, "log_tokens": log_d}
    np.testing.assert_allclose(np.asarray(bs.get_law("data-constrained").log_loss(t, x)),
                               np.asarray(bs.get_law("chinchilla").log_loss(t, x)), rtol=1e-12)


def _repeated_epoch_runs(seed):
    parts = []
    for i, epochs in enumerate((1.0, 4.0, 16.0, 40.0)):
        n, d = isoflop_grid(sizes=6)
        n = n * 10 ** (0.05 * i)  # distinct sizes per epoch level: no duplicated (N, D)
        parts.append(law_runs("data-constrained", DATA_CONSTRAINED_TRUTH, n, d, seed=seed + i,
                              unique_tokens=d / epochs))
    return bs.load_runs(pd.concat(parts, ignore_index=True))


@pytest.mark.slow
def test_data_constrained_recovers_its_parameters_on_repeated_epochs():
    runs = _repeated_epoch_runs(seed=2)
    fit = bs.fit(runs, "data-constrained", chains=2, warmup=400, draws=400, seed=1)
    table = fit.summary(0.9)
    for name, truth in DATA_CONSTRAINED_TRUTH.items():
        assert table.loc[name, "lo"] < truth < table.loc[name, "hi"], name
    assert table["r_hat"].max() < 1.05
    # Allocation assumes unlimited unique data: Chinchilla's closed form.
    assert fit.allocate([1e22])["params_opt"].iloc[0] > 0


@pytest.mark.slow
def test_hierarchical_recovers_groups_and_borrows_strength_for_the_small_group(tmp_path):
    # Each per-group value within 3 posterior sd of the truth (on the log scale the law's scales
    # are sampled on). "All six inside their 90% intervals" fails for a correct sampler on ~40%
    # of seeds and machines (it did on this seed on another CPU: B[a] 1.9 sd off); 3 sd for six
    # values fails ~2% of the time, while a bias of a few sd still fails it.
    runs = bs.load_runs(two_group_runs(seed=2))
    pooled = bs.fit(runs, "hierarchical", chains=2, warmup=400, draws=400, seed=1)
    table = pooled.summary(0.9)
    for group, truth in GROUP_TRUTH.items():
        draws = pooled.draws(["E", "A", "B"], group=group)
        for name in ("E", "A", "B"):
            log_draws = np.log(draws[name])
            z = (np.median(log_draws) - np.log(truth[name])) / np.std(log_draws)
            assert abs(z) < 3, (group, name, z)
    assert table["r_hat"].max() < 1.05
    small = runs[runs["group"] == "b"].reset_index(drop=True)
    alone = bs.fit(small, "chinchilla", chains=2, warmup=400, draws=400, seed=1)
    width = {"pooled": table.loc["E[b]", "hi"] - table.loc["E[b]", "lo"]}
    width["alone"] = alone.summary(0.9).loc["E", "hi"] - alone.summary(0.9).loc["E", "lo"]
    assert width["pooled"] < width["alone"]
    a_pooled, a_alone = pooled.allocate([1e23], group="b").iloc[0], alone.allocate([1e23]).iloc[0]
    assert a_pooled["params_opt_hi"] / a_pooled["params_opt_lo"] < a_alone["params_opt_hi"] / a_alone["params_opt_lo"]
    with pytest.raises(bs.InputError, match="pools E, A, B over groups a, b: no group given; pass group="):
        pooled.allocate([1e23])
    with pytest.raises(bs.InputError, match="unknown group 'c'"):
        pooled.predict(1e9, 2e10, group="c")
    loaded = bs.Fit.load(pooled.save(tmp_path / "pooled.nc"))
    assert loaded.groups == ["a", "b"]
    pd.testing.assert_frame_equal(loaded.allocate([1e23], group="b"), pooled.allocate([1e23], group="b"))
    assert main(["allocate", str(tmp_path / "pooled.nc"), "--budget", "1e23", "--group", "b", "--format", "json"]) == 0


#: One point of parameters per registered law (a new law must add its own here).
LAW_THETAS = {
    "chinchilla": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "chinchilla-tied": {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35},
    "kaplan": KAPLAN_TRUTH,
    "data-constrained": DATA_CONSTRAINED_TRUTH,
}


def _spread(theta, draws=40, seed=0):
    """Draws around a point: each parameter times exp(0.05 z), shape (draws, 1)."""
    rng = np.random.default_rng(seed)
    return {k: (v * np.exp(0.05 * rng.standard_normal(draws)))[:, None] for k, v in theta.items()}


def test_every_registered_law_has_test_parameters():
    assert set(LAW_THETAS) == set(bs.available_laws())


@pytest.mark.parametrize("name", sorted(LAW_THETAS))
def test_numpy_and_jax_give_the_same_log_loss_and_optimum(name):
    law = bs.get_law(name)
    theta = _spread(LAW_THETAS[name])
    x = {"log_params": LOG_N[None, :], "log_tokens": LOG_D[None, :]}
    if "unique_tokens" in law.covariates:
        x["log_unique_tokens"] = LOG_D[None, :] - np.log(4.0)
    with_numpy = law.log_loss(theta, x)
    with_jax = law.log_loss(_theta(theta), {k: jnp.asarray(v) for k, v in x.items()})
    assert type(with_numpy) is np.ndarray and isinstance(with_jax, jax.Array)
    np.testing.assert_allclose(with_numpy, np.asarray(with_jax), rtol=1e-12)
    log_c = np.log(np.array([1e19, 1e22, 1e25]))[None, :]
    closed_numpy, closed_jax = law.compute_optimal(theta, log_c)[0], law.compute_optimal(_theta(theta), log_c)[0]
    assert type(closed_numpy) is np.ndarray and isinstance(closed_jax, jax.Array)
    np.testing.assert_allclose(closed_numpy, np.asarray(closed_jax), rtol=1e-12)
    # Golden section compares losses that differ by ulps near the flat minimum, so it pins
    # ln N down to ~sqrt(machine epsilon) whatever the namespace: its own precision, not 1e-12.
    golden_numpy = numeric_optimal_log_params(law, theta, log_c)
    golden_jax = numeric_optimal_log_params(law, _theta(theta), jnp.asarray(log_c))
    assert type(golden_numpy) is np.ndarray and isinstance(golden_jax, jax.Array)
    np.testing.assert_allclose(golden_numpy, np.asarray(golden_jax), atol=1e-6)
    np.testing.assert_allclose(golden_numpy, closed_numpy, atol=1e-6)


def test_laws_trace_under_jit_and_give_gradients():
    law = bs.get_law("chinchilla")
    x = {"log_params": jnp.asarray(LOG_N), "log_tokens": jnp.asarray(LOG_D)}

    def total(log_e):
        return law.log_loss({**_theta(LAW_THETAS["chinchilla"]), "E": jnp.exp(log_e)}, x).sum()

    grad = jax.jit(jax.grad(total))(jnp.log(1.69))
    loss = np.exp(np.asarray(law.log_loss(_theta(LAW_THETAS["chinchilla"]), x)))
    np.testing.assert_allclose(float(grad), np.sum(1.69 / loss), rtol=1e-12)
