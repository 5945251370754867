"""Shared fixtures: CPU, float64 and seeds pinned; one small posterior reused by many tests."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bayes_scaling as bs  # noqa: E402  (enables x64 before any JAX array exists)
from tests.lawdata import KAPLAN_TRUTH, isoflop_grid, law_runs  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHINCHILLA_CSV = SHARED_DATA / "chinchilla_fig4_epoch.csv"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def real_data_path(path: Path = CHINCHILLA_CSV) -> Path:
    """Path of a file in ../shared/data; skip locally when absent, fail in CI."""
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI must run with ../shared beside the checkout")
        pytest.skip(f"{path} not present (../shared/data is only beside CI and developer checkouts)")
    return path


def load_chinchilla_runs() -> pd.DataFrame:
    """The Chinchilla reconstruction with the replication's 5 highest-loss runs dropped (240 runs)."""
    runs = bs.load_runs(real_data_path(), {"params": "Model Size", "flops": "Training FLOP"})
    return runs.sort_values("loss").iloc[:-5].reset_index(drop=True)


@pytest.fixture(scope="session")
def example_runs() -> pd.DataFrame:
    """The bundled example grid (63 runs, known truth)."""
    return bs.load_runs(bs.simulate_runs(seed=0))


@pytest.fixture(scope="session")
def small_fit(example_runs: pd.DataFrame) -> bs.Fit:
    """A quick NUTS fit of the example grid: 4 chains × (500 warm-up + 500 draws)."""
    return bs.fit(example_runs, chains=4, warmup=500, draws=500, seed=1)


@pytest.fixture(scope="session")
def chinchilla_runs() -> pd.DataFrame:
    """Real data: see ../shared/data/PROVENANCE.md."""
    return load_chinchilla_runs()


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla_runs: pd.DataFrame) -> bs.Fit:
    """The default card on the real table, 2 chains × (500 warm-up + 500 draws): one fit many tests read."""
    return bs.fit(chinchilla_runs, chains=2, warmup=500, draws=500, seed=0)


@pytest.fixture(scope="session")
def kaplan_fits() -> dict[str, bs.Fit]:
    """Cards kaplan and chinchilla fitted to runs drawn from Kaplan's law (32 runs, 1% noise),
    2 chains × (300 warm-up + 300 draws): read by the averaging and the comparison tests."""
    n, d = isoflop_grid()
    runs = bs.load_runs(law_runs("kaplan", KAPLAN_TRUTH, n, d, seed=0, noise=0.01))
    return {card: bs.fit(runs, card, chains=2, warmup=300, draws=300, seed=0) for card in ("kaplan", "chinchilla")}
