"""The h5py reader of saved fits gives what Fit.load gives; stored convergence statistics equal recomputed ones."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_scaling as bs
from bayes_scaling.diagnostics import convergence_stats
from bayes_scaling.errors import FitFileError
from bayes_scaling.fitfile import CONVERGENCE_ATTR, read_fit
from bayes_scaling.fitted import Fit, build_datatree
from bayes_scaling.model import covariates
from tests.lawdata import GROUP_TRUTH, two_group_runs


def synthetic_fit(card_name: str, runs: pd.DataFrame, posterior: dict[str, np.ndarray]) -> Fit:
    """A Fit holding given draws (no sampling), as ``bs.fit`` would build it."""
    card = bs.load_card(card_name)
    tree = build_datatree(card, runs, covariates(runs, card), np.log(runs["loss"].to_numpy()), posterior, None,
                          seed=0)
    return Fit(tree, card=card, method="nuts", seed=0, elapsed_s=0.0)


def pooled_draws(card: bs.ModelCard, chains: int = 2, draws: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior-like draws of every site of the centred hierarchical card, groups "a" and "b"."""
    rng = np.random.default_rng(seed)
    out = {"alpha": 0.35 + 0.01 * rng.standard_normal((chains, draws)),
           "beta": 0.37 + 0.01 * rng.standard_normal((chains, draws)),
           "sigma": 0.01 * np.exp(0.1 * rng.standard_normal((chains, draws)))}
    for p in card.pooling.parameters:
        truth = np.log([GROUP_TRUTH[g][p] for g in ("a", "b")])
        out[card.pooling.latent(p)] = truth + 0.05 * rng.standard_normal((chains, draws, 2))
        out[p] = np.exp(out[card.pooling.latent(p)])
        out[f"mu_log_{p}"] = truth.mean() + 0.1 * rng.standard_normal((chains, draws))
        out[f"tau_log_{p}"] = np.exp(-2 + 0.1 * rng.standard_normal((chains, draws)))
    if isinstance(card.nu, bs.Prior):
        out["nu"] = 5 * np.exp(0.1 * rng.standard_normal((chains, draws)))
    return out


@pytest.fixture(scope="module")
def saved_fit(small_fit, tmp_path_factory):
    return small_fit.save(tmp_path_factory.mktemp("fitfile") / "fit.nc")


@pytest.fixture(scope="module")
def pooled_file(tmp_path_factory):
    card = bs.load_card("hierarchical")
    fit = synthetic_fit("hierarchical", bs.load_runs(two_group_runs(seed=2)), pooled_draws(card))
    return fit.save(tmp_path_factory.mktemp("fitfile") / "pooled.nc")


def assert_same_arrays(path):
    fast, slow = read_fit(path), Fit.load(path).arrays
    assert fast.card == slow.card
    assert fast.groups == slow.groups
    assert set(fast.posterior) == set(slow.posterior)
    for name, values in slow.posterior.items():
        assert fast.posterior[name].shape == values.shape, name
        np.testing.assert_array_equal(fast.posterior[name], values, err_msg=name)
    assert set(fast.constant_data) == set(slow.constant_data)
    for name, values in slow.constant_data.items():
        assert fast.constant_data[name].tolist() == values.tolist(), name
    assert fast.attrs.keys() == slow.attrs.keys()
    for key, value in slow.attrs.items():
        assert fast.attrs[key] == value and type(fast.attrs[key]) is type(value), key
    return fast, slow


def test_reader_gives_every_variable_and_attribute_that_fit_load_gives(saved_fit):
    fast, _ = assert_same_arrays(saved_fit)
    assert set(fast.posterior) >= {"E", "A", "B", "alpha", "beta", "sigma"}
    assert {"flops", "params", "tokens"} <= set(fast.constant_data)
    assert fast.posterior["alpha"].shape == (4, 500)
    assert fast.method == "nuts" and fast.card.name == "chinchilla"


