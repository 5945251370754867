"""Repeated runs (issue #17, item 5): the replicate column, cells, and the recovery of run-to-run noise."""

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.errors import InputError, RunTableError
from bayes_scaling.replicates import fit_replicates, replicate_cells
from bayes_scaling.simulate import simulate_runs

from .real_tables import olmo_ladder

SIGMA_RUN, SIGMA_MISFIT = 0.006, 0.012


def replicated_runs(seed=0, replicates=3):
    """An IsoFLOP grid whose every (N, D) has a misfit shared by its seeds and seed noise of its own."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell in simulate_runs(seed, noise=0.0, sizes_per_budget=3).itertuples():
        shared = SIGMA_MISFIT * rng.standard_normal()
        for r in range(replicates):
            rows.append({"params": cell.params, "tokens": cell.tokens, "replicate": f"seed{r}",
                         "loss": cell.loss * np.exp(shared + SIGMA_RUN * rng.standard_normal())})
    return pd.DataFrame(rows)


def test_cells_hold_the_mean_and_within_sum_of_squares():
    runs = bs.load_runs(replicated_runs())
    cells = replicate_cells(runs)
    assert len(cells) == 21 and (cells["n"] == 3).all()
    first = np.log(runs.loc[(runs["params"] == cells["params"][0]) & (runs["tokens"] == cells["tokens"][0]), "loss"])
    assert cells["mean_log_loss"][0] == pytest.approx(first.mean())
    assert cells["ss"][0] == pytest.approx(((first - first.mean()) ** 2).sum())
    assert cells["spread"][0] == pytest.approx(first.std(ddof=1))


def test_run_table_refuses_a_repeated_or_empty_replicate_label():
    table = replicated_runs()
    table.loc[1, "replicate"] = "seed0"
    with pytest.raises(RunTableError, match=r"repeat the params, tokens and replicate.*index labels 1.*'replicate'"):
        bs.load_runs(table)
    table = replicated_runs()
    table.loc[4, "replicate"] = ""
    with pytest.raises(RunTableError, match=r"index 4, column 'replicate' is empty"):
        bs.load_runs(table)


def test_replicate_model_needs_repeated_runs_and_an_unpooled_card():
    single = bs.load_runs(simulate_runs(0))
    with pytest.raises(RunTableError, match="no \\(N, D\\) has two runs"):
        fit_replicates(single)
    with pytest.raises(InputError, match="unpooled"):
        fit_replicates(bs.load_runs(replicated_runs()), "hierarchical")


def test_replicate_model_recovers_known_run_to_run_noise():
    fit = fit_replicates(bs.load_runs(replicated_runs(seed=3)), chains=2, warmup=400, draws=400, seed=0)
    summary = fit.summary(0.9)
    assert summary.loc["sigma_run", "lo"] < SIGMA_RUN < summary.loc["sigma_run", "hi"]
    # 21 cells pin the misfit scale less well (its realised spread varies ~15% by seed): within 1.5x
    assert SIGMA_MISFIT / 1.5 < summary.loc["sigma_misfit", "median"] < SIGMA_MISFIT * 1.5
    assert (summary["r_hat"] < 1.05).all() and fit.divergences == 0
    check = fit.rerun_check(0.9)
    assert len(check) == 21 and check["covered"].mean() >= 0.7


@pytest.mark.slow
def test_olmo_ladder_reruns_are_consistent_with_the_replicate_model():
    runs = olmo_ladder()
    if runs is None:
        pytest.skip("shared OLMo ladder data absent")
    runs = runs.assign(replicate=np.where(runs["name"].str.endswith("-rerun"), "seed2", "seed1"))
    fit = fit_replicates(bs.load_runs(runs), chains=2, warmup=500, draws=500, seed=0)
    check = fit.rerun_check(0.9)
    assert len(check) == 5  # the five rungs' 1xC runs, each rerun once
    assert check["covered"].sum() >= 4
    observed = np.sqrt(np.mean(check["spread"] ** 2))  # |y1 - y2| / sqrt(2): an estimate of sigma_run
    summary = fit.summary(0.9)
    assert summary.loc["sigma_run", "lo"] < observed < summary.loc["sigma_run", "hi"]
