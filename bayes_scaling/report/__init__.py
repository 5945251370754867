"""Posterior-predictive reports: one self-contained HTML page, plus JSON and markdown.

>>> from bayes_scaling.report import write_report
>>> write_report(fit, "out/report.html")  # doctest: +SKIP

writes ``out/report.html`` (figures and styles inlined, nothing fetched over the
network), ``out/report.json`` (the same numbers) and ``out/report.md`` (a summary for
a pull request): the JSON and markdown take the HTML file's stem.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..arms import ArmsComparison
from ..averaging import ModelAverage
from ..errors import InputError, OutputFileError
from ..files import check_output
from ..provenance import package_versions
from .arms_section import arms_section
from .averaging_section import averaging_section
from .backtest_section import BacktestSource, backtest_records, backtest_section
from .content import ReportContext, default_budgets
from .decision_section import DecisionRequest, decision_section
from .html import MARKDOWN_MARK, Section, is_report_file, page, to_json, write_files
from .sections import DEFAULT_SECTIONS, SectionFn, provenance
from .task_section import task_section

if TYPE_CHECKING:
    import pandas as pd

    from ..fitted import Fit


@dataclass(frozen=True)
class Report:
    """A rendered report, not yet written.

    Attributes
    ----------
    html : str
        The self-contained page.
    data : dict
        The numbers (``report.json``): ``sections`` keyed by section, plus ``ok`` and ``messages``.
    markdown : str
        Short summary (``report.md``).
    seconds : float
        Time taken to render, in seconds.
    """

    html: str
    data: dict[str, Any]
    markdown: str
    seconds: float


def render_report(fit: Fit | ModelAverage, budgets: Sequence[float | str] | float | str | None = None,
                  level: float = 0.9, *,
                  sections: Sequence[SectionFn] = DEFAULT_SECTIONS, extra_sections: Sequence[SectionFn] = (),
                  title: str | None = None, group: str | None = None,
                  decision: DecisionRequest | None = None, backtest: BacktestSource | None = None,
                  held_out: pd.DataFrame | None = None, arms: ArmsComparison | None = None) -> Report:
    """Render a report of a fit in memory (no files); see :func:`write_report`."""
    start = time.perf_counter()
    average = None
    if isinstance(fit, ModelAverage):  # its top card's fit describes the data
        average, weights = fit, fit.weights
        fit = max(average.fits.values(), key=lambda f: weights[f.card.name])
        extra_sections = [partial(averaging_section, average=average), *extra_sections]
    if backtest is not None:
        # checked first: a bad backtest file fails before any figure is drawn
        extra_sections = [partial(backtest_section, records=backtest_records(backtest)), *extra_sections]
    if arms is not None:
        extra_sections = [partial(arms_section, result=arms), *extra_sections]
    ctx = ReportContext.build(fit, budgets, level, group)
    ctx.average = average
    if decision is not None:
        extra_sections = [partial(decision_section, request=decision), *extra_sections]
    if fit.card.task is not None:
        extra_sections = [partial(task_section, held_out=held_out), *extra_sections]
    elif held_out is not None:
        raise InputError("held-out runs are drawn by the task section: give them with a task fit (task-chain, ...)")
    chosen = list(sections)
    tail = [s for s in chosen if s is provenance]
    done: list[Section] = [fn(ctx) for fn in [*[s for s in chosen if s is not provenance], *extra_sections, *tail]]
    keys = [s.key for s in done]
    if len(set(keys)) != len(keys):
        raise InputError(f"report sections need distinct keys but got {keys}")
    diag = ctx.diagnostics
    runs = len(ctx.runs)
    title = title or (f"Scaling-law report: {fit.card.name if average is None else 'model average'} fit to "
                      f"{runs} runs" + (f", group {ctx.group}" if ctx.group is not None else ""))
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    version = package_versions()["bayes-scaling"]
    subtitle = (f"{fit.card.law.formula} · method {fit.method} · "
                f"{'diagnostics passed' if not diag.has_errors else 'DIAGNOSTICS FAILED'} · generated {created} UTC")
    seconds = time.perf_counter() - start
    footer = (f"bayes-scaling {version}; report rendered in {seconds:.1f} s from the saved posterior "
              "(no re-sampling). Self-contained: figures are inline PNG, no network access needed.")
    html_text = page(title, subtitle, done, banner=diag.messages if diag.has_errors else (), footer=footer)
    data = {"title": title, "generated_utc": created, "bayes_scaling": version, "level": ctx.level,
            "ok": not diag.has_errors, "messages": diag.messages, "render_seconds": seconds,
            "sections": {s.key: s.data for s in done}}
    status = ("✅ diagnostics passed" if not diag.has_errors
              else "❌ **diagnostics failed**: " + "; ".join(diag.messages))
    parts = [f"# {title}", f"{fit.card.law.formula} (card `{fit.card.name}`, method {fit.method}). {status}."]
    parts += [f"## {s.title}\n\n{s.markdown}" for s in done if s.markdown]
    return Report(html_text, data, "\n\n".join(parts) + f"\n\n{MARKDOWN_MARK}\n", seconds)


def write_report(fit: Fit | ModelAverage, out_html: str | Path,
                 budgets: Sequence[float | str] | float | str | None = None, level: float = 0.9, *,
                 sections: Sequence[SectionFn] = DEFAULT_SECTIONS, extra_sections: Sequence[SectionFn] = (),
                 title: str | None = None, group: str | None = None, decision: DecisionRequest | None = None,
                 backtest: BacktestSource | None = None, held_out: pd.DataFrame | None = None,
                 arms: ArmsComparison | None = None) -> Path:
    """Write the HTML report of a fit, with ``<stem>.json`` and ``<stem>.md`` beside it.

    Sections, in order: recommended allocation, data, posterior predictive check,
    compute-optimal frontier, parameters, calibration (LOO-PIT, PSIS k̂), diagnostics
    (with a red banner at the top when they fail) and provenance. Nothing is re-sampled:
    a report of a saved fit takes seconds.

    Parameters
    ----------
    fit : Fit or ModelAverage
        A fit, or a model average (:func:`bayes_scaling.average`): then the headline
        allocation and the decisions are the stacking mixture's, a "Model averaging"
        section shows the weights, and the other sections describe the highest-weight
        card's fit.
    out_html : str or Path
        The page to write, e.g. ``report.html``; its folder is created if needed.
    budgets : float, str or sequence, optional
        Compute budgets of the headline table in FLOPs; default: the largest observed
        run's compute × 0.1, 1, 10 and 100.
    level : float, default 0.9
        Credible level of the intervals and of the predictive check.
    sections : sequence of callables, default :data:`DEFAULT_SECTIONS`
        Functions ``ReportContext -> Section``, in page order.
    extra_sections : sequence of callables, default ()
        More such functions, placed after ``sections`` but before provenance.
    title : str, optional
        Page title.
    group : str, optional
        For a fit pooled over groups: the group whose allocation, curves and marginals
        to show (needed when there are several).
    decision : DecisionRequest, optional
        Decision questions (risk criterion, target loss, plans, limits): adds a
        "Decision" section, before provenance, with the best plan for each of
        ``budgets`` and the answers of :func:`bayes_scaling.decisions.decide`.
    backtest : BacktestResult, list of dict, str or Path, optional
        A backtest (:func:`bayes_scaling.backtest`, its ``records()``, or the JSON file of
        ``bayes-scaling backtest --format json``): adds a "Backtest" section with its
        calibration curves and scores.
    held_out : DataFrame, optional
        For a task fit: runs it did not see (a validated run table with the task's columns),
        drawn in the "Task" section and scored (share inside one run's predictive interval).
        A task fit's report always has that section: both steps with bands, the accuracy at
        each budget, and whether the runs identify the sigmoid's floor and ceiling.
    arms : ArmsComparison, optional
        A comparison of arms (:func:`bayes_scaling.arms.compare_arms`): adds an "Arms"
        section with the arms' frontiers and bands, win probabilities and crossovers.
        Pass its joint fit (``arms.fits[""]``) as ``fit`` with ``group=`` an arm.

    Returns
    -------
    Path
        The HTML file. All three files are written atomically (temporary file, then
        rename), so an interruption leaves no half-written report.
    """
    paths = check_report_outputs(out_html, create_folder=True)
    report = render_report(fit, budgets, level, sections=sections, extra_sections=extra_sections, title=title,
                           group=group, decision=decision, backtest=backtest, held_out=held_out, arms=arms)
    html_path, json_path, md_path = paths
    write_files({json_path: to_json(report.data), md_path: report.markdown, html_path: report.html})
    return html_path


def check_report_outputs(out_html: str | Path, *, option: str = "out_html", inputs: Sequence[str | Path] = (),
                         create_folder: bool = False) -> tuple[Path, Path, Path]:
    """The page and its ``.json`` and ``.md`` siblings, checked before anything is rendered.

    Refuses a page that is not ``.html``, a folder that cannot be written, an output that
    is one of ``inputs``, and any of the three files that exists but was not written by a
    bayes-scaling report (nothing else is ever overwritten). A missing folder is fine (it
    is created when the report is written; with ``create_folder``, now).

    Raises
    ------
    InputError
        If ``out_html`` is not an ``.html`` path.
    OutputFileError
        Naming the file that cannot be written, and why.
    """
    out_html = Path(out_html)
    if out_html.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{out_html} ({option}): the report must be an .html file (the .json and .md go beside it)")
    paths = (out_html, out_html.with_suffix(".json"), out_html.with_suffix(".md"))
    if not out_html.parent.exists():  # the report's folder is created: nothing can be overwritten in it
        ancestor = next(p for p in out_html.parent.parents if p.exists())
        if not ancestor.is_dir():
            raise OutputFileError(f"{out_html} ({option}): {ancestor} is a file, not a folder; write elsewhere")
        if not create_folder:
            return paths
        out_html.parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        check_output(path, option=option if path == out_html else f"beside {out_html.name}", what="report file",
                     example="report.html", suffixes=(path.suffix.lower(),), inputs=inputs, is_ours=is_report_file)
    return paths


__all__ = ["DEFAULT_SECTIONS", "BacktestSource", "DecisionRequest", "Report", "ReportContext", "Section", "SectionFn",
           "backtest_records", "backtest_section", "check_report_outputs", "decision_section", "default_budgets",
           "render_report", "write_report"]
