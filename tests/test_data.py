import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.data import RunTableWarning, load_runs
from bayes_scaling.errors import RunTableError


def _grid(n=12):
    params = np.repeat([7e7, 4e8, 1.6e9, 6e9], 3)[:n]
    tokens = np.tile([5e9, 2e10, 8e10], 4)[:n]
    loss = 1.8 + 400 / params**0.34 + 400 / tokens**0.28
    return pd.DataFrame({"params": params, "tokens": tokens, "loss": loss})


def _write(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_runs_fills_flops_and_keeps_canonical_columns():
    runs = load_runs(_grid())
    assert set(runs.columns) >= {"params", "tokens", "loss", "flops"}
    np.testing.assert_allclose(runs["flops"], 6 * runs["params"] * runs["tokens"])


def test_tokens_derived_from_flops_and_params():
    df = _grid()
    df["flops"] = 6 * df["params"] * df["tokens"]
    runs = load_runs(df.drop(columns="tokens"))
    np.testing.assert_allclose(runs["tokens"], df["tokens"], rtol=1e-12)


def test_csv_with_suffixes_and_column_mapping(tmp_path):
    lines = ["Model Size,Tokens,Final Loss"] + [
        f"{n},{d},{loss:.6f}" for n, d, loss in zip(
            ["70M", "70M", "70M", "400M", "400M", "400M", "1.6B", "1.6B", "1.6B"],
            ["5B", "20B", "80B"] * 3, np.linspace(3.5, 2.5, 9), strict=True)]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    runs = load_runs(path, {"params": "Model Size", "tokens": "Tokens", "loss": "Final Loss"})
    assert runs["params"].iloc[0] == 7e7 and runs["tokens"].iloc[2] == 8e10
    assert runs.attrs["source"] == str(path) and len(runs.attrs["sha256"]) == 64


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "runs.parquet"
    _grid().to_parquet(path)
    pd.testing.assert_frame_equal(load_runs(path)[["params", "tokens", "loss"]],
                                  load_runs(_grid())[["params", "tokens", "loss"]])


def test_missing_column_is_named(tmp_path):
    path = _write(tmp_path, "params,loss\n1e8,3.0\n")
    with pytest.raises(RunTableError, match=r"runs\.csv: missing required column\(s\) tokens \(or flops\)"):
        load_runs(path)


def test_mapping_to_absent_column_is_named():
    with pytest.raises(RunTableError, match="'Model Size' \\(mapped to 'params'\\) is not in the table"):
        load_runs(_grid(), {"params": "Model Size"})


def test_non_numeric_value_names_file_row_and_column(tmp_path):
    df = _grid()
    text = df.to_csv(index=False).splitlines()
    cells = text[4].split(",")
    cells[2] = "two point five"
    text[4] = ",".join(cells)
    path = _write(tmp_path, "\n".join(text) + "\n")
    # text[4] is the file's fifth line: row 5 as a spreadsheet shows it (the header is row 1)
    with pytest.raises(RunTableError, match=r"runs\.csv: row 5, column 'loss': 'two point five' is not a number"):
        load_runs(path)


def test_nan_and_inf_are_rejected_with_row_and_column():
    df = _grid()
    df.loc[2, "loss"] = np.nan
    with pytest.raises(RunTableError, match=r"index 2, column 'loss' is missing"):  # a DataFrame: its index label
        load_runs(df)
    df = _grid()
    df.loc[5, "tokens"] = np.inf
    with pytest.raises(RunTableError, match=r"index 5, column 'tokens' is inf"):
        load_runs(df)


@pytest.mark.parametrize("col", ["params", "tokens", "loss"])
def test_non_positive_values_are_rejected(col):
    df = _grid()
    df.loc[1, col] = 0.0 if col != "loss" else -1.0
    with pytest.raises(RunTableError, match=rf"index 1, column '{col}' is .*; it must be positive"):
        load_runs(df)


def test_too_few_runs_is_an_error():
    with pytest.raises(RunTableError, match="only 5 run"):
        load_runs(_grid(5))


def test_too_few_distinct_sizes_is_an_error():
    df = _grid()
    df["params"] = np.where(df["params"] > 1e9, 1.6e9, 7e7)
    with pytest.raises(RunTableError, match="'params' has only 2 distinct"):
        load_runs(df)


def test_held_out_table_of_one_size_needs_no_spread_when_it_says_so():
    held_out = _grid().iloc[:3]  # one model size, three token counts
    assert len(load_runs(held_out, min_runs=1, require_spread=False)) == 3
    with pytest.raises(RunTableError, match="'params' has only 1 distinct"):
        load_runs(held_out, min_runs=1)


def test_duplicates_warn():
    df = pd.concat([_grid(), _grid().iloc[:2]], ignore_index=True)
    with pytest.warns(RunTableWarning, match=r"2 run\(s\) repeat .* \(index labels 12, 13\)"):
        load_runs(df)


def test_params_in_millions_warn():
    df = _grid()
    df["params"] = df["params"] / 1e6
    with pytest.warns(RunTableWarning, match="is it in millions or billions"):
        load_runs(df)


def test_unknown_file_type_and_missing_file(tmp_path):
    with pytest.raises(RunTableError, match="no such file"):
        load_runs(tmp_path / "absent.csv")
    path = _write(tmp_path, "x", "runs.xlsx")
    with pytest.raises(RunTableError, match="unknown file type '.xlsx'"):
        load_runs(path)


def test_simulated_example_is_deterministic_and_valid():
    a, b = bs.simulate_runs(seed=3), bs.simulate_runs(seed=3)
    pd.testing.assert_frame_equal(a, b)
    runs = load_runs(a)
    assert len(runs) == 63
    assert runs["flops"].min() == pytest.approx(6e18) and runs["flops"].max() == pytest.approx(3e21)
    assert not a["loss"].equals(bs.simulate_runs(seed=4)["loss"])
