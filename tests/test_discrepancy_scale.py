import dataclasses

import numpy as np
import pytest
from scipy import stats

import bayes_scaling as bs
from bayes_scaling.allocation import loss_draws
from bayes_scaling.cards import Discrepancy, Prior, load_card
from bayes_scaling.discrepancy import extrapolation_distance
from bayes_scaling.discrepancy_evidence import (
    MISFIT_LENGTHS,
    MISFIT_NOISES,
    marginal_log_likelihood,
    misfit_log_likelihood,
    tau_grid,
)
from bayes_scaling.discrepancy_scale import SLOPE, TAU, attach, calibrate_tau
from bayes_scaling.prediction import shift_draws


def test_distance_is_zero_inside_and_counts_efolds_of_compute_beyond():
    max_log_c = np.log(1e21)
    n = np.array([1e9, 1e9, 1e10])
    d = 1e21 / (6 * n) * np.array([0.1, 1.0, np.e**2])
    np.testing.assert_allclose(extrapolation_distance(max_log_c, np.log(n), np.log(d)), [0.0, 0.0, 2.0], atol=1e-12)


@pytest.fixture(scope="module")
def plain_fit(example_runs):
    """The law alone (card chinchilla-plain), to which the tests attach a known discrepancy."""
    return bs.fit(example_runs, "chinchilla-plain", chains=4, warmup=500, draws=500, seed=1)


@pytest.fixture(scope="module")
def wide_fit(plain_fit):
    return attach(plain_fit, Prior("HalfNormal", {"scale": 0.01}), seed=2)


def test_discrepancy_variance_is_zero_inside_the_data_and_grows_outside(plain_fit, wide_fit):
    c_max = float(plain_fit.runs["flops"].max())
    budgets = c_max * np.array([1e-2, 1.0, 10.0, 1000.0])
    n = 1e9 * np.ones(4)
    log_n, log_d = np.log(n), np.log(budgets / (6 * n))
    n, d = np.exp(log_n), np.exp(log_d)
    extra = loss_draws(wide_fit, n, d)[0] - loss_draws(plain_fit, n, d)[0]
    assert np.all(extra[:, :2] == 0.0)
    sd = extra.std(axis=0)
    assert 0 < sd[2] < sd[3]
    # s ~ Normal(0, tau), tau ~ HalfNormal(0.01): sd(s) = 0.01, so sd(delta) = 0.01 * √distance.
    np.testing.assert_allclose(sd[2:] / np.sqrt(np.log([10.0, 1000.0])), 0.01, rtol=0.15)


def test_one_slope_per_draw_is_shared_by_all_predictions(wide_fit):
    c_max = float(wide_fit.runs["flops"].max())
    n = np.full(3, 1e10)
    d = c_max * np.exp([1.0, 2.0, 4.0]) / (6 * n)
    draws = shift_draws(wide_fit, np.log(n), np.log(d))
    np.testing.assert_allclose(draws[:, 1], np.sqrt(2) * draws[:, 0])
    np.testing.assert_allclose(draws[:, 2], 2 * draws[:, 0])
    np.testing.assert_allclose(draws[:, 0], np.asarray(wide_fit.posterior[SLOPE]).reshape(-1))


def test_attached_discrepancy_survives_save_and_load(wide_fit, tmp_path):
    back = bs.Fit.load(wide_fit.save(tmp_path / "wide.nc"))
    assert back.card.discrepancy == wide_fit.card.discrepancy
    np.testing.assert_array_equal(back.posterior[SLOPE], wide_fit.posterior[SLOPE])
    pd_a, pd_b = wide_fit.allocate([1e24]), back.allocate([1e24])
    assert pd_a.equals(pd_b)


