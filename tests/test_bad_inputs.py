"""Bad inputs through the CLI: exit 2, one precise error line, no traceback, no file changed (issue 19).

Each case of :data:`CASES` runs ``bayes-scaling`` in a folder of its own holding a run
table (``runs.csv``), a saved fit (``fit.nc``) and the case's own files; the folder is
hashed before and after. Every case runs in-process through ``cli.main`` (what the console
script calls), with the working folder, streams and warnings restored and the steps that
start sampling replaced by an error, so a case that is not refused before sampling fails.
A sample of them (:data:`IN_A_REAL_PROCESS`) also runs as a real process, as a user runs it.
The fits are made from draws around the example truth (no NUTS): these tests check
how files and options are refused, not what a fit says.

The property-based tests at the end (hypothesis) feed malformed run tables, cards and
cell texts to the same code in-process.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, chdir, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayes_scaling as bs
from bayes_scaling.cards import Prior, load_card, parse_card
from bayes_scaling.cli import main
from bayes_scaling.data import RunTableWarning, load_runs
from bayes_scaling.errors import CardError, RunTableError
from bayes_scaling.fitted import Fit, build_datatree
from bayes_scaling.model import covariates
from bayes_scaling.report.html import MARKDOWN_MARK, is_report_file
from bayes_scaling.simulate import EXAMPLE_TRUTH, write_runs

#: Small sampler settings for every fitting case: should a check regress, the case fails fast, not after a long fit.
QUICK = ("--chains", "1", "--warmup", "5", "--draws", "5")
#: Subprocesses run at once (each is mostly Python start-up and imports).
WORKERS = max(1, min(4, os.cpu_count() or 1))
CASE_TIMEOUT_S = 240


# -- the files a case starts from ---------------------------------------------------------------------------------


def synthetic_fit(runs: pd.DataFrame, *, method: str = "nuts", chains: int = 2, draws: int = 100,
                  extra: Mapping | None = None) -> Fit:
    """A fit whose draws scatter around the example truth: a valid fit file, made without sampling."""
    card = load_card("chinchilla")
    table = load_runs(runs)
    rng = np.random.default_rng(0)
    shape = (chains, draws)
    posterior = {k: v * np.exp(0.01 * rng.standard_normal(shape)) for k, v in EXAMPLE_TRUTH.items()}
    posterior["sigma"] = (np.full(shape, 0.01) if method == "huber"
                          else 0.01 * np.exp(0.1 * rng.standard_normal(shape)))
    if isinstance(card.nu, Prior):
        posterior["nu"] = np.full(shape, 5.0)
    if card.discrepancy is not None and method == "nuts":
        posterior["discrepancy_tau"] = np.abs(0.01 * rng.standard_normal(shape))
        posterior["discrepancy_slope"] = posterior["discrepancy_tau"] * rng.standard_normal(shape)
    tree = build_datatree(card, table, covariates(table, card), np.log(table["loss"].to_numpy()), posterior, None,
                          seed=0)
    return Fit(tree, card=card, method=method, seed=0, elapsed_s=0.0, extra=extra)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A folder with ``runs.csv`` (the example grid) and ``fit.nc`` (a fit of it)."""
    folder = tmp_path_factory.mktemp("bad-inputs-base")
    runs = bs.simulate_runs(seed=0)
    write_runs(runs, folder / "runs.csv")
    synthetic_fit(runs).save(folder / "fit.nc")
    return folder


GRID = [(n, d) for n in (1e8, 4e8, 1.6e9) for d in (2e9, 8e9, 3.2e10)]


def table_csv(header: str = "params,tokens,loss", cells: Mapping[tuple[int, int], str] | None = None,
              rows: int = len(GRID), sep: str = ",") -> bytes:
    """A valid 9-run table whose cells ``(spreadsheet row, column index)`` are replaced (the header is row 1)."""
    lines = [header.split(",")]
    for n, d in GRID[:rows]:
        loss = EXAMPLE_TRUTH["E"] + EXAMPLE_TRUTH["A"] / n ** 0.35 + EXAMPLE_TRUTH["B"] / d ** 0.37
        lines.append([f"{n:g}", f"{d:g}", f"{loss:.5f}"] + ["1"] * (len(lines[0]) - 3))
    for (row, col), text in (cells or {}).items():
        lines[row - 1][col] = text
    return ("\n".join(sep.join(line) for line in lines) + "\n").encode()


def card_text(name: str = "chinchilla", **replace: str) -> bytes:
    """A bundled card's text with the first occurrence of each key replaced by its value."""
    text = load_card(name).text
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


def damaged(change: Callable[[h5py.File], None]) -> Callable[[Path, Path], None]:
    """A copy of the case's ``fit.nc``, saved as NAME, changed with h5py."""
    def make(folder: Path, path: Path) -> None:
        shutil.copy(folder / "fit.nc", path)
        with h5py.File(path, "r+") as file:
            change(file)
    return make


def _replace(name: str, data: np.ndarray) -> Callable[[h5py.File], None]:
    def change(file: h5py.File) -> None:
        del file[name]
        file.create_dataset(name, data=data)
    return change


def _poke(name: str, value: float) -> Callable[[h5py.File], None]:
    def change(file: h5py.File) -> None:
        data = file[name][()]
        data.flat[0] = value
        file[name][...] = data
    return change


def _attr(key: str, value: object) -> Callable[[h5py.File], None]:
    return lambda file: file.attrs.__setitem__(key, value)


def _no_draws(file: h5py.File) -> None:
    for key in list(file["posterior"]):
        if file[f"posterior/{key}"].ndim == 2:
            _replace(f"posterior/{key}", np.zeros((2, 0)))(file)


def symlink_to(target: str) -> Callable[[Path, Path], None]:
    return lambda folder, path: path.symlink_to(folder / target)


