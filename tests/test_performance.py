"""The faster paths give the same answers as the plain ones.

Covers the large-table path of ``bs.fit`` (pre-fit on a subsample, mass matrix scaled
from it; checked against the ordinary path and against a Laplace approximation of the
full table's posterior), the thinning of the pointwise groups of very large fits, and
the settings of the persistent compilation cache.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn
from scipy.optimize import minimize

import bayes_scaling as bs
from bayes_scaling import compilation_cache
from bayes_scaling.simulate import chinchilla_loss

sampling = importlib.import_module("bayes_scaling.sampling")
fit_module = importlib.import_module("bayes_scaling.fitted")
model_module = importlib.import_module("bayes_scaling.model")


def test_cache_dir_defaults_to_user_cache_and_respects_xdg(tmp_path):
    assert compilation_cache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "bayes-scaling" / "jax"


@pytest.mark.parametrize("setting", ["off", "0", "false", "No"])
def test_cache_can_be_turned_off(setting):
    assert compilation_cache.cache_dir({compilation_cache.ENV_VAR: setting}) is None


def test_cache_dir_from_env_var(tmp_path):
    assert compilation_cache.cache_dir({compilation_cache.ENV_VAR: str(tmp_path / "c")}) == tmp_path / "c"


def test_jax_set_up_enables_the_cache_unless_turned_off():
    import jax

    importlib.import_module("bayes_scaling._jax")
    expected = compilation_cache.cache_dir()
    if expected is None:
        assert not jax.config.jax_compilation_cache_dir
    else:
        assert jax.config.jax_compilation_cache_dir


def _run(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_package_import_stays_light_and_the_api_loads_on_first_use():
    _run("import sys, os\n"
         "import bayes_scaling as bs\n"
         "assert not {'jax', 'numpyro', 'arviz', 'xarray', 'pandas'} & set(sys.modules)\n"
         "assert 'xla_force_host_platform_device_count' in os.environ['XLA_FLAGS']\n"
         "import bayes_scaling.fitted, bayes_scaling.sensitivity_analysis  # no module shadows a function\n"
         "assert bs.fit.__module__ == 'bayes_scaling.inference' and callable(bs.fit)\n"
         "assert callable(bs.sensitivity) and callable(bs.backtest) and callable(bs.compare)\n"
         "assert bs.load_fit == bs.Fit.load and bs.Fit is sys.modules['bayes_scaling.fitted'].Fit\n"
         "assert bs.simulate_runs(seed=0).shape[0] > 0 and bs.decide.__module__ == 'bayes_scaling.decisions'\n")


def test_jax_computes_in_float64_however_it_is_first_imported():
    # By the user after importing the package, or through the package's own modules.
    _run("import bayes_scaling, jax, jax.numpy as jnp\nassert jnp.ones(1).dtype == jnp.float64\n"
         "assert len(jax.devices()) >= 4")
    _run("import jax, jax.numpy as jnp\nimport bayes_scaling.model\nassert jnp.ones(1).dtype == jnp.float64")


@pytest.fixture(scope="module")
def large_path_fit(example_runs, monkeypatch_module):
    """The example grid fitted through the large-table path (thresholds lowered to its size)."""
    monkeypatch_module.setattr(sampling, "LARGE_TABLE_ROWS", 50)
    monkeypatch_module.setattr(sampling, "SUBSAMPLE_ROWS", 45)
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


def _loss_curves(checkpoints: int, seed: int) -> pd.DataFrame:
    """The example grid's 63 runs as loss curves: checkpoint k of K at D·k/K tokens, 1% log-normal noise."""
    final = bs.simulate_runs(seed=0)
    k = np.tile(np.arange(1, checkpoints + 1) / checkpoints, len(final))
    params = np.repeat(final["params"].to_numpy(), checkpoints)
    tokens = np.repeat(final["tokens"].to_numpy(), checkpoints) * k
    loss = chinchilla_loss(params, tokens, bs.EXAMPLE_TRUTH)
    loss *= np.exp(0.01 * np.random.default_rng(seed).standard_normal(len(loss)))
    names = [f"{n}-ckpt{j}" for n in final["name"] for j in range(1, checkpoints + 1)]
    return bs.load_runs(pd.DataFrame({"name": names, "params": params, "tokens": tokens, "loss": loss}))


def _laplace_draws(card: bs.ModelCard, runs: pd.DataFrame, draws: int = 4000) -> dict[str, np.ndarray]:
    """Draws of the Gaussian approximation at the posterior mode in unconstrained space.

    With thousands of rows the posterior is very nearly Gaussian there: on five 2,500-row
    loss-curve tables of ``benchmarks/bench_growth.py`` the means of NUTS on the ordinary
    path were within 0.06 sd of it and its sds within 6%; it needs no sampler.
    """
    model = model_module.build_model(card)
    x = model_module.covariates(runs, card)
    args = ({k: jnp.asarray(v) for k, v in x.items()},)
    kwargs = {"log_loss": jnp.asarray(np.log(runs["loss"].to_numpy(float)))}
    start = model_module.sampler_values(card, {**bs.EXAMPLE_TRUTH, "sigma": 0.01})  # A, B in ridge coordinates
    u0, unravel = ravel_pytree(unconstrain_fn(model, args, kwargs, start))
    energy = jax.jit(lambda u: potential_energy(model, args, kwargs, unravel(u)))
    value_and_grad = jax.jit(jax.value_and_grad(energy))
    mode = minimize(lambda u: tuple(np.asarray(v, float) for v in value_and_grad(u)), np.asarray(u0), jac=True,
                    method="L-BFGS-B", options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-8}).x
    cov = np.linalg.inv(np.asarray(jax.hessian(energy)(jnp.asarray(mode))))
    u = np.random.default_rng(0).multivariate_normal(mode, cov, size=draws)
    return {k: np.asarray(v) for k, v in jax.vmap(
        lambda v: constrain_fn(model, args, kwargs, unravel(v), return_deterministic=True))(u).items()}


@pytest.mark.slow
def test_large_table_path_matches_the_posterior_of_the_full_table_on_loss_curves():
    # 63 runs x 40 checkpoints = 2,520 rows: over LARGE_TABLE_ROWS, so the real constants
    # (1,000-row subsample, mass matrix scaled by m/n, capped warm-up) are exercised. The
    # subsample's posterior is ~1.6 times wider than the full table's: a sampler that kept
    # its width (sds 1.5-1.9x, means 1.2 sd off), or chains that had not yet left its
    # starting points (warm-up 1: means 0.7 sd off), fail here; the scale of the mass matrix
    # alone does not matter (the step size adapts to it).
    runs = _loss_curves(40, seed=3)
    assert len(runs) > max(sampling.LARGE_TABLE_ROWS, 2 * sampling.SUBSAMPLE_ROWS)
    large = bs.fit(runs, "chinchilla-plain", chains=2, warmup=1000, draws=500, seed=0)
    reference = _laplace_draws(large.card, runs)
    summary, diag = large.summary(), large.diagnostics()
    for name in ("E", "A", "B", "alpha", "beta", "sigma"):
        sd = reference[name].std()
        assert abs(summary.loc[name, "mean"] - reference[name].mean()) < 0.2 * sd, name
        assert 0.85 < summary.loc[name, "sd"] / sd < 1.15, name
    assert diag.divergences == 0 and diag.max_rhat < 1.02, diag.messages


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
