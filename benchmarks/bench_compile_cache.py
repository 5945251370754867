"""Persistent compilation cache: the same fit in a first and a second new process.

Runs the default fit of the real table (or the example grid when it is absent) twice,
each time in a fresh interpreter sharing one empty cache folder
(``BAYES_SCALING_JAX_CACHE``), and prints both wall times; then once with the cache
turned off for reference. Target: the second process does not pay full compilation.

    python benchmarks/bench_compile_cache.py            # default fit (4 x 1000 + 1000)
    python benchmarks/bench_compile_cache.py --quick    # 2 chains x 300 + 300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, run_python  # noqa: E402

_WORKER = """
import json, sys, time
sys.path.insert(0, "benchmarks")
start = time.perf_counter()
import bayes_scaling as bs
from _common import real_runs
runs = real_runs()
runs = bs.load_runs(bs.simulate_runs(seed=0)) if runs is None else runs
t0 = time.perf_counter()
bs.fit(runs, seed=0, **{kwargs})
print(json.dumps({{"fit_s": time.perf_counter() - t0, "process_s": time.perf_counter() - start}}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 chains x 300 + 300")
    parser.add_argument("--out", type=Path, help="append the figures as JSON lines to this file")
    args = parser.parse_args(argv)
    kwargs = "dict(chains=2, warmup=300, draws=300)" if args.quick else "dict()"
    code = _WORKER.format(kwargs=kwargs)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for label in ("first process (empty cache)", "second process (warm cache)"):
            result, _ = run_python(code, env={"BAYES_SCALING_JAX_CACHE": cache})
            rows.append({"run": label, **result})
        entries = sum(1 for _ in Path(cache).iterdir())
    result, _ = run_python(code, env={"BAYES_SCALING_JAX_CACHE": "off"})
    rows.append({"run": "cache off (reference)", **result})
    rows[1]["speed-up vs first"] = rows[0]["fit_s"] / rows[1]["fit_s"]
    emit(f"persistent compilation cache ({entries} entries written)", rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