def folder_of(inner: dict[str, bytes]) -> Callable[[Path, Path], None]:
    def make(folder: Path, path: Path) -> None:
        path.mkdir(parents=True)
        for name, content in inner.items():
            (path / name).write_bytes(content)
    return make


BACKTEST_RECORD = {"card": "chinchilla", "method": "nuts", "cutoff": 1e20, "n_train": 40, "n_test": 23,
                   "coverage_50": 0.5, "coverage_90": 0.9, "median_width_90": 0.01, "mean_log_pred_density": 3.0,
                   "crps": 0.01, "median_abs_error": 0.01, "calibration": [{"level": 0.9, "coverage": 0.9}]}


def backtest_json(**change: object) -> bytes:
    return json.dumps([{**BACKTEST_RECORD, **change}]).encode()


# -- the cases ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, the files it needs, and what its error line must name."""

    id: str
    argv: tuple[str, ...]
    names: tuple[str, ...]
    files: Mapping[str, bytes | Callable[[Path, Path], None]] = field(default_factory=dict)
    warning: str | None = None


def case(id: str, argv: str | list[str], *names: str, files: Mapping | None = None, warning: str | None = None,
         quick: bool = False) -> Case:
    args = argv.split() if isinstance(argv, str) else list(argv)
    return Case(id, tuple(args) + (QUICK if quick else ()), names, files or {}, warning)


