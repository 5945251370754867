import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.errors import InputError


def test_nuts_recovers_the_known_truth(small_fit):
    summary = small_fit.summary(level=0.9)
    for name, value in bs.EXAMPLE_TRUTH.items():
        row = summary.loc[name]
        assert row["lo"] < value < row["hi"], f"{name}={value} outside [{row['lo']:.4g}, {row['hi']:.4g}]"
    assert (summary["r_hat"] < 1.01).all(), summary["r_hat"]
    diag = small_fit.diagnostics()
    assert diag.divergences == 0 and not diag.has_errors, diag.messages


def test_fit_holds_arviz_groups_with_named_dims(small_fit):
    tree = small_fit.tree
    for group in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive", "observed_data",
                  "constant_data"):
        assert group in tree.children, group
    assert tree["log_likelihood"]["log_loss"].dims == ("chain", "draw", "run")
    # 500 draws per chain, or more when the fit failed its gate and ran again (recorded in extra["sampler"])
    assert tree["posterior"]["alpha"].shape == (4, small_fit.extra.get("sampler", {}).get("draws_per_chain", 500))
    assert np.isfinite(tree["log_likelihood"]["log_loss"].to_numpy()).all()


def test_same_seed_gives_identical_draws_and_another_seed_does_not(example_runs):
    kwargs = {"chains": 1, "warmup": 100, "draws": 50}
    a = bs.fit(example_runs, seed=7, **kwargs).draws()
    b = bs.fit(example_runs, seed=7, **kwargs).draws()
    c = bs.fit(example_runs, seed=8, **kwargs).draws()
    np.testing.assert_array_equal(a["alpha"], b["alpha"])
    assert not np.array_equal(a["alpha"], c["alpha"])


def test_huber_method_stores_bootstrap_draws_usable_downstream(example_runs):
    result = bs.fit(example_runs, method="huber", bootstrap=12, seed=0)
    assert result.posterior["alpha"].shape == (1, 12)
    assert result.extra["bootstrap_converged"] >= 0.9
    table = result.allocate([1e22])
    assert table.loc[0, "params_opt_lo"] < table.loc[0, "params_opt"] < table.loc[0, "params_opt_hi"]


def test_bad_arguments_are_rejected(example_runs):
    with pytest.raises(InputError, match="method must be one of nuts, huber"):
        bs.fit(example_runs, method="mcmc")
    with pytest.raises(InputError, match="target_accept must be in the interval"):
        bs.fit(example_runs, target_accept=1.2)
    with pytest.raises(InputError, match="chains must be a positive integer"):
        bs.fit(example_runs, chains=0)


@pytest.mark.slow
@pytest.mark.real_data
def test_real_chinchilla_fit_converges_inside_the_published_bootstrap_intervals(chinchilla_fit):
    result = chinchilla_fit
    summary = result.summary()
    assert (summary["r_hat"] < 1.01).all()
    assert result.diagnostics().divergences == 0
    # Besiroglu et al. 2024, 95% bootstrap intervals (../shared/data/PROVENANCE.md).
    assert 0.317 < summary.loc["alpha", "median"] < 0.373
    assert 0.331 < summary.loc["beta", "median"] < 0.415
    assert 1.769 < summary.loc["E", "median"] < 1.871
    # Tokens per parameter at Chinchilla's budget: about 20.
    tpp = result.allocate([5.76e23]).loc[0, "tokens_per_param"]
    assert 10 < tpp < 40
