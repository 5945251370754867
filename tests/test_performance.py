"""The faster paths give the same answers as the plain ones.

Covers the large-table path of ``bs.fit`` (pre-fit on a subsample, mass matrix scaled
from it), the thinning of the pointwise groups of very large fits, and the settings of
the persistent compilation cache.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling import compilation_cache

inference = importlib.import_module("bayes_scaling.inference")
fit_module = importlib.import_module("bayes_scaling.fit")
model_module = importlib.import_module("bayes_scaling.model")


def test_cache_dir_defaults_to_user_cache_and_respects_xdg(tmp_path):
    assert compilation_cache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "bayes-scaling" / "jax"


@pytest.mark.parametrize("setting", ["off", "0", "false", "No"])
def test_cache_can_be_turned_off(setting):
    assert compilation_cache.cache_dir({compilation_cache.ENV_VAR: setting}) is None


def test_cache_dir_from_env_var(tmp_path):
    assert compilation_cache.cache_dir({compilation_cache.ENV_VAR: str(tmp_path / "c")}) == tmp_path / "c"


def test_package_import_enables_the_cache_unless_turned_off():
    import jax

    expected = compilation_cache.cache_dir()
    if expected is None:
        assert not jax.config.jax_compilation_cache_dir
    else:
        assert jax.config.jax_compilation_cache_dir


@pytest.fixture(scope="module")
def large_path_fit(example_runs, monkeypatch_module):
    """The example grid fitted through the large-table path (thresholds lowered to its size)."""
    monkeypatch_module.setattr(inference, "LARGE_TABLE_ROWS", 50)
    monkeypatch_module.setattr(inference, "SUBSAMPLE_ROWS", 45)
    return bs.fit(example_runs, chains=2, warmup=400, draws=400, seed=1)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.slow
def test_large_table_path_gives_the_same_posterior(small_fit, large_path_fit):
    plain, large = small_fit.summary(), large_path_fit.summary()
    for name in ("E", "A", "B", "alpha", "beta", "sigma"):
        # Quantiles, not sd: the posteriors of A and B are skewed with long right tails.
        width = plain.loc[name, "hi"] - plain.loc[name, "lo"]
        assert abs(large.loc[name, "median"] - plain.loc[name, "median"]) < 0.12 * width, name
        assert 0.8 < (large.loc[name, "hi"] - large.loc[name, "lo"]) / width < 1.25, name


@pytest.mark.slow
def test_large_table_path_converges_without_divergences(large_path_fit):
    diag = large_path_fit.diagnostics()
    assert diag.divergences == 0
    assert diag.max_rhat < 1.02
    # The full-table warm-up is capped: the pre-fit did the adaptation.
    assert large_path_fit.tree["sample_stats"].sizes["draw"] == 400


def test_pointwise_groups_thinned_above_the_cap_keep_exact_values(small_fit, example_runs, monkeypatch):
    card = small_fit.card
    post = {k: np.asarray(v) for k, v in small_fit.posterior.items()}
    x = model_module.covariates(example_runs, card)
    log_loss = np.log(example_runs["loss"].to_numpy(float))
    monkeypatch.setattr(fit_module, "POINTWISE_MAX_VALUES", post["E"].size * len(log_loss) // 4)
    tree = fit_module.build_datatree(card, example_runs, x, log_loss, post, None, seed=0)
    ll = tree["log_likelihood"]["log_loss"]
    assert tree["log_likelihood"].attrs["thinned_every"] == 4
    assert ll.sizes["draw"] == post["E"].shape[1] // 4
    assert tree["posterior_predictive"]["log_loss"].sizes["draw"] == ll.sizes["draw"]
    full = small_fit.tree["log_likelihood"]["log_loss"].to_numpy()
    np.testing.assert_allclose(ll.to_numpy(), full[:, ::4], rtol=1e-12)
    assert tree["posterior"].sizes["draw"] == post["E"].shape[1]