SIMULATED = b"name,params,tokens,flops,loss\nC6e+18-N1e+07,1e7,1e11,6e18,3.0\n"
CASES = [
    # 1. data loss: fit never writes over its input or a file that is not a fit
    case("fit-out-csv-is-the-input", "fit runs.csv --out runs.csv", "runs.csv (--out)", ".nc", quick=True),
    case("fit-out-unrelated-csv", "fit runs.csv --out other.csv", "other.csv (--out)", ".nc",
         files={"other.csv": b"precious,data\n1,2\n"}, quick=True),
    case("fit-out-foreign-nc", "fit runs.csv --out other.nc", "other.nc (--out)", "not a fit written by bayes-scaling",
         files={"other.nc": b"precious bytes"}, quick=True),
    case("fit-out-link-to-the-input", "fit runs.csv --out link.nc", "link.nc (--out)", "is the input runs.csv",
         files={"link.nc": symlink_to("runs.csv")}, quick=True),
    case("fit-out-is-the-input-fit", "fit fit.nc --out fit.nc", "fit.nc (--out)", "is the input fit.nc", quick=True),
    # 2. the report never destroys files it did not write
    case("report-foreign-json-sibling", "report fit.nc --out important.html", "important.json",
         "beside important.html", "not a report file written by bayes-scaling",
         files={"important.json": b'{"mine": 1}'}),
    case("report-foreign-md-sibling", "report fit.nc --out important.html", "important.md", "not a report file",
         files={"important.md": b"# my notes\n"}),
    case("report-foreign-html", "report fit.nc --out important.html", "important.html (--out)",
         files={"important.html": b"<html>mine</html>"}),
    case("report-out-under-a-file", "report fit.nc --out runs.csv/r.html", "runs.csv/r.html (--out)",
         "runs.csv is a file, not a folder"),
    case("report-out-is-the-fit", "report fit.nc --out fit.nc", "fit.nc (--out)", ".html"),
    case("report-out-folder", "report fit.nc --out adir.html", "adir.html (--out)", "is a folder",
         files={"adir.html": folder_of({})}),
    case("simulate-over-real-runs", "simulate --out real.csv", "real.csv (--out)", "not a simulated run table",
         files={"real.csv": table_csv()}),
    case("simulate-out-txt", "simulate --out runs.txt", "runs.txt (--out)", ".csv"),
    case("backtest-plot-foreign-png", "backtest runs.csv --cutoff 1e20 --plot photo.png", "photo.png (--plot)",
         "not a figure written by bayes-scaling", files={"photo.png": b"\x89PNG\r\n\x1a\nmy holiday"}, quick=True),
    case("backtest-plot-is-the-input", "backtest runs.csv --cutoff 1e20 --plot runs.csv", "runs.csv (--plot)",
         ".png", quick=True),
    # 4. ambiguous columns
    case("columns-differ-in-case", "fit dup.csv --out f.nc", "dup.csv", "'params' and 'PARAMS'",
         files={"dup.csv": table_csv("params,tokens,loss,PARAMS")}, quick=True),
    case("column-repeated", "fit dup.csv --out f.nc", "dup.csv", "'params' and 'params.1'",
         files={"dup.csv": table_csv("params,tokens,loss,params")}, quick=True),
    # 5. values no run can have
    case("params-overflow-6ND", "fit huge.csv --out f.nc", "huge.csv", "row 3", "6 N D",
         files={"huge.csv": table_csv(cells={(3, 0): "1e300"})}, quick=True),
    case("budget-negative", "allocate fit.nc --budget -1e21", "budget", "-1e+21"),
    case("budget-infinite", "allocate fit.nc --budget inf", "budget"),
    case("budget-decimal-comma", ["allocate", "fit.nc", "--budget", "1,5e21"], "budget", "'1,5e21'", "comma"),
    # 6. numbers in cards and options
    case("card-scale-inf", "fit runs.csv --out f.nc --card inf.toml", "inf.toml", "[priors.E] kwargs: scale = inf",
         files={"inf.toml": card_text(**{"scale = 0.5 }": "scale = inf }"})}, quick=True),
    case("card-scale-nan", "fit runs.csv --out f.nc --card nan.toml", "nan.toml", "scale = nan",
         files={"nan.toml": card_text(**{"scale = 0.5 }": "scale = nan }"})}, quick=True),
    case("card-scale-zero", "fit runs.csv --out f.nc --card zero.toml", "zero.toml", "scale = 0 must be positive",
         files={"zero.toml": card_text(**{"scale = 0.5 }": "scale = 0.0 }"})}, quick=True),
    case("card-nu-inf", "fit runs.csv --out f.nc --card nu.toml", "nu.toml", "[likelihood.nu] value",
         files={"nu.toml": card_text(**{"value = 5.0": "value = inf"})}, quick=True),
    case("card-nu-text", "fit runs.csv --out f.nc --card nu.toml", "nu.toml", "[likelihood.nu] value",
         files={"nu.toml": card_text(**{"value = 5.0": 'value = "five"'})}, quick=True),
    case("simulate-noise-nan", "simulate --out sim.csv --noise nan", "--noise", "nan"),
    case("simulate-noise-negative", "simulate --out sim.csv --noise -0.1", "--noise", "-0.1"),
    # 7. options that would be ignored
    case("allocate-group-unpooled", "allocate fit.nc --budget 1e21 --group code", "group='code'", "--group"),
    case("predict-group-unpooled", "predict fit.nc --params 1B --tokens 20B --group code", "group='code'"),
    case("decide-group-unpooled", "decide fit.nc --budget 1e21 --group code", "group='code'"),
    # 8. checks before sampling
    case("fit-out-missing-folder", "fit runs.csv --out missing_dir/x.nc", "missing_dir/x.nc (--out)",
         "folder missing_dir does not exist", quick=True),
    case("fit-out-folder", "fit runs.csv --out adir", "adir (--out)", "is a folder", files={"adir": folder_of({})},
         quick=True),
    case("compare-bad-second-card", "compare runs.csv --card chinchilla --card bad.toml", "bad.toml",
         "[priors.E] dist", files={"bad.toml": card_text(**{'dist = "LogNormal"': 'dist = "LogNormale"'})},
         quick=True),
    case("compare-one-card", "compare runs.csv --card chinchilla", "--card", "two", quick=True),
    case("card-truncated-low-above-high", "fit runs.csv --out f.nc --card trunc.toml", "trunc.toml",
         "[priors.alpha] kwargs: low = 1 must be below high = 0.05",
         files={"trunc.toml": card_text("chinchilla-plain", **{"low = 0.05, high = 1.0": "low = 1.0, high = 0.05"})},
         quick=True),
    # 9. ordinary bad options
    case("fit-seed-negative", "fit runs.csv --out f.nc --seed -1", "--seed", "-1", quick=True),
    case("fit-seed-huge", "fit runs.csv --out f.nc --seed 99999999999999999999", "--seed", "99999999999999999999",
         quick=True),
    case("predict-seed-negative", "predict fit.nc --params 1B --tokens 20B --seed -1", "--seed"),
    case("decide-seed-negative", "decide fit.nc --budget 1e21 --seed -1", "--seed"),
    case("simulate-seed-negative", "simulate --out sim.csv --seed -1", "--seed"),
    case("compare-seed-negative", "compare runs.csv --card chinchilla --card kaplan --seed -1", "--seed", quick=True),
    case("backtest-seed-huge", "backtest runs.csv --cutoff 1e20 --seed 4294967296", "--seed", quick=True),
    case("huber-bootstrap-0", "fit runs.csv --out f.nc --method huber --bootstrap 0", "--bootstrap", "0",
         quick=True),
    case("simulate-out-missing-folder", "simulate --out missing_dir/x.csv", "missing_dir/x.csv (--out)",
         "does not exist"),
    case("card-binary", "fit runs.csv --out f.nc --card bin.toml", "bin.toml", "not a text",
         files={"bin.toml": b"\x89PNG\r\n\x1a\n\x00\xff\xfe"}, quick=True),
    case("report-backtest-cutoff-text", "report fit.nc --out r.html --backtest bt.json", "bt.json", "record 1",
         "'cutoff'", files={"bt.json": backtest_json(cutoff="big")}),
    case("report-backtest-count-negative", "report fit.nc --out r.html --backtest bt.json", "bt.json", "'n_test'",
         files={"bt.json": backtest_json(n_test=-3)}),
    case("report-backtest-card-number", "report fit.nc --out r.html --backtest bt.json", "bt.json", "'card'",
         files={"bt.json": backtest_json(card=5)}),
    case("report-backtest-curve", "report fit.nc --out r.html --backtest bt.json", "bt.json", "'calibration'",
         files={"bt.json": backtest_json(calibration=[{"level": "high"}])}),
    case("report-backtest-object", "report fit.nc --out r.html --backtest bt.json", "bt.json", "list of records",
         files={"bt.json": b'{"records": []}'}),
    case("report-backtest-missing", "report fit.nc --out r.html --backtest absent.json", "absent.json",
         "no such backtest file"),
    case("report-backtest-folder", "report fit.nc --out r.html --backtest adir", "adir", "is a folder",
         files={"adir": folder_of({})}),
    # 10. user text is never Rich markup; card errors keep their key
    case("markup-in-a-cell", "fit markup.csv --out f.nc", "markup.csv: row 3, column 'loss'", "'[/red]oops'",
         files={"markup.csv": table_csv(cells={(3, 2): "[/red]oops"})}, quick=True),
    case("brackets-in-the-file-name", "fit runs[final].csv --out f.nc", "runs[final].csv: row 2, column 'params'",
         files={"runs[final].csv": table_csv(cells={(2, 0): "n/a"})}, quick=True),
    case("brackets-in-a-folder-warning", "fit data[/x]/runs.csv --out f.nc --param-count non_embedding",
         "data[/x]/runs.csv", "embedding_params", warning="data[/x]/runs.csv: 1 run(s) repeat",
         files={"data[/x]": folder_of({"runs.csv": table_csv(cells={(3, 0): "1e8", (3, 1): "2e9"})})}, quick=True),
    case("card-error-keeps-its-key", "fit runs.csv --out f.nc --card dist.toml", "dist.toml", "[priors.E] dist",
         "'LogNormale'", files={"dist.toml": card_text(**{'dist = "LogNormal"': 'dist = "LogNormale"'})},
         quick=True),
    case("card-missing-prior-keeps-its-key", "fit runs.csv --out f.nc --card nobeta.toml", "nobeta.toml",
         "[priors.beta]: missing",
         files={"nobeta.toml": card_text(**{"[priors.beta]": "[priors.gamma]"})}, quick=True),
    case("markup-in-an-option", ["allocate", "fit.nc", "--budget", "[bold]1e21"], "'[bold]1e21'"),
    case("emoji-code-in-a-cell", "fit emoji.csv --out f.nc", "':red_circle:'",
         files={"emoji.csv": table_csv(cells={(2, 2): ":red_circle:"})}, quick=True),
    # 13. messages: spreadsheet rows, folders, units, formats
    case("row-as-a-spreadsheet-shows-it", "fit row.csv --out f.nc", "row.csv: row 5, column 'tokens'", "'lots'",
         files={"row.csv": table_csv(cells={(5, 1): "lots"})}, quick=True),
    case("runs-is-a-folder", "fit adir --out f.nc", "adir: is a folder", files={"adir": folder_of({})}, quick=True),
    case("fit-file-is-a-folder", "summary adir", "adir: is a folder", files={"adir": folder_of({})}),
    case("predict-params-zero", "predict fit.nc --params 0 --tokens 1T", "params", "positive number of parameters"),
    case("semicolon-separated", "fit semi.csv --out f.nc", "semi.csv", "semicolon",
         files={"semi.csv": table_csv(sep=";")}, quick=True),
    case("tab-separated-as-csv", "fit tabs.csv --out f.nc", "tabs.csv", "tab-separated", "rename it .tsv",
         files={"tabs.csv": table_csv(sep="\t")}, quick=True),
    case("gzip-renamed-csv", "fit gz.csv --out f.nc", "gz.csv", "gzip", files={"gz.csv": gzip.compress(table_csv())},
         quick=True),
    case("excel-renamed-csv", "fit xl.csv --out f.nc", "xl.csv", "Excel",
         files={"xl.csv": b"PK\x03\x04\x14\x00\x06\x00workbook"}, quick=True),
    case("cards-format-xml", "cards --format xml", "--format", "'xml'"),
    # more of our own: run tables
    case("decimal-comma-cell", "fit comma.csv --out f.nc", "comma.csv: row 4, column 'loss'", "'2,5'",
         files={"comma.csv": table_csv(cells={(4, 2): '"2,5"'})}, quick=True),
    case("empty-file", "fit empty.csv --out f.nc", "empty.csv", "is empty", files={"empty.csv": b""}, quick=True),
    case("header-only", "fit head.csv --out f.nc", "head.csv", "only 0 run(s)",
         files={"head.csv": b"params,tokens,loss\n"}, quick=True),
    case("ragged-row", "fit ragged.csv --out f.nc", "ragged.csv", "row 4 has 4 cells",
         files={"ragged.csv": table_csv(cells={(4, 2): "2.5,1"})}, quick=True),
    case("latin-1-text", "fit latin.csv --out f.nc", "latin.csv", "not UTF-8",
         files={"latin.csv": table_csv("params,tokens,loss,café").replace(b"caf\xc3\xa9", b"caf\xe9")}, quick=True),
    case("parquet-renamed-csv", "fit pq.csv --out f.nc", "pq.csv", "Parquet", "rename it .parquet",
         files={"pq.csv": b"PAR1\x00\x00rest"}, quick=True),
    case("fit-given-as-runs", "fit fitcopy.csv --out f.nc", "fitcopy.csv", "HDF5",
         files={"fitcopy.csv": lambda folder, path: shutil.copy(folder / "fit.nc", path)}, quick=True),
    case("unknown-suffix", "fit runs.xlsx --out f.nc", "runs.xlsx", "unknown file type",
         files={"runs.xlsx": b"PK\x03\x04"}, quick=True),
    case("negative-loss", "fit neg.csv --out f.nc", "neg.csv: row 6, column 'loss'", "positive",
         files={"neg.csv": table_csv(cells={(6, 2): "-2.5"})}, quick=True),
    case("nan-cell", "fit nan.csv --out f.nc", "nan.csv: row 7, column 'params'", "missing",
         files={"nan.csv": table_csv(cells={(7, 0): "nan"})}, quick=True),
    case("infinite-cell", "fit inf.csv --out f.nc", "inf.csv: row 8, column 'tokens'", "'inf' is not a number",
         files={"inf.csv": table_csv(cells={(8, 1): "inf"})}, quick=True),
    case("too-few-runs", "fit few.csv --out f.nc", "few.csv", "only 5 run(s)", files={"few.csv": table_csv(rows=5)},
         quick=True),
    case("missing-loss-column", "fit noloss.csv --out f.nc", "noloss.csv", "missing required column(s) loss",
         files={"noloss.csv": table_csv("params,tokens,perplexity")}, quick=True),
    case("column-mapping-malformed", "fit runs.csv --out f.nc --column params", "--column", "'params'", quick=True),
    case("column-mapping-to-absent", "fit runs.csv --out f.nc --column params=Size", "'Size'", "'params'",
         quick=True),
    case("runs-missing", "fit absent.csv --out f.nc", "absent.csv: no such file", quick=True),
    # more of our own: cards
    case("card-toml-syntax", "fit runs.csv --out f.nc --card syntax.toml", "syntax.toml", "not valid TOML",
         files={"syntax.toml": b"[card\nlaw = chinchilla"}, quick=True),
    case("card-section-not-a-table", "fit runs.csv --out f.nc --card flat.toml", "flat.toml", "[priors]",
         files={"flat.toml": b'priors = 3\n[card]\nlaw = "chinchilla"\n'}, quick=True),
    case("card-is-a-folder", "fit runs.csv --out f.nc --card cards.toml", "cards.toml", "is a folder",
         files={"cards.toml": folder_of({})}, quick=True),
    case("card-unknown-name", "fit runs.csv --out f.nc --card chinchila", "'chinchila'", "bundled cards",
         quick=True),
    case("card-uniform-low-above-high", "fit runs.csv --out f.nc --card uni.toml", "uni.toml",
         "[priors.alpha] kwargs: low = 2 must be below high = 1", quick=True,
         files={"uni.toml": card_text(**{"scale = 0.2, low = 0.05, high = 1.0": "low = 2.0, high = 1.0"},
                                      **{'"TruncatedNormal"': '"Uniform"'})}),
    # more of our own: options
    case("level-above-one", "allocate fit.nc --budget 1e21 --level 1.5", "level", "1.5"),
    case("level-nan", "summary fit.nc --level nan", "level", "nan"),
    case("format-unknown", "summary fit.nc --format xml", "--format", "'xml'"),
    case("chains-zero", "fit runs.csv --out f.nc --chains 0 --warmup 5 --draws 5", "--chains", "0"),
    case("target-accept-one", "fit runs.csv --out f.nc --target-accept 1.0", "--target-accept", "1.0", quick=True),
    case("method-unknown", "fit runs.csv --out f.nc --method bayes", "--method", "'bayes'", quick=True),
    case("param-count-unknown", "fit runs.csv --out f.nc --param-count all", "--param-count", "'all'", quick=True),
    case("budget-text", "allocate fit.nc --budget lots", "budget", "'lots'"),
    case("predict-counts-differ", "predict fit.nc --params 1B --params 2B --params 3B --tokens 1T --tokens 2T",
         "as many params as tokens"),
    case("decide-prob-above-one", "decide fit.nc --target-loss 2.0 --prob 1.5", "--prob", "1.5"),
    case("decide-target-loss-negative", "decide fit.nc --target-loss -1", "--target-loss", "-1"),
    case("decide-risk-unknown", "decide fit.nc --budget 1e21 --risk bogus", "'bogus'"),
    case("decide-target-metric-on-a-loss-fit", "decide fit.nc --target-metric 0.8", "--target-metric",
         "--target-loss"),
    case("decide-inference-tokens-negative", "decide fit.nc --budget 1e21 --inference-tokens -5", "inference_tokens",
         "-5"),
    case("report-out-pdf", "report fit.nc --out report.pdf", "report.pdf (--out)", ".html"),
    case("sensitivity-fraction-above-one", "sensitivity runs.csv --drop-fraction 1.5", "--drop-fraction", "1.5",
         quick=True),
    case("sensitivity-resolution-zero", "sensitivity runs.csv --resolution 0", "--resolution", "0", quick=True),
    case("backtest-workers-zero", "backtest runs.csv --cutoff 1e20 --workers 0", "--workers", "0", quick=True),
    case("backtest-cutoff-text", "backtest runs.csv --cutoff soon", "cutoff", "'soon'", quick=True),
    case("usage-unknown-option", "fit runs.csv --out f.nc --sed 1", "bayes-scaling fit", "--sed"),
    case("usage-missing-option", "fit runs.csv", "bayes-scaling fit", "--out"),
    case("usage-wrong-type", "fit runs.csv --out f.nc --chains many", "bayes-scaling fit", "--chains"),
    case("usage-unknown-command", "fitt runs.csv", "fitt"),
    # more of our own: fit files that are not fits
    case("fit-missing", "allocate absent.nc --budget 1e21", "absent.nc: no such fit file"),
    case("fit-is-a-csv", "allocate runs.csv --budget 1e21", "runs.csv", "not a readable NetCDF fit file"),
]

