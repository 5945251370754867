"""The run table: one row per training run, loaded, validated and put in canonical form.

Canonical columns
-----------------
``params``
    Model size N (parameters). Required.
``tokens``
    Training tokens D. Required unless ``flops`` is given (then D = C / (6 N)).
``loss``
    Final (or checkpoint) training/validation loss, nats per token. Required.
``flops``
    Training compute C (FLOPs). Optional; defaults to 6 N D.
``unique_tokens``, ``epochs``, ``embedding_params``
    Optional, used by the data-constrained law and parameter-counting switch.
``experts``
    Optional, the number of experts of a routed (mixture-of-experts) model, at least 1
    (1: dense); used by the routed-model law, whose ``params`` is the dense model's size.
``group``, ``name``
    Optional labels (model family / dataset / arm, run name).
``eval_set``
    Optional label of the held-out set the loss was measured on (``compare-arms`` warns
    when arms differ in it).
``replicate``
    Optional label of a run's seed: runs of the same (N, D) with different labels are
    replicates, which inform run-to-run noise (:mod:`bayes_scaling.replicates`); the same
    (N, D) and label twice is an error.

Any other column whose values are all numbers (or empty) travels with the runs under its
name stripped of surrounding spaces: metric columns such as ``hellaswag_bpb``,
``hellaswag_acc`` or ``c4_loss``, which a task fit names (``--metric``, ``--via``). Empty
cells of such columns are NaN; a fit checks the columns it models.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import RunTableError
from .units import COLUMN_MINIMUM, parse_quantity

NUMERIC_COLUMNS = ("params", "tokens", "loss", "flops", "unique_tokens", "epochs", "embedding_params", "experts")
LABEL_COLUMNS = ("group", "name", "eval_set", "replicate")
#: Runs with fewer rows than this cannot identify a five-parameter law plus noise.
MIN_RUNS = 8


class RunTableWarning(UserWarning):
    """Something in a run table looks suspicious but does not stop the fit."""


def load_runs(
    source: str | Path | pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    min_runs: int = MIN_RUNS,
    require_loss: bool = True,
    require_spread: bool = True,
) -> pd.DataFrame:
    """Load and validate a run table.

    Parameters
    ----------
    source : str, Path or DataFrame
        A ``.csv``/``.tsv`` or ``.parquet`` file, or a DataFrame already in memory.
    columns : mapping of str to str, optional
        Canonical name -> name in the source, for tables with other headers, e.g.
        ``{"params": "Model Size", "flops": "Training FLOP"}``.
    min_runs : int, default 8
        Fewer valid runs than this is an error (the law cannot be identified); a table
        that is not fitted (held-out runs) may ask for fewer.
    require_loss : bool, default True
        ``False`` for a table whose fit models metric columns instead (a task fit names
        its intermediate with ``via``): then ``loss`` may be missing.
    require_spread : bool, default True
        Require at least 3 distinct model sizes and token counts (sizes only in a table
        with ``experts``), without which the law's exponents cannot be identified;
        ``False`` for a table that is not fitted (held-out runs): one size is fine.

    Returns
    -------
    DataFrame
        Canonical columns (see module docstring) as float64, extra numeric columns as
        float64 (empty cells NaN), ``flops`` always filled
        (6 N D when not given). ``attrs["source"]`` names where it came from and
        ``attrs["sha256"]`` hashes the file (or the table's CSV form).

    Raises
    ------
    RunTableError
        With the file, row (1-based, as a spreadsheet shows it) and column of the
        first bad value, and how to fix it.

    Examples
    --------
    >>> runs = load_runs("runs.csv", columns={"params": "Model Size"})  # doctest: +SKIP
    """
    raw, label, digest = _read(source)
    table = _canonical(raw, columns or {}, label, require_loss=require_loss)
    table.attrs.update(raw.attrs)
    table.attrs["source"] = label
    table.attrs["sha256"] = digest
    return validate_runs(table, label=label, min_runs=min_runs, require_spread=require_spread)


def source_columns(source: str | Path | pd.DataFrame) -> list[str]:
    """The column names of a run table as written in its file (before any mapping to canonical names)."""
    return [str(c) for c in _read(source)[0].columns]


def _read(source: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    if isinstance(source, pd.DataFrame):
        digest = hashlib.sha256(source.to_csv(index=False).encode()).hexdigest()
        frame = source.copy()
        frame.attrs.pop("first_row", None)  # rows of a DataFrame are named by its index
        return frame, str(source.attrs.get("source", "<DataFrame>")), digest
    path = Path(source)
    if path.is_dir():
        raise RunTableError(f"{path}: is a folder, not a file; give the path of a CSV or Parquet run table")
    if not path.is_file():
        raise RunTableError(f"{path}: no such file; give the path of a CSV or Parquet run table")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".tsv", ".txt"):
        raise RunTableError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")
    kind = _binary_kind(data[:8])
    if kind is not None and not (kind == "a Parquet file" and suffix in (".parquet", ".pq")):
        raise RunTableError(f"{path}: is {kind}, not a {suffix[1:]} table; {_BINARY_ADVICE[kind]}")
    sep = "\t" if suffix == ".tsv" else ","
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True,
                                encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RunTableError(f"{path}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                            "save the table as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise RunTableError(f"{path}: is empty; a run table needs a header row (params,tokens,loss) and one row "
                            "per run") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise RunTableError(f"{path}: cannot be read as a {suffix[1:]} table ({exc})") from None
        want, line, saw = found.groups()
        raise RunTableError(f"{path}: row {line} has {saw} cells but the header has {want} columns; a comma inside "
                            "a value (1,000 or 1,5)? Quote it or remove it") from None
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise RunTableError(f"{path}: cannot be read as a {suffix[1:]} table ({exc})") from None
    if suffix not in (".parquet", ".pq") and len(frame.columns) == 1:
        header = str(frame.columns[0])
        for char, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if char in header and char != sep:
                fix = "rename it .tsv" if char == "\t" else "save it with commas as the delimiter"
                raise RunTableError(f"{path}: the header {header!r} looks {name}-separated, but a {suffix[1:]} "
                                    f"file is read with {'tabs' if sep == chr(9) else 'commas'}; {fix}")
    frame.attrs["first_row"] = 2  # the header is row 1, as a spreadsheet shows the file
    return frame, str(path), digest


#: Leading bytes of file formats that are not text tables.
_MAGIC = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?)",
          b"\xd0\xcf\x11\xe0": "an Excel .xls workbook", b"PAR1": "a Parquet file",
          b"\x89HDF": "an HDF5/NetCDF file (a saved fit?)"}
_BINARY_ADVICE = {"gzip-compressed": "decompress it first (gunzip)",
                  "a ZIP archive (an Excel .xlsx workbook?)": "export the sheet as CSV (File > Save as > CSV)",
                  "an Excel .xls workbook": "export the sheet as CSV (File > Save as > CSV)",
                  "a Parquet file": "rename it .parquet",
                  "an HDF5/NetCDF file (a saved fit?)": "give the run table the fit was made from"}


def _binary_kind(head: bytes) -> str | None:
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def row_name(table: pd.DataFrame, position: int) -> str:
    """How a message names the run at ``position``: the file's row as a spreadsheet shows it
    (header = row 1), or a DataFrame's index label."""
    first = table.attrs.get("first_row")
    if first is not None:
        return f"row {position + int(first)}"
    label = table.index[position]
    return f"index {label!r}" if isinstance(label, str) else f"index {label}"


def _canonical(raw: pd.DataFrame, columns: Mapping[str, str], label: str, *,
               require_loss: bool = True) -> pd.DataFrame:
    unknown = sorted(set(columns) - set(NUMERIC_COLUMNS) - set(LABEL_COLUMNS))
    if unknown:
        raise RunTableError(
            f"{label}: unknown canonical column(s) {unknown} in the column mapping; "
            f"known: {', '.join(NUMERIC_COLUMNS + LABEL_COLUMNS)}"
        )
    by_lower: dict[str, list[object]] = {}
    for c in raw.columns:
        base = str(c).strip().lower()
        # pandas renames a repeated header "params" to "params.1": the same column twice
        mangled = re.fullmatch(r"(.+)\.\d+", base)
        if mangled and mangled.group(1) in NUMERIC_COLUMNS + LABEL_COLUMNS and mangled.group(1) in {
                str(o).strip().lower() for o in raw.columns}:
            base = mangled.group(1)
        by_lower.setdefault(base, []).append(c)
    picked: dict[str, object] = {}
    for canon in NUMERIC_COLUMNS + LABEL_COLUMNS:
        if canon in columns:
            if columns[canon] not in raw.columns:
                raise RunTableError(
                    f"{label}: column {columns[canon]!r} (mapped to {canon!r}) is not in the table; "
                    f"its columns are {list(map(str, raw.columns))}"
                )
            picked[canon] = columns[canon]
        elif canon in by_lower:
            if len(by_lower[canon]) > 1:
                names = " and ".join(repr(str(c)) for c in by_lower[canon])
                raise RunTableError(
                    f"{label}: columns {names} both read as {canon!r} (names are case-insensitive); rename or "
                    f"drop one, or choose one with --column {canon}='NAME' (Python: columns={{'{canon}': 'NAME'}})"
                )
            picked[canon] = by_lower[canon][0]
    missing = [c for c in ("params", *(["loss"] if require_loss else [])) if c not in picked]
    if "tokens" not in picked and "flops" not in picked:
        missing.append("tokens (or flops)")
    if missing:
        raise RunTableError(
            f"{label}: missing required column(s) {', '.join(missing)}; the table has "
            f"{list(map(str, raw.columns))}. Rename them or pass a mapping, e.g. "
            "--column params='Model Size' (Python: columns={'params': 'Model Size'})"
        )
    out = pd.DataFrame(index=raw.index)
    out.attrs.update(raw.attrs)
    for canon, source_col in picked.items():
        values = raw[source_col]
        if isinstance(values, pd.DataFrame):  # a DataFrame with the same column name twice
            raise RunTableError(f"{label}: column {str(source_col)!r} appears twice; rename or drop one")
        out[canon] = (_to_float(values, str(source_col), label, out) if canon in NUMERIC_COLUMNS
                      else values.astype(str).to_numpy())
    used = set(picked.values())
    extras: dict[str, pd.Series] = {}
    for column in raw.columns:
        name = str(column).strip()
        if column in used or name.lower() in NUMERIC_COLUMNS + LABEL_COLUMNS or name in out or name in extras:
            continue
        values = raw[column]
        if isinstance(values, pd.DataFrame):  # the same extra column name twice: neither is a metric
            continue
        extra = _numeric_or_none(values)
        if extra is not None:
            extras[name] = extra
    return pd.concat([out, pd.DataFrame(extras, index=out.index)], axis=1) if extras else out


def _numeric_or_none(values: pd.Series) -> pd.Series | None:
    """An extra column as float64 (empty cells NaN), or ``None`` when any cell is not a plain number."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    text = values.astype(str).str.strip()
    empty = text.str.lower().isin(("", "nan", "na", "null", "none"))
    parsed = pd.to_numeric(text.where(~empty), errors="coerce")
    if parsed[~empty].isna().any() or empty.all():
        return None
    return parsed.astype("float64")


def _to_float(values: pd.Series, source_col: str, label: str, table: pd.DataFrame) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype="float64")
    parsed = np.empty(len(values))
    for i, item in enumerate(values):
        text = "" if item is None else str(item).strip()
        if text.lower() in ("", "nan", "na", "null", "none"):
            parsed[i] = np.nan
            continue
        try:
            parsed[i] = parse_quantity(text)
        except ValueError:
            raise RunTableError(
                f"{label}: {row_name(table, i)}, column {source_col!r}: {text!r} is not a number; "
                "write plain numbers or ones with a suffix like 70M, 1.4B, 1.4T, 5.76e23"
            ) from None
    return parsed


def validate_runs(runs: pd.DataFrame, *, label: str = "<DataFrame>", min_runs: int = MIN_RUNS,
                  require_spread: bool = True) -> pd.DataFrame:
    """Check a table already in canonical columns; fill ``tokens``/``flops``; warn on oddities.

    Parameters
    ----------
    runs : DataFrame
        Canonical columns (``params``, ``loss`` and ``tokens`` or ``flops``).
    label : str, default "<DataFrame>"
        Where the table came from, for messages.
    min_runs : int, default 8
        Minimum number of runs.
    require_spread : bool, default True
        Require at least 3 distinct sizes and token counts (see :func:`load_runs`).

    Returns
    -------
    DataFrame
        A validated copy with ``tokens`` and ``flops`` filled.

    Raises
    ------
    RunTableError
        Naming the row (1-based) and column of the first invalid value.
    """
    table = runs.copy()
    for col in NUMERIC_COLUMNS:
        if col not in table:
            continue
        values = table[col].to_numpy(dtype="float64")
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "is missing (empty or NaN)" if np.isnan(values[row]) else f"is {values[row]} (infinite)"
            raise RunTableError(f"{label}: {row_name(table, row)}, column {col!r} {what}; every run needs a finite "
                                f"{col}")
        if col in COLUMN_MINIMUM:
            low = COLUMN_MINIMUM[col]
            if (values < low).any():
                row = int(np.flatnonzero(values < low)[0])
                raise RunTableError(f"{label}: {row_name(table, row)}, column {col!r} is {values[row]:g}; it must be "
                                    f"at least {low:g} ({_unit(col)})")
        if col == "embedding_params":
            nonpos = values < 0
        else:
            nonpos = values <= 0
        if nonpos.any():
            row = int(np.flatnonzero(nonpos)[0])
            raise RunTableError(
                f"{label}: {row_name(table, row)}, column {col!r} is {values[row]:g}; it must be positive "
                f"({_unit(col)})"
            )
    given = {c for c in ("tokens", "flops") if c in table}
    with np.errstate(over="ignore", under="ignore"):
        if "tokens" not in table:
            table["tokens"] = table["flops"] / (6.0 * table["params"])
        if "flops" not in table:
            table["flops"] = 6.0 * table["params"] * table["tokens"]
    for col in ("tokens", "flops"):
        derived = table[col].to_numpy(dtype="float64")
        off = ~(np.isfinite(derived) & (derived > 0))
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise RunTableError(
                f"{label}: {row_name(table, row)}: {col} = {'C / (6 N)' if col == 'tokens' else '6 N D'} is "
                f"{derived[row]:g} (params {table['params'].iloc[row]:g}); the values are outside any range a "
                "training run can have: check the units of params, tokens and flops"
            )
    n = len(table)
    if n < min_runs:
        raise RunTableError(
            f"{label}: only {n} run(s); at least {min_runs} runs over several model sizes and token "
            "counts are needed to identify E, A, B, alpha and beta"
        )
    # Routed-model tables (with experts) often train every model on the same tokens, and their law has no D term.
    for col in () if not require_spread else ("params",) if "experts" in table else ("params", "tokens"):
        distinct = table[col].round(-1).nunique()
        if distinct < 3:
            raise RunTableError(
                f"{label}: column {col!r} has only {distinct} distinct value(s); the law's exponent for "
                f"{col} cannot be identified without at least 3 different {col}"
            )
    for col in ("eval_set", "replicate"):
        if col in table:
            blank = table[col].astype(str).str.strip().str.lower().isin(("", "nan", "none", "na", "null"))
            if blank.any():
                row = int(np.flatnonzero(blank.to_numpy())[0])
                raise RunTableError(f"{label}: {row_name(table, row)}, column {col!r} is empty; give every run "
                                    f"its {'evaluation set' if col == 'eval_set' else 'replicate (seed) label'}")
    # Runs of different arms (group) or seeds (replicate) at one (N, D) are distinct on purpose.
    names = ["params", "tokens", *(c for c in ("experts", "group", "replicate") if c in table)]
    dup = table[names].duplicated(keep="first")
    if dup.any():
        first = [row_name(table, int(i)) for i in np.flatnonzero(dup.to_numpy())[:5]]
        rows = (f"{'rows' if first[0].startswith('row') else 'index labels'} "
                f"{', '.join(r.split(' ', 1)[1] for r in first)}")
        what = f"{', '.join(names[:-1])} and {names[-1]}"
        if "replicate" in table:
            raise RunTableError(f"{label}: {int(dup.sum())} run(s) repeat the {what} of an earlier run ({rows}); "
                                "each replicate of an (N, D) needs its own label in column 'replicate'")
        warnings.warn(
            f"{label}: {int(dup.sum())} run(s) repeat the {what} of an earlier run ({rows}); they are kept as "
            "independent observations",
            RunTableWarning,
            stacklevel=2,
        )
    for col, floor, example in (("params", 1e5, "parameter counts (e.g. 70M or 7e7)"),
                                ("tokens", 1e6, "token counts (e.g. 1.4T or 1.4e12)")):
        if table[col].max() < floor:
            warnings.warn(
                f"{label}: column {col!r} tops out at {table[col].max():g}; is it in millions or "
                f"billions? Give plain {example}",
                RunTableWarning,
                stacklevel=2,
            )
    _warn_out_of_range(table, label, given)
    if "loss" in table and table["loss"].max() > 20:
        warnings.warn(
            f"{label}: column 'loss' reaches {table['loss'].max():g}; is it perplexity? The laws "
            "model cross-entropy loss in nats per token",
            RunTableWarning,
            stacklevel=2,
        )
    table.attrs.update(runs.attrs)
    table.attrs.setdefault("source", label)
    return table.reset_index(drop=True)


#: Beyond these, a value is no training run's: most likely a unit or column mix-up (warned, not refused).
_PLAUSIBLE = {"params": (None, 1e14, "no model has 100T parameters"),
              "tokens": (None, 1e16, "no model was trained on 10 quadrillion tokens"),
              "loss": (1e-2, None, "cross-entropy loss in nats per token is far above 0.01")}
#: ``flops`` more than this factor away from 6 N D is not the same runs' compute.
FLOPS_TOLERANCE = 10.0


def _warn_out_of_range(table: pd.DataFrame, label: str, given: set[str]) -> None:
    """Warn about values no training run can have, and flops that contradict 6 N D."""
    for col, (low, high, why) in _PLAUSIBLE.items():
        if col not in table:  # a task table may model metric columns instead of loss
            continue
        values = table[col].to_numpy(dtype="float64")
        for bound, worst in ((high, np.argmax(values)), (low, np.argmin(values))):
            if bound is None or not (values[worst] > bound if bound == high else values[worst] < bound):
                continue
            warnings.warn(
                f"{label}: {row_name(table, int(worst))}, column {col!r} is {values[worst]:g}; {why}: is the "
                f"column in the right unit ({_unit(col)})?",
                RunTableWarning,
                stacklevel=3,
            )
    if given == {"tokens", "flops"}:
        n, d = table["params"].to_numpy(float), table["tokens"].to_numpy(float)
        ratio = table["flops"].to_numpy(float) / (6.0 * n * d)
        far = int(np.argmax(np.abs(np.log(ratio))))
        if not 1 / FLOPS_TOLERANCE <= ratio[far] <= FLOPS_TOLERANCE:
            count = int(np.sum((ratio > FLOPS_TOLERANCE) | (ratio < 1 / FLOPS_TOLERANCE)))
            warnings.warn(
                f"{label}: {row_name(table, far)}, column 'flops' is {ratio[far]:.3g} times 6 N D "
                f"({count} run(s) off by more than {FLOPS_TOLERANCE:g}x); flops and tokens disagree: check their "
                "units (flops is used as the compute, tokens as D)",
                RunTableWarning,
                stacklevel=3,
            )


def _unit(col: str) -> str:
    return {
        "params": "a number of parameters",
        "tokens": "a number of training tokens",
        "flops": "training compute in FLOPs",
        "loss": "a cross-entropy loss in nats per token",
        "unique_tokens": "a number of unique tokens",
        "epochs": "a number of passes over the unique tokens",
        "experts": "a number of experts, 1 for a dense model",
    }.get(col, "a count")