def test_predict_widens_only_beyond_the_data(plain_fit, wide_fit):
    c_max = float(plain_fit.runs["flops"].max())
    inside = (2e9, c_max / 2 / (6 * 2e9))
    outside = (3e10, 1e3 * c_max / (6 * 3e10))
    for (n, d), same in ((inside, True), (outside, False)):
        a, b = plain_fit.predict(n, d), wide_fit.predict(n, d)
        width_a = a.loc[0, "loss_hi"] - a.loc[0, "loss_lo"]
        width_b = b.loc[0, "loss_hi"] - b.loc[0, "loss_lo"]
        if same:
            assert width_b == pytest.approx(width_a, rel=1e-12)
        else:
            assert width_b > 1.5 * width_a


def test_default_card_learns_a_discrepancy_and_the_plain_card_has_none():
    card = load_card("chinchilla")
    assert card.discrepancy is not None and card.discrepancy.prior.dist == "HalfNormal"
    assert card.discrepancy.calibrate == (1.0, 2.0)
    assert card.discrepancy.misfit_ratio is not None and card.discrepancy.misfit_ratio > 0
    assert load_card("chinchilla-plain").discrepancy is None


def test_attach_refuses_a_fit_that_has_a_discrepancy(wide_fit):
    with pytest.raises(bs.InputError, match="already has a model discrepancy"):
        attach(wide_fit, Prior("HalfNormal", {"scale": 0.01}))


def test_calibrate_key_is_checked():
    from bayes_scaling.cards import parse_card
    from bayes_scaling.errors import CardError

    text = load_card("chinchilla-plain").text
    with pytest.raises(CardError, match=r"\[discrepancy\] calibrate: give a list of positive distances"):
        parse_card(text + '\n[discrepancy]\ndist = "HalfNormal"\nkwargs = { scale = 0.01 }\ncalibrate = [-1]\n')
    with pytest.raises(CardError, match=r"\[discrepancy\] misfit_ratio: give a positive number"):
        parse_card(text + '\n[discrepancy]\ndist = "HalfNormal"\nkwargs = { scale = 0.01 }\nmisfit_ratio = 0\n')
    with pytest.raises(CardError, match=r"\[discrepancy\] splits: unknown key"):
        parse_card(text + '\n[discrepancy]\ndist = "HalfNormal"\nkwargs = { scale = 0.01 }\nsplits = [1]\n')
    with pytest.raises(CardError, match=r"\[discrepancy\] split_correlation: give a number from 0 .* but got 1.5"):
        parse_card(text + '\n[discrepancy]\ndist = "HalfNormal"\nkwargs = { scale = 0.01 }\nsplit_correlation = 1.5\n')
    card = parse_card(text + '\n[discrepancy]\ndist = "HalfNormal"\nkwargs = { scale = 0.01 }\nsplit_correlation = 0.25\n')
    assert card.discrepancy is not None and card.discrepancy.split_correlation == 0.25
    assert parse_card(card.to_toml()).discrepancy == card.discrepancy


def test_allocated_loss_carries_the_discrepancy_beyond_the_data_only(plain_fit, wide_fit):
    c_max = float(plain_fit.runs["flops"].max())
    plain, wide = plain_fit.allocate([c_max / 10, c_max * 1e4]), wide_fit.allocate([c_max / 10, c_max * 1e4])
    width = lambda t: (t["loss_opt_hi"] - t["loss_opt_lo"]).to_numpy()  # noqa: E731
    assert width(wide)[0] == pytest.approx(width(plain)[0], rel=1e-12)
    assert width(wide)[1] > 1.5 * width(plain)[1]
    assert wide["params_opt"].equals(plain["params_opt"])


def test_marginal_likelihood_equals_the_multivariate_normal_it_stands_for():
    rng = np.random.default_rng(0)
    d = np.array([0.3, 0.8, 1.5, 2.0])
    draws = 0.002 * rng.standard_normal((400, 1)) * d + 0.012 * d + 0.004 * rng.standard_normal((400, 4))
    noise = 0.01**2
    grid = np.linspace(0.0, 0.05, 31)
    got = marginal_log_likelihood(draws, noise, d, grid)
    cov = np.cov(draws, rowvar=False) + noise * np.eye(4)
    want = [stats.multivariate_normal(np.zeros(4), cov + t**2 * np.outer(d, d)).logpdf(draws.mean(0)) for t in grid]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # residuals that grow with distance favour a tau near the slope that made them
    assert 0.004 < grid[np.argmax(got)] < 0.03
    flat = marginal_log_likelihood(draws - draws.mean(0), noise, d, grid)
    assert np.argmax(flat) == 0


