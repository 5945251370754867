"""Risk criteria: analytic values, validation when made, and parsing of CLI strings."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.risk import cvar, expected, parse_risk, quantile


def test_criteria_reduce_the_draws_axis_to_known_values() -> None:
    losses = np.column_stack([np.arange(1.0, 101.0), 2 * np.arange(1.0, 101.0)])  # (100 draws, 2 plans)
    np.testing.assert_allclose(expected()(losses), [50.5, 101.0])
    np.testing.assert_allclose(quantile(0.9)(losses), np.quantile(losses, 0.9, axis=0))
    np.testing.assert_allclose(cvar(0.9)(losses), [95.5, 191.0])  # mean of the 10 worst draws


def test_cvar_is_at_least_the_quantile_which_is_at_least_the_median() -> None:
    losses = np.random.default_rng(0).lognormal(size=(1000, 5))
    assert (cvar(0.9)(losses) >= quantile(0.9)(losses)).all()
    assert (quantile(0.9)(losses) >= quantile(0.5)(losses)).all()


def test_cvar_of_a_tiny_tail_keeps_the_worst_draw() -> None:
    assert cvar(0.999)(np.array([1.0, 3.0, 2.0])) == 3.0


@pytest.mark.parametrize("factory", [quantile, cvar])
@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1, "0.9", float("nan")])
def test_factories_validate_their_level_when_made(factory, level) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match=r"\(0, 1\)"):
        factory(level)


@pytest.mark.parametrize(("text", "label"), [("mean", "mean"), ("expected", "mean"), ("quantile:0.9", "quantile:0.9"),
                                             ("CVaR:0.95", "cvar:0.95"), (" cvar:0.9 ", "cvar:0.9")])
def test_parse_risk_reads_cli_strings(text: str, label: str) -> None:
    assert parse_risk(text).label == label


@pytest.mark.parametrize("text", ["median", "cvar", "quantile:", "cvar:high", "cvar:1.2", "mean:0.5"])
def test_parse_risk_rejects_bad_strings(text: str) -> None:
    with pytest.raises(InputError):
        parse_risk(text)
