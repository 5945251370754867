import numpy as np
import pytest
from scipy import stats

from bayes_scaling import metrics
from bayes_scaling.errors import InputError

#: 1, 2, ..., 100 as the predictive draws of each of four runs.
GRID = np.tile(np.arange(1.0, 101.0)[:, None], (1, 4))


def test_coverage_counts_observations_inside_the_central_interval():
    # 90% interval of 1..100: [5.95, 95.05]; 50%: [25.75, 75.25].
    observed = np.array([50.0, 6.0, 97.0, 99.5])
    assert metrics.coverage(GRID, observed, 0.9) == 0.5
    assert metrics.coverage(GRID, observed, 0.5) == 0.25
    np.testing.assert_array_equal(metrics.covered(GRID, observed, 0.9), [True, True, False, False])


def test_calibrated_forecast_lies_on_the_diagonal():
    # Observations at evenly spread quantiles of the predictive distribution: coverage = level.
    draws = np.tile(stats.norm.ppf((np.arange(4000) + 0.5) / 4000)[:, None], (1, 400))
    observed = stats.norm.ppf((np.arange(400) + 0.5) / 400)
    curve = metrics.calibration_curve(draws, observed)
    np.testing.assert_allclose(curve["coverage"], curve["level"], atol=5e-3)
    pit = metrics.pit(draws, observed)
    np.testing.assert_allclose(np.sort(pit), (np.arange(400) + 0.5) / 400, atol=5e-4)


def test_crps_matches_the_closed_form_for_a_normal_forecast():
    draws = np.tile(stats.norm.ppf((np.arange(20000) + 0.5) / 20000)[:, None], (1, 3))
    y = np.array([0.0, 1.0, -2.5])
    exact = y * (2 * stats.norm.cdf(y) - 1) + 2 * stats.norm.pdf(y) - 1 / np.sqrt(np.pi)
    np.testing.assert_allclose(metrics.crps(draws, y), exact, atol=1e-4)


def test_crps_equals_the_pairwise_definition_and_a_point_forecast_gives_the_absolute_error():
    rng = np.random.default_rng(0)
    draws, y = rng.gamma(2.0, size=(50, 3)), np.array([0.3, 2.0, 7.0])
    naive = np.abs(draws - y).mean(0) - 0.5 * np.abs(draws[:, None, :] - draws[None, :, :]).mean((0, 1))
    np.testing.assert_allclose(metrics.crps(draws, y), naive, rtol=1e-12)
    np.testing.assert_allclose(metrics.crps(np.full((10, 2), 3.0), np.array([1.0, 4.5])), [2.0, 1.5])


def test_log_predictive_density_averages_densities_not_logs():
    log_density = np.log(np.array([[0.2, 1.0], [0.6, 1.0]]))
    np.testing.assert_allclose(metrics.log_predictive_density(log_density), np.log([0.4, 1.0]))


def test_shapes_and_levels_are_checked():
    with pytest.raises(InputError, match="shape"):
        metrics.crps(np.ones((5, 3)), np.ones(2))
    with pytest.raises(InputError, match="level must be in the interval"):
        metrics.coverage(GRID, np.ones(4), 1.5)
