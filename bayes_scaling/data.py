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
``group``, ``name``
    Optional labels (model family / dataset, run name).

Any other column whose values are all numbers (or empty) travels with the runs under its
name stripped of surrounding spaces: metric columns such as ``hellaswag_bpb``,
``hellaswag_acc`` or ``c4_loss``, which a task fit names (``--metric``, ``--via``). Empty
cells of such columns are NaN; a fit checks the columns it models.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import RunTableError
from .units import parse_quantity

NUMERIC_COLUMNS = ("params", "tokens", "loss", "flops", "unique_tokens", "epochs", "embedding_params")
LABEL_COLUMNS = ("group", "name")
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
        Fewer valid runs than this is an error (the law cannot be identified).
    require_loss : bool, default True
        ``False`` for a table whose fit models metric columns instead (a task fit names
        its intermediate with ``via``): then ``loss`` may be missing.

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
    table.attrs["source"] = label
    table.attrs["sha256"] = digest
    return validate_runs(table, label=label, min_runs=min_runs)


def _read(source: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    if isinstance(source, pd.DataFrame):
        digest = hashlib.sha256(source.to_csv(index=False).encode()).hexdigest()
        return source.copy(), str(source.attrs.get("source", "<DataFrame>")), digest
    path = Path(source)
    if not path.is_file():
        raise RunTableError(f"{path}: no such file; give the path of a CSV or Parquet run table")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                                keep_default_na=False, skipinitialspace=True)
        else:
            raise RunTableError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")
    except RunTableError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise RunTableError(f"{path}: cannot be read as a {suffix[1:]} table ({exc})") from None
    return frame, str(path), digest


def _canonical(raw: pd.DataFrame, columns: Mapping[str, str], label: str, *,
               require_loss: bool = True) -> pd.DataFrame:
    unknown = sorted(set(columns) - set(NUMERIC_COLUMNS) - set(LABEL_COLUMNS))
    if unknown:
        raise RunTableError(
            f"{label}: unknown canonical column(s) {unknown} in the column mapping; "
            f"known: {', '.join(NUMERIC_COLUMNS + LABEL_COLUMNS)}"
        )
    by_lower = {str(c).strip().lower(): c for c in raw.columns}
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
            picked[canon] = by_lower[canon]
    missing = [c for c in ("params", *(["loss"] if require_loss else [])) if c not in picked]
    if "tokens" not in picked and "flops" not in picked:
        missing.append("tokens (or flops)")
    if missing:
        raise RunTableError(
            f"{label}: missing required column(s) {', '.join(missing)}; the table has "
            f"{list(map(str, raw.columns))}. Rename them or pass a mapping, e.g. "
            "--column params='Model Size' (Python: columns={'params': 'Model Size'})"
        )
    out = pd.DataFrame(index=range(len(raw)))
    for canon, source_col in picked.items():
        values = raw[source_col].reset_index(drop=True)
        out[canon] = (_to_float(values, canon, str(source_col), label) if canon in NUMERIC_COLUMNS
                      else values.astype(str))
    used = set(picked.values())
    extras: dict[str, pd.Series] = {}
    for column in raw.columns:
        name = str(column).strip()
        if column in used or name.lower() in NUMERIC_COLUMNS + LABEL_COLUMNS or name in out or name in extras:
            continue
        extra = _numeric_or_none(raw[column].reset_index(drop=True))
        if extra is not None:
            extras[name] = extra
    return pd.concat([out, pd.DataFrame(extras, index=out.index)], axis=1) if extras else out


def _numeric_or_none(values: pd.Series) -> pd.Series | None:
    """An extra column as float64 (empty cells NaN), or ``None`` when any cell is not a plain number."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    text = values.astype(str).str.strip()
    empty = text.str.lower().isin(("", "nan", "na", "null", "none"))
    parsed = pd.to_numeric(text.where(~empty), errors="coerce")
    if parsed[~empty].isna().any() or empty.all():
        return None
    return parsed.astype("float64")


def _to_float(values: pd.Series, canon: str, source_col: str, label: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
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
                f"{label}: row {i + 1}, column {source_col!r}: {text!r} is not a number; "
                "write plain numbers or ones with a suffix like 70M, 1.4B, 1.4T, 5.76e23"
            ) from None
    return pd.Series(parsed, index=values.index, dtype="float64")


def validate_runs(runs: pd.DataFrame, *, label: str = "<DataFrame>", min_runs: int = MIN_RUNS) -> pd.DataFrame:
    """Check a table already in canonical columns; fill ``tokens``/``flops``; warn on oddities.

    Parameters
    ----------
    runs : DataFrame
        Canonical columns (``params``, ``loss`` and ``tokens`` or ``flops``).
    label : str, default "<DataFrame>"
        Where the table came from, for messages.
    min_runs : int, default 8
        Minimum number of runs.

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
    for col in ("params", "tokens", "flops", "loss", "unique_tokens", "epochs", "embedding_params"):
        if col not in table:
            continue
        values = table[col].to_numpy(dtype="float64")
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "is missing (empty or NaN)" if np.isnan(values[row]) else f"is {values[row]} (infinite)"
            raise RunTableError(f"{label}: row {row + 1}, column {col!r} {what}; every run needs a finite {col}")
        if col == "embedding_params":
            nonpos = values < 0
        else:
            nonpos = values <= 0
        if nonpos.any():
            row = int(np.flatnonzero(nonpos)[0])
            raise RunTableError(
                f"{label}: row {row + 1}, column {col!r} is {values[row]:g}; it must be positive "
                f"({_unit(col)})"
            )
    if "tokens" not in table:
        table["tokens"] = table["flops"] / (6.0 * table["params"])
    if "flops" not in table:
        table["flops"] = 6.0 * table["params"] * table["tokens"]
    n = len(table)
    if n < min_runs:
        raise RunTableError(
            f"{label}: only {n} run(s); at least {min_runs} runs over several model sizes and token "
            "counts are needed to identify E, A, B, alpha and beta"
        )
    for col in ("params", "tokens"):
        distinct = table[col].round(-1).nunique()
        if distinct < 3:
            raise RunTableError(
                f"{label}: column {col!r} has only {distinct} distinct value(s); the law's exponent for "
                f"{col} cannot be identified without at least 3 different {col}"
            )
    key = table[["params", "tokens"]]
    dup = key.duplicated(keep="first")
    if dup.any():
        rows = [int(i) + 1 for i in np.flatnonzero(dup.to_numpy())[:5]]
        warnings.warn(
            f"{label}: {int(dup.sum())} run(s) repeat the params and tokens of an earlier run "
            f"(rows {rows}); they are kept as independent observations",
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


def _unit(col: str) -> str:
    return {
        "params": "a number of parameters",
        "tokens": "a number of training tokens",
        "flops": "training compute in FLOPs",
        "loss": "a cross-entropy loss in nats per token",
        "unique_tokens": "a number of unique tokens",
        "epochs": "a number of passes over the unique tokens",
    }.get(col, "a count")