# 11. damaged fit files: every command that reads one refuses it, naming the file and what is wrong
DAMAGES = {
    "no-alpha": (lambda f: f.__delitem__("posterior/alpha"), ("variable(s) alpha missing",)),
    "no-run-table": (lambda f: f.__delitem__("constant_data"), ("constant_data", "'flops'")),
    "text-draws": (_replace("posterior/alpha", np.array(["a"] * 10, dtype=h5py.string_dtype())),
                   ("'alpha'", "not numbers")),
    "wrong-shape": (_replace("posterior/alpha", np.zeros((2, 100, 3))), ("'alpha'", "shape (2, 100, 3)")),
    "zero-draws": (_no_draws, ("holds no draws",)),
    "nan-draw": (_poke("posterior/beta", np.nan), ("'beta'", "non-finite")),
    "format-text": (_attr("bayes_scaling_format", "one"), ("'bayes_scaling_format'", "'one'")),
    "method-unknown": (_attr("method", "magic"), ("'method'", "'magic'")),
    "convergence-json": (_attr("convergence", "{broken"), ("'convergence'", "not valid JSON")),
    "convergence-shape": (_attr("convergence", json.dumps({"variables": {}, "chains": 2, "divergences": 0,
                                                           "tree_depth_hits": 0, "max_tree_depth": 10})),
                          ("convergence statistics", "'E'")),
    "extra-json": (_attr("extra", "[1, 2"), ("'extra'", "not valid JSON")),
    "card-text": (_attr("card_text", "[card]\nlaw = 'moore'\n"), ("stored model card", "moore")),
}
COMMANDS = {"summary": "summary {f}", "allocate": "allocate {f} --budget 1e22",
            "predict": "predict {f} --params 1B --tokens 20B", "decide": "decide {f} --budget 1e22"}
