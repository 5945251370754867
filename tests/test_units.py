import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.units import format_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [("70M", 7e7), ("1.4B", 1.4e9), ("1.4T", 1.4e12), ("5.76e23", 5.76e23), ("6e20", 6e20),
     ("16b", 1.6e10), (" 500 K ", 5e5), ("1_000", 1000.0), (42, 42.0), (2.5, 2.5)],
)
def test_parse_quantity_reads_suffixes_and_scientific_notation(text, value):
    assert parse_quantity(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("text", ["seventy", "1.4X", "", "1e", "B"])
def test_parse_quantity_rejects_garbage_with_the_name_of_the_argument(text):
    with pytest.raises(InputError, match="--budget: cannot read"):
        parse_quantity(text, what="--budget")


def test_format_quantity_round_trips_through_parse():
    for value in (7e7, 6.7e10, 1.4e12, 5.76e23, 123.0):
        assert parse_quantity(format_quantity(value, digits=6)) == pytest.approx(value, rel=1e-5)
    assert format_quantity(6.7e10) == "67B"
    assert format_quantity(1.4e12) == "1.4T"


def test_format_quantity_picks_the_suffix_after_rounding():
    assert format_quantity(999_999_999.99) == "1B"
    assert format_quantity(999_999.0) == "1M"
    assert format_quantity(1e15) == "1.00e+15"
