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
    text = text.replace('dist = "LogNormal"\nkwargs = { loc = 0.5, scale = 0.5 }', 'dist = "Lognormal"\nkwargs = { loc = 0.5 }')
    text = text.replace("kwargs = { loc = 6.0, scale = 2.0 }", "kwargs = { loc = 6.0, scale = -2.0 }")
    with pytest.raises(CardError) as info:
        parse_card(text, source="bad.toml")
    msg = str(info.value)
    assert "[priors.beta]: missing; law 'chinchilla' needs a prior for beta" in msg
    assert "[priors.gamma]: 'chinchilla' has no parameter 'gamma'" in msg
    assert "[priors.E] dist: 'Lognormal' is not one of" in msg
    assert "[priors.A] kwargs: LogNormal(loc=6, scale=-2) is not a valid LogNormal" in msg


def test_card_values_must_be_numbers_not_expressions():
    text = load_card("chinchilla").text.replace("kwargs = { loc = 6.0, scale = 2.0 }", 'kwargs = { loc = "__import__(\'os\')", scale = 2.0 }')
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
