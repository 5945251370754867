"""The report's "Model averaging" section: which laws, with what weight, and where they disagree.

Added when the report is of a model average (``write_report(bs.average(fits), out)`` or
``write_report(average, out)``). The headline allocation and the decisions are then the
stacking mixture's; this section shows the stacking weights with the PSIS-LOO comparison
they came from, and each card's own compute-optimal model size at the report's budgets,
so a reader sees how much the choice of law moves the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .content import ReportContext
from .html import Section, escape, markdown_table, table
from .sections import _row_interval, flops

if TYPE_CHECKING:
    from ..averaging import ModelAverage


def averaging_section(ctx: ReportContext, *, average: ModelAverage) -> Section:
    """Stacking weights, the LOO comparison, and each card's N_opt at the report's budgets."""
    comparison = average.comparison
    headers = ["card", "law", "stacking weight", "ELPD-LOO (nats)", "difference to best", "effective parameters"]
    rows = [[name, average.fits[name].card.law.formula, f"{average.weights[name]:.3f}",
             f"{row['elpd_loo']:.1f} ± {row['se']:.1f}", f"{row['elpd_diff']:.1f} ± {row['se_diff']:.1f}",
             f"{row['p_loo']:.1f}"] for name, row in comparison.iterrows()]
    per_card = {name: fit.allocate(ctx.budgets, level=ctx.level) for name, fit in average.fits.items()}
    mixture = ctx.allocation
    alloc_headers = ["compute C (FLOPs)", *[f"N_opt: {n}" for n in per_card], "N_opt: mixture"]

    alloc_rows = [[flops(c), *[_row_interval(t.iloc[i], "params_opt") for t in [*per_card.values(), mixture]]]
                  for i, c in enumerate(ctx.budgets)]
    top = max(average.weights, key=average.weights.__getitem__)
    body = table(headers, rows)
    body += (f'<p class="note">Stacking (Yao et al. 2018) weights the cards to maximise the leave-one-out '
             "predictive density of their mixture; the headline allocation and any decisions above are the "
             f"mixture's. The other sections describe the highest-weight card, <code>{escape(top)}</code>.</p>")
    body += table(alloc_headers, alloc_rows)
    body += (f'<p class="note">Compute-optimal parameters, median [{ctx.level:.0%} interval], by card and for the '
             "mixture: where the cards disagree, the mixture's interval spans them.</p>")
    data = {"weights": dict(average.weights), "highest_weight": top,
            "comparison": {name: {k: float(v) for k, v in row.items() if isinstance(v, (int, float))}
                           for name, row in comparison.iterrows()},
            "params_opt": {name: t["params_opt"].tolist() for name, t in per_card.items()},
            "budgets": ctx.budgets}
    return Section("averaging", "Model averaging", body, data, markdown_table(headers, rows))


__all__ = ["averaging_section"]
