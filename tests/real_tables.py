"""The real run tables of ``../shared/data`` (see its PROVENANCE.md), whole, by name.

Used by the calibration tests and ``benchmarks/bench_calibration.py``: the discrepancy's
hyperparameters are judged on every one of them, never on one. Each builder returns
``None`` when its file is absent (the folder lives beside the checkout, not in it).
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


def chinchilla(path: Path = SHARED_DATA / "chinchilla_fig4_epoch.csv") -> pd.DataFrame | None:
    """The Chinchilla reconstruction, the 5 highest-loss runs dropped as the replication does (240 runs)."""
    if not path.is_file():
        return None
    runs = bs.load_runs(path, {"params": "Model Size", "flops": "Training FLOP"})
    runs = runs.sort_values("loss").iloc[:-5].reset_index(drop=True)
    runs.attrs["source"] = path.name
    return runs


def porian(dataset: str = "rw_cosine", max_flops: float = float("inf"),
           path: Path = SHARED_DATA / "porian_isoflop.csv") -> pd.DataFrame | None:
    """Porian et al.'s IsoFLOP points of one dataset (88 runs) up to ``max_flops``."""
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    table = table[(table["dataset"] == dataset) & (table["flops"] <= max_flops)]
    runs = bs.load_runs(table[["name", "params", "tokens", "loss"]].reset_index(drop=True))
    runs.attrs["source"] = f"{path.name}:{dataset}"
    return runs


def gemstones(path: Path = SHARED_DATA / "gemstones_cooldown.csv") -> pd.DataFrame | None:
    """The Gemstones cooldown runs (199 runs, total parameters)."""
    if not path.is_file():
        return None
    runs = bs.load_runs(pd.read_csv(path)[["name", "params", "tokens", "loss"]])
    runs.attrs["source"] = path.name
    return runs


def olmo_ladder(max_params: float = float("inf"), folder: Path = SHARED_DATA / "olmo_ladder") -> pd.DataFrame | None:
    """The final C4 loss of every OLMo ladder run with N <= ``max_params`` (30 runs, reruns included)."""
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
        runs = bs.load_runs(pd.DataFrame(rows))
    runs.attrs["source"] = "olmo_ladder (C4 loss)"
    return runs


#: Name -> builder of each real table.
REAL_TABLES: dict[str, Callable[[], pd.DataFrame | None]] = {
    "chinchilla": chinchilla,
    "porian-rw": lambda: porian("rw_cosine"),
    "porian-owt2": lambda: porian("owt2_cosine"),
    "gemstones": gemstones,
    "olmo-c4": olmo_ladder,
}
