"""The report's Decision section: when it appears, that its numbers are decide()'s, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bayes_scaling as bs
import bayes_scaling.report as report_package
from bayes_scaling.cli import main
from bayes_scaling.decisions import Constraints, decide
from bayes_scaling.errors import InputError
from bayes_scaling.report import DecisionRequest, render_report
from bayes_scaling.report import sections as sec
from bayes_scaling.report.html import jsonable, to_json
from bayes_scaling.units import format_quantity

PLANS = ("1B:20B", "3B:60B")


def _target(fit: bs.Fit) -> float:
    """A loss the law reaches (median) a little beyond the largest run: reachable, not trivial."""
    return float(fit.allocate(3 * fit.runs["flops"].max())["loss_opt"].iloc[0])


def _render(fit: bs.Fit, budgets, decision: DecisionRequest | None):
    # Only provenance besides the decision: keeps the render to the part under test.
    report = render_report(fit, budgets, sections=(sec.provenance,), decision=decision)
    return report, json.loads(to_json(report.data))


def test_decision_section_appears_only_when_questions_are_asked(small_fit: bs.Fit) -> None:
    without, data = _render(small_fit, [1e21], None)
    assert list(data["sections"]) == ["provenance"] and "Decision" not in without.markdown
    with_, data = _render(small_fit, [1e21, 5.76e23], DecisionRequest())
    assert list(data["sections"]) == ["decision", "provenance"]
    answers = data["sections"]["decision"]["answers"]
    assert list(answers) == ["best_plan"]
    assert [r["plan"] for r in answers["best_plan"]["rows"]] == ["risk-neutral", "chosen", "plug-in"] * 2
    assert "## Decision" in with_.markdown and "Best plan at 5.76e23 FLOPs (mean)" in with_.markdown
    assert "C = 6 N D training FLOPs" in with_.html


def test_decision_numbers_equal_decide_for_the_same_fit_and_seed(small_fit: bs.Fit) -> None:
    target, budgets = _target(small_fit), [1e21, 5.76e23]
    request = DecisionRequest(risk="cvar:0.9", target_loss=target, prob=0.8, plans=PLANS, seed=3)
    report, data = _render(small_fit, budgets, request)
    section = data["sections"]["decision"]
    expected = decide(small_fit, budgets=budgets, risk="cvar:0.9", target_loss=target, prob=0.8, plans=PLANS,
                      level=0.9, seed=3)
    assert list(section["answers"]) == list(expected) == ["best_plan", "cheapest_compute", "target_probability",
                                                          "compare_plans"]
    for name, table in expected.items():
        assert section["answers"][name]["rows"] == jsonable(table.to_dict(orient="records"))
        assert section["answers"][name]["assumptions"] == jsonable(dict(table.attrs))
    # Every number shown in the page: the chosen plan's N in human units, the cheapest compute.
    chosen = expected["best_plan"].query("plan == 'chosen'")
    assert all(format_quantity(n) in report.html for n in chosen["params"])
    cheapest = float(expected["cheapest_compute"]["compute"].iloc[0])
    assert sec.flops(cheapest) in report.html and sec.flops(cheapest) in report.markdown
    assert report.html.count('<img src="data:image/png;base64,') == 1


def test_probability_curve_rises_through_the_wanted_probability(small_fit: bs.Fit) -> None:
    target = _target(small_fit)
    _, data = _render(small_fit, [1e21], DecisionRequest(target_loss=target, prob=0.9, plans=PLANS))
    section = data["sections"]["decision"]
    curve = {k: np.array(v) for k, v in section["probability_curve"].items()}
    cheapest = section["answers"]["cheapest_compute"]["rows"][0]["compute"]
    assert curve["compute"][0] < cheapest < curve["compute"][-1]
    tol = 3 * np.maximum(curve["prob_se"][1:], curve["prob_se"][:-1]) + 1e-12
    assert (np.diff(curve["prob"]) >= -tol).all()  # more compute never lowers the chance (within MC error)
    assert curve["prob"][0] < 0.9 <= curve["prob"][-1]
    # The plans' own costs lie on the plotted axis.
    costs = [r["training_flops"] for r in section["answers"]["target_probability"]["rows"][: len(PLANS)]]
    assert curve["compute"][0] <= min(costs) and max(costs) <= curve["compute"][-1]


def test_bad_questions_fail_before_anything_is_rendered() -> None:
    with pytest.raises(InputError, match="interval"):
        DecisionRequest(target_loss=2.0, prob=1.5)
    with pytest.raises(InputError, match="risk criterion"):
        DecisionRequest(risk="worst")
    with pytest.raises(InputError, match="PARAMS:TOKENS"):
        DecisionRequest(plans=("70B",))
    with pytest.raises(InputError, match="target loss"):
        DecisionRequest(target_loss=-1.0)


def test_cli_asks_decision_questions_only_when_given(small_fit: bs.Fit, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    saved = small_fit.save(tmp_path / "fit.nc")
    asked: list = []

    def fake_report(fit, out, budgets=None, level=0.9, **options):  # noqa: ANN001, ANN202
        asked.append((budgets, options["decision"]))
        return Path(out)

    monkeypatch.setattr(report_package, "write_report", fake_report)
    base = ["report", str(saved), "--out", str(tmp_path / "r.html")]
    assert main(base) == 0 and asked[-1] == (None, None)
    assert main([*base, "--budget", "1e22"]) == 0
    assert asked[-1] == (["1e22"], DecisionRequest())
    assert main([*base, "--risk", "quantile:0.8", "--inference-tokens", "1T"]) == 0
    assert asked[-1][1] == DecisionRequest(risk="quantile:0.8", constraints=Constraints(inference_tokens=1e12))
    assert main([*base, "--prob", "0.8"]) == 2 and len(asked) == 3


def test_cli_report_with_target_and_plans_end_to_end(small_fit: bs.Fit, tmp_path: Path, capsys) -> None:
    saved = small_fit.save(tmp_path / "fit.nc")
    page = tmp_path / "out" / "report.html"
    target = _target(small_fit)
    rc = main(["report", str(saved), "--out", str(page), "--budget", "1e22", "--target-loss", f"{target:.6g}",
               "--prob", "0.8", "--plan", PLANS[0], "--plan", PLANS[1], "--risk", "cvar:0.9", "--max-params", "4B"])
    assert rc == 0 and capsys.readouterr().out.strip() == str(page)
    data = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
    section = data["sections"]["decision"]
    assert list(section["answers"]) == ["best_plan", "cheapest_compute", "target_probability", "compare_plans"]
    assert section["request"]["limits"] == "N <= 4B" == section["assumptions"]["limits"]
    assert all(r["params"] <= 4e9 * (1 + 1e-9) for r in section["answers"]["best_plan"]["rows"])
    assert section["answers"]["cheapest_compute"]["rows"][0]["params"] <= 4e9 * (1 + 1e-9)
    assert "## Decision" in page.with_suffix(".md").read_text(encoding="utf-8")
    assert 'id="decision"' in page.read_text(encoding="utf-8")
