"""The compiled NUTS program: padding is invisible to the posterior, and fits reuse one compile."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import potential_energy

import bayes_scaling as bs
from bayes_scaling import nuts
from bayes_scaling.model import build_model, covariates
from bayes_scaling.sampling import fit_law_subsets

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts XLA compilations (JAX's backend-compile events) while active."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if self.active and event == BACKEND_COMPILE:
            self.names.append(str(kwargs.get("fun_name")))

    def __enter__(self) -> CompileCounter:
        self.names, self.active = [], True
        return self

    def __exit__(self, *exc) -> None:
        self.active = False


@pytest.fixture(scope="module")
def compiles() -> CompileCounter:
    return CompileCounter()


def test_padded_rows_are_powers_of_two_then_multiples():
    assert [nuts.padded_rows(n) for n in (1, 31, 64, 65, 240, 2048, 2049, 250_000)] == [
        64, 64, 64, 128, 256, 2048, 4096, 251_904]


def test_padding_and_masking_leave_the_log_density_unchanged(example_runs):
    card = bs.load_card("chinchilla")
    model = build_model(card)
    x = covariates(example_runs, card)
    log_loss = np.log(example_runs["loss"].to_numpy(float))
    z = {"E": jnp.log(1.8), "log_A_ref": jnp.log(480.0) - 0.3 * 20.7, "log_B_ref": jnp.log(2000.0) - 0.3 * 23.0,
         "alpha": 0.1, "beta": -0.2, "sigma": jnp.log(0.01)}
    plain = potential_energy(model, ({k: jnp.asarray(v) for k, v in x.items()},), {"log_loss": log_loss}, z)
    rows = nuts.padded_rows(len(log_loss)) + 7
    px, pll = nuts.pad_table(x, log_loss, rows)
    mask = np.arange(rows) < len(log_loss)
    padded = potential_energy(model, ({k: jnp.asarray(v) for k, v in px.items()},),
                              {"log_loss": jnp.asarray(pll), "mask": jnp.asarray(mask)}, z)
    assert float(padded) == pytest.approx(float(plain), rel=1e-12)


def test_cards_that_differ_only_in_discrepancy_share_a_program():
    card = bs.load_card("chinchilla")
    assert nuts.model_key(card) == nuts.model_key(bs.load_card("chinchilla-plain"))
    assert nuts.model_key(card) != nuts.model_key(bs.load_card("kaplan"))


@pytest.mark.slow
def test_a_second_fit_of_another_table_of_the_same_size_bucket_compiles_nothing(example_runs, compiles):
    options = {"chains": 2, "warmup": 150, "draws": 150}
    bs.fit(example_runs, "chinchilla-plain", seed=0, **options)
    fewer = example_runs.iloc[5:].reset_index(drop=True)  # 58 runs: the same 64-row bucket
    with compiles:
        fit = bs.fit(fewer, "chinchilla-plain", seed=1, **options)
    assert compiles.names == []
    assert fit.posterior.sizes["draw"] == 150 and len(fit.runs) == 58


@pytest.mark.slow
def test_subsets_drawn_together_match_their_own_fits(example_runs):
    # Two leave-future-out style subsets in one run of the program (2 chains each) against
    # separate fits of each subset: same posterior within Monte-Carlo error.
    options = {"chains": 4, "warmup": 500, "draws": 500}
    flops = example_runs["flops"].to_numpy()
    budgets = np.sort(np.unique(flops))
    subsets = [np.flatnonzero(flops <= budgets[-2]), np.flatnonzero(flops <= budgets[-3])]
    together = fit_law_subsets(example_runs, bs.load_card("chinchilla-plain"), subsets, seed=3, **options)
    for subset, fit in zip(subsets, together, strict=True):
        assert fit.posterior.sizes["chain"] == 2 and len(fit.runs) == len(subset)
        alone = bs.fit(example_runs.iloc[subset].reset_index(drop=True), "chinchilla-plain", seed=4, **options)
        a, b = alone.summary(), fit.summary()
        for name in ("E", "alpha", "beta", "sigma"):
            assert abs(a.loc[name, "median"] - b.loc[name, "median"]) < 0.25 * (a.loc[name, "hi"] - a.loc[name, "lo"])


def test_progress_bar_changes_no_draw_and_compiles_nothing(example_runs, compiles, capsys):
    # The bar moves between the pieces of the same compiled programs: the same seed gives the same draws.
    options = {"chains": 2, "warmup": 150, "draws": 150, "seed": 2}  # the programs of the test above
    quiet = bs.fit(example_runs, "chinchilla-plain", progress=False, **options)
    capsys.readouterr()
    with compiles:
        shown = bs.fit(example_runs, "chinchilla-plain", progress=True, **options)
    assert compiles.names == []
    assert "NUTS, 2 chain(s): draws: 100%" in capsys.readouterr().err
    for group in ("posterior", "sample_stats"):
        for name, values in quiet.tree[group].items():
            np.testing.assert_array_equal(values.to_numpy(), shown.tree[group][name].to_numpy(), err_msg=name)


def test_a_run_is_cut_into_at_most_twenty_pieces_per_phase():
    schedule = nuts.Schedule(chains=1, warmup=45, draws=7, target_accept=0.9)
    cut = nuts.pieces(schedule)
    assert [p for p in cut if p[0] == "warmup"][-1] == ("warmup", 42, 45) and len(cut) == 15 + 7
    assert [(lo, hi) for phase, lo, hi in cut if phase == "draws"] == [(45 + i, 46 + i) for i in range(7)]
    assert [hi for _, _, hi in cut[:-1]] == [lo for _, lo, _ in cut[1:]]  # iterations 0 to 52, each once
