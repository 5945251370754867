"""Repeated runs (issue #17, item 5): the replicate column, cells, and the recovery of run-to-run noise."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density
from scipy import stats

import bayes_scaling as bs
from bayes_scaling import nuts
from bayes_scaling.diagnostics import RHAT_MAX, Diagnostics
from bayes_scaling.errors import InputError, RunTableError
from bayes_scaling.model import sampler_values
from bayes_scaling.replicate_model import build_replicate_model
from bayes_scaling.replicates import fit_replicates, replicate_cells
from bayes_scaling.simulate import simulate_runs

from .real_tables import olmo_ladder
from .test_nuts import CompileCounter

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


def test_padded_replicate_model_is_the_joint_gaussian_density_of_the_runs():
    # Over padded, masked cells the model's likelihood is that of every run, the cell effect
    # integrated out: per cell, Normal(law, sigma_run^2 I + sigma_misfit^2 11^T), less the
    # constant -ln(n_c) / 2 the model leaves out.
    runs = bs.load_runs(replicated_runs(seed=5).iloc[:-1])  # the last cell has two runs, the others three
    card = bs.load_card("chinchilla")
    cells = replicate_cells(runs)
    x = {"log_params": np.log(cells["params"].to_numpy(float)), "log_tokens": np.log(cells["tokens"].to_numpy(float)),
         "n": cells["n"].to_numpy(float), "ss": cells["ss"].to_numpy(float)}
    rows = nuts.padded_rows(len(cells))
    px, pmean = nuts.pad_table(x, cells["mean_log_loss"].to_numpy(float), rows)
    theta = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}
    params = sampler_values(card, {**theta, "sigma_run": 0.006, "sigma_misfit": 0.012})
    model = build_replicate_model(card)

    def log_joint(mask):
        args = ({k: jnp.asarray(v) for k, v in px.items()}, jnp.asarray(pmean), jnp.asarray(mask))
        return float(log_density(model, args, {}, params)[0])

    likelihood = log_joint(np.arange(rows) < len(cells)) - log_joint(np.zeros(rows, bool))
    law = card.law.log_loss(theta, {"log_params": np.log(runs["params"].to_numpy(float)),
                                    "log_tokens": np.log(runs["tokens"].to_numpy(float))})
    expected = 0.0
    for _, index in runs.groupby(["params", "tokens"]).indices.items():
        n = len(index)
        cov = 0.006**2 * np.eye(n) + 0.012**2 * np.ones((n, n))
        expected += stats.multivariate_normal.logpdf(np.log(runs["loss"].to_numpy(float)[index]), law[index], cov)
        expected += 0.5 * np.log(n)
    assert likelihood == pytest.approx(expected, rel=1e-10)


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


def test_replicate_fit_reports_the_gate_and_reuses_its_compiled_program():
    # The replicate model is a block of the compiled NUTS program: its statistics are the
    # package's (convergence_stats, judged by the one gate), and a second table of the same
    # cell-count bucket runs the same program, compiling nothing.
    options = {"chains": 2, "warmup": 150, "draws": 150}
    first = fit_replicates(bs.load_runs(replicated_runs(seed=1)), seed=0, **options)
    assert set(first.stats["variables"]) == {"E", "A", "B", "alpha", "beta", "sigma_run", "sigma_misfit"}
    assert first.stats["chains"] == 2 and first.divergences == first.stats["divergences"]
    summary = first.summary(0.9)
    for name in ("sigma_run", "sigma_misfit"):
        assert summary.loc[name, "r_hat"] == first.stats["variables"][name]["r_hat"]
        assert summary.loc[name, "ess_bulk"] == first.stats["variables"][name]["ess_bulk"]
    diagnostics = first.diagnostics
    assert isinstance(diagnostics, Diagnostics)
    assert diagnostics.max_rhat == pytest.approx(summary["r_hat"].max())
    assert diagnostics.has_errors == (diagnostics.max_rhat >= RHAT_MAX or diagnostics.min_ess_bulk < 400
                                      or diagnostics.divergences > 0 or diagnostics.max_tree_depth_hits > 0)
    programs = nuts.program_count()
    counter = CompileCounter()
    with counter:
        second = fit_replicates(bs.load_runs(replicated_runs(seed=2, replicates=2)), seed=1, **options)
    assert counter.names == [] and nuts.program_count() == programs
    assert second.draws["sigma_run"].shape == (2, 150)


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
