"""Table: what the CLI prints without pandas is what pandas would print; intervals as np.quantile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.tables import Table, check_level, frame_returning, interval_columns, ranked_interval_columns

VALUES = np.array([5.76e23, 1e21, 7e10, 0.1 + 0.2, 1e16, 1e15, 123456.789, 1e-5, np.nan, np.inf, -3.0, 2.0**60])


def example() -> Table:
    n = VALUES.size
    return Table({"plan": np.array(["a,b", 'q"x', "70B:1.4T"] * 4), "value": VALUES, "rank": np.arange(n),
                  "ok": np.arange(n) % 2 == 0}, {"level": 0.9, "card": "chinchilla"})


def test_csv_and_rows_are_those_of_the_dataframe():
    table = example()
    frame = table.to_frame()
    assert table.to_csv() == frame.to_csv(index=False)
    rows, records = table.rows(), frame.to_dict(orient="records")
    assert [r.keys() for r in rows] == [r.keys() for r in records]
    for row, record in zip(rows, records, strict=True):
        for key in row:
            assert type(row[key]) is type(record[key]), key
            assert row[key] == record[key] or (np.isnan(row[key]) and np.isnan(record[key])), key
    assert frame.attrs == {"level": 0.9, "card": "chinchilla"}


def test_index_column_becomes_the_frame_index_and_leads_the_csv():
    table = Table({"parameter": np.array(["E", "A"]), "median": np.array([1.8, 400.0])}, index="parameter")
    frame = table.to_frame()
    assert list(frame.index) == ["E", "A"] and frame.index.name == "parameter"
    assert table.to_csv() == frame.to_csv()


def test_columns_must_be_one_dimensional_and_of_one_length():
    with pytest.raises(ValueError, match="one length"):
        Table({"a": np.arange(3), "b": np.arange(4)})
    with pytest.raises(ValueError, match="1-d"):
        Table({"a": np.zeros((2, 2))})


def test_concat_keeps_column_order_and_takes_the_given_attrs():
    both = Table.concat([example(), example()], {"level": 0.5})
    assert len(both) == 2 * VALUES.size and list(both.columns) == ["plan", "value", "rank", "ok"]
    assert both.attrs == {"level": 0.5}


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 4001])
@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95])
def test_ranked_intervals_of_monotone_functions_equal_np_quantile(size, level):
    key = np.random.default_rng(size).lognormal(20, 1, (size, 5))
    draws = {"up": (np.sqrt(key), True), "down": (1e23 / key, False), "key": (key, True)}
    ranked = ranked_interval_columns(key, draws, level)
    for name, (values, _) in draws.items():
        for column, expected in interval_columns(name, values, level).items():
            np.testing.assert_array_equal(ranked[column], expected, err_msg=column)


def test_frame_returning_names_the_public_function_and_returns_a_dataframe():
    def answer_table(level: float = 0.9) -> Table:
        """Doc."""
        return Table({"x": np.arange(2.0)}, {"level": check_level(level)})

    answer = frame_returning(answer_table)
    assert answer.__name__ == "answer" and answer.__doc__ == "Doc."
    frame = answer(level=0.8)
    assert isinstance(frame, pd.DataFrame) and frame.attrs == {"level": 0.8}
    with pytest.raises(InputError, match="level must be in the interval"):
        answer(level=1.0)