def test_reader_reads_per_group_variables_and_group_labels(pooled_file):
    fast, _ = assert_same_arrays(pooled_file)
    assert fast.groups == ["a", "b"] and fast.posterior["E"].shape == (2, 50, 2)
    assert fast.constant_data["group"].tolist()[:2] == ["a", "a"]
    np.testing.assert_array_equal(fast.draws(["E"], group="b")["E"], fast.posterior["E"][..., 1].reshape(-1))
    with pytest.raises(bs.InputError, match="no group given"):
        fast.draws(["E"])


def test_reader_reads_the_discrepancy_slope(small_fit, example_runs, tmp_path):
    posterior = {k: np.asarray(v) for k, v in small_fit.posterior.data_vars.items()}
    posterior["discrepancy_slope"] = np.random.default_rng(0).normal(0, 0.01, posterior["sigma"].shape)
    path = synthetic_fit("chinchilla", example_runs, posterior).save(tmp_path / "slope.nc")
    fast, _ = assert_same_arrays(path)
    np.testing.assert_array_equal(fast.discrepancy_slope(), posterior["discrepancy_slope"].reshape(-1))
    assert read_fit(path).max_log_compute == pytest.approx(np.log(example_runs["flops"].max()), rel=1e-15)


def test_missing_corrupt_and_foreign_files_get_the_errors_fit_load_gives(small_fit, tmp_path):
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(b"\x89HDF\r\n garbage")
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    newer = small_fit.save(tmp_path / "newer.nc")
    with h5py.File(newer, "a") as f:
        f.attrs["bayes_scaling_format"] = np.array([99])
    bad_card = small_fit.save(tmp_path / "card.nc")
    with h5py.File(bad_card, "a") as f:
        f.attrs["card_text"] = '[card]\nlaw = "nope"'
    for path, message in [(tmp_path / "missing.nc", "no such fit file"), (corrupt, "not a readable NetCDF"),
                          (foreign, "not one written by bayes-scaling"), (newer, "newer bayes-scaling"),
                          (bad_card, "stored model card is invalid")]:
        with pytest.raises(FitFileError, match=message) as fast:
            read_fit(path)
        if path != corrupt:  # h5py and xarray word the low-level error differently
            with pytest.raises(FitFileError) as slow:
                Fit.load(path)
            assert str(fast.value) == str(slow.value)


def test_saved_convergence_statistics_equal_those_recomputed_with_arviz(saved_fit):
    loaded = Fit.load(saved_fit)
    stored = read_fit(saved_fit).convergence
    recomputed = convergence_stats(loaded.posterior, loaded.tree["sample_stats"].to_dataset(), loaded.parameters)
    assert stored == json.loads(json.dumps(recomputed))
    assert set(stored["variables"]) == set(loaded.parameters)
    assert stored["chains"] == 4 and stored["divergences"] == int(loaded.tree["sample_stats"]["diverging"].sum())


def test_summary_from_stored_statistics_equals_the_one_computed_in_memory(small_fit, saved_fit):
    loaded = Fit.load(saved_fit)
    assert CONVERGENCE_ATTR in loaded.arrays.attrs and CONVERGENCE_ATTR not in loaded.attrs
    for level in (0.9, 0.5):
        pd.testing.assert_frame_equal(loaded.summary(level), small_fit.summary(level), check_exact=True)
    assert loaded.diagnostics() == small_fit.diagnostics()


def test_pooled_summary_has_a_row_per_group_with_its_own_statistics(pooled_file):
    table = Fit.load(pooled_file).summary()
    assert {"E[a]", "E[b]", "A[a]", "mu_log_E", "tau_log_E", "alpha"} <= set(table.index)
    stats = read_fit(pooled_file).convergence["variables"]["E"]
    assert table.loc["E[b]", "ess_bulk"] == stats["ess_bulk"][1] != stats["ess_bulk"][0]


def test_fit_saved_without_statistics_still_summarises(small_fit, tmp_path):
    path = small_fit.save(tmp_path / "old.nc")
    with h5py.File(path, "a") as f:
        del f.attrs[CONVERGENCE_ATTR]
    assert read_fit(path).convergence is None
    pd.testing.assert_frame_equal(Fit.load(path).summary(), small_fit.summary())
