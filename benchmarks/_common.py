"""Helpers shared by the benchmark scripts: data, timing, machine description, output.

The scripts are run as files (``python benchmarks/bench_fit.py``), so this module is
imported by path, not as part of the package.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "chinchilla_fig4_epoch.csv"


def real_runs(path: Path = REAL_DATA):
    """The Chinchilla reconstruction as in the tests: 5 highest-loss runs dropped (240 runs).

    Returns ``None`` when the file is absent (it lives beside the checkout, not in it).
    """
    import bayes_scaling as bs

    if not path.is_file():
        return None
    runs = bs.load_runs(path, {"params": "Model Size", "flops": "Training FLOP"})
    runs = runs.sort_values("loss").iloc[:-5].reset_index(drop=True)
    runs.attrs["source"] = str(path)
    return runs


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn()``; return its result and the wall time in seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """CPU count, load average and JAX backend, printed with every benchmark."""
    import importlib

    importlib.import_module("bayes_scaling")  # first: its host-device flag must precede JAX's import
    import jax

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg_1m": round(load[0], 2),
            "jax_backend": jax.default_backend(), "jax_devices": jax.local_device_count()}


def gpu_backend_available() -> bool:
    """True when JAX can see a CUDA/ROCm GPU (the CUDA plugin installed and a device present)."""
    import jax

    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:
        return False


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[dict, float]:
    """Run ``code`` in a fresh interpreter; it must print one JSON object last. Returns it and wall s."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def emit(title: str, rows: list[dict[str, Any]], out: Path | None) -> None:
    """Print a plain-text table on stdout and, with ``out``, append the rows as JSON lines."""
    print(f"\n== {title}")
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        width = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
        print("  ".join(k.ljust(width[k]) for k in keys))
        for r in rows:
            print("  ".join(_fmt(r.get(k)).ljust(width[k]) for k in keys))
    sys.stdout.flush()
    if out is not None:
        with out.open("a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({"benchmark": title, **r}) + "\n")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)
