"""Extrapolation distance and the discrepancy it scales: one formula, numpy or JAX, used by every answer."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.decisions import as_posterior
from bayes_scaling.discrepancy import (
    DIRECTIONS,
    FittedRegion,
    extrapolation_distance,
    fitted_max_log_compute,
    fitted_region,
    with_discrepancy,
)
from bayes_scaling.fitfile import FitArrays

LOG_C_MAX = math.log(6e21)


def test_distance_is_zero_inside_the_data_and_e_folds_of_compute_beyond():
    log_n, log_d = np.log([1e9, 1e10, 1e11]), np.log([1e11, 1e11, 1e12])  # C = 6e20, 6e21, 6e23
    np.testing.assert_allclose(extrapolation_distance(LOG_C_MAX, log_n, log_d), [0.0, 0.0, math.log(100)],
                               atol=1e-12)
    on_jax = extrapolation_distance(LOG_C_MAX, jnp.asarray(log_n), jnp.asarray(log_d))
    assert isinstance(on_jax, jax.Array)
    np.testing.assert_allclose(np.asarray(on_jax), extrapolation_distance(LOG_C_MAX, log_n, log_d), rtol=1e-15)


def test_discrepancy_adds_slope_times_root_distance_and_nothing_without_a_slope():
    log_loss = np.zeros((2, 3))
    log_n, log_d = np.log([1e9, 1e10, 1e11]), np.log([1e11, 1e11, 1e12])
    region = FittedRegion(LOG_C_MAX)
    assert with_discrepancy(log_loss, None, region, log_n, log_d) is log_loss
    shifted = with_discrepancy(log_loss, np.array([[0.1], [-0.2]]), region, log_n, log_d)
    # variance tau² d: the shift is slope × √d, d = ln 100 e-folds beyond the largest run
    np.testing.assert_allclose(shifted[:, 2], [0.1 * math.sqrt(math.log(100)), -0.2 * math.sqrt(math.log(100))],
                               rtol=1e-12)
    np.testing.assert_array_equal(shifted[:, :2], 0.0)


def test_fitted_max_log_compute_is_that_of_the_largest_run():
    assert fitted_max_log_compute({"flops": [1e20, 6e21, 3e21]}) == pytest.approx(LOG_C_MAX, rel=1e-15)


def test_distance_counts_every_direction_beyond_the_runs():
    # fitted runs: N up to 1e9, D up to 1e11, C up to 6e20
    region = FittedRegion.of_runs(np.log([1e8, 1e9]), np.log([1e11, 1e11]))
    assert region.log_compute == pytest.approx(math.log(6e20))
    # a 10x larger model on 10x fewer tokens: compute inside, but 1 e-fold of ln 10 beyond in N
    assert float(region.distance(np.log(1e10), np.log(1e10))) == pytest.approx(math.log(10))
    # 100x more tokens of the largest model: ln 100 beyond in D and in C alike
    assert float(region.distance(np.log(1e9), np.log(1e13))) == pytest.approx(math.log(100))
    # inside in every direction
    assert float(region.distance(np.log(5e8), np.log(5e10))) == 0.0
    # counting compute only, the larger model at fixed compute is inside
    compute_only = FittedRegion.of_runs(np.log([1e8, 1e9]), np.log([1e11, 1e11]), ("compute",))
    assert float(compute_only.distance(np.log(1e10), np.log(1e10))) == 0.0
    with pytest.raises(ValueError, match="directions"):
        FittedRegion.of_runs(np.log([1e8]), np.log([1e11]), ("width",))


def test_fitted_region_counts_parameters_as_the_fit_does():
    data = {"flops": np.array([6e20]), "params": np.array([1.5e9]), "tokens": np.array([1e11]),
            "embedding_params": np.array([0.5e9])}
    total, non_embedding = fitted_region(data, DIRECTIONS), fitted_region(data, DIRECTIONS, "non_embedding")
    assert total.log_params == pytest.approx(math.log(1.5e9))
    assert non_embedding.log_params == pytest.approx(math.log(1e9))
    assert fitted_region(data).log_params == math.inf  # compute only: N not counted


def test_decisions_judge_the_law_with_the_fits_discrepancy():
    card = bs.load_card("chinchilla")
    rng = np.random.default_rng(0)
    theta = {k: np.full((2, 50), v) for k, v in bs.EXAMPLE_TRUTH.items()}
    slope = rng.normal(0, 0.05, (2, 50))
    arrays = FitArrays(card, {**theta, "sigma": np.full((2, 50), 0.01), "discrepancy_slope": slope},
                       {"flops": np.array([1e20, 6e21]), "params": np.array([1e9, 5e10]),
                        "tokens": np.array([1.7e10, 2e10])}, [], {"method": "nuts"})
    post = as_posterior(arrays)
    log_n, log_d = np.log([1e9, 7e10]), np.log([2e10, 1.4e12])
    law = card.law.log_loss({k: v.reshape(-1, 1) for k, v in theta.items()},
                            {"log_params": log_n, "log_tokens": log_d})
    # the default card counts every direction: compute, and here also tokens beyond the longest run
    distance = np.maximum.reduce([np.maximum(0.0, np.log(6 * np.exp(log_n + log_d)) - LOG_C_MAX),
                                  log_n - np.log(5e10), log_d - np.log(2e10)])
    assert distance[0] == 0 and distance[1] > 4
    np.testing.assert_allclose(post.log_loss(log_n, log_d), law + slope.reshape(-1, 1) * np.sqrt(distance),
                               rtol=1e-12)
    assert post.take(np.arange(10)).slope.shape == (10,) and post.median().slope.shape == (1,)
