"""Small run tables (18–40 runs) on which the default fit must pass its diagnostics gate.

Generated ones come from the Chinchilla law with an IsoFLOP design; real ones from
``../shared/data`` (see its PROVENANCE.md): each builder returns ``None`` when its file
is absent, and the tests skip or fail on that as :func:`tests.conftest.real_data_path` says.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

import bayes_scaling as bs

from . import real_tables
from .real_tables import SHARED_DATA

__all__ = ["SHARED_DATA", "SMALL_TABLES", "generated", "olmo_ladder", "porian"]


def generated(seed: int, budgets: int, sizes: int) -> pd.DataFrame:
    """An IsoFLOP grid of ``budgets`` × ``sizes`` runs from the example truth (1% noise)."""
    return bs.load_runs(bs.simulate_runs(seed=seed, budgets=bs.simulate.EXAMPLE_BUDGETS[:budgets],
                                         sizes_per_budget=sizes))


def olmo_ladder(max_params: float = 760e6) -> pd.DataFrame | None:
    """The final C4 loss of every OLMo ladder run with N <= ``max_params`` (18 runs up to the 760M rung)."""
    return real_tables.olmo_ladder(max_params)


def porian(dataset: str = "rw_cosine", max_flops: float = 1e17) -> pd.DataFrame | None:
    """Porian et al.'s IsoFLOP points of one dataset up to ``max_flops`` (32 runs up to 1e17)."""
    return real_tables.porian(dataset, max_flops)


#: Name -> builder of each small table.
SMALL_TABLES: dict[str, Callable[[], pd.DataFrame | None]] = {
    "generated-35": lambda: generated(0, 5, 7),
    "generated-32": lambda: generated(3, 4, 8),
    "porian-rw-32": lambda: porian("rw_cosine"),
    "porian-owt2-32": lambda: porian("owt2_cosine"),
    "olmo-c4-18": olmo_ladder,
}
