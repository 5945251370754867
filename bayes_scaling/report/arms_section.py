"""The report's "Arms" section: which arm gives the lowest loss at each budget, and where that flips.

Added with ``write_report(fit, out, arms=result)`` (``result`` from
:func:`bayes_scaling.arms.compare_arms`; its joint fit, or any fit, describes the data). It
draws the arms' compute-optimal frontiers with their bands, and tabulates the probability
that each arm wins per budget, the loss difference, and the crossovers.
"""

from __future__ import annotations

import math

from ..arms import ArmsComparison
from ..units import format_quantity
from .analysis_figures import plot_arm_frontiers
from .content import ReportContext
from .html import Section, escape, figure, markdown_table, table


def arms_section(ctx: ReportContext, *, result: ArmsComparison) -> Section:
    """The "Arms" section from a comparison of arms."""
    del ctx  # the section depends on the comparison only
    pct = f"{result.level:.0%}"
    win_headers = ["compute (FLOPs)", "arm", "P(lowest loss)", f"loss at its optimum [{pct}]",
                   f"minus best other arm [{pct}]"]
    wins = [[format_quantity(r["compute"]), r["arm"], f"{r['p_lowest']:.2f}",
             f"{r['loss_opt']:.4f} [{r['loss_opt_lo']:.4f}, {r['loss_opt_hi']:.4f}]",
             f"{r['diff']:+.4f} [{r['diff_lo']:+.4f}, {r['diff_hi']:+.4f}]"] for r in result.wins.rows()]
    cross_headers = ["arms", "P(ranking flips in range)", f"crossover (FLOPs) [{pct}]", "wins below / above"]
    cross = [[f"{r['arm_a']} vs {r['arm_b']}", f"{r['p_crossover']:.2f}",
              "none" if not math.isfinite(r["crossover"]) else
              f"{format_quantity(r['crossover'])} [{format_quantity(r['crossover_lo'])}, "
              f"{format_quantity(r['crossover_hi'])}]",
              f"{r['below']} / {r['above']}" if r["below"] else "n/a"] for r in result.crossovers.rows()]
    how = ("fitted jointly (pooled card: shared exponents, per-arm E, A, B)" if result.joint
           else "fitted one by one (unpooled card)")
    body = figure(plot_arm_frontiers(result), "The arms' compute-optimal frontiers",
                  f"Each arm's loss at its own compute-optimal plan, median and {pct} band; the arms were {how}. "
                  "Dotted lines: the budgets compared; grey spans: the crossovers' intervals.")
    body += "".join(f'<p class="note">Warning: {escape(w)}</p>' for w in result.warnings)
    body += table(win_headers, wins) + table(cross_headers, cross)
    summary = markdown_table(win_headers, wins) + "\n\n" + markdown_table(cross_headers, cross)
    data = {"arms": result.arms, "joint": result.joint, "warnings": result.warnings,
            "wins": result.wins.rows(), "crossovers": result.crossovers.rows()}
    return Section("arms", "Arms: which gives the lowest loss", body, data, summary)


__all__ = ["arms_section"]
