import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_scaling.errors import FitFileError, OutputFileError
from bayes_scaling.fit import Fit


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
