"""CLI latency from a saved fit, interpreter start-up included (targets: <= 1 s; report <= 10 s).

Times each command as a user runs it (the ``bayes-scaling`` console script in a new
process), median of ``--repeat`` runs: ``allocate`` over 1000 budgets, ``predict``,
``summary``, ``decide`` and ``report``, on a fit of 4 chains x 1000 draws (4000 draws),
plus the bare interpreter and ``import bayes_scaling.cli`` for reference.

    python benchmarks/bench_cli.py                 # makes a 4000-draw fit of the example grid first
    python benchmarks/bench_cli.py --fit FIT.nc    # times commands on an existing fit
    python benchmarks/bench_cli.py --quick         # 1 repeat
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402

TARGET_S, TARGET_REPORT_S = 1.0, 10.0


def wall(cmd: list[str]) -> float:
    """Wall seconds of one run of ``cmd``; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


def make_fit(path: Path) -> None:
    """A 4-chain x 1000-draw NUTS fit of the example grid, saved to ``path``."""
    import bayes_scaling as bs

    bs.fit(bs.load_runs(bs.simulate_runs(seed=0)), seed=0).save(path)


def commands(cli: str, fit: Path, tmp: Path) -> dict[str, list[str]]:
    budgets = [f"{b:.6g}" for b in [1e19 * 10 ** (6 * i / 999) for i in range(1000)]]
    return {
        "python -c pass (start-up)": [sys.executable, "-c", "pass"],
        "import bayes_scaling.cli": [sys.executable, "-c", "import bayes_scaling.cli"],
        "allocate (1000 budgets, json)": [cli, "allocate", str(fit), *[a for b in budgets for a in ("--budget", b)],
                                          "--format", "json"],
        "predict": [cli, "predict", str(fit), "--params", "70B", "--tokens", "1.4T"],
        "summary": [cli, "summary", str(fit)],
        "decide": [cli, "decide", str(fit), "--budget", "5.76e23", "--risk", "cvar:0.9"],
        "report": [cli, "report", str(fit), "--out", str(tmp / "report.html")],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=Path, help="saved fit to time commands on (default: make one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the median is reported")
    parser.add_argument("--quick", action="store_true", help="one run per command")
    parser.add_argument("--out", type=Path, help="append the figures as JSON lines to this file")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    cli = str(Path(sys.executable).parent / "bayes-scaling")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fit = args.fit
        if fit is None:
            fit = tmp / "fit.nc"
            start = time.perf_counter()
            make_fit(fit)
            print(f"made a 4000-draw fit in {time.perf_counter() - start:.1f} s", flush=True)
        help_text = subprocess.run([cli, "--help"], capture_output=True, text=True).stdout
        rows = []
        for name, cmd in commands(cli, fit, tmp).items():
            verb = cmd[1] if cmd[0] == cli else None
            if verb is not None and f" {verb} " not in help_text:
                rows.append({"command": name, "median_s": None, "target_s": None, "met": "not in this CLI"})
                continue
            target = TARGET_REPORT_S if verb == "report" else (TARGET_S if verb else None)
            times = [wall(cmd) for _ in range(repeat)]
            med = statistics.median(times)
            rows.append({"command": name, "median_s": med, "min_s": min(times), "target_s": target,
                         "met": None if target is None else med <= target})
            print(f"  {name}: {med:.2f} s", flush=True)
    emit("CLI latency from a saved fit (wall, start-up included)", rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
