"""The report's "Backtest" section: would the intervals have held beyond the data?

Added when a backtest is passed to the report (``write_report(fit, out, backtest=result)``;
CLI: ``report --backtest backtest.json``, the output of ``bayes-scaling backtest --format
json``). It shows the calibration curve of each (card, method, cutoff) -- nominal level
against the share of held-out runs its central interval covered -- and the scores of
each: 90% coverage, interval width, log predictive density and CRPS.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..backtesting import RECORD_KEYS, SPLIT_KINDS, BacktestResult, split_label
from ..errors import InputError
from .analysis_figures import plot_calibration
from .content import ReportContext
from .html import Section, escape, figure, markdown_table, table

#: What a report accepts as a backtest: a result, its records, or the path of its JSON.
BacktestSource = BacktestResult | Sequence[Mapping[str, Any]] | str | Path


def backtest_records(source: BacktestSource) -> list[dict[str, Any]]:
    """Backtest records (``BacktestResult.records()`` form), checked.

    Parameters
    ----------
    source : BacktestResult, list of dict, str or Path
        A result, its records, or a JSON file written by ``bayes-scaling backtest --format json``.

    Raises
    ------
    InputError
        If the file is missing or not JSON, or a record lacks a key or its calibration curve,
        naming the record and the key.
    """
    label = "backtest"
    if isinstance(source, BacktestResult):
        return source.records()
    if isinstance(source, (str, Path)):
        label = str(source)
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{label}: no such backtest file (write one with "
                             "`bayes-scaling backtest RUNS --format json > backtest.json`)") from None
        except IsADirectoryError:
            raise InputError(f"{label}: is a folder, not a backtest JSON file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{label}: not a backtest JSON file ({exc})") from None
        except OSError as exc:
            raise InputError(f"{label}: cannot be read ({exc.strerror})") from None
    if isinstance(source, Mapping) or not isinstance(source, Sequence) or not source:
        raise InputError(f"{label}: a backtest is a non-empty list of records, one per (card, method, cutoff)")
    records = []
    for i, record in enumerate(source):
        if not isinstance(record, Mapping):
            raise InputError(f"{label}: record {i + 1} is not an object")
        missing = [k for k in (*RECORD_KEYS, "calibration") if k not in record and k not in _OPTIONAL]
        if missing:
            raise InputError(f"{label}: record {i + 1} lacks {', '.join(missing)} (write it with "
                             "`bayes-scaling backtest --format json`)")
        _check_record(label, i + 1, record)
        records.append(dict(record))
    return records


#: Value types of a record's keys: text, a count, a number, or a number that may be null (non-finite).
_TEXT, _COUNTS = ("card", "method"), ("n_train", "n_test")
_NUMBERS = ("cutoff", "coverage_50", "coverage_90")
#: Keys that records written before size splits existed lack (they are compute cutoffs).
_OPTIONAL = ("split", "max_params")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_record(label: str, number: int, record: Mapping[str, Any]) -> None:
    """Refuse a record whose values are not of the types ``bayes-scaling backtest`` writes."""
    def wrong(key: str, want: str) -> InputError:
        return InputError(f"{label}: record {number}, key {key!r}: {record[key]!r} is not {want} (write the file "
                          "with `bayes-scaling backtest --format json`)")

    for key in _TEXT:
        if not isinstance(record[key], str):
            raise wrong(key, "text")
    for key in _COUNTS:
        if not (isinstance(record[key], int) and not isinstance(record[key], bool) and record[key] >= 0):
            raise wrong(key, "a count")
    for key in _NUMBERS:
        if not _is_number(record[key]):
            raise wrong(key, "a number")
    if record.get("split", "compute") not in SPLIT_KINDS:
        raise wrong("split", f"one of {', '.join(SPLIT_KINDS)}")
    for key in set(RECORD_KEYS) - set(_TEXT) - set(_COUNTS) - set(_NUMBERS) - {"split"}:
        if record.get(key) is not None and not _is_number(record[key]):
            raise wrong(key, "a number (or null)")
    curve = record["calibration"]
    if not isinstance(curve, list) or not all(
            isinstance(p, Mapping) and _is_number(p.get("level")) and _is_number(p.get("coverage")) for p in curve):
        raise wrong("calibration", 'a list of {"level": number, "coverage": number}')


def backtest_section(ctx: ReportContext, *, records: Sequence[Mapping[str, Any]]) -> Section:
    """The "Backtest" section from backtest records (see :func:`backtest_records`)."""
    del ctx  # the section depends on the backtest only
    headers = ["card", "method", "fitted on", "fitted / held out", "90% covered", "50% covered",
               "median 90% width", "log pred. density", "CRPS"]
    def num(value: Any, spec: str, suffix: str = "") -> str:
        return "n/a" if value is None else f"{value:{spec}}{suffix}"

    rows = [[r["card"], r["method"], split_label(r), f"{r['n_train']} / {r['n_test']}",
             f"{r['coverage_90']:.0%} ({round(r['coverage_90'] * r['n_test'])}/{r['n_test']})",
             f"{r['coverage_50']:.0%}", num(r["median_width_90"], ".2%", " of the loss"),
             num(r["mean_log_pred_density"], ".2f"), num(r["crps"], ".4f")] for r in records]
    body = figure(plot_calibration(records), "Calibration curves of the backtest",
                  "Each line: a card and method fitted on the runs below a compute cutoff (or a model size); the "
                  "share of the runs above it (held out) inside each central predictive interval, against the "
                  "interval's level. "
                  "On the dashed diagonal the intervals are honest; below it they are overconfident. Grey box: "
                  "85-95% coverage of the 90% interval.")
    body += table(headers, rows)
    body += ('<p class="note">Log predictive density: mean log density of the held-out log losses '
             "(higher is better); CRPS in nats/token (lower is better). A backtest is run with "
             f"<code>{escape('bayes-scaling backtest RUNS --format json')}</code>.</p>")
    summary = markdown_table(headers, rows)
    return Section("backtest", "Backtest: calibration beyond the data", body, {"records": list(records)}, summary)


__all__ = ["BacktestSource", "backtest_records", "backtest_section"]