def test_split_correlation_reads_held_out_runs_as_shared_independent_or_a_mix():
    rng = np.random.default_rng(1)
    g = np.sqrt(rng.uniform(0.3, 2.0, 12))
    draws = 0.002 * rng.standard_normal((300, 12)) + 0.01 * g * rng.standard_normal(12)
    noise = 0.004**2
    grid = np.linspace(0.0, 0.05, 201)
    mean, cov = draws.mean(0), np.cov(draws, rowvar=False) + noise * np.eye(12)
    for rho in (0.0, 0.5, 0.99):
        got = marginal_log_likelihood(draws, noise, g, grid, correlation=rho)
        mixed = rho * np.outer(g, g) + (1 - rho) * np.diag(g * g)
        want = [stats.multivariate_normal(np.zeros(12), cov + t**2 * mixed).logpdf(mean) for t in grid]
        # exact at its own points, a cubic spline in tau² between them
        np.testing.assert_allclose(got, want, atol=0.01)
    # twelve independent departures of scale 0.01 pin tau far more tightly than one shared slope can
    def width(ll):
        w = np.exp(ll - ll.max())
        w /= w.sum()
        return float(np.sqrt(w @ grid**2 - (w @ grid) ** 2)), float(w @ grid)
    sd_indep, mean_indep = width(marginal_log_likelihood(draws, noise, g, grid, correlation=0.0))
    sd_shared, _ = width(marginal_log_likelihood(draws, noise, g, grid))
    assert 0.006 < mean_indep < 0.015
    assert sd_indep < 0.5 * sd_shared
    with pytest.raises(ValueError, match="correlation"):
        marginal_log_likelihood(draws, noise, g, grid, correlation=-0.1)


def test_tau_grid_spans_the_prior():
    grid = tau_grid(Prior("HalfNormal", {"scale": 0.01}))
    assert grid[0] == 0 and np.all(np.diff(grid) > 0)
    assert grid[-1] == pytest.approx(0.01 * stats.halfnorm.ppf(0.9995), rel=0.05)


@pytest.mark.slow
def test_learnt_tau_shrinks_when_the_law_is_exact_and_grows_when_it_bends(example_runs):
    card = load_card("chinchilla")
    prior_mean = 0.02 * np.sqrt(2 / np.pi)
    card = card.with_discrepancy(dataclasses.replace(card.discrepancy, prior=Prior("HalfNormal", {"scale": 0.02})))
    exact = calibrate_tau(card, example_runs, seed=0)
    assert all("tau_mle" in s for s in exact.splits)
    assert exact.weights.sum() == pytest.approx(1.0)
    assert exact.mean() < 0.6 * prior_mean
    # A law that bends beyond 4e20 FLOPs: loss rises by 3% per e-fold of compute past it.
    bend = np.maximum(0.0, np.log(example_runs["flops"] / 4e20))
    bent_runs = example_runs.assign(loss=example_runs["loss"] * np.exp(0.03 * bend))
    bent_runs.attrs = dict(example_runs.attrs)
    bent = calibrate_tau(card, bent_runs, seed=0)
    assert bent.mean() > 2 * exact.mean()
    assert bent.quantile(0.9) >= 0.01


def test_fit_stores_tau_and_slope_draws_of_a_discrepancy_card(small_fit):
    fit = small_fit  # the default card (chinchilla, with a discrepancy), 4 chains x 500 draws
    assert fit.posterior[SLOPE].shape == (4, 500) and fit.posterior[TAU].shape == (4, 500)
    assert fit.extra["discrepancy"]["tau_source"] == "misfit + leave-future-out"
    assert np.all(np.asarray(fit.posterior[TAU]) >= 0)
    assert SLOPE not in fit.summary().index


