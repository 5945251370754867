"""Decisions: closed-form checks, monotonicity, Monte-Carlo consistency, regret, limits, next run, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.decisions import (
    Constraints,
    as_posterior,
    best_plan,
    cheapest_compute,
    compare_plans,
    decide,
    next_run_value,
    target_probability,
)
from bayes_scaling.errors import InputError
from bayes_scaling.fitted import Fit, build_datatree
from bayes_scaling.laws import Law
from bayes_scaling.model import covariates
from bayes_scaling.simulate import EXAMPLE_TRUTH

T = EXAMPLE_TRUTH


def closed_form_params(compute: float) -> float:
    """Chinchilla's N_opt for C = 6 N D at the example truth, written out independently."""
    a, b = T["alpha"], T["beta"]
    return (a * T["A"] / (b * T["B"])) ** (1 / (a + b)) * (compute / 6) ** (b / (a + b))


def spread_draws(size: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """A posterior-like cloud around the example truth, wide enough for risk to matter."""
    z = np.random.default_rng(seed).standard_normal((5, size))
    return {"E": T["E"] * np.exp(0.01 * z[0]), "A": T["A"] * np.exp(0.3 * z[1]), "B": T["B"] * np.exp(0.3 * z[2]),
            "alpha": T["alpha"] + 0.02 * z[3], "beta": T["beta"] + 0.02 * z[4], "sigma": np.full(size, 0.01)}


@pytest.fixture(scope="module")
def post() -> bs.decisions.Posterior:
    return as_posterior(spread_draws(), card="chinchilla")


@pytest.fixture(scope="module")
def draws_fit(example_runs: pd.DataFrame) -> Fit:
    """A real Fit object holding the spread draws as 2 chains x 500 draws (no sampling)."""
    card = bs.load_card("chinchilla")
    posterior = {k: v.reshape(2, 500) for k, v in spread_draws().items()}
    x = covariates(example_runs, card)
    tree = build_datatree(card, example_runs, x, np.log(example_runs["loss"].to_numpy()), posterior, None, seed=0)
    return Fit(tree, card=card, method="nuts", seed=0, elapsed_s=0.0)


@pytest.mark.parametrize("risk", ["mean", "quantile:0.9", "cvar:0.9"])
def test_identical_draws_every_criterion_returns_the_closed_form_optimum(risk: str) -> None:
    same = {k: np.full(50, v) for k, v in T.items()} | {"sigma": np.full(50, 0.02)}
    table = best_plan(same, [1e21, 1e24], risk=risk, card="chinchilla")
    expected = np.repeat([closed_form_params(1e21), closed_form_params(1e24)], 3)
    np.testing.assert_allclose(table["params"], expected, rtol=1e-4)
    np.testing.assert_allclose(table["tokens"], table["compute"] / (6 * expected), rtol=1e-4)
    assert table.attrs["criterion"] == risk and table.attrs["card"] == "chinchilla"
    assert table.attrs["compute"].startswith("C = 6 N D")


def test_probability_of_reaching_a_target_increases_with_compute(post) -> None:  # noqa: ANN001
    budgets = np.logspace(22, 26, 9)
    prob = target_probability(post, 2.0, budgets=budgets)["prob"].to_numpy()
    assert (np.diff(prob) >= 0).all()
    assert prob[0] < 0.2 and prob[-1] > 0.8


def test_cheapest_compute_reaches_the_target_with_probability_p_when_evaluated_directly(post) -> None:  # noqa: ANN001
    p, target = 0.8, 2.0
    row = cheapest_compute(post, target, p).iloc[0]
    assert row["training_flops"] == pytest.approx(row["compute"], rel=1e-9)
    # Evaluated directly, with noise from another seed: p within Monte-Carlo error.
    direct = target_probability(post, target, plans=[(row["params"], row["tokens"])], seed=7).iloc[0]
    assert abs(direct["prob"] - p) <= 4 * math.sqrt(p * (1 - p) / post.size)
    # And it is the cheapest: 5% less compute cannot reach the target with probability p.
    below = best_plan(post, row["compute"] / 1.05, risk=f"quantile:{p}")
    assert below.loc[below["plan"] == "chosen", "criterion"].iloc[0] > target


def test_regret_is_non_negative_and_zero_for_the_best_plan(post) -> None:  # noqa: ANN001
    best = best_plan(post, 1e24).iloc[0]
    assert best["plan"] == "risk-neutral"
    table = compare_plans(post, [(best["params"], best["tokens"]), "20B:4T", "175B:300B", "10B:5T"])
    assert (table["regret"] >= 0).all()
    assert table["regret"].iloc[0] < 1e-8
    assert (table["regret"].iloc[1:] > 1e-4).all()
    assert table["prob_best"].sum() == pytest.approx(1.0)
    assert table["diff"].iloc[0] == 0 and (table["diff_lo"] <= table["diff"]).all()
    np.testing.assert_allclose(table["compute"], 6 * table["params"] * table["tokens"])


@pytest.mark.parametrize("risk", ["quantile:0.9", "cvar:0.9"])
def test_risk_averse_plan_is_never_worse_on_its_criterion(post, risk: str) -> None:  # noqa: ANN001
    table = best_plan(post, [1e21, 1e23, 1e25], risk=risk)
    assert (table["delta_criterion"] >= 0).all() and (table["delta_expected"] >= 0).all()
    crit = table.set_index(["compute", "plan"])["criterion"]
    for c in (1e21, 1e23, 1e25):  # e.g. the 90th percentile: risk-averse plan vs risk-neutral plan
        assert crit[(c, "chosen")] <= crit[(c, "risk-neutral")]
    neutral = table[table["plan"] == "risk-neutral"]
    assert (np.abs(np.log(neutral["params_ratio"])) > 0.01).any()  # the criteria really disagree here


def test_zero_inference_cost_gives_the_training_optimum_and_a_large_one_shrinks_n(post) -> None:  # noqa: ANN001
    def chosen(**limits: float) -> pd.Series:
        table = best_plan(post, 1e24, constraints=Constraints(**limits))
        return table[table["plan"] == "chosen"].iloc[0]

    base = chosen()
    assert chosen(inference_tokens=0)["params"] == base["params"]
    n = [chosen(inference_tokens=i)["params"] for i in (1e12, 1e13, 1e14)]
    assert base["params"] > n[0] > n[1] > n[2]
    row = chosen(inference_tokens=1e13)
    assert 6 * row["params"] * row["tokens"] + row["inference_flops"] == pytest.approx(1e24, rel=1e-9)


def test_lifetime_optimum_is_the_minimum_on_its_cost_line() -> None:
    same = {k: np.full(10, v) for k, v in T.items()} | {"sigma": np.full(10, 0.01)}
    limits = Constraints(inference_tokens=1e13)
    row = best_plan(same, 1e24, constraints=limits, noise=False, card="chinchilla").iloc[0]
    n = row["params"] * np.array([0.98, 1.0, 1.02])
    d = (1e24 - 2 * n * 1e13) / (6 * n)
    loss = bs.simulate.chinchilla_loss(n, d, T)
    assert loss[1] < loss[0] and loss[1] < loss[2]


def test_cheapest_lifetime_cost_uses_a_smaller_model_than_training_alone(post) -> None:  # noqa: ANN001
    train = cheapest_compute(post, 2.0, 0.8).iloc[0]
    life = cheapest_compute(post, 2.0, 0.8, constraints=Constraints(inference_tokens=1e14)).iloc[0]
    assert life["params"] < train["params"] and life["tokens"] > train["tokens"]
    assert life["compute"] > train["compute"]


def test_limits_bind_and_an_impossible_budget_is_an_error(post) -> None:  # noqa: ANN001
    table = best_plan(post, 1e24, constraints=Constraints(max_params="50B"))
    assert (table["params"] <= 50e9 * (1 + 1e-9)).all()
    assert table["params"].iloc[1] == pytest.approx(50e9, rel=1e-9)  # the optimum (~90B) is cut off
    table = best_plan(post, 1e24, constraints=Constraints(max_tokens="1T"))
    assert (table["tokens"] <= 1e12 * (1 + 1e-9)).all()
    with pytest.raises(InputError, match="costs from"):
        best_plan(post, 1e24, constraints=Constraints(max_params="1B", max_tokens="1B"))
    with pytest.raises(InputError, match="positive"):
        Constraints(max_params=0)


def test_next_run_prefers_runs_near_the_frontier_over_far_ones() -> None:
    # Constructed case: alpha is uncertain but every draw predicts the same loss at N0 = 10M
    # (as if runs there had pinned it down). A run at N0 then tells nothing (known: zero
    # shrinkage); at very large N the model term is negligible, so little; near the optimum most.
    size, n0 = 1000, 1e7
    alpha = T["alpha"] + 0.03 * np.random.default_rng(3).standard_normal(size)
    draws = {k: np.full(size, v) for k, v in T.items()} | {"alpha": alpha, "A": T["A"] * n0 ** (alpha - T["alpha"]),
                                                           "sigma": np.full(size, 0.01)}
    near = closed_form_params(1e20)
    plans = [(n0, 1e20 / (6 * n0)), (near, 1e20 / (6 * near)), (1e11, 1e20 / 6e11)]
    table = next_run_value(draws, 1e24, candidates=plans, card="chinchilla").set_index("params")
    shrink = table["shrinkage"]
    assert table["rank"].loc[near] == 1
    assert abs(shrink.loc[n0]) < 1e-6 * table["width_now"].iloc[0]
    assert shrink.loc[near] > 2 * shrink.loc[1e11] > 0


def test_next_run_reweighting_matches_the_conjugate_normal_update() -> None:
    # ln L = 0.5 + u (ln N - ln D) / 10, u ~ N(0, 0.1^2), noise N(0, 0.01^2) and ln N_opt = u + const:
    # after one run with slope s the sd of u is exactly tau sigma / sqrt(sigma^2 + s^2 tau^2).
    law = Law("toy-linear", ("u",), lambda th, x: 0.5 + th["u"] * (x["log_params"] - x["log_tokens"]) / 10,
              compute_optimal=lambda th, log_c: (th["u"] + log_c / 2, log_c / 2 - th["u"]))
    card = dataclasses.replace(bs.load_card("chinchilla"), name="toy", law=law, likelihood="normal", nu=None)
    size, tau, sigma = 4000, 0.1, 0.01
    u = tau * ndtri((np.arange(size) + 0.5) / size)
    plans = [(1e9, 1e9), (math.e * 1e9, 1e9), (math.e**3 * 1e9, 1e9)]  # slopes 0, 0.1, 0.3
    table = next_run_value({"u": u, "sigma": np.full(size, sigma)}, 1e24, candidates=plans, card=card,
                           scenarios=256).set_index("plan").loc[["1B:1B", "2.72B:1B", "20.1B:1B"]]
    ratio = (table["width_after"] / table["width_now"]).to_numpy()
    exact = [sigma / math.sqrt(sigma**2 + (s * tau) ** 2) for s in (0.0, 0.1, 0.3)]
    np.testing.assert_allclose(ratio, exact, atol=0.03)
    assert table["width_now"].iloc[0] == pytest.approx(2 * float(ndtri(0.95)) * tau, rel=0.01)


def test_next_batch_matches_the_conjugate_normal_update_of_its_runs_together() -> None:
    # the toy law of the test above; three candidates of equal cost (N D = 1e18) with slopes 0.05, 0.1, 0.2:
    # the greedy batch takes the steepest first, then the next, and after both the sd of u is exactly
    # 1 / sqrt(1/tau^2 + (0.2^2 + 0.1^2) / sigma^2)
    from bayes_scaling.decisions import next_batch_value

    law = Law("toy-linear", ("u",), lambda th, x: 0.5 + th["u"] * (x["log_params"] - x["log_tokens"]) / 10,
              compute_optimal=lambda th, log_c: (th["u"] + log_c / 2, log_c / 2 - th["u"]))
    card = dataclasses.replace(bs.load_card("chinchilla"), name="toy", law=law, likelihood="normal", nu=None)
    size, tau, sigma = 4000, 0.1, 0.01
    draws = {"u": tau * ndtri((np.arange(size) + 0.5) / size), "sigma": np.full(size, sigma)}
    plans = [(1e9 * math.exp(x), 1e9 * math.exp(-x)) for x in (0.25, 0.5, 1.0)]
    batch = next_batch_value(draws, 1e24, 2, candidates=plans, card=card, scenarios=256)
    assert list(batch["params"]) == pytest.approx([plans[2][0], plans[1][0]])
    ratio = (batch["width_after"] / batch["width_now"]).to_numpy()
    exact = [1 / math.sqrt(1 + (s * tau / sigma) ** 2) for s in (0.2, math.hypot(0.2, 0.1))]
    np.testing.assert_allclose(ratio, exact, atol=0.03)
    assert (batch["gain"] > 0).all() and batch["total_flops"].iloc[-1] == pytest.approx(2 * 6e18)
    # a batch of one is the single next run's first choice, with the same expected width
    single = next_run_value(draws, 1e24, candidates=plans, card=card, scenarios=256).iloc[0]
    one = next_batch_value(draws, 1e24, 1, candidates=plans, card=card, scenarios=256).iloc[0]
    assert one["plan"] == single["plan"] and one["width_after"] == pytest.approx(single["width_after"], rel=1e-12)
    # the batch budget binds: 1.5 runs' worth buys one run
    capped = next_batch_value(draws, 1e24, 3, candidates=plans, card=card, batch_budget=9e18, scenarios=64)
    assert len(capped) == 1 and capped["total_flops"].iloc[0] <= 9e18
    with pytest.raises(InputError, match="batch budget"):
        next_batch_value(draws, 1e24, 2, candidates=plans, card=card, batch_budget=1e18)
    with pytest.raises(InputError, match="batch size"):
        next_batch_value(draws, 1e24, 0, candidates=plans, card=card)


def test_api_takes_a_fit_or_its_draws_with_the_card(draws_fit: Fit) -> None:
    from_fit = best_plan(draws_fit, 1e23, risk="cvar:0.9")
    from_draws = best_plan(draws_fit.draws(), 1e23, risk="cvar:0.9", card=draws_fit.card)
    pd.testing.assert_frame_equal(from_fit, from_draws)
    with pytest.raises(InputError, match="card"):
        best_plan(draws_fit.draws(), 1e23)
    with pytest.raises(InputError, match="lack sigma"):
        best_plan({k: v for k, v in draws_fit.draws().items() if k != "sigma"}, 1e23, card="chinchilla")


def test_decide_answers_what_is_asked(post) -> None:  # noqa: ANN001
    answers = decide(post, budgets=[1e24], target_loss=2.0, plans=["70B:1.4T"])
    assert list(answers) == ["best_plan", "cheapest_compute", "target_probability", "compare_plans"]
    with pytest.raises(InputError, match="ask a question"):
        decide(post)
    with pytest.raises(InputError, match="needs a target budget"):
        decide(post, plans=["70B:1.4T"], next_run_budget=1e20)


def test_cli_decide_json_states_assumptions(draws_fit: Fit, tmp_path, capsys) -> None:  # noqa: ANN001
    path = draws_fit.save(tmp_path / "fit.nc")
    rc = main(["decide", str(path), "--budget", "1e24", "--risk", "cvar:0.9", "--plan", "70B:1.4T",
               "--plan", "175B:300B", "--max-params", "70B", "--inference-tokens", "1e12", "--format", "json"])
    assert rc == 0
    answers = json.loads(capsys.readouterr().out)
    assert set(answers) == {"best_plan", "compare_plans"}
    notes = answers["best_plan"]["assumptions"]
    assert notes["criterion"] == "cvar:0.9" and notes["card"] == "chinchilla" and notes["level"] == 0.9
    assert "2 N I" in notes["compute"] and "70B" in notes["limits"]
    assert all(r["params"] <= 70e9 * (1 + 1e-9) for r in answers["best_plan"]["rows"])
    assert [r["plan"] for r in answers["compare_plans"]["rows"]] == ["70B:1.4T", "175B:300B"]


def test_cli_decide_table_and_csv(draws_fit: Fit, tmp_path, capsys) -> None:  # noqa: ANN001
    path = draws_fit.save(tmp_path / "fit.nc")
    rc = main(["decide", str(path), "--budget", "1e23", "--target-loss", "2.0", "--prob", "0.8",
               "--next-run-budget", "1e20"])
    text = capsys.readouterr().out
    assert rc == 0 and "assumptions:" in text and "Cheapest compute" in text and "Next run" in text
    assert main(["decide", str(path), "--budget", "1e23", "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert csv.startswith("# best_plan") and "# criterion: mean" in csv and "risk-neutral" in csv


@pytest.mark.parametrize("args", [[], ["--budget", "1e24", "--risk", "cvar:2"], ["--plan", "70B"],
                                  ["--plan", "70B:1T", "--next-run-budget", "1e20"], ["--budget", "-1"],
                                  ["--target-loss", "0.5"]])
def test_cli_decide_user_errors_exit_2(draws_fit: Fit, tmp_path, capsys, args: list[str]) -> None:  # noqa: ANN001
    path = draws_fit.save(tmp_path / "fit.nc")
    assert main(["decide", str(path), *args]) == 2
    assert "error:" in capsys.readouterr().err


def test_predictive_noise_widens_intervals_but_not_the_law(post) -> None:  # noqa: ANN001
    with_noise = best_plan(post, 1e23)
    law_only = best_plan(post, 1e23, noise=False)
    assert ((with_noise["loss_hi"] - with_noise["loss_lo"]) > (law_only["loss_hi"] - law_only["loss_lo"])).all()
    assert "no noise" in law_only.attrs["loss"]
    assert np.isfinite(with_noise["expected_loss"]).all()