for damage, (change, names) in DAMAGES.items():
    # summary and allocate for every damage; predict and decide read the file the same way (read_fit): two each
    for command in ("summary", "allocate", *(("predict", "decide") if damage in ("no-alpha", "nan-draw") else ())):
        CASES.append(case(f"fit-{damage}-{command}", COMMANDS[command].format(f="bad.nc"), "bad.nc", *names,
                          files={"bad.nc": damaged(change)}))
for damage in ("no-alpha", "nan-draw", "convergence-json"):  # report loads the fit with xarray: the same checks
    CASES.append(case(f"fit-{damage}-report", "report bad.nc --out r.html", "bad.nc", *DAMAGES[damage][1],
                      files={"bad.nc": damaged(DAMAGES[damage][0])}))
CASES.append(case("fit-negative-exponent-allocate", "allocate bad.nc --budget 1e22", "no finite allocation",
                  "1e+22", files={"bad.nc": damaged(lambda f: f["posterior/alpha"].write_direct(
                      -f["posterior/alpha"][()]))}))
CASES.append(case("fit-no-observed-data-report", "report bad.nc --out r.html", "bad.nc", "'observed_data'",
                  files={"bad.nc": damaged(lambda f: f.__delitem__("observed_data"))}))
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


# -- running them ---------------------------------------------------------------------------------------------------