def _design(spacing: float = 0.3, side: int = 12) -> np.ndarray:
    """A square grid of runs in (ln N, ln D), ``spacing`` e-folds apart."""
    axis = np.arange(side) * spacing
    return np.array([(20.0 + a, 23.0 + b) for a in axis for b in axis])


def test_misfit_likelihood_is_the_gaussian_process_marginal_averaged_over_its_grids():
    rng = np.random.default_rng(1)
    coords = _design(0.5, 4)
    resid = 0.003 * rng.standard_normal(len(coords)) + 0.004 * np.sin(coords[:, 0])
    amplitudes = np.array([0.0, 0.002, 0.01])
    got, (lo, hi) = misfit_log_likelihood(resid, coords, amplitudes)
    # twice the neighbours' distance (0.5 e-folds); half the span (0.75) is below that, so twice the lower end
    assert (lo, hi) == (pytest.approx(1.0), pytest.approx(2.0))
    sq = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    sd = resid.std()
    want = []
    for eta in amplitudes:
        terms = [stats.multivariate_normal(np.zeros(len(resid)),
                                           eta**2 * np.exp(-0.5 * sq / ell**2) + s**2 * np.eye(len(resid)),
                                           allow_singular=True).logpdf(resid)
                 for ell in np.geomspace(lo, hi, MISFIT_LENGTHS)
                 for s in np.geomspace(0.1 * sd, 2 * sd, MISFIT_NOISES)]
        want.append(np.log(np.mean(np.exp(np.array(terms) - max(terms)))) + max(terms))
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_misfit_likelihood_finds_no_misfit_in_noise_and_the_amplitude_of_a_smooth_one():
    rng = np.random.default_rng(0)
    coords = _design()
    noise = 0.004 * rng.standard_normal(len(coords))
    grid = np.linspace(0.0, 0.05, 201)
    flat, _ = misfit_log_likelihood(noise, coords, grid)
    assert grid[np.argmax(flat)] < 0.001
    # a smooth misfit of amplitude ~0.01 over about one e-fold
    bump = 0.01 * np.sin(coords[:, 0] - 20.0) * np.cos(0.8 * (coords[:, 1] - 23.0))
    bumpy, _ = misfit_log_likelihood(noise + bump, coords, grid)
    rms = float(np.sqrt(np.mean(bump**2)))                      # ~0.005
    assert 0.5 * rms < grid[np.argmax(bumpy)] < 3 * rms
    assert bumpy.max() - bumpy[0] > 10  # decisive evidence against "no misfit"


@pytest.mark.slow
def test_tau_shrinks_when_the_law_fits_its_runs_and_not_when_it_misses_them(example_runs, small_fit):
    # example_runs follow the Chinchilla law exactly (plus noise): the fit's residuals carry no misfit.
    exact = small_fit
    info = exact.extra["discrepancy"]
    prior_mean = exact.card.discrepancy.prior.kwargs["scale"] * np.sqrt(2 / np.pi)
    assert info["misfit"]["amplitude_mle"] < 0.002
    # the runs near the frontier (misfit_window) and the two leave-future-out splits both pull tau down
    assert info["tau_mean"] < 0.8 * prior_mean and info["tau_mean"] < 0.004, info
    # The same runs with a smooth 1.5% misfit in ln N (a law of the wrong shape):
    log_n = np.log(example_runs["params"].to_numpy(float))
    wavy = example_runs.assign(loss=example_runs["loss"] * np.exp(0.015 * np.sin(2.0 * (log_n - log_n.min()))))
    wavy.attrs = dict(example_runs.attrs)
    missed = bs.fit(wavy, chains=2, warmup=200, draws=200, seed=0).extra["discrepancy"]
    assert missed["misfit"]["amplitude_mle"] > 0.005
    # tau rises, but little: the cross-table prior (HalfNormal(0.005)) and the leave-future-out splits,
    # which see no drift from a periodic misfit, hold it near the prior (1.08x measured; 1.7x with the
    # earlier prior 0.01). docs/calibration.md lists this among the limits.
    assert missed["tau_mean"] > info["tau_mean"], (missed, info)


