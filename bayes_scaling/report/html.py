"""HTML building blocks of the report: sections, tables, figures, the page, the files.

The page is one self-contained file: styles inlined, figures as ``data:`` PNG URIs,
no scripts, no fonts or anything else fetched over the network.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..files import write_atomically
from .figures import to_data_uri

#: Marks each file a report writes, so that a later report may replace it (and no other file).
GENERATOR = "bayes-scaling report"
MARKDOWN_MARK = f"<!-- written by {GENERATOR} -->"


@dataclass(frozen=True)
class Section:
    """One section of the report: an HTML fragment and the same facts as JSON.

    Attributes
    ----------
    key : str
        Anchor id in the page and key in ``report.json`` (``"headline"``).
    title : str
        Heading shown in the page and its table of contents.
    html : str
        Body of the section (trusted HTML: build it with :func:`table`, :func:`figure`, :func:`escape`).
    data : dict
        JSON-serialisable numbers of the section.
    markdown : str, default ""
        Lines for the short ``report.md`` summary; empty leaves the section out of it.
    """

    key: str
    title: str
    html: str
    data: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""


class Raw(str):
    """A table cell that is already HTML (not escaped again)."""


def escape(text: object) -> str:
    """HTML-escape ``str(text)``."""
    return html.escape(str(text), quote=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, cls: str = "",
          row_classes: Sequence[str] | None = None) -> str:
    """An HTML table; cells are escaped unless they are :class:`Raw`."""
    head = f'<thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in headers)}</tr></thead>' if any(headers) else ""
    body = []
    for i, row in enumerate(rows):
        klass = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f"<td>{c if isinstance(c, Raw) else escape(c)}</td>" for c in row)
        body.append(f"<tr{klass}>{cells}</tr>")
    return f'<table class="{cls}">{head}<tbody>{"".join(body)}</tbody></table>'


def figure(fig: Figure, alt: str, caption: str = "") -> str:
    """A ``<figure>`` with the figure inlined as PNG and an optional caption."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img src="{to_data_uri(fig)}" alt="{escape(alt)}">{cap}</figure>'


def details(summary: str, body: str) -> str:
    """A collapsed ``<details>`` block."""
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """Numbers, arrays and containers as plain JSON values (NaN and ±inf become ``null``)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


CSS = """
:root { --data:#1a1a1a; --post:#2166ac; --lit:#d6604d; --bad:#b2182b; --muted:#5f6b7a; --line:#e3e7ec; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", sans-serif;
       color:#1d2630; background:#f6f8fa; }
main { max-width:1120px; margin:0 auto; padding:24px 28px 48px; background:#fff; min-height:100vh;
       box-shadow:0 0 0 1px var(--line); }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
nav { margin:14px 0 6px; font-size:13px; }
nav a { display:inline-block; margin:0 6px 6px 0; padding:2px 10px; border:1px solid var(--line);
        border-radius:12px; color:var(--post); text-decoration:none; }
section { border-top:1px solid var(--line); padding-top:6px; margin-top:22px; }
h2 { font-size:20px; margin:10px 0 8px; }
h2 .num { color:var(--muted); font-weight:400; margin-right:6px; }
table { border-collapse:collapse; margin:8px 0 12px; font-size:13.5px; font-variant-numeric:tabular-nums; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { background:#f0f3f6; font-weight:600; white-space:normal; }
td:first-child, th:first-child { text-align:left; }
tr.flag td { background:#fdecea; }
table.headline { font-size:15px; width:100%; }
table.headline td { padding:7px 12px; }
table.kv td { text-align:left; white-space:normal; }
.scroll { max-height:420px; overflow:auto; border:1px solid var(--line); }
figure { margin:10px 0 16px; }
figure img { max-width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.banner { background:var(--bad); color:#fff; padding:12px 18px; border-radius:6px; margin:14px 0 4px; }
.banner ul { margin:6px 0 0 18px; padding:0; }
.banner a { color:#fff; }
.ok { display:inline-block; background:#e7f4ea; color:#1b5e20; padding:2px 10px; border-radius:12px; font-size:13px; }
.fail { color:var(--bad); font-weight:600; }
.note { color:var(--muted); font-size:13.5px; }
pre { background:#f6f8fa; padding:10px; overflow:auto; font-size:12.5px; border:1px solid var(--line); }
details { margin:6px 0 12px; }
summary { cursor:pointer; color:var(--post); }
footer { margin-top:28px; color:var(--muted); font-size:12.5px; }
"""


def page(title: str, subtitle: str, sections: Sequence[Section], *, banner: Sequence[str] = (),
         footer: str = "") -> str:
    """The whole HTML document; ``banner`` messages appear in red at the top."""
    nav = "".join(f'<a href="#{escape(s.key)}">{escape(s.title)}</a>' for s in sections)
    alert = ""
    if banner:
        items = "".join(f"<li>{escape(m)}</li>" for m in banner)
        alert = (f'<div class="banner" id="diagnostics-banner" role="alert"><strong>Diagnostics failed: the '
                 f'sampler did not converge cleanly, so treat every number below with suspicion.</strong>'
                 f'<ul>{items}</ul><a href="#diagnostics">See the diagnostics section.</a></div>')
    body = "".join(
        f'<section id="{escape(s.key)}"><h2><span class="num">{i}.</span>{escape(s.title)}</h2>{s.html}</section>'
        for i, s in enumerate(sections, 1))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="{GENERATOR}">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>{alert}<nav>{nav}</nav>{body}"
            f"<footer>{escape(footer)}</footer></main></body></html>\n")


def write_files(contents: Mapping[Path, str]) -> None:
    """Write several text files atomically: all to temporary names first, then renamed.

    An error while writing leaves every earlier version of the files untouched and no
    temporary file behind (see :func:`bayes_scaling.files.write_atomically`).
    """
    write_atomically({path: partial(_write_text, text=text) for path, text in contents.items()})


def _write_text(tmp: Path, text: str) -> None:
    tmp.write_text(text, encoding="utf-8")


def is_report_file(path: Path) -> bool:
    """Whether ``path`` is a page, JSON or markdown file a bayes-scaling report wrote (so it may be replaced).

    Recognised by the generator mark each file carries (and, for reports written before
    the mark, by their fixed structure).
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16).decode("utf-8", errors="replace")
            fh.seek(max(0, path.stat().st_size - (1 << 12)))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return False
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return f'content="{GENERATOR}"' in head or ("report rendered in" in tail and "bayes-scaling" in tail)
    if suffix == ".json":  # to_json writes the report's own keys first
        keys = ('"title"', '"generated_utc"', '"bayes_scaling"')
        return head.lstrip().startswith("{") and all(k in head[:4096] for k in keys)
    if suffix == ".md":
        lines = head.splitlines()
        return MARKDOWN_MARK in tail or (len(lines) > 2 and lines[0].startswith("# ") and "(card `" in lines[2])
    return False


def to_json(data: Mapping[str, Any]) -> str:
    """``data`` as indented JSON (see :func:`jsonable`)."""
    return json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n"