#: Cases also run as a real ``bayes-scaling`` process (all run in-process through ``cli.main``, which is what the
#: console script calls): file, run-table, card, option and usage errors, a warning, and a damaged fit file.
IN_A_REAL_PROCESS = (
    "fit-out-foreign-nc", "simulate-over-real-runs", "gzip-renamed-csv", "markup-in-a-cell",
    "brackets-in-a-folder-warning", "card-error-keeps-its-key", "card-toml-syntax", "budget-decimal-comma",
    "fit-seed-negative", "usage-unknown-option", "usage-unknown-command", "fit-nan-draw-summary",
)
assert set(IN_A_REAL_PROCESS) <= {c.id for c in CASES}


class SamplingStarted(Exception):
    """Raised in-process where sampling (or a bootstrap, or worker processes) would start."""


#: Where work on a fit starts; an in-process case that reaches one is stopped there and fails.
SAMPLING_STARTS = (
    "bayes_scaling.sampling.run_chains",  # NUTS, with or without a progress bar
    "bayes_scaling.sampling.fit_huber",  # the robust start of NUTS, and approach 3's bootstrap
    "bayes_scaling.approaches.fit_huber",
    "bayes_scaling.executor.ProcessPoolExecutor",  # fits in local processes
    "bayes_scaling.executor._gather",  # fits on Dask
)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    before: dict[str, str]
    after: dict[str, str]