@pytest.mark.slow
@pytest.mark.real_data
def test_real_table_misses_its_law_where_the_same_design_from_the_exact_law_does_not(chinchilla_runs, chinchilla_fit):
    from bayes_scaling.simulate import EXAMPLE_TRUTH, chinchilla_loss

    real = chinchilla_fit.extra["discrepancy"]
    # the Chinchilla reconstruction has smooth residual structure of ~0.7% the law cannot absorb
    assert real["misfit"]["amplitude_mle"] > 0.004
    # ~0.01 as at the backtest's cutoffs: long-scale departures (weakly identified) do not inflate it to 0.03
    assert 0.005 < real["tau_mean"] < 0.02
    # the same 240 (N, D), losses from the Besiroglu et al. law with 0.4% noise: no misfit
    law = chinchilla_loss(chinchilla_runs["params"].to_numpy(float), chinchilla_runs["tokens"].to_numpy(float),
                          EXAMPLE_TRUTH)
    noise = np.exp(0.004 * np.random.default_rng(0).standard_normal(len(law)))
    exact_runs = bs.load_runs(chinchilla_runs[["params", "tokens", "flops"]].assign(loss=law * noise))
    exact = bs.fit(exact_runs, chains=2, warmup=200, draws=200, seed=0).extra["discrepancy"]
    assert exact["misfit"]["amplitude_mle"] < 0.003, (exact, real)
    assert exact["tau_mean"] < 0.5 * real["tau_mean"], (exact, real)


def test_misfit_of_a_large_table_uses_the_residuals_of_its_subsample_only(small_fit, monkeypatch):
    import bayes_scaling.discrepancy_evidence as disc
    from bayes_scaling.model import covariates

    card = dataclasses.replace(small_fit.card, discrepancy=Discrepancy(Prior("HalfNormal", {"scale": 0.015}),
                                                                       misfit_ratio=1.3))
    runs, grid = small_fit.runs, np.linspace(0.0, 0.05, 51)
    monkeypatch.setattr(disc, "MAX_MISFIT_ROWS", 40)
    got, record = disc.misfit_record(card, small_fit.posterior, runs, grid, seed=5)
    assert record["n_runs"] == 40 < len(runs)
    # the same as residuals of every run, then the same subsample
    whole = disc.law_residuals(card, small_fit.posterior, covariates(runs, card), np.log(runs["loss"].to_numpy(float)))
    rows = np.sort(np.random.default_rng(5).choice(len(runs), 40, replace=False))
    coords = np.log(runs[["params", "tokens"]].to_numpy(float))[rows]
    want, _ = disc.misfit_log_likelihood(whole[rows], coords, grid / 1.3)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert whole.shape == (len(runs),) and abs(np.median(whole)) < 0.01


def test_attach_with_a_misfit_ratio_learns_tau_from_the_residuals_and_survives_save(plain_fit, tmp_path):
    fit = attach(plain_fit, Prior("HalfNormal", {"scale": 0.015}), misfit_ratio=1.3, seed=4)
    info = fit.extra["discrepancy"]
    assert info["tau_source"] == "misfit" and info["splits"] == []
    assert info["misfit"]["n_runs"] == len(plain_fit.runs) and info["misfit"]["ratio"] == 1.3
    # the example runs follow the law: tau well below its prior mean (0.012)
    assert info["tau_mean"] < 0.004
    back = bs.Fit.load(fit.save(tmp_path / "misfit.nc"))
    assert back.card.discrepancy.misfit_ratio == 1.3
    assert back.extra["discrepancy"]["misfit"] == info["misfit"]
