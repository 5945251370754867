"""Runs from training logs: per-run evaluation CSVs (as experiment trackers export them) to a run table.

One CSV per run, one row per evaluation: a step column (``_step`` or ``step``), the
tokens seen so far (``throughput/total_tokens`` or ``tokens``; else step × batch size,
from a ``batch_size_in_tokens`` column or the ``batch_size`` argument) and metric columns.
Model sizes come from a mapping the user gives: run name (the file's stem, or a prefix of
it up to a ``-`` or ``_``, such as the ``190M`` of ``190M-1xC.csv``) -> parameters.

Metric columns keep clean names (:func:`clean_name`): ``eval/c4_en-validation/CrossEntropyLoss``
becomes ``c4_loss``, ``eval/downstream_bpb/hellaswag_val_rc_5shot_bpb`` ``hellaswag_bpb`` and
``eval/downstream/hellaswag_val_rc_5shot_len_norm`` ``hellaswag_acc``. A split (``val``,
``test``) stays in the name only when a task has both in one file (``arc_easy_test_acc``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import RunTableError
from .files import check_output, write_atomically
from .units import parse_quantity

STEP_COLUMNS = ("_step", "step")
TOKEN_COLUMNS = ("throughput/total_tokens", "tokens", "total_tokens")
BATCH_COLUMNS = ("batch_size_in_tokens", "batch_size")
_SPLITS = ("val", "test", "validation", "train")


def clean_name(column: str) -> tuple[str, str | None]:
    """A metric column's clean name, and its split (``val``/``test``) when it names one.

    Examples
    --------
    >>> clean_name("eval/downstream_bpb/hellaswag_val_rc_5shot_bpb")
    ('hellaswag_val_bpb', 'val')
    >>> clean_name("eval/c4_en-validation/CrossEntropyLoss")
    ('c4_loss', None)
    """
    text = column.strip()
    match = re.fullmatch(r"eval/(.+?)-validation/CrossEntropyLoss", text)
    if match:
        return _snake(re.sub(r"_en$", "", match.group(1))) + "_loss", None
    leaf = text.rsplit("/", 1)[-1]
    kinds = {"_bpb": "bpb", "_len_norm": "acc", "_acc": "acc", "_soft_log": "soft_log", "_soft": "soft"}
    for suffix, kind in kinds.items():
        if leaf.endswith(suffix) and "downstream" in text:
            task = re.sub(r"_rc_\d+shot$|_mc_\d+shot$", "", leaf[: -len(suffix)])
            split = next((s for s in _SPLITS if task.endswith(f"_{s}")), None)
            return _snake(f"{task}_{kind}"), split
    return _snake(leaf), None


def _snake(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^0-9a-zA-Z]+", "_", text)).strip("_").lower()


def _drop_split(name: str, split: str) -> str:
    return name.replace(f"_{split}_", "_", 1)


def read_sizes(source: str | Path | Mapping[str, float | str]) -> dict[str, float]:
    """Run name -> parameters, from a mapping or a TOML/CSV file.

    A TOML file holds ``NAME = PARAMS`` lines (optionally under ``[params]``); a CSV file
    two columns ``name`` and ``params``. Values may carry suffixes (``190M``, ``1.3B``).

    Raises
    ------
    RunTableError
        If the file is missing or unreadable, or a size is not a positive number.
    """
    if isinstance(source, Mapping):
        raw, label = dict(source), "sizes"
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise RunTableError(f"{path}: no such sizes file; give a TOML (NAME = PARAMS) or CSV (name, params)")
        if path.suffix.lower() == ".toml":
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise RunTableError(f"{path}: not valid TOML ({exc})") from None
            raw = data.get("params", data)
        else:
            frame = pd.read_csv(path, dtype=str)
            if not {"name", "params"} <= set(frame.columns):
                raise RunTableError(f"{path}: a sizes CSV needs columns name and params; it has {list(frame.columns)}")
            raw = dict(zip(frame["name"], frame["params"], strict=True))
    out = {}
    for name, value in raw.items():
        try:
            params = parse_quantity(value, what="params") if isinstance(value, str) else float(value)
        except (ValueError, TypeError):
            params = float("nan")
        if not (np.isfinite(params) and params > 0):
            raise RunTableError(f"{label}: size of run {name!r} is {value!r}; give a positive number of parameters")
        out[str(name)] = params
    if not out:
        raise RunTableError(f"{label}: no sizes given")
    return out


def _size_of(run: str, sizes: Mapping[str, float], path: Path) -> float:
    if run in sizes:
        return sizes[run]
    prefixes = [k for k in sizes if re.match(re.escape(k) + r"[-_]", run)]
    if not prefixes:
        raise RunTableError(f"{path}: run {run!r} has no size in the mapping (known: {', '.join(sorted(sizes))}); "
                            f"add {run} = PARAMS, or a prefix of it up to '-' or '_'")
    return sizes[max(prefixes, key=len)]


def read_log(path: str | Path, params: float, *, batch_size: float | None = None) -> pd.DataFrame:
    """One run's evaluations: ``step``, ``tokens`` and the metric columns under clean names.

    Raises
    ------
    RunTableError
        Naming the file, row (1-based, as a spreadsheet shows it, the header being row 1)
        and column of the first problem: no step or tokens column, a value that is not
        a number, tokens that do not increase.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise RunTableError(f"{path}: cannot be read as CSV ({exc})") from None
    step_col = next((c for c in STEP_COLUMNS if c in raw), None)
    if step_col is None:
        raise RunTableError(f"{path}: no step column (one of {', '.join(STEP_COLUMNS)}); "
                            f"its columns start {list(raw.columns)[:6]}")
    token_col = next((c for c in TOKEN_COLUMNS if c in raw), None)
    batch_col = next((c for c in BATCH_COLUMNS if c in raw), None)
    if token_col is None and batch_col is None and batch_size is None:
        raise RunTableError(f"{path}: no tokens column (one of {', '.join(TOKEN_COLUMNS)}) and no batch size "
                            f"(column {' or '.join(BATCH_COLUMNS)}, or --batch-size) to compute step × batch size")
    numeric = {}
    for column in raw.columns:
        values = pd.to_numeric(raw[column], errors="coerce")
        bad = values.isna() & raw[column].notna()
        if bad.any():
            if column in (step_col, token_col, batch_col):
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise RunTableError(f"{path}: row {row + 2}, column {column!r}: {raw[column].iloc[row]!r} is not a "
                                    "number")
            continue  # a text column (a tag, a timestamp): not a metric
        numeric[column] = values.to_numpy(float)
    step = numeric[step_col]
    if token_col is not None:
        tokens = numeric[token_col]
        source = token_col
    else:
        assert batch_col is not None or batch_size is not None  # checked above
        batch = numeric[batch_col] if batch_col is not None else np.full(len(step), float(batch_size or 0.0))
        tokens, source = step * batch, f"{step_col} × {batch_col or 'batch size'}"
    for values, name in ((step, step_col), (tokens, source)):
        if np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values))[0])
            raise RunTableError(f"{path}: row {row + 2}, column {name!r} is empty")
        back = np.flatnonzero(np.diff(values) <= 0)
        if back.size:
            row = int(back[0]) + 1
            raise RunTableError(f"{path}: row {row + 2}, column {name!r}: {values[row]:g} does not increase on the "
                                f"row before ({values[row - 1]:g}); tokens must grow along a run (sort the log "
                                "by step, or drop a restarted segment)")
    out = pd.DataFrame({"step": step, "tokens": tokens, "params": np.full(len(step), params)})
    metrics = {c: clean_name(c) for c in numeric if c not in (step_col, token_col)}
    names = _final_names(metrics)
    seen: dict[str, str] = {}
    for column, name in names.items():
        if name in seen:
            raise RunTableError(f"{path}: columns {seen[name]!r} and {column!r} both clean to {name!r}; "
                                "rename one of them")
        if name in out:
            continue
        seen[name] = column
        out[name] = numeric[column]
    return out