def cli(argv: list[str] | tuple[str, ...], cwd: Path, timeout: float = CASE_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``bayes-scaling ARGV`` in a new process, as a user runs it."""
    code = "import sys; from bayes_scaling.cli import run; run()"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": ""}
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def process_state() -> dict[str, object]:
    """What a run in this process could change for the runs after it (besides the environment)."""
    return {"working folder": os.getcwd(), "warning filters": list(warnings.filters),
            "showwarning": warnings.showwarning, "stdout": sys.stdout, "stderr": sys.stderr}


def cli_in_process(argv: list[str] | tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    """``bayes-scaling ARGV`` through ``cli.main`` in this process, in ``cwd``, refusing to sample.

    Nothing carries over to the next run: the working folder, streams, warning filters and
    environment are restored afterwards (an import may set a variable: threadpoolctl sets
    KMP_DUPLICATE_LIB_OK), and a change that ``main`` itself leaves behind is reported as a
    failure. An exception escaping ``main`` is reported on stderr as the traceback a user would see.
    """
    out, err = io.StringIO(), io.StringIO()
    with ExitStack() as stack:
        for target in SAMPLING_STARTS:
            stack.enter_context(mock.patch(target, side_effect=SamplingStarted(f"{target} was called")))
        stack.enter_context(mock.patch.dict(os.environ))
        stack.enter_context(warnings.catch_warnings())
        stack.enter_context(chdir(cwd))
        stack.enter_context(redirect_stdout(out))
        stack.enter_context(redirect_stderr(err))
        state = process_state()
        try:
            code = main(list(argv))
        except BaseException:  # SystemExit included: main returns the exit status
            err.write(traceback.format_exc())
            code = -1
        leaked = sorted(key for key, value in process_state().items() if value != state[key])
    if leaked:
        err.write(f"Traceback: the run left this process's {', '.join(leaked)} changed\n")
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with the hash of its content (folders and links marked as such)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = f"link to {os.readlink(path)}"
        elif path.is_dir():
            out[key] = "folder"
        else:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def prepare(c: Case, base: Path, folder: Path) -> dict[str, str]:
    """The case's folder: the base files and the case's own; returns its snapshot."""
    folder.mkdir()
    for name in ("runs.csv", "fit.nc"):
        shutil.copy(base / name, folder / name)
    for name, content in c.files.items():
        path = folder / name
        if callable(content):
            content(folder, path)
        else:
            path.write_bytes(content)
    return snapshot(folder)


def run_case(c: Case, base: Path, folder: Path, *, real_process: bool) -> Outcome:
    before = prepare(c, base, folder)
    if not real_process:
        proc = cli_in_process(c.argv, folder)
        return Outcome(proc.returncode, proc.stdout, proc.stderr, before, snapshot(folder))
    try:
        proc = cli(c.argv, folder)
    except subprocess.TimeoutExpired as exc:
        return Outcome(-1, str(exc.stdout), f"timed out after {CASE_TIMEOUT_S} s: it did not fail before sampling",
                       before, snapshot(folder))
    return Outcome(proc.returncode, proc.stdout, proc.stderr, before, snapshot(folder))


def selected(request: pytest.FixtureRequest, test: str) -> list[Case]:
    ids = {item.callspec.id for item in request.session.items
           if item.path == Path(__file__) and getattr(item, "originalname", "") == test and hasattr(item, "callspec")}
    return [c for c in CASES if c.id in ids]


@pytest.fixture(scope="module")
def outcomes(request, base, tmp_path_factory) -> dict[tuple[str, bool], Outcome]:
    """The outcome of every selected case, keyed by (case id, real process).

    The real processes (mostly Python start-up and imports) run a few at a time while this
    process runs the in-process cases one after another (they change the working folder).
    """
    root = tmp_path_factory.mktemp("bad-inputs")
    real = selected(request, "test_bad_input_in_a_real_process")
    with ThreadPoolExecutor(WORKERS) as pool:
        started = pool.map(lambda c: run_case(c, base, root / f"{c.id}-process", real_process=True), real)
        results = {(c.id, False): run_case(c, base, root / c.id, real_process=False)
                   for c in selected(request, "test_bad_input")}
        results.update({(c.id, True): outcome for c, outcome in zip(real, started, strict=True)})
    return results


def check_refused(c: Case, out: Outcome) -> None:
    """Exit 2, exactly one ``error:`` line naming what is wrong, no traceback, every file as it was."""
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("warning: ")]
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert len(errors) == 1 and errors[0].startswith("error: "), lines
    for name in c.names:
        assert name in errors[0], f"{name!r} not in {errors[0]!r}"
    if c.warning is not None:
        warned = [line for line in lines if c.warning in line]
        assert len(warned) == 1 and warned[0].startswith("warning: "), lines  # once, though validated twice
    assert out.after == out.before, "files changed"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, outcomes: dict[tuple[str, bool], Outcome]) -> None:
    """In-process: refused before any sampling, as :func:`check_refused` says."""
    check_refused(c, outcomes[c.id, False])


@pytest.mark.parametrize("c", [c for c in CASES if c.id in IN_A_REAL_PROCESS], ids=list(IN_A_REAL_PROCESS))
def test_bad_input_in_a_real_process(c: Case, outcomes: dict[tuple[str, bool], Outcome]) -> None:
    """A sample of the cases as a user meets them: a new process, its exit status and stderr."""
    check_refused(c, outcomes[c.id, True])


def test_in_process_runs_stop_where_sampling_would_start(base, tmp_path):
    """The guard of the in-process cases: a valid fit is stopped at its first sampling step."""
    for name in ("runs.csv", "fit.nc"):
        shutil.copy(base / name, tmp_path / name)
    proc = cli_in_process(["fit", "runs.csv", "--out", "new.nc", *QUICK], tmp_path)
    assert proc.returncode == -1 and "SamplingStarted" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "new.nc").exists()


# -- warnings and judgments that are not errors (in-process, as the cases) -----------------------------------------


def test_budgets_far_outside_the_data_warn_and_say_why(base, tmp_path):
    shutil.copy(base / "fit.nc", tmp_path / "fit.nc")
    proc = cli_in_process(["allocate", "fit.nc", "--budget", "1,000", "--budget", "1e-300", "--budget", "1e22",
                "--budget", "1e30", "--format", "json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, proc.stderr
    assert "budget 1e+03 FLOPs is 16 decades below the smallest fitted run (6e+18 FLOPs)" in warnings[0]
    assert "budget 1e-300 FLOPs is 319 decades below" in warnings[1] and "means nothing" in warnings[1]
    assert "budget 1e+30 FLOPs is 9 decades beyond the largest fitted run (3e+21 FLOPs)" in warnings[2]
    assert [item["compute"] for item in json.loads(proc.stdout)] == [1e3, 1e-300, 1e22, 1e30]


@pytest.mark.parametrize(("cells", "header", "message"), [
    ({(3, 0): "1e20"}, "params,tokens,loss", r"row 3, column 'params' is 1e\+20; no model has 100T parameters"),
    ({(4, 1): "1e20"}, "params,tokens,loss", r"row 4, column 'tokens' is 1e\+20"),
    ({(5, 2): "1e-300"}, "params,tokens,loss", r"row 5, column 'loss' is 1e-300; cross-entropy loss"),
    ({(6, 3): "1e30"}, "params,tokens,loss,flops", r"row 6, column 'flops' is .* times 6 N D"),
])
def test_values_no_run_can_have_warn_with_the_row(cells, header, message, tmp_path):
    path = tmp_path / "runs.csv"
    text = table_csv(header, cells)
    if "flops" in header:  # the other rows: their true 6 N D
        lines = text.decode().splitlines()
        for i, line in enumerate(lines[1:], start=2):
            n, d, loss, flops = line.split(",")
            lines[i - 1] = ",".join([n, d, loss, flops if (i, 3) in cells else f"{6 * float(n) * float(d):g}"])
        text = ("\n".join(lines) + "\n").encode()
    path.write_bytes(text)
    with pytest.warns(RunTableWarning, match=message):
        load_runs(path)


def test_summary_judges_a_bootstrap_fit_by_its_converged_refits(tmp_path):
    runs = bs.simulate_runs(seed=0)
    for share, status in ((0.5, "FAILED"), (1.0, "ok")):
        synthetic_fit(runs, method="huber", chains=1, draws=60,
                      extra={"bootstrap_converged": share}).save(tmp_path / "huber.nc")
        proc = cli_in_process(["summary", "huber.nc"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert f"diagnostics {status}: {share:.0%} of 60 bootstrap refits converged" in proc.stderr
        assert "bootstrap criteria" in proc.stderr and "R-hat of" not in proc.stderr and "ESS of" not in proc.stderr
        assert "nan" not in proc.stdout  # no R-hat/ESS shown for bootstrap draws
        data = json.loads(cli_in_process(["summary", "huber.nc", "--format", "json"], tmp_path).stdout)
        assert data["ok"] is (share == 1.0) and data["converged_share"] == share
        assert data["criteria"].startswith("bootstrap criteria")
        assert all(p["r_hat"] is None and p["ess_bulk"] is None for p in data["parameters"].values())


def test_summary_of_a_nuts_fit_states_its_criteria(base):
    proc = cli_in_process(["summary", "fit.nc"], base)
    assert proc.returncode == 0 and "NUTS criteria: R-hat < 1.01" in proc.stderr, proc.stderr


def test_cards_has_every_format(tmp_path):
    listed = json.loads(cli_in_process(["cards", "--format", "json"], tmp_path).stdout)
    assert {c["card"] for c in listed} == set(bs.available_cards())
    csv = cli_in_process(["cards", "--format", "csv"], tmp_path).stdout
    assert csv.splitlines()[0] == "card,law,formula" and len(csv.splitlines()) == len(listed) + 1


def test_outputs_replace_only_what_bayes_scaling_wrote_and_clean_stale_temporaries(base, tmp_path):
    shutil.copy(base / "runs.csv", tmp_path / "runs.csv")
    stale = tmp_path / ".sim.csv.999999999.tmp"  # left by a killed save (no process has this id)
    live = tmp_path / f".sim.csv.{os.getpid()}.tmp"  # a save still running: left alone
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    for _ in range(2):  # the second run replaces the first's output: it is a simulated table
        proc = cli(["simulate", "--out", "sim.csv", "--seed", "1"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and live.exists()
    assert (tmp_path / "sim.csv").read_bytes().startswith(b"name,params,tokens,flops,loss")
    proc = cli(["fit", "sim.csv", "--out", "fit.nc", "--method", "huber", "--bootstrap", "1"], tmp_path)
    assert proc.returncode == 2 and not (tmp_path / "fit.nc").exists()  # refused before anything was fitted


def test_report_files_are_recognised_by_their_mark(tmp_path):
    md = tmp_path / "r.md"
    md.write_text(f"# Scaling-law report\n\nbody\n\n{MARKDOWN_MARK}\n")
    mine = tmp_path / "mine.md"
    mine.write_text("# My notes\n\nnot a report\n")
    page = tmp_path / "r.html"
    page.write_text('<html><head><meta name="generator" content="bayes-scaling report"></head></html>')
    data = tmp_path / "r.json"
    data.write_text(json.dumps({"title": "t", "generated_utc": "now", "bayes_scaling": "0.1.0", "sections": {}}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"sections": {}}))
    assert [is_report_file(p) for p in (md, page, data)] == [True, True, True]
    assert [is_report_file(p) for p in (mine, other, tmp_path / "absent.md")] == [False, False, False]


# -- property-based: malformed tables, cards and cell texts ---------------------------------------------------------

CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", "nan", "NA", "none", "1e300", "-0", "0", "70M", "1.4T", "1,000", "2,5", "1e-300", "[b]x",
                     "1 2", "1e", "+", ".", "1.4X"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8),
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.sampled_from(["params", "tokens", "loss", "flops", "Params", "LOSS", "name", "x", ""]),
                       min_size=1, max_size=5),
       cells=st.lists(st.lists(CELLS, min_size=0, max_size=6), min_size=0, max_size=12))
def test_any_malformed_table_is_refused_with_its_name_or_read_valid(header, cells, tmp_path):
    path = tmp_path / "t.csv"
    buf = io.StringIO()
    pd.DataFrame([(row + [""] * len(header))[:len(header)] for row in cells],
                 columns=header).to_csv(buf, index=False)
    path.write_text(buf.getvalue(), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunTableWarning)
        try:
            table = load_runs(path)
        except RunTableError as exc:
            assert str(exc).startswith(f"{path}: "), exc
            return
    for col in ("params", "tokens", "loss", "flops"):
        assert np.isfinite(table[col]).all() and (table[col] > 0).all()


PRIOR_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.booleans(),
                         st.text(max_size=3), st.lists(st.integers(0, 2), max_size=2))


def to_toml(data: Mapping, path: str = "") -> str:
    """TOML text of nested mappings (scalars and lists inline, mappings as [tables])."""
    def value(v: object) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float):
            return repr(v)  # inf, -inf and nan are TOML too
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v, ensure_ascii=False)

    lines = [f"[{path}]"] if path else []
    lines += [f"{json.dumps(k)} = {value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [to_toml(v, f"{path}.{json.dumps(k)}" if path else json.dumps(k)) for k, v in data.items()
              if isinstance(v, Mapping)]
    return "\n".join(lines + tables) + "\n"


@settings(max_examples=40, deadline=None, database=None)
@given(section=st.sampled_from(["priors.E", "priors.A", "priors.alpha", "likelihood.sigma", "discrepancy"]),
       dist=st.sampled_from(["Normal", "LogNormal", "HalfNormal", "TruncatedNormal", "Uniform", "Gamma", "Beta",
                             "StudentT", "Lognormal", ""]),
       kwargs=st.dictionaries(st.sampled_from(["loc", "scale", "low", "high", "rate", "concentration", "df",
                                               "concentration1", "concentration0", "sclae"]),
                              PRIOR_VALUES, max_size=4))
def test_any_malformed_prior_is_refused_with_its_key_or_accepted_valid(section, dist, kwargs):
    import tomllib

    data = tomllib.loads(load_card("chinchilla").text)
    table = data
    for key in section.split("."):
        table = table[key]
    table.clear()
    table.update({"dist": dist, "kwargs": kwargs})
    try:
        card = parse_card(to_toml(data), source="prop.toml")
    except CardError as exc:
        assert str(exc).startswith("prop.toml: ") and f"[{section}]" in str(exc), exc
        return
    typed = {"likelihood.sigma": card.sigma, "discrepancy": card.discrepancy.prior if card.discrepancy else None}
    prior = typed.get(section) or card.priors[section.split(".")[1]]
    assert all(np.isfinite(v) for v in prior.kwargs.values())
    prior.to_numpyro(validate_args=True)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                    max_size=12).filter(lambda t: t.strip() and "," not in t and '"' not in t))
def test_any_cell_text_is_printed_literally(text, tmp_path):
    """A bad cell is quoted as written, whatever markup, emoji code or bracket it holds."""
    path = tmp_path / "runs.csv"
    path.write_bytes(table_csv(cells={(3, 2): text}))
    try:
        load_runs(path)
    except RunTableError as exc:
        expected = str(exc)
    else:
        return  # the text is a number
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["fit", str(path), "--out", str(tmp_path / "f.nc")])
    assert code == 2
    assert err.getvalue().strip() == f"error: {expected}", (err.getvalue(), expected)
