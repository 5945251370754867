import dataclasses
import subprocess
import sys
import zipfile

import pytest

from bayes_scaling.cards import available_cards, load_card, parse_card
from bayes_scaling.errors import CardError


def test_bundled_chinchilla_card_has_priors_likelihood_and_references():
    card = load_card("chinchilla")
    assert card.law.name == "chinchilla"
    assert list(card.priors) == ["E", "A", "B", "alpha", "beta"]
    assert all(p.rationale for p in card.priors.values())
    assert card.likelihood == "student_t" and card.nu == 5.0
    assert card.references["hoffmann2022"]["alpha"] == 0.34
    assert card.references["besiroglu2024"]["B"] == 2085.43
    assert "chinchilla" in available_cards()


def test_card_by_path_and_normal_likelihood(tmp_path):
    text = load_card("chinchilla").text.replace('family = "student_t"', 'family = "normal"')
    path = tmp_path / "mine.toml"
    path.write_text(text)
    card = load_card(path)
    assert card.likelihood == "normal" and card.nu is None and card.source == str(path)


def test_unknown_card_name_lists_bundled_cards():
    with pytest.raises(CardError, match="no model card named 'nope'; bundled cards: .*chinchilla"):
        load_card("nope")


def test_unknown_law_is_named():
    text = load_card("chinchilla").text.replace('law = "chinchilla"', 'law = "moore"')
    with pytest.raises(CardError, match=r"mine\.toml: invalid model card:\n  - \[card\] law: unknown law 'moore'"):
        parse_card(text, source="mine.toml")


def test_missing_prior_and_malformed_distribution_are_all_reported_at_once():
    text = load_card("chinchilla").text
    text = text.replace("[priors.beta]", "[priors.gamma]")
    text = text.replace('dist = "LogNormal"\nkwargs = { loc = 0.5, scale = 0.5 }',
                        'dist = "Lognormal"\nkwargs = { loc = 0.5 }')
    text = text.replace("kwargs = { loc = 6.0, scale = 2.0 }", "kwargs = { loc = 6.0, scale = -2.0 }")
    with pytest.raises(CardError) as info:
        parse_card(text, source="bad.toml")
    msg = str(info.value)
    assert "[priors.beta]: missing; law 'chinchilla' needs a prior for beta" in msg
    assert "[priors.gamma]: 'chinchilla' has no parameter 'gamma'" in msg
    assert "[priors.E] dist: 'Lognormal' is not one of" in msg
    assert "[priors.A] kwargs: scale = -2 must be positive" in msg


def test_card_values_must_be_numbers_not_expressions():
    text = load_card("chinchilla").text.replace("kwargs = { loc = 6.0, scale = 2.0 }",
                                                'kwargs = { loc = "__import__(\'os\')", scale = 2.0 }')
    with pytest.raises(CardError, match=r"\[priors.A\] kwargs: must be a table of numbers"):
        parse_card(text)


def test_invalid_toml_is_reported():
    with pytest.raises(CardError, match="x.toml: not valid TOML"):
        parse_card("[card\nlaw=", source="x.toml")


@pytest.mark.slow
def test_cards_ship_inside_the_wheel(tmp_path):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("bayes_scaling-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "bayes_scaling/models/chinchilla.toml" in names


def test_every_bundled_card_loads_with_a_rationale_for_every_prior():
    for name in available_cards():
        card = load_card(name)
        assert set(card.priors) == set(card.law.parameters), name
        assert all(p.rationale for p in card.priors.values()), name
    assert {"kaplan", "chinchilla-tied", "data-constrained", "hierarchical"} <= set(available_cards())


def test_hierarchical_card_pools_e_a_b_and_names_its_hyperparameters():
    card = load_card("hierarchical")
    assert card.law.name == "chinchilla" and card.pooling.parameters == ("E", "A", "B")
    assert card.pooling.hyperparameters()[:2] == ["mu_log_E", "tau_log_E"]
    assert load_card("chinchilla").pooling is None


def test_bad_pooling_table_reports_every_problem_at_once():
    text = load_card("hierarchical").text
    text = text.replace('parameters = ["E", "A", "B"]', 'parameters = ["E", "A", "alpha", "gamma"]')
    text = text.replace("[pooling.scale.B]", "[pooling.scale.Q]")
    text = text.replace('[pooling.scale.E]\ndist = "HalfNormal"', '[pooling.scale.E]\ndist = "Normal"')
    text = text.replace("kwargs = { scale = 0.2 }", "kwargs = { loc = 0.0, scale = 0.2 }", 1)
    with pytest.raises(CardError) as info:
        parse_card(text, source="pool.toml")
    msg = str(info.value)
    assert "[pooling.scale.E]: Normal(loc=0, scale=0.2) allows negative values" in msg
    assert "[pooling] parameters: alpha is pooled on the log scale, so [priors.alpha] must be a LogNormal" in msg
    assert "[pooling.scale.alpha]: missing" in msg
    assert "[pooling] parameters: 'chinchilla' has no parameter 'gamma'" in msg
    assert "[pooling.scale.Q]: Q is not in [pooling] parameters" in msg


def test_card_of_another_law_must_give_that_laws_priors():
    text = load_card("chinchilla").text.replace('law = "chinchilla"', 'law = "kaplan"')
    with pytest.raises(CardError) as info:
        parse_card(text, source="k.toml")
    assert "[priors.N_c]: missing; law 'kaplan' needs a prior for N_c" in str(info.value)
    assert "[priors.E]: 'kaplan' has no parameter 'E'" in str(info.value)


def test_pooling_parametrisation_is_validated_and_names_the_latent_site():
    card = load_card("hierarchical")
    assert card.pooling.centred and card.pooling.latent("E") == "log_E"
    text = card.text.replace('parametrisation = "centred"', 'parametrisation = "non_centred"')
    assert parse_card(text).pooling.latent("E") == "z_E"
    with pytest.raises(CardError, match="\\[pooling\\] parametrisation: 'skewed' is not one of centred, non_centred"):
        parse_card(card.text.replace('parametrisation = "centred"', 'parametrisation = "skewed"'))


def test_discrepancy_directions_and_misfit_window_round_trip_and_bad_values_are_named():
    default = load_card("chinchilla")
    assert default.discrepancy.directions == ("compute", "params", "tokens")
    assert default.discrepancy.split_correlation == 0.5
    card = default.with_discrepancy(dataclasses.replace(default.discrepancy, misfit_window=2.0))
    assert parse_card(card.to_toml()).discrepancy == card.discrepancy
    text = card.to_toml().replace('directions = ["compute", "params", "tokens"]', 'directions = ["width"]')
    with pytest.raises(CardError, match=r"\[discrepancy\] directions"):
        parse_card(text)
    text = card.to_toml().replace("misfit_window = 2.0", "misfit_window = -1")
    with pytest.raises(CardError, match=r"\[discrepancy\] misfit_window"):
        parse_card(text)
