"""Calibration across tables: settings scored from evidence, chosen on some tables, judged on others."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling import calibration as cal
from bayes_scaling import calibration_evidence as ce
from bayes_scaling.backtesting import Split
from bayes_scaling.cards import parse_card
from bayes_scaling.nuts import Schedule

ALL = cal.DIRECTIONS


def _evidence(table: str, tau_true: float, seed: int, *, n_test: int = 30, draws: int = 400,
              noise: float = 0.004) -> ce.SplitEvidence:
    """A split whose held-out runs drift from the law by s·√d, s ~ Normal(0, tau_true²): a known discrepancy.

    The law's draws are exact (no parameter uncertainty); runs lie 0.5-4 e-folds of compute
    beyond the fitted region. No fit is run: the evidence is constructed.
    """
    rng = np.random.default_rng(seed)
    fitted = np.column_stack([np.log(np.geomspace(1e8, 1e9, 20)), np.log(np.geomspace(2e9, 2e10, 20))])
    distance = rng.uniform(0.5, 4.0, n_test)
    # held out along the compute diagonal: half the distance in N and half in D
    log_n = fitted[:, 0].max() + distance / 2
    log_d = fitted[:, 1].max() + distance / 2
    truth = 1.0 + 0.01 * rng.standard_normal(n_test)
    observed = truth + rng.normal(0, tau_true) * np.sqrt(distance) + noise * rng.standard_normal(n_test)
    log_flops = np.log(6) + fitted.sum(axis=1)
    heldout = ce.Predictions(np.tile(truth, (draws, 1)), np.full(draws, noise), None, observed, log_n, log_d, fitted,
                             log_flops)
    far = ce.Predictions(np.ones((draws, 1)), np.full(draws, noise), None, np.array([np.nan]),
                         fitted[-1:, 0] + np.log(10), fitted[-1:, 1] + np.log(10), fitted, log_flops)
    return ce.SplitEvidence(table, Split("compute", 1e20), 20, heldout, [], np.zeros(20), fitted, log_flops,
                            far=far)


def _inner(tau_true: float, seed: int, n: int = 40, noise: float = 0.004, draws: int = 200) -> ce.Predictions:
    """An internal leave-future-out split whose held-out runs each depart from the law by tau_true·√d·z_i,
    independently: a per-run discrepancy of known scale."""
    rng = np.random.default_rng(seed)
    fitted = np.column_stack([np.log(np.geomspace(1e8, 1e9, 20)), np.log(np.geomspace(2e9, 2e10, 20))])
    distance = rng.uniform(0.2, 2.0, n)
    law = 1.0 + 0.01 * rng.standard_normal(n)
    observed = law + tau_true * np.sqrt(distance) * rng.standard_normal(n) + noise * rng.standard_normal(n)
    return ce.Predictions(np.tile(law, (draws, 1)) + 1e-4 * rng.standard_normal((draws, n)), np.full(draws, noise),
                          None, observed, fitted[:, 0].max() + distance / 2, fitted[:, 1].max() + distance / 2,
                          fitted, np.log(6) + fitted.sum(axis=1))


def test_a_per_run_discrepancy_of_known_scale_is_recovered_when_the_splits_are_read_per_run():
    # a family of tables whose held-out runs depart independently with tau = 0.015 per √e-fold
    ev = [dataclasses.replace(_evidence(f"t{k}", 0.0, k), inner=[_inner(0.015, 10 + k)], inner_offsets=(1.0,))
          for k in range(4)]
    per_run, shared = (cal.Setting(0.005, None, True, ALL, correlation=c) for c in (0.0, 1.0))
    for e in ev:
        mean = float(cal.tau_posterior(e, per_run) @ cal.TAU_GRID)
        assert 0.010 < mean < 0.021
        # read as one shared slope, the same 40 residuals barely move tau off its small prior
        assert float(cal.tau_posterior(e, shared) @ cal.TAU_GRID) < 0.7 * mean
    # an exact law's splits read per run hold tau near zero, below the prior's mean (0.004)
    exact = dataclasses.replace(ev[0], inner=[_inner(0.0, 99)])
    assert float(cal.tau_posterior(exact, per_run) @ cal.TAU_GRID) < 0.003
    # offsets a setting does not use carry no evidence
    assert float(cal.tau_posterior(ev[0], dataclasses.replace(per_run, offsets=(2.0,))) @ cal.TAU_GRID) < 0.005


def test_the_hierarchical_scale_of_tables_whose_taus_vary_is_recovered():
    # twelve tables, each with its own tau drawn from HalfNormal(0.02), each seen through one split read per run
    rng = np.random.default_rng(5)
    taus = np.abs(rng.normal(0, 0.02, 12))
    ev = [dataclasses.replace(_evidence(f"t{k}", 0.0, k), inner=[_inner(float(t), 40 + k, n=60)], inner_offsets=(1.0,))
          for k, t in enumerate(taus)]
    per_run = cal.Setting(0.005, None, True, ALL, correlation=0.0)
    scale, ll = cal.hierarchical_scale(ev, per_run)
    assert 0.012 < scale < 0.033, scale
    assert ll.shape == cal.HIERARCHICAL_SCALES.shape and ll.argmax() == list(cal.HIERARCHICAL_SCALES).index(scale)
    # a table seen twice (two splits) counts once: duplicating every split changes nothing
    assert cal.hierarchical_scale(ev + ev, per_run)[0] == scale
    # exact-law tables learn a small scale
    exact = [dataclasses.replace(e, inner=[_inner(0.0, 90 + k, n=60)]) for k, e in enumerate(ev)]
    assert cal.hierarchical_scale(exact, per_run)[0] < 0.006
    with pytest.raises(bs.InputError, match="no backtest splits"):
        cal.hierarchical_scale([], per_run)


def test_the_least_regret_setting_is_not_the_one_of_best_mean_density():
    import pandas as pd

    # setting 0 gains a little on three tables and loses a lot on the fourth; setting 1 is close everywhere
    densities = pd.DataFrame({"a": [2.7, 2.6], "b": [2.7, 2.6], "c": [2.7, 2.6], "d": [2.25, 2.5]})
    assert densities.mean(axis=1).idxmax() == 0
    r = cal.regret(densities)
    assert r.idxmin() == 1
    np.testing.assert_allclose(r, [np.sqrt(0.25**2 / 4), np.sqrt(3 * 0.1**2 / 4)])


def test_coverage_under_the_model_contains_a_calibrated_setting_and_not_a_narrow_one():
    # twelve splits whose held-out runs drift with one shared slope each (tau = 0.02): pooled over
    # 360 runs, but the runs of a split err together
    evidence = [_evidence(f"t{k}", 0.02, k) for k in range(12)]
    right = cal.coverage_under_model(evidence, cal.Setting(0.02, None, False, ALL), simulations=300)
    assert list(right["level"]) == [0.5, 0.9]
    for _, row in right.iterrows():
        assert row["expected_lo"] <= row["observed"] <= row["expected_hi"], right
        assert row["expected_lo"] < row["level"] < row["expected_hi"]
    # shared errors: the 5-95% range of pooled 50% coverage is far wider than 360 independent runs' (±0.04)
    fifty = right.iloc[0]
    assert fifty["expected_hi"] - fifty["expected_lo"] > 0.15
    # the plain law's intervals on the same runs are too narrow, and the check says so
    narrow = cal.coverage_under_model(evidence, cal.Setting(1e-9, None, False, ALL), simulations=300)
    assert (narrow["p_below"] < 0.05).all(), narrow
    assert narrow["observed"].iloc[1] == pytest.approx(
        np.average(cal.split_scores(evidence, cal.Setting(1e-9, None, False, ALL))["coverage_90"],
                   weights=[30] * 12), abs=0.02)


def test_a_setting_is_scored_on_its_predictive_distribution():
    ev = _evidence("t", 0.0, 0)
    plain = cal.split_scores([ev], cal.Setting(1e-9, None, False, ALL))
    wide = cal.split_scores([ev], cal.Setting(0.04, None, False, ALL))
    # the law is exact here: the discrepancy can only widen the intervals and lower the density
    assert wide.loc[0, "median_width_90"] > 2 * plain.loc[0, "median_width_90"]
    assert wide.loc[0, "mean_log_pred_density"] < plain.loc[0, "mean_log_pred_density"]
    # the fast density agrees with the full scores
    assert cal.mean_log_predictive_density(ev, cal.Setting(0.04, None, False, ALL)) == pytest.approx(
        wide.loc[0, "mean_log_pred_density"], rel=1e-12)
    assert cal.widening(ev, cal.Setting(1e-9, None, False, ALL)) == pytest.approx(1.0, abs=1e-6)


def test_the_prior_scale_of_a_known_discrepancy_is_recovered_across_tables():
    # eight tables whose held-out runs drift with tau = 0.02 per √e-fold: the search must find 0.02,
    # not the narrower or wider candidates
    evidence = [_evidence(f"t{k}", 0.02, k) for k in range(8)]
    candidates = [cal.Setting(s, None, False, ALL) for s in (0.005, 0.01, 0.02, 0.04, 0.08)]
    best, table = cal.choose_setting(evidence, candidates)
    assert best.scale == 0.02, table
    exact = [_evidence(f"e{k}", 0.0, 100 + k, noise=0.02) for k in range(3)]  # held out: 1.06 at 0.005, 3.3 at 0.08
    # with exact-law twins, settings that widen them more than 1.25x are not eligible
    _, table = cal.choose_setting(evidence, candidates, exact=exact)
    assert not table.loc[table["scale"] == 0.08, "eligible"].item()
    assert table.loc[table["scale"] == 0.005, "eligible"].item()
    # the far point (100x the largest compute, 4.6 e-folds) widens more than the held-out runs do
    assert (table["widening_far"] > table["widening_exact"]).all()
    # when no candidate keeps the guarantee, the least widening one is taken and the table says so
    chosen, strict = cal.choose_setting(evidence, candidates[2:], exact=exact, max_widening=1.01)
    assert chosen.scale == 0.02 and not strict["eligible"].any()


def test_leave_one_table_out_scores_each_table_with_a_setting_chosen_without_it():
    evidence = [_evidence("narrow-a", 0.005, 1), _evidence("narrow-b", 0.005, 2), _evidence("wide", 0.04, 3)]
    candidates = [cal.Setting(s, None, False, ALL) for s in (0.005, 0.04)]
    loto = cal.leave_one_table_out(evidence, candidates)
    for _, row in loto.iterrows():
        assert row["table"] not in row["chosen_on"]
    # the wide table is judged by the narrow tables' choice, so its intervals are too narrow there
    wide = loto[loto["table"] == "wide"].iloc[0]
    assert wide["chosen"]["scale"] == 0.005 and wide["coverage_90"] < 0.8
    # and each row equals scoring the left-out table with the setting chosen on the others
    chosen, _ = cal.choose_setting(evidence[:2], candidates)
    direct = cal.split_scores([evidence[2]], chosen)
    assert wide["mean_log_pred_density"] == pytest.approx(direct.loc[0, "mean_log_pred_density"], rel=1e-12)
    with pytest.raises(bs.InputError, match="at least two tables"):
        cal.leave_one_table_out(evidence[:1], candidates)


def test_a_setting_and_its_card_table_round_trip():
    for setting in cal.candidate_settings():
        card = bs.load_card("chinchilla").with_discrepancy(setting.discrepancy())
        assert cal.setting_of(parse_card(card.to_toml())) == setting
    default = cal.setting_of(bs.load_card("chinchilla"))
    assert default.describe() == ("tau ~ HalfNormal(0.005); leave-future-out splits at 1, 2 e-folds read with "
                                  "correlation 0.5; misfit ratio 2 over every run; distance in compute, params, tokens")
    assert "splits" not in cal.Setting(0.01, None, False, ALL).describe()


def test_default_splits_hold_out_the_largest_runs_by_compute_and_by_size(example_runs):
    splits = cal.default_splits(example_runs)
    kinds = [s.kind for s in splits]
    assert kinds.count("compute") == 2 and kinds.count("params") == 1
    for split in splits:
        train, test = split.divide(example_runs)
        column = "flops" if split.kind == "compute" else "params"
        assert train[column].max() <= split.limit < test[column].min()
        assert len(train) >= 8 and len(test) >= 3


def test_misfit_evidence_only_counts_the_runs_within_the_window():
    rng = np.random.default_rng(0)
    fitted = np.column_stack([rng.uniform(18, 22, 60), rng.uniform(20, 24, 60)])
    resid = 0.002 * rng.standard_normal(60)
    far = fitted.sum(axis=1) < fitted.sum(axis=1).max() - 2
    resid[far] += 0.05 * np.sin(3 * fitted[far, 0])             # a large misfit far below the frontier only
    everywhere = ce.misfit_evidence(resid, fitted, fitted.sum(axis=1))
    frontier = ce.misfit_evidence(resid, fitted, fitted.sum(axis=1), window=2.0)
    assert ce.ETA_GRID[np.argmax(everywhere)] > 0.01
    assert ce.ETA_GRID[np.argmax(frontier)] < 0.004


@pytest.mark.slow
def test_calibrate_on_exact_law_tables_learns_a_small_discrepancy_and_writes_a_valid_card(tmp_path):
    tables = {f"study{k}": bs.load_runs(bs.simulate_runs(seed=k, noise=0.005)) for k in range(2)}
    candidates = [cal.Setting(s, r, True, ALL, w) for s in (0.002, 0.02) for r, w in ((None, None), (2.0, 2.0))]
    schedule = Schedule(2, 300, 300, 0.9)
    result = bs.calibrate(tables, "chinchilla", candidates=candidates, schedule=schedule)
    card = parse_card(result.card.text, source="learnt.toml")
    assert card.discrepancy == result.card.discrepancy and card.calibration["tables"] == ["study0", "study1"]
    # the card carries the whole chosen setting, the misfit window included
    assert cal.setting_of(card) == result.setting
    assert len(card.calibration["coverage_90_after"]) == len(card.calibration["splits"]) == len(result.after)
    # the law is exactly right: the smaller scale is learnt, and tau (posterior mean on the tables' own
    # splits) stays below 0.003
    assert result.setting.scale == 0.002
    assert result.after["tau_mean"].max() < 0.003
    assert result.card.calibration["widening_exact"] <= cal.MAX_WIDENING


@pytest.mark.slow
@pytest.mark.real_data
def test_porian_misfit_sits_far_below_the_frontier_and_the_splits_read_per_run_hold_tau_down():
    from tests.conftest import real_data_path
    from tests.real_tables import SHARED_DATA, porian

    real_data_path(SHARED_DATA / "porian_isoflop.csv")
    runs = porian("rw_cosine")
    ev = ce.split_evidence(runs, "chinchilla", Split("compute", 5e18), table="porian-rw",
                            schedule=Schedule(2, 400, 400, 0.9))
    # all 70 runs: the under-trained smallest-budget runs miss the law by several percent
    assert ce.ETA_GRID[np.argmax(ev.misfit(None))] > 0.03
    # within 2 e-folds of the largest compute the law fits to within ~1%
    assert ce.ETA_GRID[np.argmax(ev.misfit(2.0))] < 0.015
    old = cal.Setting(0.015, 1.3, True, ("compute",))
    new = cal.setting_of(bs.load_card("chinchilla"))
    assert new.misfit_window is None and new.correlation < 1
    # the default reads every run's misfit too, but its leave-future-out splits, read per run, see the law
    # predict its frontier well and overrule it; read as one shared slope they cannot
    shared = dataclasses.replace(new, correlation=1.0)
    assert cal.tau_posterior(ev, new) @ cal.TAU_GRID < 0.5 * (cal.tau_posterior(ev, shared) @ cal.TAU_GRID)
    new_scores = cal.split_scores([ev], new)
    old_scores = cal.split_scores([ev], old)
    plain_scores = cal.split_scores([ev], cal.Setting(1e-9, None, False, ("compute",)))
    # the 90% intervals of the default card are less than half as wide as the card tuned on Chinchilla's,
    # and cover at least the runs the plain law's cover
    assert new_scores.loc[0, "median_width_90"] < 0.5 * old_scores.loc[0, "median_width_90"]
    assert new_scores.loc[0, "coverage_90"] >= plain_scores.loc[0, "coverage_90"]
    assert new_scores.loc[0, "mean_log_pred_density"] > old_scores.loc[0, "mean_log_pred_density"]
    assert math.isfinite(new_scores.loc[0, "crps"])


def test_calibrate_cli_refuses_a_table_given_twice_and_a_foreign_output(tmp_path, capsys, monkeypatch):
    from bayes_scaling.cli import main

    def no_sampling(*args, **kwargs):
        raise AssertionError("a fit started before the input was checked")

    monkeypatch.setattr(ce, "fit_law", no_sampling)

    table = tmp_path / "runs.csv"
    bs.simulate_runs(seed=0).to_csv(table, index=False)
    before = table.read_bytes()
    assert main(["calibrate", str(table), str(table), "--out", str(tmp_path / "c.toml")]) == 2
    assert "given twice" in capsys.readouterr().err
    foreign = tmp_path / "mine.toml"
    foreign.write_text("[card]\nname = 'mine'\n")
    assert main(["calibrate", str(table), "--out", str(foreign)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert foreign.read_text() == "[card]\nname = 'mine'\n" and table.read_bytes() == before
    assert not (tmp_path / "c.toml").exists()
    # every table is checked before the first fit: for a card that needs epochs (or unique_tokens), a
    # second table without them is refused at once, not after the first table's fits
    epochs = tmp_path / "epochs.csv"
    bs.simulate_runs(seed=0).assign(epochs=1.0).to_csv(epochs, index=False)
    args = ["calibrate", str(epochs), str(table), "--card", "data-constrained", "--out", str(tmp_path / "c.toml")]
    assert main(args) == 2
    assert "unique_tokens" in capsys.readouterr().err and not (tmp_path / "c.toml").exists()
    # a table with no usable split (one budget of 9 runs) is refused before the first table is fitted
    one_budget = bs.load_runs(bs.simulate_runs(seed=2, budgets=bs.simulate.EXAMPLE_BUDGETS[:1]))
    with pytest.raises(bs.InputError, match="^tiny: no backtest split"):
        bs.calibrate({"ok": bs.load_runs(bs.simulate_runs(seed=0)), "tiny": one_budget})
