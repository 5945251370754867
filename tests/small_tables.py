"""Small run tables (18–40 runs) on which the default fit must pass its diagnostics gate.

Generated ones come from the Chinchilla law with an IsoFLOP design; real ones from
``../shared/data`` (see its PROVENANCE.md): each builder returns ``None`` when its file
is absent, and the tests skip or fail on that as :func:`tests.conftest.real_data_path` says.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import bayes_scaling as bs

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: Non-embedding parameters of the OLMo ladder's rungs (PROVENANCE.md).
OLMO_PARAMS = {"190M": 190_354_176, "370M": 371_262_464, "760M": 758_220_288, "1B": 1_279_395_840,
               "3B": 3_169_537_280}
OLMO_LOSS = "eval/c4_en-validation/CrossEntropyLoss"


def generated(seed: int, budgets: int, sizes: int) -> pd.DataFrame:
    """An IsoFLOP grid of ``budgets`` × ``sizes`` runs from the example truth (1% noise)."""
    return bs.load_runs(bs.simulate_runs(seed=seed, budgets=bs.simulate.EXAMPLE_BUDGETS[:budgets],
                                         sizes_per_budget=sizes))


def olmo_ladder(max_params: float = 760e6, folder: Path = SHARED_DATA / "olmo_ladder") -> pd.DataFrame | None:
    """The final C4 loss of every OLMo ladder run with N <= ``max_params`` (18 runs up to the 760M rung)."""
    if not folder.is_dir():
        return None
    rows = []
    for path in sorted(folder.glob("*.csv")):
        rung = path.stem.split("-")[0]
        if OLMO_PARAMS[rung] > max_params:
            continue
        last = pd.read_csv(path).iloc[-1]
        rows.append({"name": path.stem, "params": OLMO_PARAMS[rung], "tokens": last["throughput/total_tokens"],
                     "loss": last[OLMO_LOSS]})
    with warnings.catch_warnings():
        # The ladder reruns each 1xC run with another seed: same N and D, on purpose.
        warnings.filterwarnings("ignore", message=".*repeat the params and tokens")
        return bs.load_runs(pd.DataFrame(rows))


def porian(dataset: str = "rw_cosine", max_flops: float = 1e17,
           path: Path = SHARED_DATA / "porian_isoflop.csv") -> pd.DataFrame | None:
    """Porian et al.'s IsoFLOP points of one dataset up to ``max_flops`` (32 runs up to 1e17)."""
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    table = table[(table["dataset"] == dataset) & (table["flops"] <= max_flops)]
    return bs.load_runs(table[["name", "params", "tokens", "loss"]].reset_index(drop=True))


#: Name -> builder of each small table.
SMALL_TABLES: dict[str, Callable[[], pd.DataFrame | None]] = {
    "generated-35": lambda: generated(0, 5, 7),
    "generated-32": lambda: generated(3, 4, 8),
    "porian-rw-32": lambda: porian("rw_cosine"),
    "porian-owt2-32": lambda: porian("owt2_cosine"),
    "olmo-c4-18": olmo_ladder,
}
