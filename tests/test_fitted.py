from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_scaling as bs
from bayes_scaling.errors import FitFileError, OutputFileError
from bayes_scaling.fitted import Fit


def test_save_load_round_trip_gives_identical_allocations(small_fit, tmp_path):
    path = small_fit.save(tmp_path / "fit.nc")
    loaded = Fit.load(path)
    pd.testing.assert_frame_equal(loaded.allocate([1e21, 5.76e23]), small_fit.allocate([1e21, 5.76e23]))
    pd.testing.assert_frame_equal(loaded.summary(), small_fit.summary())
    assert loaded.card.text == small_fit.card.text
    assert loaded.attrs["runs_sha256"] == small_fit.attrs["runs_sha256"] != ""
    assert "numpyro" in loaded.attrs["versions"]


def test_interrupted_save_leaves_the_previous_file_untouched(small_fit, tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    earlier = small_fit.save(path).read_bytes()

    def explode(self, target, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", explode)
    with pytest.raises(KeyboardInterrupt):
        small_fit.save(path)
    assert path.read_bytes() == earlier
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_save_removes_the_temporary_a_killed_save_left(small_fit, tmp_path):
    path = tmp_path / "fit.nc"
    dead = tmp_path / ".fit.nc.999999999.tmp"  # no process has this id: its save was killed
    dead.write_bytes(b"half a file")
    other = tmp_path / ".other.nc.999999999.tmp"  # another target's temporary is not ours to judge
    other.write_bytes(b"half another file")
    small_fit.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.nc.999999999.tmp", "fit.nc"]


def test_save_refuses_to_replace_a_file_that_is_not_a_fit(small_fit, tmp_path):
    for name, content in (("fit.nc", b"precious data"), ("runs.csv", b"params,tokens,loss\n")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(OutputFileError, match=rf"{name} \(save path\)"):
            small_fit.save(path)
        assert path.read_bytes() == content


def test_corrupt_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(FitFileError, match="fit.nc: not a readable NetCDF fit file"):
        Fit.load(path)


def test_foreign_netcdf_is_refused(tmp_path):
    path = tmp_path / "other.nc"
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(FitFileError, match="not one written by bayes-scaling"):
        Fit.load(path)


def test_missing_file_and_missing_folder(small_fit, tmp_path):
    with pytest.raises(FitFileError, match="no such fit file"):
        Fit.load(tmp_path / "absent.nc")
    with pytest.raises(OutputFileError, match="folder .* does not exist"):
        small_fit.save(tmp_path / "no" / "fit.nc")


def test_runs_table_round_trips(small_fit, example_runs):
    runs = small_fit.runs
    np.testing.assert_allclose(runs["loss"], example_runs["loss"], rtol=1e-12)
    np.testing.assert_allclose(runs["params"], example_runs["params"])


def test_saved_fit_names_its_inputs_without_machine_paths(small_fit, example_runs, tmp_path):
    from bayes_scaling.fitted import fit_attrs
    from bayes_scaling.provenance import text_sha256

    assert small_fit.attrs["card_source"] == "bundled:chinchilla"
    assert small_fit.attrs["card_sha256"] == text_sha256(small_fit.card.text)
    # a run table read from a file is named by the file's name only
    csv = tmp_path / "deep" / "folder" / "runs.csv"
    csv.parent.mkdir(parents=True)
    example_runs.to_csv(csv, index=False)
    runs = bs.load_runs(csv)
    attrs = fit_attrs(small_fit.card, method="nuts", seed=0, elapsed_s=1.0, runs_source=runs.attrs["source"],
                      runs_sha256=runs.attrs["sha256"])
    assert attrs["runs_source"] == "runs.csv" and attrs["runs_sha256"] == runs.attrs["sha256"]
    saved = Fit(small_fit.tree, card=small_fit.card, attrs=attrs).save(tmp_path / "fit.nc")
    raw = saved.read_bytes()
    for machine_path in (str(tmp_path).encode(), str(Path(bs.__file__).parent.parent).encode(), b"/home/", b"/root/"):
        assert machine_path not in raw


def test_provenance_is_one_source_built_before_the_fit(small_fit):
    # method, seed and elapsed time are read from the attributes, not stored twice
    assert small_fit.method == small_fit.attrs["method"] == "nuts"
    assert small_fit.seed == small_fit.attrs["seed"] == 1
    assert small_fit.extra["discrepancy"]["tau_source"] in small_fit.attrs["extra"]
    assert small_fit.attrs["param_count"] == "total"
