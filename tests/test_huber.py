import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.huber import fit_huber


def test_approach3_recovers_the_truth_on_noiseless_data():
    runs = bs.load_runs(bs.simulate_runs(seed=0, noise=0.0))
    result = fit_huber(runs)
    for name, value in bs.EXAMPLE_TRUTH.items():
        assert result.point[name] == pytest.approx(value, rel=1e-3), name


def test_bootstrap_refits_converge_and_bracket_the_truth(example_runs):
    result = fit_huber(example_runs, bootstrap=20, seed=1)
    assert len(result.bootstrap) == 20
    assert result.converged_fraction >= 0.95
    lo, hi = result.bootstrap[["alpha", "beta"]].quantile([0.01, 0.99]).to_numpy()
    assert lo[0] < bs.EXAMPLE_TRUTH["alpha"] < hi[0]
    assert lo[1] < bs.EXAMPLE_TRUTH["beta"] < hi[1]
    # Intervals must not collapse (the symptom of L-BFGS stopping early at default tolerances).
    assert result.bootstrap["alpha"].std() > 1e-3


def test_bootstrap_refits_reach_the_optimum_of_an_independent_tighter_fit(example_runs):
    # Redraw the resamples as fit_huber does, and refit a sample of them from scratch, on the resampled
    # table itself: grid, then L-BFGS-B from its 4 best points with a 100x tighter tolerance.
    result = fit_huber(example_runs, bootstrap=40, seed=3)
    assert result.bootstrap["converged"].all()
    rng = np.random.default_rng(3)
    n = len(example_runs)
    rows = [rng.integers(0, n, n) for _ in range(40)]
    for i in range(0, 40, 13):
        tight = fit_huber(example_runs.iloc[rows[i]], n_best=4, gtol=1e-11).point
        refit = result.bootstrap.iloc[i]
        for name in ("E", "alpha", "beta"):
            assert refit[name] == pytest.approx(tight[name], rel=1e-6), (i, name)
        for name in ("A", "B"):
            assert np.log(refit[name]) == pytest.approx(np.log(tight[name]), abs=1e-5), (i, name)


@pytest.mark.real_data
def test_approach3_reproduces_the_published_refit_on_the_chinchilla_table(chinchilla_runs):
    result = fit_huber(chinchilla_runs)
    published = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
    for name in ("E", "alpha", "beta"):
        assert result.point[name] == pytest.approx(published[name], rel=0.01), name
    for name in ("A", "B"):
        assert np.log(result.point[name]) == pytest.approx(np.log(published[name]), abs=0.1), name