def _final_names(metrics: Mapping[str, tuple[str, str | None]]) -> dict[str, str]:
    """Drop the split from a name when its task has no other split in the file."""
    splits: dict[str, set[str]] = {}
    for name, split in metrics.values():
        if split:
            splits.setdefault(_drop_split(name, split), set()).add(split)
    return {c: (_drop_split(n, s) if s and len(splits[_drop_split(n, s)]) == 1 else n)
            for c, (n, s) in metrics.items()}


def read_logs(folder: str | Path, sizes: str | Path | Mapping[str, float | str], *, every: bool = False,
              batch_size: float | None = None, loss: str | None = None) -> pd.DataFrame:
    """The run table of a folder of per-run evaluation logs (one ``.csv`` per run).

    Parameters
    ----------
    folder : str or Path
        Folder of CSV files; each file's stem names its run.
    sizes : mapping or path
        Run name (or prefix up to ``-``/``_``) -> parameters N; see :func:`read_sizes`.
    every : bool, default False
        ``False``: one row per run, its final evaluation (a run's result; intermediate
        evaluations of a run with a decaying schedule are not what a shorter run would reach).
        ``True``: every evaluation, for learning-curve work.
    batch_size : float, optional
        Tokens per step, for logs with neither a tokens nor a batch-size column.
    loss : str, optional
        A metric column (clean name, e.g. ``c4_loss``) to copy into ``loss``, the column
        the loss laws fit.

    Returns
    -------
    DataFrame
        ``name``, ``params``, ``tokens``, ``step`` and the metric columns under clean names,
        sorted by ``name`` (and ``step``); ``attrs["source"]`` names the folder.

    Raises
    ------
    RunTableError
        No CSV files, a run without a size, a bad log (see :func:`read_log`), an unknown
        ``loss`` column.

    Examples
    --------
    >>> runs = read_logs("ladder/", {"190M": 190_354_176, "370M": 371_262_464})  # doctest: +SKIP
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunTableError(f"{folder}: no such folder of training logs")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise RunTableError(f"{folder}: no .csv files (one per run) in the folder")
    mapping = read_sizes(sizes)
    tables = []
    for path in files:
        log = read_log(path, _size_of(path.stem, mapping, path), batch_size=batch_size)
        if not every:
            log = log.iloc[[-1]]
        tables.append(log.assign(name=path.stem))
    table = pd.concat(tables, ignore_index=True)
    if loss is not None:
        if loss not in table:
            metrics = [c for c in table.columns if c not in ("name", "params", "tokens", "step")]
            raise RunTableError(f"{folder}: --loss {loss!r} is not a metric of the logs; they have "
                                f"{', '.join(metrics)}")
        table["loss"] = table[loss]
    first = ["name", "params", "tokens", *(["loss"] if loss else []), "step"]
    table = table[first + [c for c in table.columns if c not in first]]
    table.attrs["source"] = folder.name
    return table


#: Suffixes :func:`write_table` writes.
TABLE_SUFFIXES = (".csv", ".parquet")


def is_imported_table(path: str | Path) -> bool:
    """Whether ``path`` holds a run table written by :func:`write_table` (so it may be replaced).

    Recognised by its leading columns, ``name,params,tokens`` then ``loss`` or ``step``, as
    :func:`read_logs` orders them; any other file, above all a user's own table, is not.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            columns = [str(c) for c in pd.read_parquet(path).columns]
        else:
            with path.open(encoding="utf-8") as fh:
                columns = fh.readline().strip().split(",")
    except Exception:  # unreadable: not ours  # noqa: BLE001
        return False
    return columns[:3] == ["name", "params", "tokens"] and len(columns) > 3 and columns[3] in ("loss", "step")


def check_table_output(path: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse, before any log is read, a path :func:`write_table` must not write (see :func:`files.check_output`)."""
    return check_output(path, option="--out", what="run table", example="runs.csv", suffixes=TABLE_SUFFIXES,
                        inputs=inputs, is_ours=is_imported_table)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write an imported run table (``.csv`` or ``.parquet``) atomically; see :func:`check_table_output`."""
    path = check_table_output(path)
    if path.suffix.lower() == ".parquet":
        write_atomically({path: lambda tmp: table.to_parquet(tmp, index=False)})
    else:
        write_atomically({path: lambda tmp: table.to_csv(tmp, index=False)})
    return path


__all__ = ["check_table_output", "clean_name", "is_imported_table", "read_log", "read_logs", "read_sizes",
           "write_table"]
