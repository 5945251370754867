"""The default fit on small tables: it passes the diagnostics gate, running longer when it must."""

from __future__ import annotations

import warnings

import pytest

import bayes_scaling as bs
from bayes_scaling.errors import ConvergenceWarning

from .conftest import real_data_path
from .small_tables import SHARED_DATA, SMALL_TABLES


def _default_fit_passes_the_gate(runs):
    with warnings.catch_warnings():
        # An extension run warns (ConvergenceWarning) and is recorded; the gate is what counts.
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bs.fit(runs, seed=0)
    diag = fit.diagnostics()
    assert not diag.has_errors, (diag.messages, fit.extra.get("sampler"))
    assert diag.max_rhat < 1.01 and diag.min_ess_bulk >= 400 and diag.divergences == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["generated-35", "generated-32"])
def test_default_fit_of_a_small_generated_table_passes_the_gate(name):
    _default_fit_passes_the_gate(SMALL_TABLES[name]())


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize("name", ["porian-rw-32", "porian-owt2-32"])
def test_default_fit_of_a_small_real_table_passes_the_gate(name):
    real_data_path(SHARED_DATA / "porian_isoflop.csv")
    _default_fit_passes_the_gate(SMALL_TABLES[name]())


def test_a_failing_fit_is_run_again_and_says_so(example_runs, monkeypatch):
    # Force a failing gate: the fit warns, runs again from its chains' last states and records it.
    from bayes_scaling import sampling
    from bayes_scaling.diagnostics import Diagnostics

    verdicts = iter([Diagnostics(True, ["R-hat of A is 1.02 (≥ 1.01)"], max_rhat=1.02),
                     Diagnostics(False, [], max_rhat=1.0)])
    monkeypatch.setattr(sampling, "_gate", lambda *args: next(verdicts))
    with pytest.warns(ConvergenceWarning, match="running it again"):
        fit = bs.fit(example_runs, "chinchilla-plain", chains=2, warmup=100, draws=500, seed=0)
    assert fit.extra["sampler"] == {"extended_because": [["R-hat of A is 1.02 (≥ 1.01)"]], "runs": 2,
                                    "draws_per_chain": 1000, "passed": True}
    assert fit.posterior.sizes["draw"] == 1000
